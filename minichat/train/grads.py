"""Backpropagation by hand: every layer of minichat's transformer as a forward that remembers what it needs, beside
the backward that turns the gradient of its output into the gradients of its inputs and weights.

Each pair follows one pattern (micrograd's idea, at the size of arrays):

    y, cache = layer_forward(x, weights...)        the same numbers as minichat/model/layers.py
    dx, dweights... = layer_backward(dy, cache)    dL/dx given dL/dy, by the chain rule

`dy` always has the shape of `y`, and every gradient has the shape of the thing it is the gradient of. The functions
are dtype-generic (no float32 constants baked in): the model trains in float32, and the finite-difference tests run
them in float64. Derivations are in the docstrings; docs/training.md walks through attention at length.

    embedding         wte[ids]                    scatter-add the rows back into a (V, C) table
    positions         x + wpe[:T]                 sum over the batch; sinusoids have no parameters; RoPE rotates back
    linear            x @ w + b                   dx = dy w^T, dw = x^T dy, db = sum dy
    norms             LayerNorm, RMSNorm          the classic "subtract the projections" formula
    activations       GELU-tanh, SiLU             elementwise derivatives
    MLPs              GELU and SwiGLU             compositions of the above
    attention         softmax(q k^T / sqrt D) v   through the matmuls and the softmax, grouped-query aware
    cross-entropy     mean of -log p[target]      softmax - one_hot, weighted by the loss mask

What it leaves out: dropout, KV caching (training sees whole sequences), padding (the loss mask does that job).
"""
from __future__ import annotations

import math

import numpy as np

from minichat.model import layers

# -- embedding and positions -----------------------------------------------------------------------------------------


def embedding_backward(dout: np.ndarray, ids: np.ndarray, vocab_size: int) -> np.ndarray:  # (B,T,C), (B,T) -> (V,C)
    """Forward: out[b, t] = wte[ids[b, t]]. Each row of the table receives the sum of the gradients of every place
    it was copied to (a token seen 5 times gets 5 contributions; an unseen token gets 0)."""
    C = dout.shape[-1]
    dwte = np.zeros((vocab_size, C), dtype=dout.dtype)  # (V, C)
    np.add.at(dwte, ids.reshape(-1), dout.reshape(-1, C))  # unbuffered: repeated ids accumulate
    return dwte


def learned_positions_backward(dout: np.ndarray, n_ctx: int) -> np.ndarray:  # (B, T, C) -> (n_ctx, C)
    """Forward: x + wpe[:T] (every row of the batch gets the same positions). Row t of wpe was added to all B
    sequences at position t, so its gradient is the sum over the batch; positions >= T get none."""
    B, T, C = dout.shape
    dwpe = np.zeros((n_ctx, C), dtype=dout.dtype)  # (n_ctx, C)
    dwpe[:T] = dout.sum(axis=0)  # (B, T, C) -> (T, C)
    return dwpe


apply_rope = layers.apply_rope  # RoPE's forward, named here too: backprop.py takes it from this module or fast_grads.py


def rope_backward(dy: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:  # (B,H,T,D), (1,T,D/2) x2
    """Forward: `layers.apply_rope`, a rotation of each pair (a, b) by angle w. A rotation's Jacobian is the
    rotation matrix R(w), and the gradient flows back through its transpose R(w)^T = R(-w): rotate `dy` back."""
    return layers.apply_rope(dy, cos, -sin)  # (B, H, T, D)


# -- linear ----------------------------------------------------------------------------------------------------------

def linear_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, has_bias: bool):  # (..., O), (..., I), (I, O)
    """Forward: y = x @ w + b. Then dx = dy @ w^T, dw = x^T @ dy (summed over every row), db = sum of dy's rows.
    Returns (dx (..., I), dw (I, O), db (O,) or None)."""
    x2, dy2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])  # (N, I), (N, O)
    dx = (dy2 @ w.T).reshape(x.shape)  # (N, O) @ (O, I) -> (..., I)
    dw = x2.T @ dy2  # (I, N) @ (N, O) -> (I, O)
    return dx, dw, (dy2.sum(axis=0) if has_bias else None)


# -- norms -----------------------------------------------------------------------------------------------------------

def layer_norm_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, eps: float):  # (..., C) -> (..., C)
    """y = xhat * w + b with xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps). Cache: (xhat, rstd, w)."""
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    xc = x - mean  # (..., C)
    rstd = 1.0 / np.sqrt(np.mean(xc * xc, axis=-1, keepdims=True) + eps)  # (..., 1)
    xhat = xc * rstd  # (..., C)
    y = xhat * w  # (..., C)
    if b is not None:
        y += b
    return y, (xhat, rstd, w)


def layer_norm_backward(dy: np.ndarray, cache):  # (..., C) -> dx (..., C), dw (C,), db (C,)
    """With g = dy * w (the gradient reaching xhat), and xhat having zero mean and unit variance per row:

        dx = rstd * (g - mean(g) - xhat * mean(g * xhat))

    the two subtracted terms remove the parts of g that would move the row's mean or its variance, which the
    normalisation undoes anyway. dw = sum over rows of dy * xhat, db = sum of dy."""
    xhat, rstd, w = cache
    g = dy * w  # (..., C)
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))  # (..., C)
    C = dy.shape[-1]
    dw = (dy * xhat).reshape(-1, C).sum(axis=0)  # (C,)
    db = dy.reshape(-1, C).sum(axis=0)  # (C,)
    return dx, dw, db


def rms_norm_forward(x: np.ndarray, w: np.ndarray, eps: float):  # (..., C) -> (..., C)
    """y = xhat * w with xhat = x * rstd, rstd = 1 / sqrt(mean(x^2) + eps). Cache: (xhat, rstd, w)."""
    rstd = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)  # (..., 1)
    xhat = x * rstd  # (..., C)
    return xhat * w, (xhat, rstd, w)


def rms_norm_backward(dy: np.ndarray, cache):  # (..., C) -> dx (..., C), dw (C,)
    """As LayerNorm without the centring: dx = rstd * (g - xhat * mean(g * xhat)), g = dy * w; dw = sum dy * xhat.
    (The mean(g) term is absent because RMSNorm does not subtract the mean in its forward.)"""
    xhat, rstd, w = cache
    g = dy * w  # (..., C)
    dx = rstd * (g - xhat * (g * xhat).mean(axis=-1, keepdims=True))  # (..., C)
    dw = (dy * xhat).reshape(-1, dy.shape[-1]).sum(axis=0)  # (C,)
    return dx, dw


# -- activations and MLPs --------------------------------------------------------------------------------------------

_GELU_K = 0.7978845608028654  # sqrt(2 / pi)


def gelu_tanh_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:  # (...), (...) -> (...)
    """Forward: y = 0.5 x (1 + tanh(u)), u = k (x + 0.044715 x^3). Product and chain rule:
    dy/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) k (1 + 3 * 0.044715 x^2)."""
    t = np.tanh(_GELU_K * (x + 0.044715 * (x * x * x)))  # (...)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _GELU_K * (1.0 + 0.134145 * (x * x)))


def silu_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:  # (...), (...) -> (...)
    """Forward: y = x s, s = sigmoid(x); s' = s (1 - s), so dy/dx = s + x s (1 - s) = s (1 + x (1 - s))."""
    s = 1.0 / (1.0 + np.exp(-x))  # (...)
    return dy * (s * (1.0 + x * (1.0 - s)))


def mlp_gelu_forward(x, w_fc, b_fc, w_proj, b_proj):  # (..., C), (C, F), (F,), (F, C), (C,) -> (..., C)
    """c_proj(gelu(c_fc x)), remembering the input, the pre-activation and the activation."""
    pre = layers.linear(x, w_fc, b_fc)  # (..., F)
    act = layers.gelu_tanh(pre)  # (..., F)
    return layers.linear(act, w_proj, b_proj), (x, pre, act, w_fc, w_proj, b_fc is not None, b_proj is not None)


def mlp_gelu_backward(dy: np.ndarray, cache):  # (..., C) -> dx, dw_fc, db_fc, dw_proj, db_proj
    """Back through c_proj, then GELU, then c_fc."""
    x, pre, act, w_fc, w_proj, has_b_fc, has_b_proj = cache
    dact, dw_proj, db_proj = linear_backward(dy, act, w_proj, has_b_proj)  # (..., F)
    dpre = gelu_tanh_backward(dact, pre)  # (..., F)
    dx, dw_fc, db_fc = linear_backward(dpre, x, w_fc, has_b_fc)  # (..., C)
    return dx, dw_fc, db_fc, dw_proj, db_proj


def mlp_swiglu_forward(x, w_gate, w_up, w_down, b_gate=None, b_up=None, b_down=None):  # (..., C), (C, F) x2, (F, C)
    """c_proj(silu(c_gate x) * c_fc x) (Llama's MLP; biases optional), remembering what the backward needs."""
    g = layers.linear(x, w_gate, b_gate)  # (..., F)
    u = layers.linear(x, w_up, b_up)  # (..., F)
    s = layers.silu(g)  # (..., F)
    m = s * u  # (..., F)
    has_bias = (b_gate is not None, b_up is not None, b_down is not None)
    return layers.linear(m, w_down, b_down), (x, g, u, s, m, w_gate, w_up, w_down, has_bias)


def mlp_swiglu_backward(dy: np.ndarray, cache):  # (..., C) -> dx, dw_gate, dw_up, dw_down, db_gate, db_up, db_down
    """m = silu(g) * u is a product, so dm splits into du = dm * silu(g) and dsilu = dm * u; x fed both g and u,
    so its gradient is the sum of what comes back through each. The bias gradients are None when absent."""
    x, g, u, s, m, w_gate, w_up, w_down, (has_b_gate, has_b_up, has_b_down) = cache
    dm, dw_down, db_down = linear_backward(dy, m, w_down, has_b_down)  # (..., F)
    dg = silu_backward(dm * u, g)  # (..., F)
    dx_g, dw_gate, db_gate = linear_backward(dg, x, w_gate, has_b_gate)  # (..., C)
    dx_u, dw_up, db_up = linear_backward(dm * s, x, w_up, has_b_up)  # (..., C)
    return dx_g + dx_u, dw_gate, dw_up, dw_down, db_gate, db_up, db_down


# -- attention -------------------------------------------------------------------------------------------------------

def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None):
    """`layers.attention` (grouped-query, softmax(q k^T / sqrt D) v), also returning the probabilities, the only
    intermediate its backward needs besides q, k, v. Shapes: (B,H,T,D), (B,K,S,D), (B,K,S,D), (T,S) -> (B,H,T,D)."""
    out, probs = layers.attention(q, k, v, mask, return_probs=True)  # (B, H, T, D), (B, H, T, S)
    return out, (q, k, v, probs)


def softmax_backward(dp: np.ndarray, p: np.ndarray) -> np.ndarray:  # (..., S), (..., S) -> (..., S)
    """Forward: p = softmax(s). The Jacobian is diag(p) - p p^T, so ds = p * (dp - sum(dp * p)). A masked score has
    p = 0 and therefore gets no gradient, as it should."""
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))


def attention_backward(dout: np.ndarray, cache):  # (B, H, T, D) -> dq (B,H,T,D), dk (B,K,S,D), dv (B,K,S,D)
    """Back through out = P v, P = softmax(s), s = q k^T / sqrt(D), one key/value head per group of G query heads:

        dv = P^T dout      summed over the G heads that read the same v (the reshape makes the matmul do it)
        dP = dout v^T
        ds = softmax_backward(dP, P)
        dq = ds k / sqrt(D),   dk = ds^T q / sqrt(D)   (dk again summed over the group)
    """
    q, k, v, probs = cache
    B, H, T, D = q.shape
    K, S = k.shape[1], k.shape[2]
    G = H // K
    p = probs.reshape(B, K, G * T, S)  # (B, H, T, S) -> (B, K, G*T, S): a group's heads stacked, as in the forward
    do = dout.reshape(B, K, G * T, D)  # (B, K, G*T, D)
    dv = p.transpose(0, 1, 3, 2) @ do  # (B, K, S, G*T) @ (B, K, G*T, D) -> (B, K, S, D)
    dp = do @ v.transpose(0, 1, 3, 2)  # (B, K, G*T, D) @ (B, K, D, S) -> (B, K, G*T, S)
    ds = softmax_backward(dp, p)  # (B, K, G*T, S)
    ds *= 1.0 / math.sqrt(D)
    dq = (ds @ k).reshape(B, H, T, D)  # (B, K, G*T, S) @ (B, K, S, D) -> (B, H, T, D)
    dk = ds.transpose(0, 1, 3, 2) @ q.reshape(B, K, G * T, D)  # (B, K, S, G*T) @ (B, K, G*T, D) -> (B, K, S, D)
    return dq, dk, dv


# -- the loss --------------------------------------------------------------------------------------------------------

def cross_entropy(logits: np.ndarray, targets: np.ndarray, weights: np.ndarray, normalizer: float | None = None):
    """The loss and its gradient at once: (N, V) logits, (N,) target ids, (N,) weights -> (loss, dlogits (N, V)).

    loss = sum_i w_i * -log softmax(logits_i)[target_i] / normalizer, with normalizer = sum_i w_i by default: the
    mean over the targets the mask keeps (w = 1) and ignoring the rest (w = 0, whatever their target id is).
    Its gradient is the classic dlogits_i = w_i * (softmax(logits_i) - one_hot(target_i)) / normalizer.
    """
    N = logits.shape[0]
    if normalizer is None:
        normalizer = float(weights.sum())
    if normalizer <= 0:
        raise ValueError("the loss mask keeps no targets (its sum is 0): nothing to average; check the batch's mask")
    shifted = logits - logits.max(axis=-1, keepdims=True)  # (N, V): largest logit is 0, so exp cannot overflow
    e = np.exp(shifted)  # (N, V)
    z = e.sum(axis=-1, keepdims=True)  # (N, 1)
    rows = np.arange(N)
    nll = np.log(z[:, 0]) - shifted[rows, targets]  # (N,): -log p[target] = log sum exp - logit[target]
    loss = float((weights * nll).sum()) / normalizer
    scale = (weights / normalizer).astype(logits.dtype)[:, None]  # (N, 1)
    dlogits = e * (scale / z)  # (N, V): w p / n
    dlogits[rows, targets] -= scale[:, 0]  # minus w / n at the target
    return loss, dlogits


def smear_keys_backward(dy: np.ndarray, k: np.ndarray, alpha: np.ndarray, cos1: np.ndarray | None = None,
                        sin1: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # -> dk (B,K,S,D), dalpha (K,)
    """Forward: `layers.smear_keys`, y_s = a k_s + (1 - a) P k_{s-1}, a = sigmoid(alpha), P a fixed rotation by one
    position's angle. So dk_s = a dy_s + (1 - a) P^T dy_{s+1} (P^T turns back by the same angle; the last key
    feeds no later one), and dalpha = sum over rows, positions and dims of dy (k_s - P k_{s-1}) a (1 - a)."""
    a = (1.0 / (1.0 + np.exp(-alpha))).astype(k.dtype)  # (K,)
    prev = np.zeros_like(k)
    prev[:, :, 1:] = k[:, :, :-1]
    back = np.zeros_like(dy)
    back[:, :, :-1] = dy[:, :, 1:]  # what key s receives through key s+1
    if cos1 is not None:
        prev = layers.apply_rope(prev, cos1[None, None], sin1[None, None])
        back = layers.apply_rope(back, cos1[None, None], -sin1[None, None])
    ak = a[None, :, None, None]
    dk = ak * dy + (1 - ak) * back
    dalpha = ((dy * (k - prev)).sum(axis=(0, 2, 3), dtype=np.float64) * (a * (1 - a))).astype(alpha.dtype)
    return dk, dalpha
