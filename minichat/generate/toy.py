"""A bigram language model: the next token's distribution depends only on the current token.

"Training" is counting: how often does token b follow token a in the text? With add-alpha smoothing,
P(b | a) = (count(a, b) + alpha) / (count(a, .) + alpha * V), and the logits are the log of that table, so a model
fitted to a paragraph in milliseconds gives real, peaked next-token distributions to sample from. It honours the
interface the generation loop expects (`config.vocab_size`, `config.n_ctx`, `new_cache`, `forward` with `lengths`
and `last_only`), so notebooks and tests can run the real loop before a transformer is trained.

What it leaves out: everything a transformer adds — it sees one token of context, so its text is locally plausible
and globally aimless. Its "KV cache" only counts tokens (a bigram needs no memory of the past).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from minichat.tokenizer import Tokenizer


@dataclass(frozen=True)
class BigramConfig:
    vocab_size: int  # V, rows and columns of the table
    n_ctx: int = 1024  # the context window the loop respects (a bigram itself has no limit)


class CountingCache:
    """The bigram's stand-in for a KV cache: it only remembers how many tokens each row has seen."""

    def __init__(self, batch_size: int, max_len: int):
        self.max_len = int(max_len)
        self.lengths = np.zeros(batch_size, dtype=np.int64)  # (B,)

    def append(self, n: np.ndarray) -> None:  # (B,) tokens added per row
        if (self.lengths + n > self.max_len).any():
            raise ValueError(f"cache overflow: a row would hold more than max_len={self.max_len} tokens")
        self.lengths += n


class BigramModel:
    def __init__(self, logits: np.ndarray, n_ctx: int = 1024):  # (V, V) row a = logits of the token after a
        table = np.asarray(logits, dtype=np.float32)
        if table.ndim != 2 or table.shape[0] != table.shape[1]:
            raise ValueError(f"a bigram table must be square (V, V), got shape {table.shape}")
        self.table = table
        self.config = BigramConfig(vocab_size=table.shape[0], n_ctx=n_ctx)

    @classmethod
    def fit(cls, ids: Sequence[int], vocab_size: int, alpha: float = 0.01, n_ctx: int = 1024) -> BigramModel:
        """Count the pairs in `ids` and smooth: logits[a, b] = log P(b | a)."""
        x = np.asarray(ids, dtype=np.int64)  # (N,)
        counts = np.zeros((vocab_size, vocab_size), dtype=np.float64)  # (V, V)
        np.add.at(counts, (x[:-1], x[1:]), 1.0)
        probs = (counts + alpha) / (counts.sum(axis=1, keepdims=True) + alpha * vocab_size)  # (V, V) rows sum to 1
        return cls(np.log(probs).astype(np.float32), n_ctx=n_ctx)

    @classmethod
    def from_text(cls, tokenizer: Tokenizer, text: str, alpha: float = 0.01, n_ctx: int = 1024) -> BigramModel:
        return cls.fit(tokenizer.encode(text, disallowed_special=()), tokenizer.n_vocab, alpha, n_ctx)

    def new_cache(self, batch_size: int, max_len: int) -> CountingCache:
        return CountingCache(batch_size, max_len)

    def forward(self, ids: np.ndarray, cache: CountingCache | None = None, lengths: np.ndarray | None = None,
                last_only: bool = False) -> np.ndarray:  # (B, T) -> (B, T, V) float32, or (B, 1, V) if last_only
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 2:
            raise ValueError(f"ids must be a (batch, time) array, got shape {ids.shape}")
        n = np.full(ids.shape[0], ids.shape[1]) if lengths is None else np.asarray(lengths)  # (B,) real tokens
        if cache is not None:
            cache.append(n)
        if last_only:  # each row's last real token
            ids = ids[np.arange(ids.shape[0]), np.maximum(n - 1, 0)][:, None]  # (B, 1)
        return self.table[ids]  # (B, T) -> (B, T, V): row a of the table for each token a
