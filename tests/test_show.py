"""The token display (minichat/tokenizer/show.py): every token and id shown, the text recoverable, HTML escaped.

The round-trip tests read the plain display back the way a person would (brackets delimit tokens, "↵" is a newline,
"\\xe6" a stray byte) and check that this gives the original text exactly: nothing dropped, nothing invented.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minichat.errors import TokenizerError
from minichat.tokenizer import Tokenizer, train
from minichat.tokenizer.show import TokenView, show_tokens, token_pieces

CORPUS = ("the cat sat on the mat.\n\tthe hat, the bat!  日本語 日本 日本 café café 👍 👍🏽 12345 e\u0301 ") * 20
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    # hermetic: merges learned here, including ones that cut multi-byte characters (日 is e6 97 a5)
    return train(CORPUS, 400, pattern="gpt4", special_tokens=["<|endoftext|>"], min_frequency=2)


def byte_tokenizer(merges=(), pattern=r"(?s)."):
    """A hand-built vocabulary: the 256 bytes plus the given (left, right, new) merges."""
    vocab = {i: bytes([i]) for i in range(256)}
    for a, b, c in merges:
        vocab[c] = vocab[a] + vocab[b]
    return Tokenizer(vocab, list(merges), pattern=pattern, special_tokens={"<|endoftext|>": 1000})


def read_back(display: str, visible_spaces: bool = False) -> tuple[str, list[int]]:
    """Parse a plain (color=False) display back into (text, ids), undoing every visible stand-in."""
    body, _, id_line = display.rpartition("ids (")
    count, _, ids = id_line.partition("): ")
    ids = [int(i) for i in ids.split()]
    assert int(count) == len(ids)
    labels = re.findall(r"\[\[(.*?)\]\]|\[(.*?)\]", body.replace("\n", ""))
    data = b""
    for special, label in labels:
        if special:
            data += special.encode()
            continue
        label = label.removeprefix("◌").replace("↵", "\n").replace("⇥", "\t").replace("␍", "\r")
        if visible_spaces:
            label = label.replace("·", " ")
        for plain, byte, char in re.findall(r"([^\\]+)|\\x([0-9a-f]{2})|\\u([0-9a-f]{4})", label):
            data += plain.encode() if plain else bytes([int(byte, 16)]) if byte else chr(int(char, 16)).encode()
    assert len(labels) == len(ids), "one bracketed piece per id"
    return data.decode("utf-8"), ids


def test_plain_display_hand_worked():
    t = byte_tokenizer([(104, 105, 256)], pattern="gpt2")  # "hi" is one token
    assert show_tokens(t, "hi hi\n", color=False) == "[hi][ ][hi][↵]\nids (4): 256 32 256 10"
    assert show_tokens(t, "hi\nhi", color=False) == "[hi][↵]\n[hi]\nids (3): 256 10 256"
    assert show_tokens(t, "hi hi", color=False, visible_spaces=True) == "[hi][·][hi]\nids (3): 256 32 256"
    assert show_tokens(t, "", color=False) == "ids (0): "


def test_every_token_and_id_shown(tok):
    text = "the cat sat on the mat.\n日本語 café 👍🏽 12345"
    ids = tok.encode(text)
    out = show_tokens(tok, text, color=False)
    shown_text, shown_ids = read_back(out)
    assert shown_ids == ids and shown_text == text
    for p in token_pieces(tok, text):
        assert f"[{p.label}]" in out
    assert show_tokens(tok, ids, color=False) == out  # ids in, same display


_ALPHABET = st.sampled_from(list("abc xyz.,!?-'0123456789\n\t\r") + ["é", "e\u0301", "日", "本", "👍", "🏽", "\u200d",
                                                                  "\u00a0", "\x07", "Ω", "ü"])


@settings(max_examples=150, deadline=None)
@given(text=st.lists(_ALPHABET, max_size=40).map("".join), visible=st.booleans())
def test_plain_display_round_trips(tok, text, visible):
    shown_text, shown_ids = read_back(show_tokens(tok, text, color=False, visible_spaces=visible), visible)
    assert shown_text == text
    assert shown_ids == tok.encode(text)


@settings(max_examples=50, deadline=None)
@given(text=st.lists(_ALPHABET, max_size=40).map("".join))
def test_colour_display_is_the_plain_one_coloured(tok, text):
    colour = show_tokens(tok, text, color=True)
    pieces = token_pieces(tok, text)
    # without the escape codes, the coloured display is the pieces without brackets, then the ids
    body = "".join(p.label + "\n" * p.newlines for p in pieces)
    if body and not body.endswith("\n"):
        body += "\n"
    assert ANSI.sub("", colour) == body + f"ids ({len(pieces)}): " + " ".join(str(i) for i in tok.encode(text))
    backgrounds = re.findall(r"\x1b\[48;5;(\d+)m", colour.rpartition("ids (")[0])
    assert len(backgrounds) == len(pieces)
    assert all(a != b for a, b in zip(backgrounds, backgrounds[1:])), "neighbouring tokens need different colours"


def test_split_characters_shown_as_bytes():
    t = byte_tokenizer([(0xE6, 0x97, 256)])  # "日" = e6 97 a5 -> [e6 97][a5]
    pieces = token_pieces(t, "日!")
    assert [p.label for p in pieces] == ["\\xe6\\x97", "\\xa5", "!"]
    assert [p.partial for p in pieces] == [True, True, False]
    assert [p.context for p in pieces] == ["日", "日", "!"]
    html = TokenView(t, "日!")._repr_html_()
    assert "part of &#x27;日&#x27;" in html and "e6 97" in html


def test_invisible_characters_made_visible():
    t = byte_tokenizer([(0xCC, 0x81, 256), (0xE2, 0x80, 257), (257, 0x8D, 258)])
    assert [p.label for p in token_pieces(t, "e\u0301")] == ["e", "◌\u0301"]  # combining accent on a dotted circle
    assert [p.label for p in token_pieces(t, "\u200d\x07\t\r\n")] == ["\\u200d", "\\x07", "⇥", "␍", "↵"]


def test_special_tokens_follow_encode_rules():
    t = byte_tokenizer()
    with pytest.raises(TokenizerError):
        show_tokens(t, "a<|endoftext|>b")  # exactly as encode: user text may not smuggle a control token in
    assert show_tokens(t, "a<|endoftext|>b", color=False, allowed_special="all") == (
        "[a][[<|endoftext|>]][b]\nids (3): 97 1000 98")
    plain = show_tokens(t, "<|e", color=False, disallowed_special=())
    assert plain.startswith("[<][|][e]")
    assert "\x1b[1;97" in show_tokens(t, [97, 1000], color=True)  # specials drawn apart in colour too


class _Collect(HTMLParser):
    """Tags, attributes and text of an HTML fragment, with the text inside each token span (ids left out)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.titles, self.tokens, self.depth, self.in_sub = [], [], [], 0, False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "span" and "title" in attrs:
            self.titles.append(attrs["title"])
            self.tokens.append("")
            self.depth = 1
        elif tag == "span" and self.depth:
            self.depth += 1
        self.in_sub = tag == "sub" or self.in_sub

    def handle_endtag(self, tag):
        if tag == "sub":
            self.in_sub = False
        elif tag == "span" and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth and not self.in_sub:
            self.tokens[-1] += data


def test_html_is_escaped_and_complete(tok):
    text = '<script>alert("x&y")</script> <b>bold</b> 日本 \'q\'\n'
    view = TokenView(tok, text)
    html = view._repr_html_()
    assert "<script" not in html and "<b>" not in html
    parsed = _Collect()
    parsed.feed(html)
    assert set(parsed.tags) <= {"div", "span", "sub", "br"}
    assert parsed.tokens == [p.label for p in view.pieces]  # each token's text, exactly, after unescaping
    assert [int(re.match(r"id (\d+)", t).group(1)) for t in parsed.titles] == tok.encode(text)
    assert parsed.tags.count("sub") == len(view)  # the id under every token
    assert "<sub" not in TokenView(tok, text, ids=False)._repr_html_()
    assert html.count("<br>") == 1


def test_html_special_token_escaped():
    view = TokenView(byte_tokenizer(), "x<|endoftext|>", allowed_special="all")
    html = view._repr_html_()
    assert "<|endoftext|>" not in html and "&lt;|endoftext|&gt;" in html
    assert "special token" in html


def test_token_view_text_forms(tok):
    view = TokenView(tok, "the cat\n")
    assert view.ids == tok.encode("the cat\n") and len(view) == len(view.ids) and view.text == "the cat\n"
    assert repr(view) == show_tokens(tok, "the cat\n", color=False, visible_spaces=True)
    assert "\x1b[" in str(view)
