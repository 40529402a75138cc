"""The byte-level BPE tokenizer: text -> token ids -> text.

A vocabulary is 256 byte tokens plus a list of merges "tokens a and b, side by side, become token c", in the order
they were learned (the rank). Encoding:

  1. split off special tokens such as <|endoftext|> (only those the caller allows; see `encode`),
  2. cut the rest into chunks with the pre-tokenization regex (`patterns.py`),
  3. turn each chunk into its UTF-8 bytes, one byte token each,
  4. apply merges, lowest rank first, until none applies (`basic.encode_chunk` says how; `kernels/bpe.py` does it fast).

Worked example (the one on Wikipedia's "Byte pair encoding" page): training on "aaabdaaabac" merges
(a, a) -> Z, then (a, b) -> Y, then (Z, Y) -> X, so "aaabdaaabac" encodes as X d X a c: 11 bytes, 5 tokens.

Decoding concatenates each token's bytes and decodes UTF-8 once at the end, because one character may span tokens.

Special-token semantics follow tiktoken: by default text that *contains* a special token's string is refused, so user
text can never smuggle a control token in; `allowed_special` lets chosen ones through as control ids;
`disallowed_special=()` encodes them as plain text. Text with lone surrogates (which UTF-8 cannot encode) is encoded as
if each were U+FFFD, as tiktoken does.

What it leaves out: training (`train.py`), file formats (`io.py`, `vocab.py`), incremental decoding (`stream.py`).
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import chain
from typing import Literal

import numpy as np
import regex

from minichat.errors import TokenizerError
from minichat.kernels import bpe as kernels
from minichat.tokenizer import basic
from minichat.tokenizer.fastsplit import Splitter
from minichat.tokenizer.patterns import GPT4_PATTERN, resolve_pattern

_CACHE_LIMIT = 500_000  # chunks remembered before the cache is cleared (bounds memory on endless novel text)


class Tokenizer:
    """A byte-level BPE vocabulary with encode/decode.

    vocab: id -> bytes for every ordinary token (normally all 256 single bytes; see `missing_bytes`);
    merges: (left id, right id, merged id) in rank order; pattern: a name from `patterns.PATTERNS` or a regex;
    special_tokens: string -> id for control tokens, outside the ordinary ids; kernel: "numba" or "python" (the
    readable definition, `basic.encode_chunk`, one chunk at a time; it needs merges whose new ids grow with their rank,
    as every trained or imported vocabulary has).
    """

    def __init__(
        self,
        vocab: Mapping[int, bytes],
        merges: Sequence[tuple[int, int, int]],
        pattern: str = GPT4_PATTERN,
        special_tokens: Mapping[str, int] | None = None,
        name: str = "bpe",
        kernel: Literal["numba", "python"] = "numba",
    ):
        if kernel not in ("numba", "python"):
            raise ValueError(f"kernel must be 'numba' or 'python', not {kernel!r}")
        self.name = name
        self.kernel = kernel
        self.vocab = {int(i): bytes(b) for i, b in vocab.items()}
        self.merges = [(int(a), int(b), int(c)) for a, b, c in merges]
        self.pattern = resolve_pattern(pattern)
        self.special_tokens = {str(s): int(i) for s, i in (special_tokens or {}).items()}
        self._validate()
        self._build()

    # -- construction ------------------------------------------------------------------------------------------------

    def _validate(self) -> None:
        for i, b in self.vocab.items():
            if i < 0 or not b:
                raise TokenizerError(f"token {i} is invalid: ids must be >= 0 and tokens non-empty bytes")
        singles = {b[0] for b in self.vocab.values() if len(b) == 1}
        # Real vocabularies may lack a few bytes (SmolLM2 has no token for 0x04, 0xC0, ...). Like HF tokenizers and
        # llama.cpp we then drop such a byte from its chunk before merging; `missing_bytes` says which ones.
        self.missing_bytes = bytes(sorted(set(range(256)) - singles))
        if len(self.missing_bytes) > 64:
            raise TokenizerError(f"a byte-level vocabulary needs single-byte tokens, but {len(self.missing_bytes)} of "
                                 f"the 256 bytes have none (e.g. {list(self.missing_bytes[:8])}); the file is "
                                 f"truncated or not byte-level")
        for r, (a, b, c) in enumerate(self.merges):
            if a not in self.vocab or b not in self.vocab or c not in self.vocab:
                raise TokenizerError(f"merge #{r} ({a}, {b}) -> {c} uses an id that is not in the vocabulary")
            if self.vocab[c] != self.vocab[a] + self.vocab[b]:
                raise TokenizerError(f"merge #{r}: token {c} is {self.vocab[c]!r}, not {a}+{b} = "
                                     f"{self.vocab[a] + self.vocab[b]!r}")
        if self.kernel == "python" and any(x[2] >= y[2] for x, y in zip(self.merges, self.merges[1:])):
            raise TokenizerError("kernel='python' (basic.encode_chunk) takes the smallest new id as the earliest "
                                 "merge, but these merges' new ids do not grow with their rank; use kernel='numba'")
        for s, i in self.special_tokens.items():
            if not s:
                raise TokenizerError("a special token needs a non-empty string")
            if i in self.vocab:
                raise TokenizerError(f"special token {s!r} has id {i}, which an ordinary token already uses")
        if len(set(self.special_tokens.values())) != len(self.special_tokens):
            raise TokenizerError("two special tokens share an id")

    def _build(self) -> None:
        """Everything derived from (vocab, merges, pattern, special_tokens); rebuilt after every load."""
        try:
            self._split = Splitter(self.pattern).split  # `regex`, or its exact faster twin for GPT-2/GPT-4 patterns
        except regex.error as e:
            raise TokenizerError(f"the pre-tokenization pattern does not compile: {e}") from None
        byte_to_id = np.full(256, -1, np.int32)  # (256,) byte value -> its token id (lowest id if several)
        for i in sorted(self.vocab, reverse=True):
            if len(self.vocab[i]) == 1:
                byte_to_id[self.vocab[i][0]] = i
        self._byte_to_id = byte_to_id
        try:
            self._table = kernels.merge_table(self.merges)
        except ValueError as e:
            raise TokenizerError(str(e)) from None
        self.n_vocab = 1 + max(chain(self.vocab, self.special_tokens.values()))
        self._bytes = [None] * self.n_vocab  # id -> bytes, None for unused ids
        for i, b in self.vocab.items():
            self._bytes[i] = b
        for s, i in self.special_tokens.items():
            self._bytes[i] = s.encode("utf-8")
        self.special_ids = frozenset(self.special_tokens.values())
        self._inverse_special = {i: s for s, i in self.special_tokens.items()}
        self._special_re = self._alternation(self.special_tokens)
        self._cache: dict[str, tuple[int, ...]] = {}
        self._merge_ids = {(a, b): c for a, b, c in self.merges} if self.kernel == "python" else {}

    @staticmethod
    def _alternation(strings: Iterable[str]) -> regex.Pattern | None:
        strings = sorted(strings, key=len, reverse=True)  # longest first, so "<|a|>x" beats its prefix "<|a|>"
        return regex.compile("|".join(regex.escape(s) for s in strings)) if strings else None

    def __repr__(self) -> str:
        return (f"Tokenizer(name={self.name!r}, n_vocab={self.n_vocab}, merges={len(self.merges)}, "
                f"special_tokens={len(self.special_tokens)})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and (self.vocab, self.merges, self.pattern, self.special_tokens) == (
            other.vocab, other.merges, other.pattern, other.special_tokens)

    # -- encode ------------------------------------------------------------------------------------------------------

    def split(self, text: str) -> list[str]:
        """Step 2 alone: the pre-tokenization chunks of `text` (special tokens not treated specially)."""
        return self._split(text)

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode `text` treating special-token strings as plain text. Never yields a special id."""
        chunks = self._split(text)
        cache = self._cache
        try:  # the common case on familiar text: every chunk is cached already
            return list(chain.from_iterable(map(cache.__getitem__, chunks)))
        except KeyError:
            pass
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        try:
            self._encode_chunks(set(chunks).difference(cache))
        except UnicodeEncodeError:  # lone surrogates: retry as tiktoken does, each one read as U+FFFD
            return self.encode_ordinary(_replace_surrogates(text))
        return list(chain.from_iterable(map(cache.__getitem__, chunks)))

    def _encode_chunks(self, chunks: Collection[str]) -> None:
        """Steps 3-4 for chunks not in the cache: all of them in one kernel call, results into the cache."""
        chunks = list(chunks)
        raw = [c.encode("utf-8") for c in chunks]
        if self.missing_bytes:  # bytes without a token vanish, as in HF tokenizers (see _validate)
            raw = [b.translate(None, self.missing_bytes) for b in raw]
        offsets = np.zeros(len(raw) + 1, np.int64)  # (C+1,)
        np.cumsum([len(b) for b in raw], out=offsets[1:])
        ids = self._byte_to_id[np.frombuffer(b"".join(raw), np.uint8)]  # (N,) byte tokens back to back
        if self.kernel == "python":  # the definition, chunk by chunk
            for c, lo, hi in zip(chunks, offsets, offsets[1:]):
                self._cache[c] = tuple(basic.encode_chunk(ids[lo:hi].tolist(), self._merge_ids))
            return
        out, out_offsets = kernels.apply_merges_many(ids, offsets, *self._table)
        out, out_offsets = out.tolist(), out_offsets.tolist()
        for c, lo, hi in zip(chunks, out_offsets, out_offsets[1:]):
            self._cache[c] = tuple(out[lo:hi])

    def encode(
        self,
        text: str,
        allowed_special: Literal["all"] | Collection[str] = (),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Encode text; special tokens follow tiktoken's rules.

        allowed_special: special-token strings that become control ids where they appear ("all" for every one).
        disallowed_special: special-token strings whose presence raises TokenizerError ("all" means every special
        token not allowed). Pass `disallowed_special=()` to encode such strings as ordinary text instead.
        """
        allowed = self._special_set(allowed_special, "allowed_special")
        if disallowed_special == "all":
            disallowed = set(self.special_tokens) - allowed
        else:
            disallowed = self._special_set(disallowed_special, "disallowed_special")
        if disallowed and (found := self._alternation(disallowed).search(text)):
            raise TokenizerError(
                f"the text contains the special token {found.group()!r} at index {found.start()}; to encode it as "
                f"a control token pass allowed_special={{{found.group()!r}}}, or pass disallowed_special=() to "
                f"encode it as ordinary text")
        if not allowed:
            return self.encode_ordinary(text)
        ids: list[int] = []
        start = 0
        for m in self._alternation(allowed).finditer(text):
            ids += self.encode_ordinary(text[start : m.start()])
            ids.append(self.special_tokens[m.group()])
            start = m.end()
        ids += self.encode_ordinary(text[start:])
        return ids

    def _special_set(self, value: Literal["all"] | Collection[str], what: str) -> set[str]:
        if value == "all":
            return set(self.special_tokens)
        if isinstance(value, str):
            raise TypeError(f"{what} takes 'all' or a collection of special-token strings, not the string {value!r}")
        unknown = set(value) - set(self.special_tokens)
        if unknown:
            raise TokenizerError(f"{what} names {sorted(unknown)}, which are not special tokens of this vocabulary "
                                 f"(it has {sorted(self.special_tokens)})")
        return set(value)

    def encode_batch(self, texts: Iterable[str], **kwargs) -> list[list[int]]:
        """`encode` for each text (same keyword arguments); the chunk cache is shared across the batch."""
        return [self.encode(t, **kwargs) for t in texts]

    def encode_special(self, name: str) -> int:
        """The id of one special token, by its string: encode_special("<|endoftext|>") -> 50256 for GPT-2."""
        try:
            return self.special_tokens[name]
        except KeyError:
            raise TokenizerError(f"{name!r} is not a special token here; known: {sorted(self.special_tokens)}") from None

    # -- decode ------------------------------------------------------------------------------------------------------

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token (a special token's are its UTF-8 string)."""
        return self.decode_bytes([token_id])

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Concatenate the tokens' bytes. Unknown or negative ids raise TokenizerError."""
        ids = list(ids)
        try:
            if ids and min(ids) < 0:
                raise IndexError
            return b"".join(map(self._bytes.__getitem__, ids))
        except (IndexError, TypeError):
            bad = next(i for i in ids if not (isinstance(i, (int, np.integer)) and 0 <= i < self.n_vocab
                                              and self._bytes[i] is not None))
            if not isinstance(bad, (int, np.integer)):
                raise TokenizerError(f"token ids must be integers, got {bad!r}") from None
            raise TokenizerError(f"token id {bad} is not in this vocabulary (ids run 0..{self.n_vocab - 1})") from None

    def decode(self, ids: Iterable[int], errors: Literal["replace", "strict"] = "replace") -> str:
        """Decode ids to text. errors="replace" shows invalid UTF-8 as U+FFFD; "strict" raises UnicodeDecodeError."""
        if errors not in ("replace", "strict"):
            raise ValueError(f"errors must be 'replace' or 'strict', not {errors!r}")
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def is_special(self, token_id: int) -> bool:
        return token_id in self.special_ids


def _replace_surrogates(text: str) -> str:
    """Lone surrogates (U+D800..U+DFFF, unencodable in UTF-8) -> U+FFFD; well-formed pairs are joined."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
