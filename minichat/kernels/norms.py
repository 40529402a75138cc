"""Row-wise LayerNorm and RMSNorm as Numba kernels, each beside its NumPy twin with the same signature.

Why a kernel: a norm is three passes over a row (mean, variance, scale) that NumPy runs as ~8 separate calls, each
with a few microseconds of dispatch and a temporary array. During decode a row is only C = 576..768 numbers, so the
overhead *is* the cost: measured on the 2-core dev machine, one 768-wide LayerNorm takes ~10 us in NumPy and ~3 us
here, and a 512-row prefill ~2.5 ms vs ~0.8 ms. Summed over the 25-61 norms of a forward pass that is ~1% of a
GPT-2-124M decode step: small, measured, kept. The sums are accumulated in float64 (more exact than NumPy's float32
pairwise sums); the output is float32.

The model code (minichat/model/layers.py) keeps the readable NumPy version; `Transformer` calls these. Tests check
each kernel against its twin and against layers.py.
What it leaves out: the backward pass (minichat/train), `parallel=True` (threads fight BLAS on two cores).
"""
from __future__ import annotations

import math

import numpy as np

from minichat.kernels import lazy_jit


@lazy_jit
def layer_norm_rows(x, w, b, eps, out):  # (N, C) f32, (C,), (C,), float, (N, C) f32 -> out
    """out[i] = (x[i] - mean) / sqrt(var + eps) * w + b for every row i."""
    n, c = x.shape
    for i in range(n):
        mean = 0.0
        for j in range(c):
            mean += x[i, j]
        mean /= c
        var = 0.0
        for j in range(c):
            d = x[i, j] - mean
            var += d * d
        r = 1.0 / math.sqrt(var / c + eps)
        for j in range(c):
            out[i, j] = (x[i, j] - mean) * r * w[j] + b[j]
    return out


def layer_norm_rows_reference(x, w, b, eps, out):  # (N, C) f32, (C,), (C,), float, (N, C) f32 -> out
    """NumPy twin of `layer_norm_rows`."""
    x64 = x.astype(np.float64)  # (N, C)
    mean = x64.mean(axis=1, keepdims=True)  # (N, 1)
    var = ((x64 - mean) ** 2).mean(axis=1, keepdims=True)  # (N, 1)
    out[:] = (x64 - mean) / np.sqrt(var + eps) * w + b  # (N, C)
    return out


@lazy_jit
def rms_norm_rows(x, w, eps, out):  # (N, C) f32, (C,), float, (N, C) f32 -> out
    """out[i] = x[i] / sqrt(mean(x[i]^2) + eps) * w for every row i."""
    n, c = x.shape
    for i in range(n):
        ss = 0.0
        for j in range(c):
            v = float(x[i, j])
            ss += v * v
        r = 1.0 / math.sqrt(ss / c + eps)
        for j in range(c):
            out[i, j] = x[i, j] * r * w[j]
    return out


def rms_norm_rows_reference(x, w, eps, out):  # (N, C) f32, (C,), float, (N, C) f32 -> out
    """NumPy twin of `rms_norm_rows`."""
    x64 = x.astype(np.float64)  # (N, C)
    out[:] = x64 / np.sqrt((x64 * x64).mean(axis=1, keepdims=True) + eps) * w  # (N, C)
    return out
