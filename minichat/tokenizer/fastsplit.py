"""A faster pre-tokenization split for the GPT-2 and GPT-4 patterns on mostly-ASCII text. Same chunks, exactly.

Splitting text with the `regex` module is the slowest step of encoding (~10 MB/s here: tiktoken encodes a whole
corpus in the time `regex` takes just to split it). Python's own `re` runs the same kind of pattern 2-3x faster but
knows no `\\p{L}`. On ASCII text the Unicode classes are small and exact — letters are [A-Za-z], numbers [0-9], and
`regex`'s `\\s` is [\\t\\n\\v\\f\\r ] (careful: `re`'s `\\s` also takes \\x1c-\\x1f) — so each known pattern gets an
ASCII twin for `re`, and `regex` keeps the rest.

Where may we cut the text so that each piece can be split on its own? Before a space whose left neighbour is not
whitespace (we use only visible ASCII neighbours, "!".."~", to stay clear of Unicode's many whitespace characters). Proof sketch, for both patterns: (1) a chunk starts there — the chunk before it ends at that non-space
character, because only the whitespace branches consume a space after something else, and they cannot contain the
non-space character; (2) the chunks after the cut depend only on the text after it — the patterns have lookaheads
but no lookbehinds, and the end anchor `$` is the same end; (3) the chunks before the cut are unchanged — no branch
looks ahead past a non-space character into the space (only the whitespace branches look ahead, and no whitespace
run ends at the non-space character), and `\\s++$` cannot fire at the cut because the piece ends in a non-space.

So: find the non-ASCII characters, widen each to the nearest cuts on both sides, split those stretches with `regex`
and everything between with the ASCII twin. Text with no non-ASCII character is one `re` call. A hypothesis test
checks the result equals `regex` on text mixing ASCII, whitespace and other scripts; the tiktoken parity tests run
through it too. Custom patterns simply use `regex`.
"""
from __future__ import annotations

import re

import regex

from minichat.tokenizer.patterns import GPT2_PATTERN, GPT4_PATTERN

_L, _N, _S = "A-Za-z", "0-9", r"\t\n\x0b\x0c\r "  # ASCII letters, digits, and regex's ASCII whitespace

ASCII_TWINS = {
    GPT2_PATTERN: rf"""'(?:[sdmt]|ll|ve|re)| ?[{_L}]++| ?[{_N}]++| ?[^{_S}{_L}{_N}]++|[{_S}]++$|[{_S}]+(?![^{_S}])|"""
                  rf"""[{_S}]""",
    GPT4_PATTERN: rf"""'(?i:[sdmt]|ll|ve|re)|[^\r\n{_L}{_N}]?+[{_L}]++|[{_N}]{{1,3}}+| ?[^{_S}{_L}{_N}]++[\r\n]*+|"""
                  rf"""[{_S}]++$|[{_S}]*[\r\n]|[{_S}]+(?![^{_S}])|[{_S}]""",
}
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_CUT = re.compile(r"(?<=[!-~]) ")  # a space right after a visible ASCII character (never whitespace, in any sense)


class Splitter:
    """`split(text)` equals `regex.compile(pattern).findall(text)`; faster for the GPT-2 and GPT-4 patterns."""

    def __init__(self, pattern: str):
        self.full = regex.compile(pattern)
        twin = ASCII_TWINS.get(pattern)
        self.ascii = re.compile(twin) if twin is not None else None

    def split(self, text: str) -> list[str]:
        if self.ascii is None:
            return self.full.findall(text)
        if text.isascii():
            return self.ascii.findall(text)
        out: list[str] = []
        pos = 0  # text[:pos] is split already
        for m in _NON_ASCII.finditer(text):
            if m.start() < pos:
                continue  # inside the previous widened stretch
            lo = _last_cut(text, pos, m.start())
            hi_cut = _CUT.search(text, m.end())
            hi = hi_cut.start() if hi_cut else len(text)
            out += self.ascii.findall(text, pos, lo)  # the ASCII stretch before
            out += self.full.findall(text[lo:hi])  # the stretch around the non-ASCII run
            pos = hi
        out += self.ascii.findall(text, pos)
        return out


def _last_cut(text: str, lo: int, hi: int) -> int:
    """The last cut position in text[lo:hi] (a space after a visible ASCII character), or lo if there is none."""
    i = text.rfind(" ", lo, hi)
    while i > lo:
        if "!" <= text[i - 1] <= "~":
            return i
        i = text.rfind(" ", lo, i)
    return lo
