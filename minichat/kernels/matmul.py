"""A small-batch matrix product for batched decoding, beside its NumPy twin.

During batched decode every matrix product has a handful of rows (one per sequence): y = x @ w.T with x (M, K),
M = 2..16, and w (N, K) stored one output per row. BLAS libraries are tuned for big M; with M = 8 OpenBLAS spends
much of its time packing w into its blocked layout and runs far below the CPU's peak. This kernel reads w straight
from memory, once, and computes a 4 x 4 tile of outputs at a time:

    for each group of 4 rows of w (4 outputs) and each group of 4 rows of x:
        16 running sums, one per (x row, w row) pair, over k = 0 .. K-1

Each step of the k loop loads 4 numbers of w and 4 of x and does 16 multiply-adds with them, so the loads do not
limit the speed. With `fastmath` LLVM turns each running sum into a vector of partial sums (AVX2/AVX-512 lanes over
k) and adds the lanes at the end. The last N % 4 rows of w go through a 1 x 4 tile. The caller pads x to a multiple
of 4 rows (zero rows cost compute, not memory traffic).

Numbers are float32 with float32 accumulation, like BLAS; the sum order differs, so results agree to ~1e-6
relative, not bit for bit. Tests compare the kernel with its twin and with NumPy.
Single-row decode (a memory-bound matrix-vector product BLAS streams at memory speed) and prefill (M in the
hundreds, a true matrix product) stay with BLAS. Threads: `matmul_nt_split` hands ranges of w's rows to a thread
pool (the kernel releases the GIL). What it leaves out: `parallel=True` (it fights BLAS's threads on two cores).
"""
from __future__ import annotations

import numpy as np

from minichat.kernels import lazy_jit


@lazy_jit(fastmath=True)  # without it LLVM may not reorder a float sum, so it cannot vectorise one
def matmul_nt(x, w, out):  # (M, K) f32, (N, K) f32, (M, N) f32 -> out = x @ w.T; M a multiple of 4
    """out[m, n] = dot(x[m], w[n]), in 4 x 4 tiles (see the module docstring)."""
    M, K = x.shape
    N = w.shape[0]
    N4 = N - N % 4
    for n in range(0, N4, 4):
        w0, w1, w2, w3 = w[n], w[n + 1], w[n + 2], w[n + 3]  # (K,) each: four outputs' weights
        for m in range(0, M, 4):
            x0, x1, x2, x3 = x[m], x[m + 1], x[m + 2], x[m + 3]  # (K,) each: four input rows
            s00 = s01 = s02 = s03 = np.float32(0.0)
            s10 = s11 = s12 = s13 = np.float32(0.0)
            s20 = s21 = s22 = s23 = np.float32(0.0)
            s30 = s31 = s32 = s33 = np.float32(0.0)
            for k in range(K):
                b0, b1, b2, b3 = w0[k], w1[k], w2[k], w3[k]
                a = x0[k]
                s00 += a * b0
                s01 += a * b1
                s02 += a * b2
                s03 += a * b3
                a = x1[k]
                s10 += a * b0
                s11 += a * b1
                s12 += a * b2
                s13 += a * b3
                a = x2[k]
                s20 += a * b0
                s21 += a * b1
                s22 += a * b2
                s23 += a * b3
                a = x3[k]
                s30 += a * b0
                s31 += a * b1
                s32 += a * b2
                s33 += a * b3
            out[m, n], out[m, n + 1], out[m, n + 2], out[m, n + 3] = s00, s01, s02, s03
            out[m + 1, n], out[m + 1, n + 1], out[m + 1, n + 2], out[m + 1, n + 3] = s10, s11, s12, s13
            out[m + 2, n], out[m + 2, n + 1], out[m + 2, n + 2], out[m + 2, n + 3] = s20, s21, s22, s23
            out[m + 3, n], out[m + 3, n + 1], out[m + 3, n + 2], out[m + 3, n + 3] = s30, s31, s32, s33
    for n in range(N4, N):  # the last N % 4 outputs, one at a time
        for m in range(0, M, 4):
            s0 = s1 = s2 = s3 = np.float32(0.0)
            for k in range(K):
                b = w[n, k]
                s0 += x[m, k] * b
                s1 += x[m + 1, k] * b
                s2 += x[m + 2, k] * b
                s3 += x[m + 3, k] * b
            out[m, n], out[m + 1, n], out[m + 2, n], out[m + 3, n] = s0, s1, s2, s3
    return out


def matmul_nt_reference(x, w, out):  # (M, K) f32, (N, K) f32, (M, N) f32 -> out = x @ w.T; M a multiple of 4
    """NumPy twin of `matmul_nt`."""
    np.matmul(x, w.T, out=out)
    return out


def matmul_nt_split(x: np.ndarray, w: np.ndarray, pool=None, parts: int = 1) -> np.ndarray:  # (M, K), (N, K) -> (M, N)
    """x @ w.T with the kernel: pads x to a multiple of 4 rows, and with a thread pool splits w's rows into `parts`
    ranges (multiples of 4) computed at once (the kernel releases the GIL, so Python threads run it in parallel)."""
    M, K = x.shape
    N = w.shape[0]
    xp = np.zeros((-(-M // 4) * 4, K), dtype=np.float32)  # (M4, K)
    xp[:M] = x
    out = np.empty((xp.shape[0], N), dtype=np.float32)  # (M4, N)
    if pool is None or parts <= 1:
        matmul_nt(xp, w, out)
    else:
        cuts = [N * i // parts // 4 * 4 for i in range(parts)] + [N]  # part starts, rounded down to multiples of 4
        jobs = [pool.submit(matmul_nt, xp, w[a:b], out[:, a:b]) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
        for job in jobs:
            job.result()
    return out[:M]
