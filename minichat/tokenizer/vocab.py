"""Importing real vocabularies: GPT-2's files, tiktoken rank files, and HF `tokenizer.json` (byte-level BPE).

GPT-2 (`encoder.json` + `vocab.bpe`)
    OpenAI stored tokens as printable strings: every byte is first mapped to a visible Unicode character
    (`bytes_to_unicode`: printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100 onwards, so a space
    shows as "Ġ"). `encoder.json` maps those strings to ids; `vocab.bpe` lists the merges in rank order as
    "left right" lines. HF tokenizer.json files for byte-level BPE use the same mapping.

tiktoken (`cl100k_base.tiktoken`)
    One line per token: base64 of its bytes, then its rank, which is also its id. There are no merges in the file;
    tiktoken merges by "the adjacent pair whose concatenated bytes has the lowest rank". We recover an explicit
    merge list (as minbpe does): for each multi-byte token, run that same algorithm on its own bytes using only
    lower ranks; the two parts left at the end are the merge that makes it. Special tokens are not in the file and
    are passed in (tiktoken's cl100k_base ones are in `CL100K_SPECIAL_TOKENS`).

What it leaves out: SentencePiece/unigram models and HF BPE models with `ignore_merges` (Llama 3), which apply a
different algorithm; they are refused with a clear message. GGUF metadata import lives with the GGUF reader.
"""
from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from minichat.errors import TokenizerError
from minichat.tokenizer.bpe import Tokenizer
from minichat.tokenizer.patterns import GPT2_PATTERN, GPT4_PATTERN

GPT2_SPECIAL_TOKENS = {"<|endoftext|>": 50256}
CL100K_SPECIAL_TOKENS = {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                         "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> visible character map (byte 32, a space, -> 'Ġ' U+0120)."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in visible:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _unicode_to_bytes(token: str, table: dict[str, int]) -> bytes:
    try:
        return bytes(table[ch] for ch in token)
    except KeyError as e:
        raise TokenizerError(f"token {token!r} has the character {e.args[0]!r}, which is not in the byte-level "
                             f"alphabet; this is not a byte-level BPE vocabulary") from None


def _from_string_vocab(tokens: dict[str, int], merge_pairs: list[tuple[str, str]], specials: dict[str, int],
                       pattern: str, name: str) -> Tokenizer:
    """Shared by GPT-2 files and tokenizer.json: string tokens + string merges -> ids and bytes."""
    table = {ch: b for b, ch in bytes_to_unicode().items()}
    vocab = {i: _unicode_to_bytes(t, table) for t, i in tokens.items() if t not in specials}
    merges = []
    for r, (a, b) in enumerate(merge_pairs):
        try:
            merges.append((tokens[a], tokens[b], tokens[a + b]))
        except KeyError as e:
            raise TokenizerError(f"merge #{r} '{a} {b}' uses the token {e.args[0]!r}, which the vocabulary lacks")
    return Tokenizer(vocab, merges, pattern, specials, name=name)


MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)  # a file of the wrong shape


def _well_formed(read: Callable[..., Tokenizer], path: str | os.PathLike, *args: Any) -> Tokenizer:
    """read(path, *args), with a file of the wrong shape (bad JSON, a list where an object belongs, nesting deep
    enough to exhaust the parser) reported as a TokenizerError naming the file, never as Python's own exception."""
    try:
        return read(path, *args)
    except TokenizerError as e:
        if str(path) in str(e):
            raise
        raise TokenizerError(f"{path}: {e}") from None
    except MALFORMED as e:
        detail = " ".join(str(e).split())[:160]
        raise TokenizerError(f"{path}: not a tokenizer file this reader understands ({type(e).__name__}: "
                             f"{detail})") from None


def from_gpt2_files(encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike, name: str = "gpt2") -> Tokenizer:
    """The GPT-2 tokenizer from OpenAI's `encoder.json` and `vocab.bpe`."""
    return _well_formed(_from_gpt2_files, encoder_json, vocab_bpe, name)


def _from_gpt2_files(encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike, name: str) -> Tokenizer:
    tokens = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
    lines = Path(vocab_bpe).read_text(encoding="utf-8").splitlines()
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    pairs = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            parts = line.split()
            if len(parts) != 2:
                raise TokenizerError(f"{vocab_bpe}: merge line {n} should be 'left right', got {line!r}")
            pairs.append((parts[0], parts[1]))
    specials = {s: i for s, i in GPT2_SPECIAL_TOKENS.items() if tokens.get(s) == i}
    return _from_string_vocab(tokens, pairs, specials, GPT2_PATTERN, name)


def save_gpt2_files(tok: Tokenizer, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike) -> None:
    """Write `tok` as GPT-2's two files (HF calls them vocab.json and merges.txt); `from_gpt2_files` reads them.

    The layout is OpenAI's own (`json.dumps` of the tokens in id order, then "#version: 0.2" and one merge per
    line), so GPT-2's tokenizer read from a tiktoken rank file is written back byte for byte as OpenAI published it.
    """
    chars = bytes_to_unicode()
    as_text = lambda i: "".join(chars[b] for b in tok.vocab[i])  # noqa: E731
    tokens = {as_text(i): i for i in sorted(tok.vocab)}
    if len(tokens) != len(tok.vocab):
        raise TokenizerError("two tokens have the same bytes; GPT-2's encoder.json cannot hold this vocabulary")
    tokens.update(sorted(tok.special_tokens.items(), key=lambda kv: kv[1]))
    Path(encoder_json).write_text(json.dumps(tokens), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{as_text(a)} {as_text(b)}" for a, b, _ in tok.merges]
    Path(vocab_bpe).write_text("\n".join(lines) + "\n", encoding="utf-8")


def from_tiktoken_file(path: str | os.PathLike, special_tokens: dict[str, int] | None = None,
                       pattern: str = GPT4_PATTERN, name: str = "cl100k_base") -> Tokenizer:
    """A tiktoken rank file (`<base64 token> <rank>` lines). Defaults suit cl100k_base."""
    ranks: dict[bytes, int] = {}
    for n, line in enumerate(Path(path).read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError as e:
            raise TokenizerError(f"{path}, line {n}: expected '<base64> <rank>' ({e})") from None
    specials = CL100K_SPECIAL_TOKENS if special_tokens is None else special_tokens
    return from_ranks(ranks, specials, pattern, name)


def from_ranks(ranks: dict[bytes, int], special_tokens: dict[str, int], pattern: str, name: str) -> Tokenizer:
    """tiktoken's `mergeable_ranks` (bytes -> rank = id) -> a Tokenizer with recovered merges."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) == 1:
            continue
        parts = _bpe_by_rank(ranks, token, max_rank=rank)
        if len(parts) != 2:
            raise TokenizerError(f"token {token!r} (rank {rank}) cannot be built from two lower-ranked tokens; "
                                 f"this rank file is not a byte-level BPE")
        merges.append((ranks[parts[0]], ranks[parts[1]], rank))
    return Tokenizer({r: t for t, r in ranks.items()}, merges, pattern, special_tokens, name=name)


def _bpe_by_rank(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """tiktoken's merge rule on one token, using only ranks below max_rank: b"hello" -> [b"hell", b"o"], say."""
    parts = [bytes([b]) for b in token]
    while True:
        best, best_rank = -1, max_rank
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < best_rank:
                best, best_rank = i, r
        if best < 0:
            return parts
        parts[best : best + 2] = [parts[best] + parts[best + 1]]


def from_hf_tokenizer_json(path: str | os.PathLike, name: str | None = None) -> Tokenizer:
    """A HF `tokenizer.json` holding a byte-level BPE model (GPT-2, RoBERTa, Qwen, SmolLM, ...)."""
    return _well_formed(_from_hf_tokenizer_json, path, name)


def _from_hf_tokenizer_json(path: str | os.PathLike, name: str | None) -> Tokenizer:
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise TokenizerError(f"{path}: model type {model.get('type')!r} is not supported; only byte-level BPE is")
    if model.get("ignore_merges"):
        raise TokenizerError(f"{path}: 'ignore_merges' BPE (Llama 3 style) applies a different algorithm; "
                             f"not supported")
    pattern = _pattern_from_pretokenizer(spec.get("pre_tokenizer"), path)
    pairs = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
    specials = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    return _from_string_vocab(model["vocab"], pairs, specials, pattern, name or Path(path).parent.name or "hf")


def _pattern_from_pretokenizer(pre: dict | None, path) -> str:
    """Find the split regex: a Split pre-tokenizer's Regex, or ByteLevel(use_regex=True)'s built-in GPT-2 one."""
    steps = (pre or {}).get("pretokenizers", [pre] if pre else [])
    for step in steps:
        if step.get("type") == "Split" and "Regex" in step.get("pattern", {}):
            return step["pattern"]["Regex"]
    for step in steps:
        if step.get("type") == "ByteLevel" and step.get("use_regex", True):
            return GPT2_PATTERN
    raise TokenizerError(f"{path}: no pre-tokenizer regex found (expected a Split or a ByteLevel pre-tokenizer)")
