"""The causal softmax of training attention, forward and backward, as Numba kernels beside their NumPy twins.

Not attention itself: the library's three attention pieces are minichat/model/layers.py's `attention` (the
definition, used for inference), minichat/train/blocked_attention.py (the same function arranged in causal query
blocks for training, with its backward) and this module (the masked softmax inside that one, on the scores only).

Training attention scores form a (rows, keys) matrix per (batch, key/value head) in which more than half the
entries are masked (a query never sees a later key). NumPy must still scale, mask, exponentiate and normalise every
entry, in about six passes over arrays of 16-64 MB that fit in no cache, with a fresh allocation each. These kernels
do one row at a time (a row of 512 floats lives in L1), touch only the visible keys, and write exact zeros over the
rest, in place, compiled with fast-math reductions (minichat/kernels/fastmath.py). Measured on the 2-core dev
machine on one layer's scores of a built-in-sized layer (B=8, T=512, 8 query heads, 16.8M scores): NumPy's masked
softmax 230 ms, this kernel 26 ms (53 ms without fast-math); the backward ~5x faster likewise.

Row layout: the rows of one key/value head are its G query heads interleaved by position, row r = t * G + g (see
minichat/train/blocked_attention.py), and the block of rows starts at position `offset`, so row r sees keys
0 .. offset + r // G. Works for float32 and float64 (numba compiles one version per dtype).
What it leaves out: padding masks (training uses the loss mask instead), sliding windows, parallel loops.
"""
from __future__ import annotations

import math

import numpy as np

from minichat.kernels.fastmath import lazy_fastmath_jit


@lazy_fastmath_jit
def causal_softmax(s, offset, group, scale):  # (N, R, S) scores, in place -> probabilities
    """s[n, r, :] <- softmax(scale * s[n, r, :last + 1]) followed by zeros, last = offset + r // group.
    `scale` must be a scalar of s's dtype (np.float32 for float32 scores), or the exp runs in float64."""
    n_mat, n_rows, n_keys = s.shape
    for i in range(n_mat):
        for r in range(n_rows):
            last = min(offset + r // group, n_keys - 1)
            row = s[i, r]  # (S,) a view
            m = row[0]
            for j in range(1, last + 1):
                m = max(m, row[j])
            m = m * scale  # scale > 0, so the max of scale * s is scale * max(s)
            total = row[0] * 0  # a zero of the row's dtype
            for j in range(last + 1):
                e = math.exp(row[j] * scale - m)  # <= 1: no overflow
                row[j] = e
                total += e
            inv = (total * 0 + 1) / total  # 1 / total in the row's dtype
            for j in range(last + 1):
                row[j] *= inv
            row[last + 1:] = 0
    return s


def causal_softmax_reference(s, offset, group, scale):  # (N, R, S) scores, in place -> probabilities
    """NumPy twin of `causal_softmax`."""
    n_rows, n_keys = s.shape[1:]
    last = np.minimum(offset + np.arange(n_rows) // group, n_keys - 1)  # (R,)
    visible = np.arange(n_keys)[None, :] <= last[:, None]  # (R, S)
    z = np.where(visible, s * scale, -np.inf)  # (N, R, S)
    e = np.exp(z - z.max(axis=-1, keepdims=True))  # (N, R, S): masked entries become exactly 0
    s[...] = e / e.sum(axis=-1, keepdims=True)
    return s


@lazy_fastmath_jit
def causal_softmax_backward(dp, p, offset, group, scale):  # (N, R, S) dL/dprobs, probs -> dL/dscores in place
    """dp[n, r, j] <- scale * p * (dp - sum_k dp * p) on visible keys, 0 elsewhere (softmax's Jacobian, and the
    scale the forward applied to the raw scores). `scale`: a scalar of dp's dtype."""
    n_mat, n_rows, n_keys = dp.shape
    for i in range(n_mat):
        for r in range(n_rows):
            last = min(offset + r // group, n_keys - 1)
            drow, prow = dp[i, r], p[i, r]  # (S,) views
            dot = drow[0] * 0
            for j in range(last + 1):
                dot += drow[j] * prow[j]
            for j in range(last + 1):
                drow[j] = scale * prow[j] * (drow[j] - dot)
            drow[last + 1:] = 0
    return dp


def causal_softmax_backward_reference(dp, p, offset, group, scale):  # (N, R, S), (N, R, S) -> dp in place
    """NumPy twin of `causal_softmax_backward` (masked entries have p = 0, so they come out 0 by themselves)."""
    dp[...] = scale * p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    return dp
