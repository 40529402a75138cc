"""A small-batch matrix product for the output head of batched decoding, beside its NumPy twin.

During batched decode the head multiplies a handful of rows (one per sequence) by the (V, C) embedding matrix:
logits = x @ wte.T with x (M, C), M = 2..16. BLAS libraries are tuned for big M; with M = 8 OpenBLAS packs
the transposed 154 MB matrix and reaches a small fraction of the CPU's peak. This kernel reads each vocabulary row
once and computes its dot product with four input rows at a time. The dot products use four accumulators that
share one load of the weight row, and `fastmath` lets LLVM vectorise the sums. Single-row decode (M = 1) is a
matrix-vector product that BLAS streams at memory speed, and prefill (M in the hundreds) is a true matrix product;
both stay with BLAS.

Numbers are float32 with float32 accumulation, like BLAS; the sum order differs, so results agree to ~1e-6
relative, not bit for bit. Tests compare the kernel with its twin and with `x @ w.T`.
What it leaves out: threads (`parallel=True` fights BLAS on two cores), any other shape.
"""
from __future__ import annotations

import numpy as np

from minichat.kernels import lazy_jit


@lazy_jit(fastmath=True)  # without it LLVM may not reorder a float sum, so it cannot vectorise one
def matmul_nt(x, w, out):  # (M, K) f32, (N, K) f32, (M, N) f32 -> out = x @ w.T; M a multiple of 4
    """out[m, n] = dot(x[m], w[n]). Each row of w is read from memory once and used for every row of x, four rows
    of x at a time (the caller pads x to a multiple of 4 rows)."""
    M, K = x.shape
    N = w.shape[0]
    for n in range(N):
        for m in range(0, M, 4):
            a0 = np.float32(0.0)
            a1 = np.float32(0.0)
            a2 = np.float32(0.0)
            a3 = np.float32(0.0)
            for k in range(K):
                wk = w[n, k]
                a0 += x[m, k] * wk
                a1 += x[m + 1, k] * wk
                a2 += x[m + 2, k] * wk
                a3 += x[m + 3, k] * wk
            out[m, n] = a0
            out[m + 1, n] = a1
            out[m + 2, n] = a2
            out[m + 3, n] = a3
    return out


def matmul_nt_reference(x, w, out):  # (M, K) f32, (N, K) f32, (M, N) f32 -> out = x @ w.T; M a multiple of 4
    """NumPy twin of `matmul_nt`."""
    np.matmul(x, w.T, out=out)
    return out


def matmul_nt_split(x: np.ndarray, w: np.ndarray, pool=None, parts: int = 1) -> np.ndarray:  # (M, K), (N, K) -> (M, N)
    """x @ w.T with the kernel: pads x to a multiple of 4 rows, and with a thread pool splits w's rows into `parts`
    ranges computed at once (the kernel releases the GIL, so Python threads run it in parallel)."""
    M, K = x.shape
    N = w.shape[0]
    xp = np.zeros((-(-M // 4) * 4, K), dtype=np.float32)  # (M4, K): zero rows cost compute, not memory traffic
    xp[:M] = x
    out = np.empty((xp.shape[0], N), dtype=np.float32)  # (M4, N)
    if pool is None or parts <= 1:
        matmul_nt(xp, w, out)
    else:
        cuts = np.linspace(0, N, parts + 1).astype(int)
        jobs = [pool.submit(matmul_nt, xp, w[a:b], out[:, a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
        for job in jobs:
            job.result()
    return out[:M]
