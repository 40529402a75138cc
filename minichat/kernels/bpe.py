"""BPE hot loops: applying merges to many chunks (encode) and learning merges from a corpus (train).

Both loops are Numba-jitted (`lazy_jit`) because they are long chains of tiny integer operations that the Python
interpreter runs ~50x slower. The readable statement of what they compute is `minichat/tokenizer/basic.py`
(`encode_chunk`, `train_naive`: minbpe's list functions); the tests check the kernels against those functions, and
`Tokenizer(kernel="python")` / `train(kernel="python")` run those functions instead of these loops.

Encoding a chunk ("apply merges")
    Start from the chunk's byte tokens. Repeatedly take the adjacent pair with the lowest merge rank (the leftmost one
    on ties) and replace it by the merged token, until no adjacent pair has a merge. A naive loop rescans the chunk
    after every merge, which is quadratic: a megabyte of one letter is one chunk and would never finish. The kernel
    keeps the chunk as a doubly linked list and the candidate pairs in a heap ordered by (rank, position), so a chunk of
    n bytes costs O(n log n). Stale heap entries (a neighbour changed since the entry was pushed) are recognised when
    popped and dropped. This is the same order HF tokenizers uses, and it equals tiktoken's "leftmost lowest rank".
    It also equals `basic.encode_chunk`, which merges every occurrence of the earliest merge at once: a merge's new
    token only takes part in later merges, so nothing can come between two occurrences of the same pair.

Learning merges ("train")
    The corpus arrives as unique chunks ("words") with their counts. We count every adjacent pair once, weighted by the
    word's count, and remember where each pair occurs. Each step takes the most frequent pair (ties: the smallest
    (left id, right id)), rewrites only the positions where it occurs, and adjusts the counts of the pairs around them
    (the incremental update of Sennrich et al. 2016 and HF tokenizers). A lazy max-heap yields the best pair; entries
    whose count changed since they were pushed are skipped.

Merge tables are passed as parallel arrays sorted by key = left << 32 | right (binary search), not dicts, so that
Python builds them with NumPy in milliseconds.
"""
from __future__ import annotations

import heapq

import numpy as np

from minichat.kernels import lazy_jit

NO_MERGE = np.int64(2**62)  # rank of a pair that has no merge


# ---------------------------------------------------------------------------------------------------------------------
# encode


def merge_table(merges: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[(left, right, new_id), ...] in rank order -> (sorted keys, ranks, new ids) for the kernels.

    >>> keys, ranks, new = merge_table([(97, 97, 256), (256, 98, 257)])
    >>> keys.tolist() == [97 << 32 | 97, 256 << 32 | 98], ranks.tolist(), new.tolist()
    (True, [0, 1], [256, 257])
    """
    m = np.asarray(merges, dtype=np.int64).reshape(-1, 3)  # (M, 3)
    keys = (m[:, 0] << 32) | m[:, 1]  # (M,)
    order = np.argsort(keys, kind="stable")  # (M,)
    ranks = np.arange(len(m), dtype=np.int64)[order]  # (M,)
    keys = keys[order]
    if len(keys) > 1 and np.any(keys[1:] == keys[:-1]):
        dup = keys[1:][keys[1:] == keys[:-1]][0]
        raise ValueError(f"the pair ({dup >> 32}, {dup & 0xFFFFFFFF}) is merged twice; each pair may have one merge")
    return keys, ranks, m[order, 2].astype(np.int64)


@lazy_jit
def _lookup(keys, ranks, left, right):  # -> (rank, index into the table)
    key = (np.int64(left) << 32) | np.int64(right)
    i = np.searchsorted(keys, key)
    if i < keys.shape[0] and keys[i] == key:
        return ranks[i], i
    return NO_MERGE, -1


@lazy_jit
def apply_merges_many(ids, offsets, keys, ranks, new_ids):
    """Merge each chunk ids[offsets[c]:offsets[c+1]] independently.

    ids: (N,) int32 byte-token ids of all chunks back to back; offsets: (C+1,) int64.
    Returns (out_ids (N',) int32, out_offsets (C+1,) int64) with the merged chunks back to back.
    """
    n = ids.shape[0]
    sym = ids.copy()  # (N,) current token at each surviving position
    nxt = np.empty(n, np.int64)  # (N,) next surviving position in the chunk, -1 at the end
    prv = np.empty(n, np.int64)  # (N,) previous surviving position, -1 at the start
    out = np.empty(n, np.int32)
    out_offsets = np.zeros(offsets.shape[0], np.int64)
    w = 0
    for c in range(offsets.shape[0] - 1):
        lo, hi = offsets[c], offsets[c + 1]
        for p in range(lo, hi):
            nxt[p] = p + 1 if p + 1 < hi else -1
            prv[p] = p - 1 if p > lo else -1
        # heap of (rank, position of the pair's left token); position breaks ties leftmost-first
        heap = [(np.int64(0), np.int64(0))]
        heap.pop()
        for p in range(lo, hi - 1):
            r, _ = _lookup(keys, ranks, sym[p], sym[p + 1])
            if r != NO_MERGE:
                heapq.heappush(heap, (r, np.int64(p)))
        while len(heap) > 0:
            r, p = heapq.heappop(heap)
            q = nxt[p]
            if sym[p] < 0 or q < 0:
                continue  # p was absorbed by an earlier merge, or is now the last token
            r_now, i = _lookup(keys, ranks, sym[p], sym[q])
            if r_now != r:
                continue  # stale: a neighbour changed since this entry was pushed
            sym[p] = new_ids[i]  # merge: p takes the new token, q disappears
            sym[q] = -1
            nq = nxt[q]
            nxt[p] = nq
            if nq >= 0:
                prv[nq] = p
                r2, _ = _lookup(keys, ranks, sym[p], sym[nq])
                if r2 != NO_MERGE:
                    heapq.heappush(heap, (r2, p))
            pp = prv[p]
            if pp >= 0:
                r2, _ = _lookup(keys, ranks, sym[pp], sym[p])
                if r2 != NO_MERGE:
                    heapq.heappush(heap, (r2, pp))
        p = lo if hi > lo else -1
        while p >= 0:
            out[w] = sym[p]
            w += 1
            p = nxt[p]
        out_offsets[c + 1] = w
    return out[:w], out_offsets


# ---------------------------------------------------------------------------------------------------------------------
# train


@lazy_jit
def learn_merges(sym, word_starts, weights, n_merges, first_id, min_frequency):
    """Learn up to n_merges merges from words given as token ids.

    sym: (N,) int32 tokens of all unique words back to back; word_starts: (W+1,) int64; weights: (W,) int64 counts.
    New tokens get ids first_id, first_id + 1, ... Stops early when the best pair occurs < min_frequency times.
    Returns merges (M, 3) int64 rows (left, right, new_id), M <= n_merges, in the order they were learned.
    """
    n = sym.shape[0]
    sym = sym.astype(np.int64)
    nxt = np.full(n, -1, np.int64)  # (N,) next surviving position in the word, -1 at the end
    prv = np.full(n, -1, np.int64)  # (N,) previous surviving position, -1 at the start
    wt = np.empty(n, np.int64)  # (N,) the count of the word each position belongs to
    counts = {np.int64(0): np.int64(0)}  # pair key -> weighted count
    # Where each pair occurs, as one singly linked chain per pair through a shared pool: head[key] is the newest
    # entry, pool_pos[e] a position of the pair's left token, pool_next[e] the older entry. Entries may go stale.
    # Every merge removes a position and adds at most two entries, so 3N entries always suffice.
    head = {np.int64(0): np.int64(0)}
    pool_pos = np.empty(3 * n + 1, np.int64)
    pool_next = np.empty(3 * n + 1, np.int64)
    used = 0
    counts.pop(np.int64(0))
    head.pop(np.int64(0))
    for w in range(word_starts.shape[0] - 1):
        lo, hi = word_starts[w], word_starts[w + 1]
        for p in range(lo, hi):
            wt[p] = weights[w]
            if p > lo:
                prv[p] = p - 1
            if p + 1 < hi:
                nxt[p] = p + 1
                key = (sym[p] << 32) | sym[p + 1]
                counts[key] = counts.get(key, 0) + weights[w]
                pool_pos[used], pool_next[used] = p, head.get(key, -1)
                head[key] = used
                used += 1
    # max-heap via negated counts; on equal counts the smaller key (left id, then right id) comes first
    heap = [(-c, k) for k, c in counts.items()]
    heapq.heapify(heap)
    merges = np.empty((n_merges, 3), np.int64)
    m = 0
    while m < n_merges and len(heap) > 0:
        negc, key = heapq.heappop(heap)
        c = counts.get(key, 0)
        if c != -negc or c <= 0:
            continue  # stale entry: the count changed after this was pushed
        if c < min_frequency:
            break
        a, b, z = key >> 32, key & 0xFFFFFFFF, np.int64(first_id + m)
        merges[m, 0], merges[m, 1], merges[m, 2] = a, b, z
        m += 1
        first = head[key]
        head.pop(key)
        k, e = 0, first
        while e >= 0:  # walk the chain twice: once to size the array, once to fill it
            k, e = k + 1, pool_next[e]
        positions = np.empty(k, np.int64)
        k, e = 0, first
        while e >= 0:
            positions[k], k, e = pool_pos[e], k + 1, pool_next[e]
        touched = {np.int64(0): True}
        touched.pop(np.int64(0))
        for p in np.sort(positions):  # left to right, so overlaps such as "aaa" merge leftmost first
            q = nxt[p]
            if sym[p] != a or q < 0 or sym[q] != b:
                continue  # stale: this occurrence was rewritten by an earlier merge
            f = wt[p]
            pl, r = prv[p], nxt[q]
            if pl >= 0:  # the pair on the left (x, a) becomes (x, z)
                old, new = (sym[pl] << 32) | a, (sym[pl] << 32) | z
                counts[old] -= f
                counts[new] = counts.get(new, 0) + f
                touched[old], touched[new] = True, True
                pool_pos[used], pool_next[used] = pl, head.get(new, -1)
                head[new] = used
                used += 1
            if r >= 0:  # the pair on the right (b, y) becomes (z, y)
                old, new = (b << 32) | sym[r], (z << 32) | sym[r]
                counts[old] -= f
                counts[new] = counts.get(new, 0) + f
                touched[old], touched[new] = True, True
                pool_pos[used], pool_next[used] = p, head.get(new, -1)
                head[new] = used
                used += 1
            counts[key] -= f
            sym[p] = z  # p now holds the merged token; q leaves the linked list
            sym[q] = -1
            nxt[p] = r
            if r >= 0:
                prv[r] = p
        counts.pop(key)
        for t in touched:
            c2 = counts.get(t, 0)
            if c2 > 0:
                heapq.heappush(heap, (-c2, t))
            elif t in counts:
                counts.pop(t)
    return merges[:m]
