"""The tokenizer imported from GGUF metadata against HF `tokenizers` built by hand from the same tokens and merges.

The reference for SmolLM2 is assembled independently of our code: its tokens and merges come from `gguf.GGUFReader`,
and its pre-tokenizer is HF's own two-stage Sequence(Digits(individual_digits=True), ByteLevel) — the pipeline in
SmolLM2's tokenizer.json — while ours folds both stages into one regex. Synthetic GGUF files (written by
`gguf.GGUFWriter` from a vocabulary minichat trains in the test) cover the gpt-2 pre-tokenizer, dropped bytes and
the refusals.
"""
from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import require_peer, smollm2_gguf
from minichat.errors import TokenizerError
from minichat.model.gguf import read_gguf
from minichat.model.gguf_tokenizer import (GPT2_PATTERN, ISOLATED_DIGITS_PATTERN, QWEN2_PATTERN, SpecialIds,
                                           chat_template_from_gguf, special_ids_from_gguf, tokenizer_from_gguf)
from minichat.tokenizer import train
from minichat.tokenizer.vocab import bytes_to_unicode

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's 2024; we'll see what they've done, and I'M SURE you'd agree.",
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)  # O(2**n)\n\n\tprint(fib(30))\r\n",
    "for (int i = 0; i < 10; ++i) { x[i] = 0x1F & y[i]; }  // C++ 3.14159e-10",
    "日本語のテキストと漢字。中文文本，标点符号！한국어 텍스트입니다.",
    "مرحبا بالعالم، هذا نص عربي ١٢٣٤. שלום עולם.",
    "नमस्ते दुनिया, यह हिंदी है। தமிழ் உரை. ภาษาไทย ไม่มีช่องว่าง",
    "Привет, мир! Ελληνικά γράμματα. Ქართული ენა. Հայերեն.",
    "Emoji: 👩‍👩‍👧‍👦 👍🏽 👋🏿 🇫🇷🇯🇵 ❤️‍🔥 🏳️‍🌈 😀😃😄",
    "Combining: e\u0301 a\u0308 n\u0303 Z\u0351\u0361\u0334a\u0358lgo; precomposed: é ä ñ",
    "      many spaces   \n\n\n\t\t  tabs and newlines   \u3000\u3000wide\u00a0nbsp  ",
    "Digits: 1 22 333 4444 55555 3.14 1,000,000 ٣٤٥ ²³ ½ Ⅻ 𝟙𝟚 ０１２",
    "control bytes the vocabulary lacks: a\x04b !\x06! \x13\x14\x16\x1d end",
    "'s 'S 't 're 've 'm 'll 'd ''' isn't DON'T",
    "x  \n 5 a  1 \n\n7",
    "",
]


@pytest.fixture(scope="module")
def smollm2():
    """(our tokenizer, the HF reference, the gguf package's reader) for the real SmolLM2 file."""
    gguf = require_peer("gguf")
    tokenizers = require_peer("tokenizers")
    path = smollm2_gguf()
    reader = gguf.GGUFReader(str(path))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    merges = [tuple(m.split(" ")) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    hf = tokenizers.Tokenizer(tokenizers.models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    hf.pre_tokenizer = tokenizers.pre_tokenizers.Sequence([
        tokenizers.pre_tokenizers.Digits(individual_digits=True),
        tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    hf.decoder = tokenizers.decoders.ByteLevel()
    hf.add_special_tokens([tokenizers.AddedToken(t, special=True, normalized=False)
                           for t, kind in zip(tokens, types) if kind == 3])
    return tokenizer_from_gguf(read_gguf(path)), hf, reader


def test_smollm2_tokenizer_encodes_like_hf_tokenizers(smollm2):
    ours, hf, _ = smollm2
    assert ours.n_vocab == hf.get_vocab_size() == 49152
    for text in CORPUS + ["\n".join(CORPUS)]:
        assert ours.encode(text) == hf.encode(text, add_special_tokens=False).ids, text
        if not any(c in text for c in "\x04\x06\x13\x14\x16\x1d"):  # the bytes without a token are dropped
            assert ours.decode(ours.encode(text)) == text


ALPHABET = list("ab Z'sll\n\t\r 0123٣²½.,!?-_éß東京🙂👍🏽\u200d\u0301\u3000\u00a0") + ["\x04", "\U00050000"]


# Characters unassigned in Python's Unicode tables (Cn) are left out: `regex` and HF's Oniguruma follow different
# Unicode versions, so a code point one of them already calls a letter (e.g. U+3D000) may be "other" to the other.
@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(alphabet=st.sampled_from(ALPHABET), max_size=40),
                      st.text(st.characters(exclude_categories=("Cs", "Cn")), max_size=40)))
@example(text="<|im_end|> and <|im_start|>user")
def test_smollm2_encoding_and_splitting_match_hf_on_any_text(smollm2, text):
    ours, hf, _ = smollm2
    # encode_ordinary treats special-token strings as text; HF does so with encode_special_tokens=True
    hf.encode_special_tokens = True
    try:
        assert ours.encode_ordinary(text) == hf.encode(text, add_special_tokens=False).ids
    finally:
        hf.encode_special_tokens = False
    # the single folded regex cuts exactly where HF's two passes (digits, then GPT-2's regex) cut
    table = {ch: b for b, ch in bytes_to_unicode().items()}
    pieces = [bytes(table[c] for c in piece) for piece, _ in hf.pre_tokenizer.pre_tokenize_str(text)]
    assert [c.encode("utf-8") for c in ours.split(text)] == pieces


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(ALPHABET), max_size=40))
def test_gpt2_and_qwen2_patterns_split_like_hf(text):
    tokenizers = require_peer("tokenizers")
    import regex

    pre = tokenizers.pre_tokenizers
    table = {ch: b for b, ch in bytes_to_unicode().items()}
    byte_level = pre.ByteLevel(add_prefix_space=False, use_regex=True)
    want = [bytes(table[c] for c in p) for p, _ in byte_level.pre_tokenize_str(text)]
    assert [c.encode() for c in regex.findall(GPT2_PATTERN, text)] == want
    # Qwen2's tokenizer.json: Split(that regex, "isolated") then ByteLevel without its own regex
    qwen = pre.Sequence([pre.Split(tokenizers.Regex(QWEN2_PATTERN), "isolated"),
                         pre.ByteLevel(add_prefix_space=False, use_regex=False)])
    want = [bytes(table[c] for c in p) for p, _ in qwen.pre_tokenize_str(text)]
    assert [c.encode() for c in regex.findall(QWEN2_PATTERN, text)] == want
    assert "".join(regex.findall(ISOLATED_DIGITS_PATTERN, text)) == text  # never drops a character


def test_smollm2_special_tokens_and_ids(smollm2):
    ours, hf, reader = smollm2
    chat = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    ids = ours.encode(chat, allowed_special="all")
    assert ids == hf.encode(chat, add_special_tokens=False).ids
    assert ids[0] == ours.special_tokens["<|im_start|>"] and ours.decode(ids) == chat
    with pytest.raises(TokenizerError, match=re.escape("<|im_start|>")):
        ours.encode(chat)  # user text may not smuggle control tokens in
    assert not set(ours.encode_ordinary(chat)) & ours.special_ids
    special = special_ids_from_gguf(read_gguf(smollm2_gguf()))
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    assert special == SpecialIds(bos=field("tokenizer.ggml.bos_token_id"), eos=field("tokenizer.ggml.eos_token_id"),
                                 pad=field("tokenizer.ggml.padding_token_id"),
                                 unk=field("tokenizer.ggml.unknown_token_id"),
                                 add_bos=field("tokenizer.ggml.add_bos_token"), add_eos=None)
    assert ours.token_bytes(special.eos) == b"<|im_end|>" and ours.is_special(special.bos)


def test_smollm2_chat_template_is_chatml(smollm2):
    _, _, reader = smollm2
    template = chat_template_from_gguf(smollm2_gguf())  # a path works as well as an open file
    assert template == reader.fields["tokenizer.chat_template"].contents()
    assert "<|im_start|>" in template and "<|im_end|>" in template and "add_generation_prompt" in template


# -- synthetic files ---------------------------------------------------------------------------------------------------

TRAIN_TEXT = ("the cat sat on the mat with another cat; the hat is on the cat. " * 5 + "naïve café © 1999 2000! ") * 3
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@pytest.fixture(scope="module")
def trained():
    return train(TRAIN_TEXT, vocab_size=320, pattern=GPT2_PATTERN, special_tokens=SPECIALS, kernel="python")


def write_tokenizer_gguf(path, tok, pre="gpt-2", model="gpt2", drop_bytes=b"", types_override=None, template=None,
                         extra=()):
    """A GGUF holding `tok` the way llama.cpp's converter stores it; tokens for `drop_bytes` are made UNUSED."""
    gguf = require_peer("gguf")
    show = bytes_to_unicode()
    text = lambda b: "".join(show[x] for x in b)  # noqa: E731
    dropped = {i for i, b in tok.vocab.items() if len(b) == 1 and b[0] in drop_bytes}
    tokens, types = [], []
    for i in range(tok.n_vocab):
        if i in tok.vocab:
            tokens.append(text(tok.vocab[i]))
            types.append(5 if i in dropped else 1)
        else:
            tokens.append(tok.decode([i]))
            types.append(3)
    merges = [f"{text(tok.vocab[a])} {text(tok.vocab[b])}" for a, b, c in tok.merges
              if not {a, b, c} & dropped and not _uses(tok, c, dropped)]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model(model)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types_override or types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tok.special_tokens["<|im_start|>"])
    w.add_eos_token_id(tok.special_tokens["<|im_end|>"])
    if template:
        w.add_chat_template(template)
    for key, value, vtype in extra:
        w.add_key_value(key, value, getattr(gguf.GGUFValueType, vtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    return path


def _uses(tok, token_id, dropped) -> bool:
    """Whether building token_id by merges needs one of the dropped byte tokens."""
    return any(b in {tok.vocab[d][0] for d in dropped} for b in tok.vocab[token_id])


def test_round_trip_of_a_minichat_vocabulary(tmp_path, trained):
    path = write_tokenizer_gguf(tmp_path / "tok.gguf", trained, template="{{ messages }}")
    tok = tokenizer_from_gguf(path)
    assert (tok.vocab, tok.merges, tok.special_tokens, tok.pattern) == (
        trained.vocab, trained.merges, trained.special_tokens, trained.pattern)
    for text in CORPUS + [TRAIN_TEXT]:
        assert tok.encode(text) == trained.encode(text)
    assert chat_template_from_gguf(path) == "{{ messages }}"
    ids = special_ids_from_gguf(path)
    assert (ids.bos, ids.eos, ids.pad, ids.add_bos) == (trained.special_tokens["<|im_start|>"],
                                                        trained.special_tokens["<|im_end|>"], None, None)


def test_missing_bytes_are_dropped_as_hf_tokenizers_does(tmp_path, trained):
    tokenizers = require_peer("tokenizers")
    gguf = require_peer("gguf")
    drop = bytes([ord("x"), 0xA9, 0xC3, ord("!")])  # ASCII, a continuation byte (© is C2 A9), a lead byte
    path = write_tokenizer_gguf(tmp_path / "drop.gguf", trained, drop_bytes=drop)
    tok = tokenizer_from_gguf(path)
    assert tok.missing_bytes == bytes(sorted(drop))
    reader = gguf.GGUFReader(str(path))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    vocab = {t: i for i, (t, kind) in enumerate(zip(tokens, types)) if kind == 1}
    merges = [tuple(m.split(" ")) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    hf = tokenizers.Tokenizer(tokenizers.models.BPE(vocab, merges))
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    for text in CORPUS + [TRAIN_TEXT, "x!x café© naïve Ã !!x!"]:
        assert tok.encode_ordinary(text) == hf.encode(text, add_special_tokens=False).ids, text


@pytest.mark.parametrize("kwargs, words", [
    ({"pre": "llama-bpe"}, ["'llama-bpe'", "pattern="]),
    ({"pre": None}, ["None", "pattern="]),
    ({"model": "llama"}, ["'llama'", "byte-level BPE"]),
    ({"types_override": [1, 1]}, ["token_type has 2 entries"]),
])
def test_refusals(tmp_path, trained, kwargs, words):
    path = write_tokenizer_gguf(tmp_path / "bad.gguf", trained, **kwargs)
    with pytest.raises(TokenizerError) as info:
        tokenizer_from_gguf(path)
    for word in words:
        assert word in str(info.value)


def test_pattern_override_and_byte_tokens(tmp_path, trained):
    path = write_tokenizer_gguf(tmp_path / "p.gguf", trained, pre="llama-bpe")
    tok = tokenizer_from_gguf(path, pattern=GPT2_PATTERN, name="mine")
    assert tok.name == "mine" and tok.encode(TRAIN_TEXT) == trained.encode(TRAIN_TEXT)
    types = [6] + [1] * (trained.n_vocab - 1)  # a SentencePiece byte token is not byte-level BPE
    path = write_tokenizer_gguf(tmp_path / "b.gguf", trained, types_override=types)
    with pytest.raises(TokenizerError, match="SentencePiece byte token"):
        tokenizer_from_gguf(path)
