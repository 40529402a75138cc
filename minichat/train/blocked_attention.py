"""Causal self-attention for training, forward and backward, arranged for speed.

The same function as `grads.attention_forward/backward` (softmax(q k^T / sqrt D) v, grouped-query, causal), which
the tests use as its reference, with three changes that matter on a CPU:

1. Query rows interleaved by position. The G query heads that share a key/value head are stacked as rows
   r = t * G + g of one (T*G, D) matrix per key/value head, so one matmul serves the whole group and a block of
   consecutive positions is a contiguous slice of rows.
2. Blocks of queries see only their past. Queries at positions [t0, t1) need keys [0, t1) only, so the scores are
   computed block by block against that prefix: with 4 blocks, (1 + 2 + 3 + 4) / 16 = 62% of the square's matmul
   work and memory, and only the diagonal block holds masked entries.
3. The softmax and its backward run in the Numba kernels of minichat/kernels/causal_softmax.py (in place, skipping the
   masked half), or their NumPy twins when `use_numba` is False.

Why not inference's layout. `layers.attention` stacks a group's query heads head by head (rows g * T + t) and takes
any (T, S) mask, because inference attends T new tokens to S cached ones at an arbitrary offset, and mostly T = 1
(decoding), where the two layouts are the same G rows. Training always starts at position 0 with T = S and keeps
every block's probabilities for the backward, so it pays to make a block of positions one contiguous slice (rows
t * G + g) and skip the masked triangle block by block; `split_heads`/`rows_to_tokens` convert at the seams.

Shapes: B batch, K key/value heads, G query heads per key/value head, T positions, D head width, R = rows of a block.
What it leaves out: padding masks, a KV cache (inference has its own path in minichat/model), dropout on the weights.
"""
from __future__ import annotations

import math

import numpy as np

from minichat.kernels import causal_softmax as kern

BLOCK = 128  # query positions per block: smaller blocks skip more of the masked square but call BLAS more often


def _softmax(use_numba: bool):
    return kern.causal_softmax if use_numba else kern.causal_softmax_reference


def _softmax_backward(use_numba: bool):
    return kern.causal_softmax_backward if use_numba else kern.causal_softmax_backward_reference


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, group: int, use_numba: bool = True,
                      block: int = BLOCK):  # (B, K, T*G, D), (B, K, T, D), (B, K, T, D) -> (B, K, T*G, D), probs
    """Causal attention with rows r = t * G + g. Returns (out, probs): probs is a list with one (B, K, R, t1) array
    per block of positions [t0, t1), zero where a key is in the future, kept for the backward."""
    B, K, TG, D = q.shape
    T = k.shape[2]
    scale = 1.0 / math.sqrt(D)
    softmax = _softmax(use_numba)
    out = np.empty_like(q)  # (B, K, T*G, D)
    kt = k.transpose(0, 1, 3, 2)  # (B, K, D, T): a view; BLAS reads it transposed
    probs = []
    for t0 in range(0, T, block):
        t1 = min(T, t0 + block)
        rows = slice(t0 * group, t1 * group)
        s = q[:, :, rows] @ kt[..., :t1]  # (B, K, R, D) @ (B, K, D, t1) -> (B, K, R, t1)
        softmax(s.reshape(B * K, -1, t1), t0, group, q.dtype.type(scale))  # in place: scores -> probabilities
        out[:, :, rows] = s @ v[:, :, :t1]  # (B, K, R, t1) @ (B, K, t1, D) -> (B, K, R, D)
        probs.append(s)
    return out, probs


def attention_backward(dout: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, probs: list, group: int,
                       use_numba: bool = True):  # (B, K, T*G, D) -> dq (B, K, T*G, D), dk, dv (B, K, T, D)
    """Back through each block of `attention_forward` (see grads.attention_backward for the formulas). A key at
    position s receives gradient from every block at or after it, so dk and dv accumulate over blocks."""
    B, K, TG, D = q.shape
    scale = 1.0 / math.sqrt(D)
    softmax_backward = _softmax_backward(use_numba)
    dq = np.empty_like(q)  # (B, K, T*G, D)
    dk, dv = np.zeros_like(k), np.zeros_like(v)  # (B, K, T, D)
    t0 = 0
    for p in probs:
        t1 = p.shape[-1]
        rows = slice(t0 * group, t1 * group)
        do = dout[:, :, rows]  # (B, K, R, D)
        dv[:, :, :t1] += p.transpose(0, 1, 3, 2) @ do  # (B, K, t1, R) @ (B, K, R, D) -> (B, K, t1, D)
        ds = do @ v[:, :, :t1].transpose(0, 1, 3, 2)  # (B, K, R, D) @ (B, K, D, t1) -> (B, K, R, t1)
        softmax_backward(ds.reshape(B * K, -1, t1), p.reshape(B * K, -1, t1), t0, group,
                         q.dtype.type(scale))  # in place: dL/dP -> dL/dscores
        dq[:, :, rows] = ds @ k[:, :, :t1]  # (B, K, R, t1) @ (B, K, t1, D) -> (B, K, R, D)
        dk[:, :, :t1] += ds.transpose(0, 1, 3, 2) @ q[:, :, rows]  # (B, K, t1, R) @ (B, K, R, D) -> (B, K, t1, D)
        t0 = t1
    return dq, dk, dv


def split_heads(qkv: np.ndarray, n_head: int, n_kv_head: int, head_dim: int):  # (B, T, (H + 2K) D) -> q, k, v
    """c_attn's output -> q (B, K, T*G, D) with rows t * G + g, and k, v (B, K, T, D), all contiguous copies.
    Query head h belongs to key/value head h // G (HF's repeat_kv order), so the H*D columns are (K, G, D)."""
    B, T, _ = qkv.shape
    H, K, D = n_head, n_kv_head, head_dim
    G = H // K
    q = qkv[..., :H * D].reshape(B, T, K, G, D).transpose(0, 2, 1, 3, 4).reshape(B, K, T * G, D)  # (B, K, T*G, D)
    k = np.ascontiguousarray(qkv[..., H * D:(H + K) * D].reshape(B, T, K, D).transpose(0, 2, 1, 3))  # (B, K, T, D)
    v = np.ascontiguousarray(qkv[..., (H + K) * D:].reshape(B, T, K, D).transpose(0, 2, 1, 3))  # (B, K, T, D)
    return q, k, v


def merge_heads(dq: np.ndarray, dk: np.ndarray, dv: np.ndarray, n_head: int):  # -> (B, T, (H + 2K) D)
    """The inverse of `split_heads`, for gradients: one (B, T, (H + 2K) D) array in c_attn's column order."""
    B, K, TG, D = dq.shape
    T = dk.shape[2]
    G = n_head // K
    out = np.empty((B, T, (n_head + 2 * K) * D), dtype=dq.dtype)  # (B, T, (H + 2K) D)
    out[..., :n_head * D] = dq.reshape(B, K, T, G, D).transpose(0, 2, 1, 3, 4).reshape(B, T, n_head * D)
    out[..., n_head * D:(n_head + K) * D] = dk.transpose(0, 2, 1, 3).reshape(B, T, K * D)
    out[..., (n_head + K) * D:] = dv.transpose(0, 2, 1, 3).reshape(B, T, K * D)
    return out


def rows_to_tokens(x: np.ndarray, n_head: int) -> np.ndarray:  # (B, K, T*G, D) -> (B, T, H*D)
    """Attention output in row layout -> one H*D vector per token (the input of c_proj)."""
    B, K, TG, D = x.shape
    G = n_head // K
    return x.reshape(B, K, TG // G, G, D).transpose(0, 2, 1, 3, 4).reshape(B, TG // G, n_head * D)


def tokens_to_rows(x: np.ndarray, n_kv_head: int, head_dim: int) -> np.ndarray:  # (B, T, H*D) -> (B, K, T*G, D)
    """The inverse of `rows_to_tokens` (for the gradient arriving from c_proj)."""
    B, T, HD = x.shape
    K = n_kv_head
    return x.reshape(B, T, K, HD // K).transpose(0, 2, 1, 3).reshape(B, K, -1, head_dim)  # (B, K, T*G, D)
