"""Backpropagation through the whole model: a forward pass that keeps what the backward needs, then the backward.

    forward_tape(model, ids)        the training forward: embeddings, blocks, final norm, each layer's cache kept
    head_loss(...)                  logits for the masked-in rows only, cross-entropy, and its backward, in chunks
    backward_tape(...)              the blocks in reverse, residuals adding the two paths' gradients
    loss_and_grads(model, ids, targets, mask) -> (loss, {param name: gradient})

It computes the same numbers as `Transformer.forward` (the tests check logits and loss) for training batches: (B, T)
ids starting at position 0, a causal mask and no cache or padding. The layers are grads.py's pairs, except attention,
which runs blocked and causal with a Numba softmax (attention.py; `model.use_numba=False` uses its NumPy twin), on
its own arrangement of the query heads (attention.py says why training and inference arrange them differently).
The same flag is the seam for RMSNorm, RoPE and SwiGLU (`_ops`): grads.py's NumPy, or fast_grads.py's kernels.
Rows the loss mask drops never reach the output head, which saves its (rows x V x C) matmuls on chat data where only
the assistant's tokens count. The head runs in row chunks so the (rows, V) logits never exist in full. A tied head's
gradient adds to the embedding's.

What it leaves out: activation checkpointing (everything is kept until the backward), mixed precision, dropout.
"""
from __future__ import annotations

import numpy as np

from minichat.model import layers
from minichat.model.transformer import Transformer
from minichat.train import blocked_attention as A
from minichat.train import fast_grads as FG
from minichat.train import grads as G

HEAD_CHUNK = 2048  # rows of logits computed at once: 2048 x 4096 floats = 32 MB, which fits in the caches' reach


def _ops(model: Transformer):
    """The seam: grads.py's NumPy RMSNorm, RoPE and SwiGLU, or the same functions on Numba kernels (fast_grads.py)."""
    return FG if model.use_numba else G


def _norm_forward(ops, config, x, w, b):  # (B, T, C) -> (B, T, C), cache
    if config.norm == "rmsnorm":
        return ops.rms_norm_forward(x, w, config.norm_eps)
    return G.layer_norm_forward(x, w, b, config.norm_eps)


def _norm_backward(ops, config, dy, cache):  # (B, T, C) -> dx, dw, db (None for RMSNorm or a bias-free LayerNorm)
    if config.norm == "rmsnorm":
        dx, dw = ops.rms_norm_backward(dy, cache)
        return dx, dw, None
    return G.layer_norm_backward(dy, cache)


def check_batch(config, ids, targets, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a training batch and return it as (int64 ids, int64 targets, float weights), all (B, T)."""
    ids, targets, mask = np.asarray(ids), np.asarray(targets), np.asarray(mask)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a 2-D integer array (batch, tokens), got shape {ids.shape} {ids.dtype}")
    if targets.shape != ids.shape or mask.shape != ids.shape:
        raise ValueError(f"ids, targets and mask must have the same (B, T) shape; got {ids.shape}, "
                         f"{targets.shape}, {mask.shape}")
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be integer token ids, got {targets.dtype}")
    if ids.shape[1] > config.n_ctx:
        raise ValueError(f"sequences of {ids.shape[1]} tokens exceed the model's context n_ctx={config.n_ctx}")
    V = config.vocab_size
    if ids.size and (ids.min() < 0 or ids.max() >= V):
        raise ValueError(f"token ids must be in [0, {V}); got min {ids.min()}, max {ids.max()}")
    weights = mask.astype(np.float32)  # bool or 0/1 -> float weights
    kept = targets[weights != 0]
    if kept.size and (kept.min() < 0 or kept.max() >= V):
        raise ValueError(f"targets the mask keeps must be in [0, {V}); got min {kept.min()}, max {kept.max()} "
                         f"(padding targets such as -1 must have mask 0)")
    return ids.astype(np.int64, copy=False), targets.astype(np.int64, copy=False), weights


def forward_tape(model: Transformer, ids: np.ndarray):  # (B, T) int -> (B, T, C) final normed stream, tape
    """Run the model on a training batch, keeping every layer's cache. Returns (h_final, tape)."""
    c, p, ops = model.config, model.params, _ops(model)
    B, T = ids.shape
    H, K, D = c.n_head, c.n_kv_head, c.head_dim
    x = layers.embedding(p["wte"], ids)  # (B, T, C)
    if c.positions == "learned":
        x = x + p["wpe"][:T]  # (B, T, C)
    elif c.positions == "sinusoidal":
        x = x + layers.sinusoidal_table(T, c.n_embd).astype(x.dtype)  # (B, T, C)
    n_group = H // K
    rope = None
    if c.positions == "rope":
        cos, sin = (a.astype(x.dtype) for a in layers.rope_tables(T, D, c.rope_theta))  # (T, D/2) each
        # keys: one angle per position (1, T, D/2); query rows t * G + g: each angle repeated G times (1, T*G, D/2)
        rope = (cos[None], sin[None], np.repeat(cos, n_group, axis=0)[None], np.repeat(sin, n_group, axis=0)[None])
    # one position's angle (cos, sin), for smeared keys; the table of 2 positions, so rows of 1 token have it too
    turn1 = (None, None) if rope is None else tuple(t[1] for t in layers.rope_tables(2, D, c.rope_theta))
    blocks = []
    for i in range(c.n_layer):
        w = lambda name: p.get(f"h.{i}.{name}")  # noqa: E731  (a short local accessor)
        tape = {}
        h, tape["ln_1"] = _norm_forward(ops, c, x, w("ln_1.weight"), w("ln_1.bias"))  # (B, T, C)
        qkv = layers.linear(h, w("attn.c_attn.weight"), w("attn.c_attn.bias"))  # (B, T, (H + 2K) D)
        q, k, v = A.split_heads(qkv, H, K, D)  # (B, K, T*G, D) rows t * G + g, (B, K, T, D), (B, K, T, D)
        if rope is not None:
            q, k = ops.apply_rope(q, *rope[2:]), ops.apply_rope(k, *rope[:2])  # rotated copies
        if c.smear_keys:  # each key also carries the one before it (layers.smear_keys)
            tape["plain_k"] = k
            k = layers.smear_keys(k, w("attn.smear"), *turn1)  # (B, K, T, D)
        a, probs = A.attention_forward(q, k, v, n_group, model.use_numba)  # (B, K, T*G, D)
        a = A.rows_to_tokens(a, H)  # (B, T, H*D)
        tape["attn"], tape["h_1"], tape["a"] = (q, k, v, probs), h, a
        x = x + layers.linear(a, w("attn.c_proj.weight"), w("attn.c_proj.bias"))  # (B, T, C)
        h, tape["ln_2"] = _norm_forward(ops, c, x, w("ln_2.weight"), w("ln_2.bias"))  # (B, T, C)
        if c.mlp == "swiglu":
            m, tape["mlp"] = ops.mlp_swiglu_forward(h, w("mlp.c_gate.weight"), w("mlp.c_fc.weight"),
                                                  w("mlp.c_proj.weight"), w("mlp.c_gate.bias"), w("mlp.c_fc.bias"),
                                                  w("mlp.c_proj.bias"))  # (B, T, C)
        else:
            m, tape["mlp"] = G.mlp_gelu_forward(h, w("mlp.c_fc.weight"), w("mlp.c_fc.bias"), w("mlp.c_proj.weight"),
                                                w("mlp.c_proj.bias"))  # (B, T, C)
        x = x + m  # (B, T, C)
        blocks.append(tape)
    h, ln_f = _norm_forward(ops, c, x, p["ln_f.weight"], p.get("ln_f.bias"))  # (B, T, C)
    return h, {"ids": ids, "rope": rope, "turn1": turn1, "blocks": blocks, "ln_f": ln_f}


def head_loss(model: Transformer, h: np.ndarray, targets: np.ndarray, weights: np.ndarray,
              normalizer: float | None = None):  # (B, T, C), (B, T), (B, T) -> loss, dh (B, T, C), dhead (V, C)
    """logits = h @ head^T and the masked cross-entropy, with their backward, computed only on rows with weight != 0
    and in chunks of HEAD_CHUNK rows. Returns (loss, dh, dhead)."""
    c = model.config
    head = model.params["wte"] if c.tie_embeddings else model.params["lm_head"]  # (V, C)
    B, T, C = h.shape
    w = weights.reshape(-1)  # (N,)
    n = float(w.sum()) if normalizer is None else float(normalizer)
    if n <= 0:
        raise ValueError("the loss mask keeps no targets (its sum is 0): nothing to average; check the batch's mask")
    rows = np.flatnonzero(w)  # (R,): the rows that count
    h2 = h.reshape(B * T, C)  # (N, C)
    dh = np.zeros_like(h2)  # (N, C): dropped rows get no gradient
    dhead = np.zeros_like(head)  # (V, C)
    tgt = targets.reshape(-1)  # (N,)
    loss = 0.0
    for start in range(0, rows.size, HEAD_CHUNK):
        r = rows[start:start + HEAD_CHUNK]  # (R_c,)
        hr = h2[r]  # (R_c, C)
        logits = hr @ head.T  # (R_c, C) @ (C, V) -> (R_c, V)
        part, dlogits = G.cross_entropy(logits, tgt[r], w[r], n)  # scalar, (R_c, V)
        loss += part
        dh[r] = dlogits @ head  # (R_c, V) @ (V, C) -> (R_c, C)
        dhead += dlogits.T @ hr  # (V, R_c) @ (R_c, C) -> (V, C)
    return loss, dh.reshape(B, T, C), dhead


def backward_tape(model: Transformer, tape, dh: np.ndarray, dhead: np.ndarray) -> dict[str, np.ndarray]:
    """Gradients of every parameter, given dL/d(final normed stream) and dL/d(head). Keys as in `model.params`."""
    c, p, ops = model.config, model.params, _ops(model)
    B, T, C = dh.shape
    H, K, D = c.n_head, c.n_kv_head, c.head_dim
    g: dict[str, np.ndarray] = {}
    dx, g["ln_f.weight"], db = _norm_backward(ops, c, dh, tape["ln_f"])  # (B, T, C)
    if "ln_f.bias" in p:
        g["ln_f.bias"] = db
    for i in reversed(range(c.n_layer)):
        t, pre = tape["blocks"][i], f"h.{i}."
        # -- MLP sub-block: x_out = x_mid + mlp(norm_2(x_mid)), so dx_mid = dx_out + (the path through the MLP) --
        if c.mlp == "swiglu":
            dm, *ws = ops.mlp_swiglu_backward(dx, t["mlp"])  # (B, T, C)
            names = ("c_gate.weight", "c_fc.weight", "c_proj.weight", "c_gate.bias", "c_fc.bias", "c_proj.bias")
        else:
            dm, *ws = G.mlp_gelu_backward(dx, t["mlp"])  # (B, T, C)
            names = ("c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias")
        g.update({pre + "mlp." + n: gw for n, gw in zip(names, ws) if gw is not None})
        dn, g[pre + "ln_2.weight"], db = _norm_backward(ops, c, dm, t["ln_2"])  # (B, T, C)
        if db is not None and pre + "ln_2.bias" in p:
            g[pre + "ln_2.bias"] = db
        dx = dx + dn  # (B, T, C)
        # -- attention sub-block: x_mid = x_in + c_proj(attention(norm_1(x_in))) --
        da, g[pre + "attn.c_proj.weight"], db = G.linear_backward(dx, t["a"], p[pre + "attn.c_proj.weight"],
                                                                  c.bias)  # (B, T, H*D)
        if db is not None:
            g[pre + "attn.c_proj.bias"] = db
        da = A.tokens_to_rows(da, K, D)  # (B, K, T*G, D)
        dq, dk, dv = A.attention_backward(da, *t["attn"], H // K, model.use_numba)  # rows, (B, K, T, D) x2
        if c.smear_keys:
            dk, g[pre + "attn.smear"] = G.smear_keys_backward(dk, t["plain_k"], p[pre + "attn.smear"], *tape["turn1"])
        if tape["rope"] is not None:
            dq, dk = ops.rope_backward(dq, *tape["rope"][2:]), ops.rope_backward(dk, *tape["rope"][:2])
        dqkv = A.merge_heads(dq, dk, dv, H)  # (B, T, (H + 2K) D)
        dn, g[pre + "attn.c_attn.weight"], db = G.linear_backward(dqkv, t["h_1"], p[pre + "attn.c_attn.weight"],
                                                                  c.bias)  # (B, T, C)
        if db is not None:
            g[pre + "attn.c_attn.bias"] = db
        dn, g[pre + "ln_1.weight"], db = _norm_backward(ops, c, dn, t["ln_1"])  # (B, T, C)
        if db is not None and pre + "ln_1.bias" in p:
            g[pre + "ln_1.bias"] = db
        dx = dx + dn  # (B, T, C)
    # -- embeddings: x_0 = wte[ids] (+ wpe[:T]) --
    g["wte"] = G.embedding_backward(dx, tape["ids"], c.vocab_size)  # (V, C)
    if c.positions == "learned":
        g["wpe"] = G.learned_positions_backward(dx, c.n_ctx)  # (n_ctx, C)
    if c.tie_embeddings:
        g["wte"] += dhead  # the head is wte too: its two uses add
    else:
        g["lm_head"] = dhead
    return g


def loss_and_grads(model: Transformer, ids, targets, mask, normalizer: float | None = None):
    """The masked mean cross-entropy of predicting `targets` from `ids` and the gradient of every parameter.

    ids, targets: (B, T) integer arrays (targets[b, t] is the token that should follow ids[b, :t+1]); mask: (B, T)
    bool or float weights (0 drops a target). normalizer: divide the summed token losses by this instead of
    mask.sum() (gradient accumulation passes the whole step's count). Returns (loss, grads) with grads keyed and
    shaped like `model.params`.
    """
    ids, targets, weights = check_batch(model.config, ids, targets, mask)
    h, tape = forward_tape(model, ids)  # (B, T, C)
    loss, dh, dhead = head_loss(model, h, targets, weights, normalizer)
    return loss, backward_tape(model, tape, dh, dhead)


def loss_only(model: Transformer, ids, targets, mask, normalizer: float | None = None) -> float:
    """The same loss without the backward (for evaluation): no tape kept beyond each layer."""
    ids, targets, weights = check_batch(model.config, ids, targets, mask)
    logits = model.forward(ids)  # (B, T, V)
    B, T, V = logits.shape
    w = weights.reshape(-1)  # (N,)
    n = float(w.sum()) if normalizer is None else float(normalizer)
    if n <= 0:
        raise ValueError("the loss mask keeps no targets (its sum is 0): nothing to average; check the batch's mask")
    rows = np.flatnonzero(w)  # (R,)
    lg = logits.reshape(-1, V)[rows]  # (R, V)
    lse = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)  # (R,)
    nll = lse - lg[np.arange(rows.size), targets.reshape(-1)[rows]]  # (R,)
    return float((w[rows] * nll).sum()) / n
