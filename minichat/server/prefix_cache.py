"""A prefix cache across requests: KV blocks keyed by a hash of everything before them, shared, counted, evicted LRU.

Many requests start the same way: the same system prompt, the same tool list, or (multi-turn chat) the whole earlier
conversation. Their keys and values over that shared start are identical, so computing them again is waste. This is
vLLM's *automatic prefix caching*, reduced to its idea:

    a prompt  [t0 .. t15 | t16 .. t31 | t32 .. t40]     cut into full blocks of `block_size` tokens (a partial
                 block 0       block 1     (partial)     last block is never cached: it may still grow)
    hash(block i) = H(hash(block i-1), the ids of block i)       with hash(block -1) = H(tenant salt)

A block's hash names its *whole prefix*, not just its own 16 ids, so equal hashes mean equal positions and equal
history: their keys and values are the same numbers. The tenant's salt at the root of the chain means one tenant's
blocks can never be found by another tenant's prompt, even an identical one (a timing side channel otherwise tells
an attacker which prompts other users sent).

Storage: one preallocated pool of `n_blocks` slots, each the keys and values of `block_size` positions in every
layer, (L, K, block_size, D) each; `n_blocks` follows from the memory cap. Bookkeeping per cached block: its pool
slot and a reference count (how many running requests use it). Blocks nobody uses sit in an LRU list; when the pool
is full, inserting takes the least recently used unreferenced block. When a request lets go of its blocks they join
the LRU list last block first, so a chain is evicted from its tail: the shared head (the system prompt) stays longest.

What it leaves out: vLLM's paged attention. There, a request's KV cache *is* a list of pool blocks and attention
reads them in place; minichat's attention wants each row contiguous, so a hit copies the blocks into the request's
row (`load`) and a finished prefill copies new blocks out (`store`). A copy of a block costs a few microseconds per
layer; recomputing it costs a forward over its tokens. Also left out: cache-aware scheduling, disk offload.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from minichat.model.kv_cache import KVCache


@dataclass
class _Block:
    slot: int  # index into the pool arrays
    refs: int = 0  # running requests holding it


def block_hashes(ids: Sequence[int], block_size: int, salt: str = "") -> list[bytes]:
    """The chain of hashes of every *full* block of `ids` (a trailing partial block has none).

    >>> len(block_hashes(range(40), 16))   # 2 full blocks; the last 8 ids are not a block
    2
    """
    if block_size <= 0:
        raise ValueError(f"block_size must be a positive integer, not {block_size!r}")
    # The root is the tenant's salt: every chain of one tenant differs from every chain of another.
    h = hashlib.blake2b(b"minichat-prefix\0" + salt.encode("utf-8"), digest_size=16).digest()
    out = []
    ids = np.asarray(ids, dtype=np.int64)  # fixed-width bytes, so (1, 23) and (12, 3) cannot collide
    for i in range(len(ids) // block_size):
        h = hashlib.blake2b(h + ids[i * block_size:(i + 1) * block_size].tobytes(), digest_size=16).digest()
        out.append(h)
    return out


class PrefixCache:
    """Blocks of keys and values shared across requests (see the module docstring).

    n_layer, n_kv_head, head_dim: the model's (a block holds every layer). block_size: tokens per block.
    max_bytes: the memory cap of the pool; it holds max_bytes // block_bytes blocks (0 blocks: the cache is off).
    """

    def __init__(self, n_layer: int, n_kv_head: int, head_dim: int, block_size: int = 16,
                 max_bytes: int = 256 * 2**20):
        if int(block_size) != block_size or block_size <= 0:
            raise ValueError(f"block_size must be a positive integer, not {block_size!r}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, not {max_bytes!r}")
        self.block_size = int(block_size)
        self.block_bytes = 2 * n_layer * n_kv_head * self.block_size * head_dim * 4  # keys + values, float32
        self.n_blocks = int(max_bytes // self.block_bytes)
        shape = (self.n_blocks, n_layer, n_kv_head, self.block_size, head_dim)  # (N, L, K, bs, D)
        self.k = np.zeros(shape, dtype=np.float32)  # zeros: pages are only touched when a block is written
        self.v = np.zeros(shape, dtype=np.float32)
        self._blocks: dict[bytes, _Block] = {}  # hash -> block
        self._lru: OrderedDict[bytes, None] = OrderedDict()  # unreferenced blocks, least recently used first
        self._free = list(range(self.n_blocks - 1, -1, -1))  # pool slots never used yet (pop() gives slot 0 first)
        self.hits = self.misses = self.evictions = 0  # in tokens (hits, misses) and blocks (evictions)

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def used_bytes(self) -> int:
        return len(self._blocks) * self.block_bytes

    def refs(self, h: bytes) -> int:
        """How many requests hold block `h` (0 for a cached idle block; KeyError if it is not cached)."""
        return self._blocks[h].refs

    # -- looking up --------------------------------------------------------------------------------------------------

    def match(self, ids: Sequence[int], salt: str = "", limit: int | None = None) -> list[bytes]:
        """The hashes of the longest run of cached blocks at the start of `ids` for this tenant, at most `limit`
        tokens' worth. The caller passes limit = len(ids) - 1 for a prompt: its last token must still run through
        the model, since its logits choose the first new token."""
        hashes = block_hashes(ids, self.block_size, salt)
        if limit is not None:
            hashes = hashes[:max(0, limit) // self.block_size]
        n = 0
        while n < len(hashes) and hashes[n] in self._blocks:
            n += 1
        return hashes[:n]

    def acquire(self, hashes: Sequence[bytes], n_prompt: int) -> None:
        """Take a reference on each block (a running request uses them: they cannot be evicted) and count the hit."""
        for h in hashes:
            b = self._blocks[h]
            b.refs += 1
            self._lru.pop(h, None)
        hit = len(hashes) * self.block_size
        self.hits += hit
        self.misses += n_prompt - hit

    def release(self, hashes: Sequence[bytes]) -> None:
        """Drop one reference on each block; blocks nobody holds become evictable, the chain's tail first."""
        for h in reversed(hashes):
            b = self._blocks.get(h)
            if b is None:
                continue
            b.refs -= 1
            if b.refs == 0:
                self._lru[h] = None  # most recently used end; the tail was added first, so it is evicted first

    def load(self, hashes: Sequence[bytes], cache: KVCache, row: int) -> int:
        """Copy the blocks into positions [0, len(hashes) * block_size) of `cache` row `row`; set the row's length
        to that and return it."""
        bs = self.block_size
        for i, h in enumerate(hashes):
            s = self._blocks[h].slot
            cache.k[:, row, :, i * bs:(i + 1) * bs] = self.k[s]  # (L, K, bs, D)
            cache.v[:, row, :, i * bs:(i + 1) * bs] = self.v[s]
        cache.lengths[row] = len(hashes) * bs
        return len(hashes) * bs

    # -- inserting ---------------------------------------------------------------------------------------------------

    def store(self, ids: Sequence[int], cache: KVCache, row: int, salt: str = "") -> list[bytes]:
        """Cache every full block of `ids` whose keys and values `cache` row `row` holds (positions below the row's
        length), copying the ones not cached yet. Returns the hashes of the blocks now cached, in order; the caller
        then holds a reference on each (release them when the request ends). Stops early when the pool is full of
        referenced blocks."""
        n_valid = min(len(ids), int(cache.lengths[row]))
        hashes = block_hashes(list(ids)[:n_valid], self.block_size, salt)
        bs, kept = self.block_size, []
        for i, h in enumerate(hashes):
            b = self._blocks.get(h)
            if b is None:
                slot = self._take_slot()
                if slot is None:
                    break  # everything in the pool is in use: cache what fits, compute the rest next time
                self.k[slot] = cache.k[:, row, :, i * bs:(i + 1) * bs]  # (L, K, bs, D)
                self.v[slot] = cache.v[:, row, :, i * bs:(i + 1) * bs]
                b = self._blocks[h] = _Block(slot)
            b.refs += 1
            self._lru.pop(h, None)
            kept.append(h)
        return kept

    def _take_slot(self) -> int | None:
        """A free pool slot: a never-used one, or the least recently used unreferenced block's (evicted)."""
        if self._free:
            return self._free.pop()
        if not self._lru:
            return None
        h, _ = self._lru.popitem(last=False)
        self.evictions += 1
        # Its descendants stay correct (a hash names its whole prefix) but unreachable until the block is stored
        # again, since match walks from the root; meanwhile they age out of the LRU on their own.
        return self._blocks.pop(h).slot

    def clear(self) -> None:
        """Forget every unreferenced block."""
        for h in list(self._lru):
            self._free.append(self._blocks.pop(h).slot)
        self._lru.clear()
