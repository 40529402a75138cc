"""The fast pre-tokenization split must give exactly the chunks `regex` gives (see fastsplit.py's proof sketch)."""
import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minichat.tokenizer.fastsplit import ASCII_TWINS, Splitter
from minichat.tokenizer.patterns import GPT2_PATTERN, GPT4_PATTERN

# ASCII letters, digits, punctuation, every kind of whitespace (ASCII, \x1c-\x1f which only `re` calls space, Unicode
# spaces), apostrophes for contractions, and other scripts, emoji, combining marks, Unicode digits
PIECES = list("aZ09 .,'!-_") + ["'s", "'LL", " ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85",
                                 "\u00a0", "\u2003", "\u3000", "é", "日本", "Ж", "٣", "²", "🙂", "👍🏽", "\u0301", "x"]
texts = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@settings(max_examples=600, deadline=None)
@given(text=texts)
@example(text="a\u3000 b")
@example(text="\x1c a")
@example(text="日 x  y\n z")
def test_fast_split_equals_regex(text):
    for pattern in (GPT2_PATTERN, GPT4_PATTERN):
        assert Splitter(pattern).split(text) == regex.compile(pattern).findall(text), pattern


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
def test_fast_split_equals_regex_on_any_text(text):
    for pattern in (GPT2_PATTERN, GPT4_PATTERN):
        assert Splitter(pattern).split(text) == regex.compile(pattern).findall(text)


def test_only_known_patterns_get_a_twin():
    assert set(ASCII_TWINS) == {GPT2_PATTERN, GPT4_PATTERN}
    assert Splitter(r"\w+|\s+").ascii is None
    assert Splitter(r"\w+|\s+").split("ab  cd") == ["ab", "  ", "cd"]
