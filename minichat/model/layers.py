"""The transformer's layers as pure functions over float32 arrays: no classes, no state, no hidden allocation tricks.

    embedding            token ids -> vectors (a table lookup)
    positions            learned table (GPT-2), fixed sinusoids (Vaswani et al. 2017), rotary RoPE (Su et al. 2021)
    norms                LayerNorm (Ba et al. 2016) and RMSNorm (Zhang & Sennrich 2019)
    attention            scaled dot-product attention with a boolean mask, grouped-query (Ainslie et al. 2023):
                         the definition, used for inference (the other two: minichat/train/blocked_attention.py runs
                         it blocked for training; kernels/causal_softmax.py holds that one's softmax kernels)
    MLPs                 GELU-tanh (GPT-2) and SwiGLU (Shazeer 2020, Llama)

Shape letters: B batch rows, T query tokens, S key tokens (cache + new), C model width, H query heads, K key/value
heads (H_kv), G = H // K query heads per key/value head, D head width, V vocabulary, F MLP hidden width.
Linear weights are stored (in, out) as in GPT-2's checkpoints, so a layer is `x @ w + b`.

float32 in, float32 out: constants are Python floats, which NumPy 2 keeps at the array's precision.
What it leaves out: dropout and anything else only training needs (see minichat/train), KV caching (kv_cache.py),
speed (fast.py runs the norms, `linear` and the MLPs on Numba kernels, with these functions' signatures).
"""
from __future__ import annotations

import math

import numpy as np

# A masked score becomes this instead of -inf: exp() of it is exactly 0 after max-subtraction, and a row with every
# key masked (a padding query with nothing to look at) gives a uniform, finite distribution instead of NaN.
MASKED = np.float32(-1e30)


# -- embedding and positions -------------------------------------------------------------------------------------

def embedding(wte: np.ndarray, ids: np.ndarray) -> np.ndarray:  # (V, C), (B, T) int -> (B, T, C)
    """Look up one row of the table per token id."""
    return wte[ids]  # (B, T) -> (B, T, C)


def sinusoidal_table(n_pos: int, dim: int) -> np.ndarray:  # -> (n_pos, dim)
    """Vaswani et al.'s fixed positions: PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(the same angle).

    Each pair of dimensions is a clock ticking at its own speed, from one turn per 2*pi positions down to one per
    10000*2*pi, so nearby positions get similar vectors and any offset is a fixed rotation of each pair.
    """
    pos = np.arange(n_pos, dtype=np.float64)[:, None]  # (P, 1)
    freq = 10000.0 ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)  # (dim/2,)
    table = np.empty((n_pos, dim), dtype=np.float32)  # (P, dim)
    table[:, 0::2] = np.sin(pos * freq)  # (P, dim/2)
    table[:, 1::2] = np.cos(pos * freq)  # (P, dim/2)
    return table


def rope_tables(n_pos: int, head_dim: int, theta: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of the RoPE angles, each (n_pos, head_dim // 2): angle[p, i] = p / theta^(2i / head_dim).

    Computed in float64 and rounded once, so position 8000 is as accurate as position 8.
    """
    inv_freq = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (D/2,)
    angle = np.arange(n_pos, dtype=np.float64)[:, None] * inv_freq  # (P, 1) * (D/2,) -> (P, D/2)
    return np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:  # (B,H,T,D), (B,T,D/2) x2 -> (B,H,T,D)
    """Rotate each pair of dimensions of every head by its position's angle (RoPE, "rotate half" layout).

    Dimension i is paired with i + D/2 (HF Llama's convention; GGUF files store Q/K permuted to the interleaved
    pairing, and the loader undoes it). For a pair (a, b) at angle w: (a cos w - b sin w, b cos w + a sin w).
    Because q and k are both rotated, q.k depends only on the *difference* of their positions.
    """
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]  # (B, H, T, D/2) each, views
    c, s = cos[:, None], sin[:, None]  # (B, T, D/2) -> (B, 1, T, D/2): the same angle for every head
    return np.concatenate([a * c - b * s, b * c + a * s], axis=-1)  # (B, H, T, D)


def smear_keys(k: np.ndarray, alpha: np.ndarray, cos1: np.ndarray | None = None,
               sin1: np.ndarray | None = None) -> np.ndarray:  # (B, K, S, D), (K,) -> (B, K, S, D)
    """Smeared keys (Olsson et al. 2022, "In-context Learning and Induction Heads"): key s becomes a k_s +
    (1 - a) k_{s-1}, with a = sigmoid(alpha) learned per key head. A key then also carries the token before it, so a
    single head can find "the position after an earlier copy of this token", the step an induction head otherwise
    needs a previous-token head in an earlier layer for.

    k: keys already rotated by RoPE (or unrotated for other positions), positions 0..S-1 of each row. cos1, sin1:
    (D/2,) the RoPE angle of one position; k_{s-1} is rotated one position further, so both terms sit at position s
    and q.k still depends on distance only. The first key has no predecessor: zeros stand for it.
    """
    a = (1.0 / (1.0 + np.exp(-alpha))).astype(k.dtype)[None, :, None, None]  # (1, K, 1, 1)
    prev = np.zeros_like(k)
    prev[:, :, 1:] = k[:, :, :-1]  # (B, K, S, D): the key one position back
    if cos1 is not None:
        prev = apply_rope(prev, cos1[None, None], sin1[None, None])  # turned on by one position's angle
    return a * k + (1 - a) * prev


# -- norms -----------------------------------------------------------------------------------------------------------

def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, eps: float = 1e-5) -> np.ndarray:  # (..., C) -> (..., C)
    """Centre each row, scale it to unit variance, then apply a learned gain and bias (Ba et al. 2016)."""
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    xc = x - mean  # (..., C)
    var = np.mean(xc * xc, axis=-1, keepdims=True)  # (..., 1): the biased variance, as torch uses
    y = xc * (1.0 / np.sqrt(var + eps)) * w  # (..., C)
    if b is not None:
        y += b
    return y


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float = 1e-5) -> np.ndarray:  # (..., C) -> (..., C)
    """Scale each row to unit root-mean-square, then by a learned gain; no centring, no bias (Zhang & Sennrich)."""
    ms = np.mean(x * x, axis=-1, keepdims=True)  # (..., 1)
    return x * (1.0 / np.sqrt(ms + eps)) * w  # (..., C)


# -- attention -------------------------------------------------------------------------------------------------------

def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:  # (..., S) -> (..., S), summing to 1 along `axis`
    """exp(x) / sum(exp(x)) along `axis`, after subtracting the max so exp never overflows; -inf gets probability 0.

    The one softmax of the library: attention's weights here, sampling's distribution (minichat/generate). Float32,
    unless x is float64 already (the gradient checks run in float64). Example: [0, ln 3, -inf] -> [0.25, 0.75, 0].
    """
    x = np.asarray(x)
    if x.dtype != np.float64:
        x = x.astype(np.float32, copy=False)
    e = np.exp(x - x.max(axis=axis, keepdims=True))  # same shape as x; the largest entry is exp(0) = 1
    return e / e.sum(axis=axis, keepdims=True)


def causal_mask(t: int, s: int | None = None, offset: int = 0) -> np.ndarray:  # -> (T, S) bool
    """True where query t may look at key s: s <= offset + t (itself and the past, never the future).

    `offset` is how many keys precede the first query (the tokens already in a KV cache).
    """
    s = offset + t if s is None else s
    return np.arange(s)[None, :] <= offset + np.arange(t)[:, None]  # (T, S)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None,
              return_probs: bool = False):  # (B,H,T,D), (B,K,S,D), (B,K,S,D), (B,T,S) -> (B,H,T,D) [, (B,H,T,S)]
    """softmax(q k^T / sqrt(D), masked) v, with H query heads sharing K = H / G key/value heads.

    Grouped-query attention without copying k and v: the G query heads of each group are stacked along the query
    axis, so one batched matmul per group compares all of them with their shared keys. Query head h uses key/value
    head h // G (the order HF's `repeat_kv` produces). `mask` is True where a query may attend (broadcastable to
    (B, T, S)); None means every key is visible.
    """
    B, H, T, D = q.shape
    K, S = k.shape[1], k.shape[2]
    G = H // K
    qg = q.reshape(B, K, G * T, D)  # (B, H, T, D) -> (B, K, G*T, D): a group's heads stacked
    scores = qg @ k.transpose(0, 1, 3, 2)  # (B, K, G*T, D) @ (B, K, D, S) -> (B, K, G*T, S)
    scores = scores.reshape(B, K, G, T, S)  # (B, K, G, T, S)
    scores *= 1.0 / math.sqrt(D)
    if mask is not None:
        m = mask if mask.ndim == 3 else mask[None]  # (T, S) -> (1, T, S)
        scores = np.where(m[:, None, None], scores, MASKED)  # (B, K, G, T, S)
    probs = softmax(scores, axis=-1)  # (B, K, G, T, S)
    out = probs.reshape(B, K, G * T, S) @ v  # (B, K, G*T, S) @ (B, K, S, D) -> (B, K, G*T, D)
    out = out.reshape(B, H, T, D)  # (B, H, T, D)
    return (out, probs.reshape(B, H, T, S)) if return_probs else out



def split_heads(qkv: np.ndarray, n_head: int, n_kv_head: int):  # (B, T, (H + 2K) D) -> (B,H,T,D), (B,K,T,D) x2
    """c_attn's output, one row per token, cut into query heads, then key heads, then value heads."""
    B, T, _ = qkv.shape
    H, K = n_head, n_kv_head
    D = qkv.shape[-1] // (H + 2 * K)
    q = qkv[..., :H * D].reshape(B, T, H, D).transpose(0, 2, 1, 3)  # (B, T, H*D) -> (B, H, T, D)
    k = qkv[..., H * D:(H + K) * D].reshape(B, T, K, D).transpose(0, 2, 1, 3)  # -> (B, K, T, D)
    v = qkv[..., (H + K) * D:].reshape(B, T, K, D).transpose(0, 2, 1, 3)  # -> (B, K, T, D)
    return q, k, v


def merge_heads(x: np.ndarray) -> np.ndarray:  # (B, H, T, D) -> (B, T, H*D)
    """The heads' outputs side by side again, one row per token (the input of c_proj)."""
    B, H, T, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * D)

# -- MLPs ------------------------------------------------------------------------------------------------------------

def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:  # (..., I), (I, O), (O,) -> (..., O)
    """x @ w + b with w stored (in, out).

    The leading axes are flattened first: NumPy's matmul of a (B, T, I) stack with a matrix runs one BLAS call
    per batch row, each reading all of w from memory again; one (B*T, I) @ (I, O) call reads it once.
    """
    y = x.reshape(-1, x.shape[-1]) @ w  # (B*T, I) @ (I, O) -> (B*T, O)
    if b is not None:
        y += b
    return y.reshape(*x.shape[:-1], w.shape[1])  # (..., O)


def gelu_tanh(x: np.ndarray) -> np.ndarray:  # (...) -> (...)
    """GELU with the tanh approximation GPT-2 was trained with: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * (x * x * x))))


def silu(x: np.ndarray) -> np.ndarray:  # (...) -> (...)
    """x * sigmoid(x), the gate of SwiGLU."""
    return x / (1.0 + np.exp(-x))


def mlp_gelu(x: np.ndarray, w_fc: np.ndarray, b_fc: np.ndarray | None, w_proj: np.ndarray,
             b_proj: np.ndarray | None) -> np.ndarray:  # (..., C), (C, F), (F,), (F, C), (C,) -> (..., C)
    """GPT-2's MLP: widen, GELU, narrow."""
    return linear(gelu_tanh(linear(x, w_fc, b_fc)), w_proj, b_proj)  # (..., C) -> (..., F) -> (..., C)


def mlp_swiglu(x: np.ndarray, w_gate: np.ndarray, w_up: np.ndarray, w_down: np.ndarray,
               b_gate: np.ndarray | None = None, b_up: np.ndarray | None = None,
               b_down: np.ndarray | None = None) -> np.ndarray:  # (..., C), (C, F), (C, F), (F, C) -> (..., C)
    """Llama's MLP: a SiLU-gated product of two widenings, then narrow. (Llama has no biases; they are optional.)"""
    gate = silu(linear(x, w_gate, b_gate))  # (..., F)
    return linear(gate * linear(x, w_up, b_up), w_down, b_down)  # (..., F) -> (..., C)
