"""minichat's own tokenizer file: versioned, line-based, human-readable, exact.

    minichat-bpe 1
    name "gpt2"
    pattern "'(?:[sdmt]|ll|ve|re)| ?\\p{L}++|..."
    token 0 21                  # '!'    ids and bytes (hex) of tokens that are not merge results (the 256 bytes, ...)
    merge 256 220 220           # '  '   merged id, left id, right id -- one line per merge, in rank order
    special 50256 "<|endoftext|>"

Strings are JSON-quoted so any pattern or special token survives; bytes are hex so any byte survives; what follows
`#` is a readable rendering for people and is ignored when loading. Loading rebuilds everything derived (the
compiled pattern, inverse maps, the kernels' merge table) through the Tokenizer constructor, which re-validates that
each merge's bytes are its parts' bytes. An unknown header or version, or a malformed line, raises TokenizerError
with the line number.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from minichat.errors import TokenizerError
from minichat.tokenizer.bpe import Tokenizer

MAGIC = "minichat-bpe"
VERSION = 1


def _show(b: bytes) -> str:
    return repr(b.decode("utf-8", errors="backslashreplace"))


def save_tokenizer(tok: Tokenizer, path: str | os.PathLike) -> None:
    """Write `tok` to `path` in the format above (UTF-8, newline-terminated lines)."""
    merged = {c for _, _, c in tok.merges}
    lines = [f"{MAGIC} {VERSION}", f"name {json.dumps(tok.name)}", f"pattern {json.dumps(tok.pattern)}"]
    lines += [f"token {i} {b.hex()}  # {_show(b)}" for i, b in sorted(tok.vocab.items()) if i not in merged]
    lines += [f"merge {c} {a} {b}  # {_show(tok.vocab[c])}" for a, b, c in tok.merges]
    lines += [f"special {i} {json.dumps(s)}" for s, i in sorted(tok.special_tokens.items(), key=lambda kv: kv[1])]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_tokenizer(path: str | os.PathLike, kernel: str = "numba") -> Tokenizer:
    """Read a file written by `save_tokenizer`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TokenizerError(f"{path}: not a minichat tokenizer file (not UTF-8 text)") from None
    lines = text.splitlines()
    head = lines[0].split() if lines else []
    if len(head) != 2 or head[0] != MAGIC:
        raise TokenizerError(f"{path}: not a minichat tokenizer file (first line should be '{MAGIC} {VERSION}')")
    if head[1] != str(VERSION):
        raise TokenizerError(f"{path}: tokenizer format version {head[1]!r} is not supported (this minichat reads "
                             f"version {VERSION}); upgrade minichat or re-save the tokenizer")
    name, pattern, vocab, merges, specials = None, None, {}, [], {}
    for n, line in enumerate(lines[1:], 2):
        try:
            kind, _, rest = line.partition(" ")
            if kind == "name":
                name = json.loads(rest)
            elif kind == "pattern":
                pattern = json.loads(rest)
            elif kind == "token":
                i, hexbytes = rest.split("#", 1)[0].split()
                vocab[int(i)] = bytes.fromhex(hexbytes)
            elif kind == "merge":
                c, a, b = map(int, rest.split("#", 1)[0].split())
                merges.append((a, b, c))
            elif kind == "special":
                i, s = rest.split(" ", 1)
                specials[json.loads(s)] = int(i)
            elif line.strip():
                raise ValueError(f"unknown record {kind!r}")
        except (ValueError, KeyError, json.JSONDecodeError) as e:
            raise TokenizerError(f"{path}, line {n}: cannot read {line[:80]!r} ({type(e).__name__}: {e})") from None
    todo = merges  # each merged token's bytes are its parts' bytes; parts normally come first, but need not
    while todo:
        ready = [(a, b, c) for a, b, c in todo if a in vocab and b in vocab]
        if not ready:
            raise TokenizerError(f"{path}: merge -> {todo[0][2]} uses ids defined nowhere in the file")
        for a, b, c in ready:
            if c in vocab:
                raise TokenizerError(f"{path}: token id {c} is defined twice")
            vocab[c] = vocab[a] + vocab[b]
        todo = [m for m in todo if m[2] not in vocab]
    if not isinstance(name, str) or not isinstance(pattern, str):
        raise TokenizerError(f"{path}: the file has no 'name' or 'pattern' line; it is truncated or corrupt")
    return Tokenizer(vocab, merges, pattern, specials, name=name, kernel=kernel)


def builtin_tokenizer_path() -> Path:
    """The tokenizer shipped in minichat/assets (used when no other is named)."""
    return Path(__file__).resolve().parent.parent / "assets" / "tokenizer.bpe"


def open_tokenizer(path: str | os.PathLike | None = None) -> Tokenizer:
    """Load a tokenizer from whatever `path` is: a minichat .bpe file, a tiktoken rank file (*.tiktoken), a HF
    tokenizer.json, or a directory holding one of those or GPT-2's encoder.json + vocab.bpe. None: the built-in one."""
    from minichat.tokenizer import vocab as importers  # the importers sit beside this module, loaded on demand

    p = Path(path) if path is not None else builtin_tokenizer_path()
    if p.is_dir():
        for name in ("tokenizer.bpe", "tokenizer.json"):
            if (p / name).exists():
                return open_tokenizer(p / name)
        if (p / "encoder.json").exists() and (p / "vocab.bpe").exists():
            return importers.from_gpt2_files(p / "encoder.json", p / "vocab.bpe", name=p.name)
        raise TokenizerError(f"{p}: no tokenizer.bpe, tokenizer.json or encoder.json + vocab.bpe in this directory")
    if not p.exists():
        raise TokenizerError(f"{p}: no such file")
    if p.suffix == ".tiktoken":
        return importers.from_tiktoken_file(p)
    if p.suffix == ".json":
        return importers.from_hf_tokenizer_json(p)
    return load_tokenizer(p)
