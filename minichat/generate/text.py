"""Streaming text out of a stream of token ids: whole UTF-8 characters only, and never a piece of a stop string.

Two things can make a just-generated token's text unsafe to show yet:

  1. it ends in the middle of a multi-byte character ("é" is 2 bytes, "🙂" is 4, and a token may hold only some
     of them) — `StreamDecoder` keeps those bytes back until the character is complete;
  2. it might be the beginning of a stop string. With stop string "\\nUser:", text ending in "\\nUs" may turn out
     to be the stop (which must never be shown) or just text. So the longest tail of the text that is a prefix of
     some stop string is held back (`holdback_length`) until the next tokens decide: either the stop string
     completes (the text before it is released, the stop string and everything after are dropped) or it can no
     longer match (the held text is released).

So the concatenated deltas equal `tokenizer.decode(ids)` cut just before the first stop string.

What it leaves out: regexes as stop patterns, and stop strings that span the prompt/answer boundary (the prompt is
never re-scanned).
"""
from __future__ import annotations

from collections.abc import Iterable

from minichat.tokenizer import StreamDecoder, Tokenizer


def holdback_length(text: str, stop_strings: Iterable[str]) -> int:
    """How many characters at the end of `text` could still be the start of a stop string.

    The longest k such that text[-k:] equals the first k characters of some stop string (k shorter than that stop
    string: a complete one is a match, not a maybe). Examples: ("Hello\\nUs", ["\\nUser:"]) -> 3;
    ("Hello", ["\\nUser:"]) -> 0; ("aba", ["abc", "bad"]) -> 2 ("ba" may start "bad"; only "a" could start "abc").
    """
    best = 0
    for s in stop_strings:
        for k in range(min(len(s) - 1, len(text)), best, -1):  # longest first; shorter than best cannot win
            if text.endswith(s[:k]):
                best = k
                break
    return best


def find_stop(text: str, stop_strings: Iterable[str]) -> tuple[int, str] | None:
    """The earliest occurrence of any stop string in `text`: (index, stop string), or None."""
    hits = [(i, s) for s in stop_strings if (i := text.find(s)) >= 0]
    return min(hits, key=lambda h: (h[0], -len(h[1]))) if hits else None


class TextStream:
    """Feed token ids one by one; get back the text that is now safe to show, and the stop string once one matches.

    >>> ts = TextStream(tok, stop_strings=["\\nUser:"])          # doctest: +SKIP
    >>> [ts.feed(i) for i in tok.encode("Hi\\nUser: x")]         # doctest: +SKIP
    [('Hi', None), ('', None), ('', '\\nUser:')]                   (how the text splits depends on the vocabulary)
    """

    def __init__(self, tokenizer: Tokenizer, stop_strings: Iterable[str] = ()):
        self.stop_strings = tuple(stop_strings)
        for s in self.stop_strings:
            if not isinstance(s, str) or not s:
                raise ValueError(f"stop strings must be non-empty strings, not {s!r}")
        self.decoder = StreamDecoder(tokenizer)
        self.held = ""  # decoded text not released yet: it may be the start of a stop string
        self.stopped: str | None = None  # the stop string that matched, once one has

    def feed(self, token_id: int) -> tuple[str, str | None]:
        """Add one token. Returns (text released now, the stop string if this token completed one)."""
        if self.stopped is not None:
            raise ValueError("this stream already stopped at a stop string; start a new TextStream")
        self.held += self.decoder.feed(token_id)
        hit = find_stop(self.held, self.stop_strings)
        if hit is not None:
            i, s = hit
            text, self.held, self.stopped = self.held[:i], "", s
            return text, s
        keep = holdback_length(self.held, self.stop_strings)
        cut = len(self.held) - keep
        text, self.held = self.held[:cut], self.held[cut:]
        return text, None

    def flush(self) -> str:
        """End of generation (not at a stop string): release everything held back; an unfinished character
        becomes U+FFFD, as `tokenizer.decode` would show it."""
        text = self.held + self.decoder.flush()
        self.held = ""
        return text
