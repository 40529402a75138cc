"""Token boundaries made visible: text cut into tokens, each with its id, in a terminal or a notebook.

    >>> print(show_tokens(gpt2, "Hello world!", color=False))     # doctest: +SKIP
    [Hello][ world][!]
    ids (3): 15496 995 0

`show_tokens` returns a string for the terminal: ANSI background colours alternate from token to token (or, with
`color=False`, each token sits in brackets), followed by the ids in the same order. `TokenView` is the notebook
version: Jupyter calls its `_repr_html_` and draws coloured spans, the id under each token and a tooltip with its
bytes. Both are built on `token_pieces`, which describes every token as display segments.

What a reader must be able to see, and how it is shown:
  * whitespace: a newline is "↵" (and the display breaks the line after that token), a tab "⇥", a carriage return
    "␍"; spaces are shown as "·" when `visible_spaces=True` (the notebook default), otherwise the colour or the
    brackets show them. Other invisible characters (zero-width joiner, variation selectors, no-break space, control
    characters) are shown as escapes: "\\u200d", "\\x07".
  * a token that holds only part of a UTF-8 character (byte-level BPE splits "日" = e6 97 a5 freely) shows its
    stray bytes in hex, "\\xe6", and the tooltip names the character it belongs to.
  * a combining mark that starts a token is drawn on a dotted circle, "◌́", instead of on the previous bracket.
  * special tokens (<|endoftext|>) are drawn apart: bold on a dark background, or in double brackets [[...]].
All text in the HTML goes through `html.escape`, so text such as "<script>" is shown, never run.

What it leaves out: word-wrapping (the terminal and the browser do it), right-to-left layout hints.
"""
from __future__ import annotations

import html
import unicodedata
from bisect import bisect_right
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from minichat.tokenizer.bpe import Tokenizer

# display glyphs for whitespace that would otherwise be invisible or break the layout
GLYPHS = {"\n": "↵", "\t": "⇥", "\r": "␍"}
SPACE_DOT = "·"
DOTTED_CIRCLE = "◌"

# pastel backgrounds, alternated per token: xterm-256 colour numbers for the terminal, the same hues for HTML
ANSI_BACKGROUNDS = (224, 195, 230, 194, 189, 223)
HTML_BACKGROUNDS = ("#ffd7d7", "#d7ffff", "#ffffd7", "#d7ffd7", "#d7d7ff", "#ffd7af")
_ANSI_RESET = "\x1b[0m"
_ANSI_SPECIAL = "\x1b[1;97;48;5;238m"  # bold bright white on dark grey
_ANSI_DIM = "\x1b[38;5;244m"  # grey text for glyphs and stray bytes (the background stays)
_ANSI_BLACK = "\x1b[38;5;16m"  # back to the tokens' black text


@dataclass(frozen=True)
class TokenPiece:
    """One token as it is displayed.

    id: the token id; data: its bytes; special: a control token such as <|endoftext|>;
    segments: (kind, shown) pairs, kind one of "text", "glyph" (a stand-in for whitespace or an invisible
    character), "byte" (a stray byte of a split character, shown as \\xNN) or "special";
    context: the whole characters this token's bytes belong to (equal to the token's own text unless it splits a
    character); newlines: how many line breaks the display puts after it.
    """

    id: int
    data: bytes
    special: bool
    segments: tuple[tuple[str, str], ...]
    context: str
    newlines: int

    @property
    def label(self) -> str:
        """The token as shown: "Hello", " world", "↵", "\\xe6"."""
        return "".join(shown for _, shown in self.segments)

    @property
    def partial(self) -> bool:
        """True when the token holds only part of a UTF-8 character (or bytes that are not UTF-8 at all)."""
        return any(kind == "byte" for kind, _ in self.segments)


def token_pieces(
    tokenizer: Tokenizer,
    text_or_ids: str | Iterable[int],
    visible_spaces: bool = False,
    allowed_special: Literal["all"] | Collection[str] = (),
    disallowed_special: Literal["all"] | Collection[str] = "all",
) -> list[TokenPiece]:
    """Encode `text_or_ids` (a str; ids are taken as they are) and describe each token for display.

    Text is encoded exactly as `tokenizer.encode` would, with the same special-token rules (so text holding
    "<|endoftext|>" raises TokenizerError unless you allow it).
    """
    if isinstance(text_or_ids, str):
        ids = tokenizer.encode(text_or_ids, allowed_special=allowed_special, disallowed_special=disallowed_special)
    else:
        ids = [int(i) for i in text_or_ids]
    datas = [tokenizer.token_bytes(i) for i in ids]

    # Where every character of the whole byte string starts, so a token can name the characters it cuts through.
    # Decoding with "surrogateescape" turns each byte that is not part of valid UTF-8 into one lone surrogate.
    whole = b"".join(datas)
    chars = whole.decode("utf-8", errors="surrogateescape")
    starts, pos = [], 0
    for ch in chars:
        starts.append(pos)
        pos += 1 if _is_escaped_byte(ch) else len(ch.encode("utf-8"))

    pieces, offset = [], 0
    for token_id, data in zip(ids, datas):
        lo, hi = offset, offset + len(data)
        offset = hi
        special = tokenizer.is_special(token_id)
        first = bisect_right(starts, lo) - 1  # the character holding the token's first byte
        last = bisect_right(starts, hi - 1) - 1  # ... and its last byte
        context = "".join(_show_char(c, visible_spaces)[1] if _is_escaped_byte(c) else c for c in chars[first:last + 1])
        if special:
            segments: tuple[tuple[str, str], ...] = (("special", data.decode("utf-8")),)
        else:
            segments = _segments(data, visible_spaces)
        newlines = 0 if special else data.count(b"\n")
        pieces.append(TokenPiece(token_id, data, special, segments, context, newlines))
    return pieces


def _is_escaped_byte(ch: str) -> bool:
    return "\udc80" <= ch <= "\udcff"


def _segments(data: bytes, visible_spaces: bool) -> tuple[tuple[str, str], ...]:
    """A token's bytes -> display segments; neighbours of the same kind share one segment."""
    text = data.decode("utf-8", errors="surrogateescape")
    out: list[tuple[str, str]] = []
    if text and unicodedata.category(text[0]).startswith("M"):
        out.append(("glyph", DOTTED_CIRCLE))  # a combining mark needs a base to sit on
    for ch in text:
        kind, shown = _show_char(ch, visible_spaces)
        if out and kind == out[-1][0]:
            out[-1] = (kind, out[-1][1] + shown)
        else:
            out.append((kind, shown))
    return tuple(out)


def _show_char(ch: str, visible_spaces: bool) -> tuple[str, str]:
    if _is_escaped_byte(ch):
        return "byte", f"\\x{ord(ch) - 0xDC00:02x}"  # surrogateescape maps byte b to U+DC00 + b
    if ch in GLYPHS:
        return "glyph", GLYPHS[ch]
    if ch == " ":
        return ("glyph", SPACE_DOT) if visible_spaces else ("text", " ")
    cat = unicodedata.category(ch)
    invisible = cat in ("Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cn") or 0xFE00 <= ord(ch) <= 0xFE0F \
        or 0xE0100 <= ord(ch) <= 0xE01EF  # variation selectors are marks (Mn) but draw nothing
    if invisible:
        return "glyph", f"\\x{ord(ch):02x}" if ord(ch) < 0x80 else f"\\u{ord(ch):04x}"
    return "text", ch


# -- terminal ----------------------------------------------------------------------------------------------------------


def show_tokens(
    tokenizer: Tokenizer,
    text_or_ids: str | Iterable[int],
    color: bool = True,
    visible_spaces: bool = False,
    allowed_special: Literal["all"] | Collection[str] = (),
    disallowed_special: Literal["all"] | Collection[str] = "all",
) -> str:
    """The tokens of `text_or_ids` for a terminal: coloured (or bracketed) pieces, then a line of ids.

    color=True: each token on its own background colour, alternating; the ids below wear the same colours.
    color=False: plain text, "[Hello][ world][!]", special tokens in double brackets "[[<|endoftext|>]]".
    The last line is always "ids (N): id id id ...".
    """
    pieces = token_pieces(tokenizer, text_or_ids, visible_spaces, allowed_special, disallowed_special)
    body, id_words = [], []
    for k, p in enumerate(pieces):
        if color:
            background = f"\x1b[48;5;{ANSI_BACKGROUNDS[k % len(ANSI_BACKGROUNDS)]}m"
            start = _ANSI_SPECIAL if p.special else _ANSI_BLACK + background
            shown = "".join(_ANSI_DIM + s + _ANSI_BLACK if kind in ("glyph", "byte") else s for kind, s in p.segments)
            body.append(f"{start}{shown}{_ANSI_RESET}")
            id_words.append(f"{start}{p.id}{_ANSI_RESET}")
        else:
            body.append(f"[[{p.label}]]" if p.special else f"[{p.label}]")
            id_words.append(str(p.id))
        body.append("\n" * p.newlines)  # keep the text's line layout: break after a token holding newlines
    text = "".join(body)
    return f"{text}{'' if text.endswith(chr(10)) or not text else chr(10)}ids ({len(pieces)}): {' '.join(id_words)}"


# -- notebook ----------------------------------------------------------------------------------------------------------


class TokenView:
    """Tokens of a text for Jupyter: coloured spans, the id under each (ids=True), bytes in a tooltip.

    >>> TokenView(gpt2, "Hello world!")        # doctest: +SKIP   (a notebook renders it as HTML)
    `repr()` gives the plain-text rendering and `str()` the coloured terminal one, so printing it works anywhere.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        text_or_ids: str | Iterable[int],
        ids: bool = True,
        visible_spaces: bool = True,
        allowed_special: Literal["all"] | Collection[str] = (),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ):
        self.tokenizer = tokenizer
        self.show_ids = ids
        self.visible_spaces = visible_spaces
        self.pieces = token_pieces(tokenizer, text_or_ids, visible_spaces, allowed_special, disallowed_special)
        self.ids = [p.id for p in self.pieces]
        self.text = b"".join(p.data for p in self.pieces).decode("utf-8", errors="replace")

    def __len__(self) -> int:
        return len(self.pieces)

    def __repr__(self) -> str:
        return show_tokens(self.tokenizer, self.ids, color=False, visible_spaces=self.visible_spaces)

    def __str__(self) -> str:
        return show_tokens(self.tokenizer, self.ids, color=True, visible_spaces=self.visible_spaces)

    def _repr_html_(self) -> str:
        spans = []
        for k, p in enumerate(self.pieces):
            if p.special:
                style = "background:#444;color:#fff;font-weight:bold"
            else:
                style = f"background:{HTML_BACKGROUNDS[k % len(HTML_BACKGROUNDS)]};color:#000"
            tip = f"id {p.id} · {len(p.data)} byte{'s' if len(p.data) != 1 else ''}: {p.data.hex(' ')}"
            if p.special:
                tip += " · special token"
            elif p.partial:
                tip += f" · part of {p.context!r}"
            inner = "".join(_html_segment(kind, s) for kind, s in p.segments)
            sub = (f'<sub style="font-size:0.62em;color:#555;margin-left:1px">{p.id}</sub>' if self.show_ids else "")
            spans.append(f'<span title="{html.escape(tip)}" style="{style};border-radius:3px;padding:1px 1px;'
                         f'margin:0 1px 0 0">{inner}{sub}</span>' + "<br>" * p.newlines)
        n_chars = len(self.text)
        ratio = f" · {len(self.pieces) / n_chars:.2f} tokens per character" if n_chars else ""
        return ('<div style="font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;'
                f'line-height:2.2;word-break:break-word">{"".join(spans)}</div>'
                f'<div style="font-size:0.85em;color:#666">{len(self.pieces)} tokens · {n_chars} characters'
                f'{ratio}</div>')


def _html_segment(kind: str, shown: str) -> str:
    escaped = html.escape(shown)
    if kind == "glyph":
        return f'<span style="color:#888">{escaped}</span>'
    if kind == "byte":
        return f'<span style="color:#b00;font-size:0.8em">{escaped}</span>'
    return escaped
