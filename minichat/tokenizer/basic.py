"""Byte pair encoding in its plainest form: four functions over Python lists, as minbpe's basic tokenizer teaches it.

    get_pair_counts  how often each pair of neighbours occurs
    merge            replace one pair by a new id, left to right
    encode_chunk     apply learned merges to one chunk, the merge learned first before any later one
    train_naive      learn merges: count, take the most frequent pair, merge it everywhere, repeat

These are the definitions. The library runs the same algorithms faster in `minichat/kernels/bpe.py` (a heap instead
of a rescan, incremental counts instead of a recount), and the tests check the kernels against these functions; the
`kernel="python"` option of `Tokenizer` and `train` runs these functions themselves. Notebook 01 builds them up step
by step.

Conventions (the library's): ids 0..255 are bytes; merges are a dict {(left id, right id): new id} in the order they
were learned, and a merge's new id grows with that order (as in minbpe and every vocabulary minichat trains or reads:
GPT-2, cl100k, HF and GGUF files), so the smallest new id is the earliest merge. Training breaks ties between equally
frequent pairs by the smaller pair (left id, then right id).

What it leaves out: pre-tokenization (the regex split, `patterns.py`), special tokens and decoding (`bpe.py`).
Reference: Karpathy's minbpe (`basic.py`, `base.py`); Sennrich et al. 2016.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

Pair = tuple[int, int]


def get_pair_counts(ids: Sequence[int], counts: dict[Pair, int] | None = None, weight: int = 1) -> dict[Pair, int]:
    """Count each pair of neighbours; add to `counts` if given, `weight` times per occurrence (for repeated chunks).

    >>> get_pair_counts([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    >>> get_pair_counts([5, 5, 5], {(5, 5): 10}, weight=3)  # overlapping pairs all count
    {(5, 5): 16}
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):  # each id with its right-hand neighbour
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of `pair` by `new_id`, scanning left to right.

    >>> merge([1, 2, 3, 1, 2], (1, 2), 4)
    [4, 3, 4]
    >>> merge([1, 1, 1], (1, 1), 4)  # an overlap: the leftmost pair wins, the scan moves past both ids
    [4, 1]
    """
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def encode_chunk(ids: Sequence[int], merges: Mapping[Pair, int]) -> list[int]:
    """Apply the merges to one chunk's ids: always the earliest-learned merge among the pairs present, until none is.

    Wikipedia's example: training on "aaabdaaabac" learns aa -> Z (256), ab -> Y (257), ZY -> X (258).
    >>> encode_chunk(list(b"aaabdaaabac"), {(97, 97): 256, (97, 98): 257, (256, 257): 258})
    [258, 100, 258, 97, 99]
    >>> encode_chunk(list(b"abcbc"), {(97, 98): 256, (98, 99): 257})  # "ab" was learned first, so "bc" loses its b
    [256, 99, 257]
    """
    ids = list(ids)
    while len(ids) >= 2:
        counts = get_pair_counts(ids)  # only its keys matter here: the pairs present
        pair = min(counts, key=lambda p: merges.get(p, float("inf")))  # the smallest new id was learned first
        # subtle: when no pair has a merge, every key is inf and min() returns an arbitrary pair; stop then
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids


def train_naive(chunks: Iterable[tuple[Sequence[int], int]], num_merges: int, first_id: int = 256,
                min_frequency: int = 1) -> dict[Pair, int]:
    """Learn up to `num_merges` merges from (chunk ids, how often the chunk occurs) pairs, recounting every time.

    Stops early when no pair is left or the best occurs fewer than `min_frequency` times.
    >>> train_naive([(list(b"aaabdaaabac"), 1)], 3)
    {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    >>> train_naive([(list(b"ab"), 5), (list(b"bc"), 2)], 9)  # (a, b) 5 times, (b, c) twice; then no pair is left
    {(97, 98): 256, (98, 99): 257}
    """
    chunks = [(list(ids), n) for ids, n in chunks]
    merges: dict[Pair, int] = {}
    for new_id in range(first_id, first_id + num_merges):
        counts: dict[Pair, int] = {}
        for ids, n in chunks:
            get_pair_counts(ids, counts, n)
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))  # the most frequent; on a tie the smaller pair
        if counts[pair] < min_frequency:
            break
        merges[pair] = new_id
        chunks = [(merge(ids, pair, new_id), n) for ids, n in chunks]
    return merges
