"""The classifier's two sparse products, summed in the same order as np.bincount, so training gives the same bits.

A training batch is a sparse matrix X (n messages x F buckets) kept as entries (row, bucket, value), rows in order
(classifier._batch). Each Adam step needs

    logits  X @ W    (n, K):  per message, the sum over its entries of  value * W[bucket]
    grads   X.T @ G  (F, K):  per bucket,  the sum over the entries that touch it of  value * G[row]

Both are *segment sums*: out[s] = the sum, over the entries e of segment s taken in entry order, of the float32
product A[src[e]] * val[e], added up in float64 from 0.0 (rows are the segments of the first, buckets of the
second). The readable way to write one column of it is

    np.bincount(seg, weights=A[src, k] * val, minlength=S)     # k = 0 .. K-1

which is how the classifier was first written (and how the shipped classifier.npz was made). It passes over all
~6.6 million entries once per class, each time through a float64 copy of a strided column: ~2 s a step.

Here the entries are laid out once in *slabs*: slab r holds the r-th entry of every segment that has more than r
entries, the segments ordered longest first, so the segments still being summed are always a prefix. Then

    acc = zeros(S, K) float64
    for each slab r:  acc[:m_r] += A[src_r] * val_r[:, None]        # m_r segments have an r-th entry

adds each segment's products one at a time, in their original order, in float64, starting from 0.0: the operations
bincount does, in the order it does them, so the result is the same to the last bit (floating-point addition is
not associative, which is why the order is kept; the float32 product rounds the same whichever side the value is
on). Each slab is one vectorised addition: ~580 of them for the rows (the longest message has 579 features), ~17,000
for the buckets (the commonest n-gram occurs 17,435 times), most of them tiny. A step takes ~0.25 s.

What it leaves out: a general sparse-matrix type (scipy.sparse), and any faster order of summation (BLAS, or
np.sum's pairwise sums) -- those would change the last bits of what `minichat safety train` learns.
"""
from __future__ import annotations

import numpy as np

BLOCK = 1 << 18  # entries whose products are formed at once: (BLOCK, K) float32 is ~11 MB for K = 11


class SegmentSums:
    """out[s] = sum over the entries e with seg[e] == s, in the order of e, of float32(A[src[e]] * val[e]) in float64;
    for each column k the same bits as np.bincount(seg, weights=A[src, k] * val, minlength=n_segments).

    >>> sums = SegmentSums(seg=np.array([0, 0, 2]), src=np.array([1, 0, 1]), val=np.ones(3, np.float32), n_segments=3)
    >>> sums(np.array([[1.0], [10.0]], np.float32)).ravel().tolist()
    [11.0, 0.0, 10.0]
    """

    def __init__(self, seg: np.ndarray, src: np.ndarray, val: np.ndarray, n_segments: int):
        seg, src = np.asarray(seg, np.int64), np.asarray(src, np.int64)  # (nnz,), (nnz,)
        counts = np.bincount(seg, minlength=n_segments)  # (S,) entries per segment
        order = np.argsort(-counts, kind="stable")  # (S,) segments, longest first
        self.slot = np.empty(n_segments, np.int64)  # (S,) each segment's row in the accumulator
        self.slot[order] = np.arange(n_segments)
        grouped = np.argsort(seg, kind="stable")  # (nnz,) entry ids by segment, in entry order within one
        first = np.cumsum(counts) - counts  # (S,) where each segment's group starts in `grouped`
        rank = np.empty(len(seg), np.int64)  # (nnz,) r: the entry is the r-th of its segment
        rank[grouped] = np.arange(len(seg)) - first[seg[grouped]]
        layout = np.argsort(rank * n_segments + self.slot[seg], kind="stable")  # (nnz,) by slab, then slot
        self.src, self.val = src[layout], np.asarray(val, np.float32)[layout]  # (nnz,), (nnz,) in slab order
        self.ends = np.cumsum(np.bincount(rank)).tolist()  # slab r's entries end here
        self.block = max(BLOCK, int(np.count_nonzero(counts)))  # slab 0, the largest, fits in one block
        self.n_segments, self.n_src = n_segments, int(src.max(initial=-1)) + 1

    def __call__(self, A: np.ndarray) -> np.ndarray:  # (n_src, K) float32 -> (S, K) float64
        if A.ndim != 2 or len(A) < self.n_src:
            raise ValueError(f"expected a (>= {self.n_src}, K) array to gather rows from, got shape {A.shape}")
        acc = np.zeros((self.n_segments, A.shape[1]), np.float64)  # (S, K) in slot order
        buf = np.empty((min(self.block, len(self.src)), A.shape[1]), A.dtype)  # (block, K) products
        lo = hi = start = 0  # entries lo..hi have their products in buf; the next slab starts at `start`
        for end in self.ends:
            if end > hi:  # form the products of the next block of slabs (a slab never exceeds a block)
                lo, hi = start, min(start + len(buf), len(self.src))
                part = buf[:hi - lo]
                np.take(A, self.src[lo:hi], axis=0, out=part, mode="clip")  # (hi-lo, K) gathered rows of A
                part *= self.val[lo:hi, None]  # float32 products, rounded as A[src] * val is
            acc[:end - start] += buf[start - lo:end - lo]  # float32 widened to float64, then added: bincount's step
            start = end
        return acc[self.slot]  # (S, K) back in segment order


class SparseRows:
    """X (n, F) from classifier._batch's (indices, values, row ids), laid out once for both products of a step."""

    def __init__(self, idx: np.ndarray, val: np.ndarray, rows: np.ndarray, n: int, n_features: int):
        self.n, self.n_features = n, n_features
        self._rows = SegmentSums(rows, idx, val, n)  # X @ W: segments are messages, sources are W's rows
        self._cols = SegmentSums(idx, rows, val, n_features)  # X.T @ G: segments are buckets, sources G's rows

    def dot(self, W: np.ndarray) -> np.ndarray:  # (F, K) -> (n, K) float64
        return self._rows(W)

    def tdot(self, G: np.ndarray) -> np.ndarray:  # (n, K) -> (F, K) float64
        return self._cols(G)
