"""The key/value cache: why decoding one token costs one token's work, not the whole sequence's.

In a causal transformer the keys and values of a past token never change once computed (a token cannot see the
future). So after the prompt is processed once (the *prefill*), each new token only needs its own q, k, v: its k and
v are appended here and its q attends over everything stored. Without the cache, token n would recompute all n
tokens through every layer: quadratic work for a sequence instead of linear.

Layout: two preallocated float32 arrays `k`, `v` of shape (L, B, K, S, D) — layers, batch rows, key/value heads,
positions, head width — plus `lengths` (B,): how many positions of each row are valid. Rows fill independently, so
sequences of different lengths share one cache; positions at or beyond a row's length hold stale numbers that the
attention mask never shows. Preallocating (rather than concatenating each step) keeps decode free of copies: a
layer's keys are the view `k[l, :, :, :S]`, whose (S, D) blocks are contiguous, as BLAS likes.

Operations: `store`/`advance` (what the forward uses), `append` (all layers at once), `crop` (rewind rows to a
position, e.g. to reuse a shared prompt prefix), `fork` (copy one row's cache into other rows, e.g. one prompt,
several samples), `copy`, `select`, and `nbytes` for memory accounting.
What it leaves out: paged/block allocation (vLLM's PagedAttention), quantised caches, sliding windows.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class KVCache:
    """Preallocated keys and values for `batch_size` sequences of up to `max_len` tokens each."""

    def __init__(self, n_layer: int, batch_size: int, n_kv_head: int, max_len: int, head_dim: int):
        for name, value in (("n_layer", n_layer), ("batch_size", batch_size), ("n_kv_head", n_kv_head),
                            ("max_len", max_len), ("head_dim", head_dim)):
            if int(value) != value or value <= 0:
                raise ValueError(f"KVCache {name} must be a positive integer, not {value!r}")
        shape = (n_layer, batch_size, n_kv_head, max_len, head_dim)  # (L, B, K, S, D)
        self.k = np.zeros(shape, dtype=np.float32)  # (L, B, K, S, D)
        self.v = np.zeros(shape, dtype=np.float32)  # (L, B, K, S, D)
        self.lengths = np.zeros(batch_size, dtype=np.int64)  # (B,): valid positions per row

    # -- sizes -------------------------------------------------------------------------------------------------------

    @property
    def n_layer(self) -> int:
        return self.k.shape[0]

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    @property
    def nbytes(self) -> int:
        """Bytes held (allocated) by the cache: 2 * L * B * K * S * D * 4 plus the lengths."""
        return self.k.nbytes + self.v.nbytes + self.lengths.nbytes

    @property
    def used_bytes(self) -> int:
        """Bytes of valid entries: what the stored tokens actually occupy (k and v, all layers)."""
        per_token = 2 * self.k.shape[0] * self.k.shape[2] * self.k.shape[4] * self.k.itemsize
        return int(self.lengths.sum()) * per_token

    def __repr__(self) -> str:
        L, B, K, S, D = self.k.shape
        return (f"KVCache(n_layer={L}, batch_size={B}, n_kv_head={K}, max_len={S}, head_dim={D}, "
                f"lengths={self.lengths.tolist()}, nbytes={self.nbytes})")

    # -- writing -----------------------------------------------------------------------------------------------------

    def check_room(self, n_new: np.ndarray) -> None:
        """Raise ValueError if appending n_new[b] tokens to each row b would overflow `max_len`."""
        end = self.lengths + n_new  # (B,)
        if (end > self.max_len).any():
            b = int(np.argmax(end > self.max_len))
            raise ValueError(f"KV cache full: row {b} holds {int(self.lengths[b])} of {self.max_len} positions and "
                             f"{int(n_new[b])} more were given; make the cache with a larger max_len or crop it")

    def store(self, layer: int, k: np.ndarray, v: np.ndarray, n_new: np.ndarray | None = None) -> None:
        """Write one layer's new keys/values (B, K, T, D) at each row's current length, without advancing it.

        Only the first n_new[b] of row b's T tokens are written (the rest are right padding). The forward stores
        every layer, then calls `advance` once.
        """
        T = k.shape[2]
        start = self.lengths
        if (n_new is None or (n_new == T).all()) and (start == start[0]).all():  # rows in step: one slice for all
            s0 = int(start[0])
            self.k[layer, :, :, s0:s0 + T] = k  # (B, K, T, D)
            self.v[layer, :, :, s0:s0 + T] = v
            return
        for b in range(self.batch_size):
            s0, n = int(start[b]), T if n_new is None else int(n_new[b])
            self.k[layer, b, :, s0:s0 + n] = k[b, :, :n]  # (K, n, D)
            self.v[layer, b, :, s0:s0 + n] = v[b, :, :n]

    def advance(self, n_new: np.ndarray | int) -> None:
        """Mark n_new[b] more positions of each row b as valid."""
        self.lengths += np.asarray(n_new, dtype=np.int64)

    def append(self, k: np.ndarray, v: np.ndarray, n_new: np.ndarray | None = None) -> None:
        """Append keys/values (L, B, K, T, D) for all layers; row b keeps the first n_new[b] (default all T)."""
        if k.shape != v.shape or k.shape[:3] != self.k.shape[:3] or k.shape[4] != self.k.shape[4]:
            raise ValueError(f"append expects k and v of shape (L, B, K, T, D) = {self.k.shape[:3]} + (T, "
                             f"{self.k.shape[4]}), got {k.shape} and {v.shape}")
        n = np.full(self.batch_size, k.shape[3], dtype=np.int64) if n_new is None else np.asarray(n_new, np.int64)
        self.check_room(n)
        for layer in range(self.n_layer):
            self.store(layer, k[layer], v[layer], n)
        self.advance(n)

    def keys(self, layer: int, length: int | None = None) -> np.ndarray:  # -> (B, K, S, D), a view
        """Layer `layer`'s keys for positions [0, length) of every row (default: the longest row)."""
        S = int(self.lengths.max()) if length is None else length
        return self.k[layer, :, :, :S]

    def values(self, layer: int, length: int | None = None) -> np.ndarray:  # -> (B, K, S, D), a view
        S = int(self.lengths.max()) if length is None else length
        return self.v[layer, :, :, :S]

    # -- rewinding and copying ---------------------------------------------------------------------------------------

    def crop(self, position: int, rows: Sequence[int] | None = None) -> None:
        """Forget everything at or after `position` in the given rows (default all): lengths become min(len, pos).

        Nothing is erased: the stale entries are simply beyond the length, where the mask never looks, and the
        next append overwrites them.
        """
        if position < 0:
            raise ValueError(f"crop position must be >= 0, not {position}")
        idx = slice(None) if rows is None else np.asarray(rows, dtype=np.int64)
        self.lengths[idx] = np.minimum(self.lengths[idx], position)

    def reset(self) -> None:
        """Empty every row."""
        self.lengths[:] = 0

    def fork(self, src: int, dst: Sequence[int] | int) -> None:
        """Copy row `src` (its valid positions and length) into row(s) `dst`, in place.

        The typical use: prefill one prompt in row 0, then fork it to rows 1..n-1 to sample n continuations
        without recomputing the prompt n times.
        """
        dst_idx = np.atleast_1d(np.asarray(dst, dtype=np.int64))  # (n,)
        if not 0 <= src < self.batch_size or ((dst_idx < 0) | (dst_idx >= self.batch_size)).any():
            raise ValueError(f"fork rows must be in [0, {self.batch_size}); got src={src}, dst={dst_idx.tolist()}")
        n = int(self.lengths[src])
        self.k[:, dst_idx, :, :n] = self.k[:, src:src + 1, :, :n]  # (L, 1, K, n, D) broadcast to (L, n_dst, K, n, D)
        self.v[:, dst_idx, :, :n] = self.v[:, src:src + 1, :, :n]
        self.lengths[dst_idx] = n

    def copy(self) -> KVCache:
        """An independent deep copy."""
        return self.select(range(self.batch_size))

    def select(self, rows: Sequence[int]) -> KVCache:
        """A new cache holding copies of the given rows, in that order (rows may repeat: one prompt -> many rows)."""
        idx = np.asarray(rows, dtype=np.int64)  # (B',)
        if idx.ndim != 1 or ((idx < 0) | (idx >= self.batch_size)).any():
            raise ValueError(f"select rows must be a list of indices in [0, {self.batch_size}), got {rows!r}")
        new = KVCache.__new__(KVCache)
        new.k = self.k[:, idx]  # (L, B', K, S, D): fancy indexing copies
        new.v = self.v[:, idx]
        new.lengths = self.lengths[idx].copy()
        return new
