"""The element-wise steps of a training pass as Numba kernels, each beside its NumPy twin (same signature).

Between its matrix products a training step runs element-wise work on (B, T, C) and (B, T, F) arrays: RMSNorm
forward and backward, RoPE's rotation of q and k (and back, in the backward), SwiGLU's backward. NumPy does each as
several passes, each allocating a temporary as large as the activations (a backward through RMSNorm is seven NumPy
calls); a kernel reads its inputs and writes its outputs once, one row at a time. Measured on the 2-core dev machine
for the built-in model's shapes (4 x 1,024 tokens, C = 256, F = 672; medians of 7): SwiGLU's backward 17.3 ms in
NumPy, 2.5 ms here (given the sigmoid from the forward: a kernel's scalar exp is slower than NumPy's vectorised one,
so the forward stays NumPy and keeps the sigmoid); bench/train.py has the whole step.

The sums of the norms run in float64 and the rest in the arrays' own dtype (float32 in training; float64 works, for
the tests). minichat/train/fast_grads.py calls these; minichat/train/grads.py is the readable version of the same
maths, and tests/test_grads.py checks kernels against twins and both against finite differences and torch.
What it leaves out: LayerNorm and GELU (the GPT-2 family trains on grads.py's NumPy), `parallel=True`.
"""
from __future__ import annotations

import math

import numpy as np

from minichat.kernels.fastmath import lazy_fastmath_jit


@lazy_fastmath_jit
def rms_norm_forward(x, w, eps, y, xhat, rstd):  # (N, C), (C,), float -> y (N, C), xhat (N, C), rstd (N, 1)
    """rstd = 1 / sqrt(mean(x^2) + eps) per row; xhat = x * rstd; y = xhat * w."""
    n, c = x.shape
    for i in range(n):
        ss = 0.0
        for j in range(c):
            ss += x[i, j] * x[i, j]
        rstd[i, 0] = 1.0 / math.sqrt(ss / c + eps)
        r = rstd[i, 0]  # read back: the product below then stays in the arrays' dtype
        for j in range(c):
            xhat[i, j] = x[i, j] * r
            y[i, j] = xhat[i, j] * w[j]
    return y


def rms_norm_forward_reference(x, w, eps, y, xhat, rstd):
    rstd[...] = 1.0 / np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True) + eps)
    xhat[...] = x * rstd
    y[...] = xhat * w
    return y


@lazy_fastmath_jit
def rms_norm_backward(dy, xhat, rstd, w, dx, dw):  # (N, C), (N, C), (N, 1), (C,) -> dx (N, C), dw (C,) += in float64
    """g = dy * w; dx = rstd * (g - xhat * mean(g * xhat)); dw += sum over rows of dy * xhat (dw starts at 0)."""
    n, c = dy.shape
    for i in range(n):
        dot = 0.0
        for j in range(c):
            dot += dy[i, j] * w[j] * xhat[i, j]
            dw[j] += dy[i, j] * xhat[i, j]
        m = dot / c
        r = rstd[i, 0]
        for j in range(c):
            dx[i, j] = r * (dy[i, j] * w[j] - xhat[i, j] * m)
    return dx


def rms_norm_backward_reference(dy, xhat, rstd, w, dx, dw):
    g = dy * w
    dx[...] = rstd * (g - xhat * (g.astype(np.float64) * xhat).mean(axis=-1, keepdims=True))
    dw += (dy.astype(np.float64) * xhat).sum(axis=0)
    return dx


@lazy_fastmath_jit
def rope_rotate(x, cos, sin, sign, out):  # (B, H, T, D), (Bc, T, D/2) x2 (Bc = 1 or B), +1 or -1 -> out (B, H, T, D)
    """Rotate each pair (x[..., j], x[..., j + D/2]) by +angle (sign 1: layers.apply_rope) or -angle (sign -1: its
    backward, the transposed rotation)."""
    nb, nh, nt, d = x.shape
    half = d // 2
    for b in range(nb):
        bc = b if cos.shape[0] > 1 else 0
        for h in range(nh):
            for t in range(nt):
                for j in range(half):
                    c, s = cos[bc, t, j], sin[bc, t, j] * sign
                    a, e = x[b, h, t, j], x[b, h, t, j + half]
                    out[b, h, t, j] = a * c - e * s
                    out[b, h, t, j + half] = e * c + a * s
    return out


def rope_rotate_reference(x, cos, sin, sign, out):
    half = x.shape[-1] // 2
    a, e = x[..., :half], x[..., half:]
    c, s = cos[:, None], sin[:, None] * sign  # the same angle for every head
    out[..., :half], out[..., half:] = a * c - e * s, e * c + a * s
    return out


@lazy_fastmath_jit
def swiglu_backward(dm, g, u, sig, dg, du):  # (N, F) x4 -> dg (N, F), du (N, F)
    """m = silu(g) * u with silu(g) = g * sig, sig = sigmoid(g): du = dm * g * sig and
    dg = dm * u * silu'(g), silu'(g) = sig * (1 + g * (1 - sig))."""
    one = np.float32(1.0)  # exact in any float type, so float64 arrays stay float64
    n, f = g.shape
    for i in range(n):
        for j in range(f):
            s, x, d = sig[i, j], g[i, j], dm[i, j]
            dg[i, j] = d * u[i, j] * s * (one + x * (one - s))
            du[i, j] = d * x * s
    return dg


def swiglu_backward_reference(dm, g, u, sig, dg, du):
    dg[...] = dm * u * (sig * (1 + g * (1 - sig)))
    du[...] = dm * (g * sig)
    return dg
