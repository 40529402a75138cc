"""Pre-tokenization patterns: the regular expressions that cut text into chunks before BPE runs on each chunk.

BPE never merges across chunk boundaries, so the pattern decides what a token *can* be: with GPT-2's pattern a token
never spans a letter and a digit, and " hello" (leading space included) is one chunk. They need the `regex` module
for Unicode classes (\\p{L} letters, \\p{N} numbers) and possessive quantifiers (`++`, which never backtrack and keep
long runs linear).

The strings are byte-for-byte those of tiktoken's `r50k_base`/`gpt2` and `cl100k_base` encodings (OpenAI's
tiktoken_ext/openai_public.py), because exact parity with tiktoken needs exactly the same chunks.
"""

# GPT-2: contractions, optional space + letters, optional space + digits, optional space + punctuation, whitespace.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""

# GPT-4 (cl100k): case-insensitive contractions, digits in groups of at most three, newlines kept apart.
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)

PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN, "cl100k": GPT4_PATTERN}


def resolve_pattern(pattern: str) -> str:
    """A pattern name ("gpt2", "gpt4"/"cl100k") or a regular expression -> the regular expression."""
    return PATTERNS.get(pattern, pattern)
