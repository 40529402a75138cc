"""The fast side of backprop.py's one seam: grads.py's RMSNorm, RoPE and SwiGLU pairs on Numba kernels.

backprop.py picks its layer functions with one `if`: `ops = fast_grads if model.use_numba else grads`. This module
has the names backprop.py takes from there (rms_norm_*, apply_rope, rope_backward, mlp_swiglu_*), with the same
arguments and results, computed by minichat/kernels/train_elementwise.py in one pass each instead of NumPy's several.
Everything else (linear layers, attention, the loss, LayerNorm and GELU) backprop.py takes from grads.py directly.
The numbers equal grads.py's up to float32 rounding (the norms' sums run in float64 here); tests/test_grads.py checks
the whole model's loss and gradients against torch on both sides of the seam, and every kernel against its twin.

One difference inside: the SwiGLU forward keeps sigmoid(gate) instead of silu(gate) for the backward, which then
needs no exp (and silu(gate) is gate * sigmoid(gate), so nothing is lost).
What it leaves out: fused matmul epilogues (BLAS does the products; a kernel cannot beat it at them).
"""
from __future__ import annotations

import numpy as np

from minichat.kernels import train_elementwise as K
from minichat.model import layers
from minichat.train.grads import linear_backward


def rms_norm_forward(x: np.ndarray, w: np.ndarray, eps: float):  # (..., C) -> (..., C), cache (xhat, rstd, w)
    C = x.shape[-1]
    x2 = np.ascontiguousarray(x).reshape(-1, C)  # (N, C)
    y, xhat, rstd = np.empty_like(x2), np.empty_like(x2), np.empty((x2.shape[0], 1), x2.dtype)
    K.rms_norm_forward(x2, w, eps, y, xhat, rstd)
    return y.reshape(x.shape), (xhat.reshape(x.shape), rstd.reshape(*x.shape[:-1], 1), w)


def rms_norm_backward(dy: np.ndarray, cache):  # (..., C) -> dx (..., C), dw (C,)
    xhat, rstd, w = cache
    C = dy.shape[-1]
    dy2 = np.ascontiguousarray(dy).reshape(-1, C)  # (N, C)
    dx, dw = np.empty_like(dy2), np.zeros(C, np.float64)
    K.rms_norm_backward(dy2, xhat.reshape(-1, C), rstd.reshape(-1, 1), w, dx, dw)
    return dx.reshape(dy.shape), dw.astype(dy.dtype)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:  # (B, H, T, D), (Bc, T, D/2) x2
    return K.rope_rotate(x, cos, sin, x.dtype.type(1), np.empty(x.shape, x.dtype))


def rope_backward(dy: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:  # rotate back: R(w)^T = R(-w)
    return K.rope_rotate(dy, cos, sin, dy.dtype.type(-1), np.empty(dy.shape, dy.dtype))


def mlp_swiglu_forward(x, w_gate, w_up, w_down, b_gate=None, b_up=None, b_down=None):  # (..., C) -> (..., C)
    g = layers.linear(x, w_gate, b_gate)  # (..., F)
    u = layers.linear(x, w_up, b_up)  # (..., F)
    sig = np.exp(-g)  # (..., F): sigmoid(g) in place, three passes of NumPy's vectorised exp and division
    sig += 1
    np.reciprocal(sig, out=sig)
    m = g * sig  # silu(g)
    m *= u  # (..., F)
    has_bias = (b_gate is not None, b_up is not None, b_down is not None)
    return layers.linear(m, w_down, b_down), (x, g, u, sig, m, w_gate, w_up, w_down, has_bias)


def mlp_swiglu_backward(dy: np.ndarray, cache):  # (..., C) -> dx, dw_gate, dw_up, dw_down, db_gate, db_up, db_down
    x, g, u, sig, m, w_gate, w_up, w_down, (has_b_gate, has_b_up, has_b_down) = cache
    F = g.shape[-1]
    dm, dw_down, db_down = linear_backward(dy, m, w_down, has_b_down)  # (..., F)
    dg, du = np.empty(g.shape, g.dtype), np.empty(g.shape, g.dtype)
    K.swiglu_backward(*(a.reshape(-1, F) for a in (dm, g, u, sig, dg, du)))
    dx_g, dw_gate, db_gate = linear_backward(dg, x, w_gate, has_b_gate)  # (..., C)
    dx_u, dw_up, db_up = linear_backward(du, x, w_up, has_b_up)  # (..., C)
    dx_g += dx_u
    return dx_g, dw_gate, dw_up, dw_down, db_gate, db_up, db_down
