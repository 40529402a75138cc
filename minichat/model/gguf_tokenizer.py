"""Importing the tokenizer a GGUF file carries in its metadata into minichat's byte-level BPE `Tokenizer`.

llama.cpp's converters store the whole tokenizer as metadata keys:

    tokenizer.ggml.model       "gpt2" for byte-level BPE (the only kind imported here)
    tokenizer.ggml.pre         the name of the pre-tokenizer (the regex that cuts text into chunks), e.g. "smollm"
    tokenizer.ggml.tokens      every token's text, by id, in GPT-2's printable byte alphabet (a space shows as "Ġ")
    tokenizer.ggml.token_type  per token: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
    tokenizer.ggml.merges      "left right" strings in rank order
    tokenizer.ggml.bos_token_id, eos_token_id, padding_token_id, unknown_token_id, add_bos_token, add_eos_token
    tokenizer.chat_template    the Jinja chat template of the original model

Normal tokens become byte strings through the inverse of `bytes_to_unicode`; control, unknown and user-defined tokens
become minichat special tokens (matched as whole strings, never built from merges), so by default user text cannot
produce them; unused tokens are left out. Bytes the vocabulary has no token for are dropped while encoding, as HF
tokenizers and llama.cpp do (`Tokenizer.missing_bytes`).

The pre-tokenizer is named, not stored, so the name must be mapped to the regex llama.cpp (llama-vocab.cpp) uses:
  * "gpt-2": GPT-2's pattern.
  * "smollm" (also "starcoder", "refact", "codeshell"): first every digit is cut off on its own, then GPT-2's pattern
    runs on the pieces between. That is two passes; `ISOLATED_DIGITS_PATTERN` folds them into one regex that gives the
    same chunks: a digit is always a chunk of its own, the other branches never consume digits, and the whitespace
    lookahead `(?!\\S)` becomes "not followed by a non-space that is not a digit", because in the two-pass version a
    digit ends the piece, and the end of a piece counts as "not followed by anything".
  * "qwen2" (also "stablelm2", "deepseek-r1-qwen"): the Qwen2 pattern, one regex already.
What it leaves out: SentencePiece ("llama") vocabularies, Llama-3 style "llama-bpe" (its BPE ignores merges for whole
words in the vocabulary, a different algorithm) and other names; they raise TokenizerError. Pass `pattern=` to
override the choice when you know the right regex.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


from minichat.errors import TokenizerError
from minichat.model.gguf import GGUFFile, read_gguf
from minichat.tokenizer.bpe import Tokenizer
from minichat.tokenizer.patterns import GPT2_PATTERN
from minichat.tokenizer.vocab import bytes_to_unicode

# GPT-2's pattern with each digit its own chunk (see the module docstring for why this equals the two passes).
ISOLATED_DIGITS_PATTERN = (
    r"""\p{N}|'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?![^\s\p{N}])|\s"""
)
# Qwen2's pattern (as in its tokenizer.json; llama.cpp spells the case-insensitive group out by hand).
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"""
    r"""\s+(?!\S)|\s+"""
)
PRE_TOKENIZER_PATTERNS = {
    "gpt-2": GPT2_PATTERN, "gpt2": GPT2_PATTERN,
    "smollm": ISOLATED_DIGITS_PATTERN, "starcoder": ISOLATED_DIGITS_PATTERN, "refact": ISOLATED_DIGITS_PATTERN,
    "codeshell": ISOLATED_DIGITS_PATTERN,
    "qwen2": QWEN2_PATTERN, "stablelm2": QWEN2_PATTERN, "deepseek-r1-qwen": QWEN2_PATTERN,
}
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
@dataclass(frozen=True)
class SpecialIds:
    """The special token ids a GGUF declares (None when absent), and whether a BOS/EOS should be added."""

    bos: int | None
    eos: int | None
    pad: int | None
    unk: int | None
    add_bos: bool | None  # tokenizer.ggml.add_bos_token; None when the file does not say
    add_eos: bool | None


def _as_gguf(gguf: GGUFFile | str | os.PathLike) -> GGUFFile:
    return gguf if isinstance(gguf, GGUFFile) else read_gguf(gguf)


def _typed(g: GGUFFile, key: str, kind: type) -> Any:
    """metadata[key] (None when absent), or TokenizerError if the file stores something else than a `kind` there."""
    value = g.metadata.get(key)
    if value is not None and type(value) is not kind:  # type(): True is an int to Python, not to GGUF
        expected = "an integer" if kind is int else "true or false"
        raise TokenizerError(f"{g.path}: {key} is {value!r:.80}, but it must be {expected}")
    return value


def special_ids_from_gguf(gguf: GGUFFile | str | os.PathLike) -> SpecialIds:
    """bos/eos/pad/unk ids and the add_bos/add_eos flags from the metadata."""
    g = _as_gguf(gguf)
    ids = {name: _typed(g, f"tokenizer.ggml.{key}", int) for name, key in [
        ("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "padding_token_id"), ("unk", "unknown_token_id")]}
    return SpecialIds(**ids, add_bos=_typed(g, "tokenizer.ggml.add_bos_token", bool),
                      add_eos=_typed(g, "tokenizer.ggml.add_eos_token", bool))


def chat_template_from_gguf(gguf: GGUFFile | str | os.PathLike) -> str | None:
    """The Jinja chat template stored with the model (`tokenizer.chat_template`), or None."""
    template = _as_gguf(gguf).metadata.get("tokenizer.chat_template")
    return template if isinstance(template, str) else None


def pattern_for_pre(pre: str | None) -> str:
    """The pre-tokenization regex for a `tokenizer.ggml.pre` name, or TokenizerError for names we do not know."""
    if isinstance(pre, str) and pre in PRE_TOKENIZER_PATTERNS:
        return PRE_TOKENIZER_PATTERNS[pre]
    raise TokenizerError(
        f"unknown GGUF pre-tokenizer {pre!r} (tokenizer.ggml.pre); minichat knows {sorted(PRE_TOKENIZER_PATTERNS)}. "
        f"If you know the model's split regex, pass it as tokenizer_from_gguf(..., pattern=...)")


def tokenizer_from_gguf(gguf: GGUFFile | str | os.PathLike, pattern: str | None = None,
                        name: str | None = None) -> Tokenizer:
    """Build a minichat Tokenizer from a GGUF's tokenizer metadata (byte-level BPE, `tokenizer.ggml.model == "gpt2"`).

    pattern: a regex to use instead of the one chosen from `tokenizer.ggml.pre`. name defaults to general.name.
    """
    g = _as_gguf(gguf)
    m = g.metadata
    model = m.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise TokenizerError(f"{g.path}: tokenizer.ggml.model is {model!r}; minichat imports only byte-level BPE "
                             f"('gpt2') vocabularies, not SentencePiece ('llama') or others")
    tokens = m.get("tokenizer.ggml.tokens")
    merges = m.get("tokenizer.ggml.merges")
    if not all(isinstance(x, list) and all(isinstance(t, str) for t in x) for x in (tokens, merges)):
        raise TokenizerError(f"{g.path}: the metadata lacks tokenizer.ggml.tokens or tokenizer.ggml.merges arrays "
                             f"of strings")
    types = m.get("tokenizer.ggml.token_type", [NORMAL] * len(tokens))
    if not isinstance(types, list) or not all(type(t) is int for t in types):
        raise TokenizerError(f"{g.path}: tokenizer.ggml.token_type must be an array of integers")
    if len(types) != len(tokens):
        raise TokenizerError(f"{g.path}: tokenizer.ggml.token_type has {len(types)} entries but there are "
                             f"{len(tokens)} tokens")
    try:
        pattern = pattern_for_pre(m.get("tokenizer.ggml.pre")) if pattern is None else pattern
    except TokenizerError as e:
        raise TokenizerError(f"{g.path}: {e}") from None

    byte_of = {ch: b for b, ch in bytes_to_unicode().items()}  # printable character -> the byte it stands for
    vocab: dict[int, bytes] = {}
    specials: dict[str, int] = {}
    for i, (text, kind) in enumerate(zip(tokens, types)):
        if kind == NORMAL:
            try:
                vocab[i] = bytes(byte_of[ch] for ch in text)
            except KeyError as e:
                raise TokenizerError(f"{g.path}: token {i} ({text!r}) has the character {e.args[0]!r}, outside "
                                     f"GPT-2's byte alphabet; not a byte-level BPE vocabulary") from None
        elif kind in (CONTROL, USER_DEFINED, UNKNOWN):
            if text in specials:
                raise TokenizerError(f"{g.path}: special token {text!r} appears twice (ids {specials[text]}, {i})")
            specials[text] = i
        elif kind == BYTE:
            raise TokenizerError(f"{g.path}: token {i} ({text!r}) is a SentencePiece byte token; this is not a "
                                 f"byte-level BPE vocabulary")
        elif kind != UNUSED:
            raise TokenizerError(f"{g.path}: token {i} ({text!r}) has unknown token type {kind}")

    id_of = {text: i for i, text in enumerate(tokens) if i in vocab}  # merges only ever join normal tokens
    merge_ids = []
    for rank, merge in enumerate(merges):
        left, sep, right = merge.partition(" ")
        if not sep or (left + right) not in id_of or left not in id_of or right not in id_of:
            raise TokenizerError(f"{g.path}: merge #{rank} {merge!r} is not 'left right' with both parts and "
                                 f"their join in the vocabulary")
        merge_ids.append((id_of[left], id_of[right], id_of[left + right]))
    if name is None:
        name = m.get("general.name") if isinstance(m.get("general.name"), str) else None
    try:
        return Tokenizer(vocab, merge_ids, pattern, specials, name=name or g.path.stem)
    except TokenizerError as e:  # the vocabulary's own checks (a pair merged twice, ...): say which file
        raise TokenizerError(f"{g.path}: {e}") from None
