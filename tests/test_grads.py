"""The hand-written backward passes against independent references.

* Every layer's backward against central finite differences of its forward, in float64, with hypothesis choosing
  the shapes (and grouped-query layouts, biases on/off).
* The whole model's loss and every parameter's gradient against torch autograd on the same weights and batch,
  for GPT-2-style and Llama-style configs and the axes in between (relative 1e-4). The torch model
  (peer_helpers.torch_model_loss) is written from torch.nn.functional ops, independently of minichat's forward.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import require_peer
from peer_helpers import torch_model_loss
from minichat.config import ModelConfig
from minichat.model import Transformer, init_params
from minichat.kernels import causal_softmax as kern
from minichat.model import layers
from minichat.kernels import train_elementwise as TK
from minichat.train import blocked_attention as A
from minichat.train import fast_grads as FG
from minichat.train import grads as G
from minichat.train.backprop import forward_tape, loss_and_grads, loss_only

FD = settings(max_examples=15, deadline=None)


def numgrad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f / d x by central differences, one entry at a time (x is float64 and modified then restored)."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g


def check(analytic: np.ndarray, f, x: np.ndarray, eps: float = 1e-6) -> None:
    """analytic == numgrad within rtol 1e-6 and an absolute floor of 1e-8 plus the central difference's rounding:
    f(x +- eps) are each off by ~machine epsilon * |f|, which (up - down) / 2 eps turns into ~eps_m |f| / eps (CI
    met an example with |f| = 183, where that is 2e-8 and the NumPy and kernel paths both missed a bare 1e-8)."""
    assert analytic.dtype == np.float64 and analytic.shape == x.shape
    rounding = 2 * np.finfo(np.float64).eps * abs(f()) / eps
    np.testing.assert_allclose(analytic, numgrad(f, x, eps), rtol=1e-6, atol=1e-8 + rounding)


def r64(rng, *shape, scale=1.0):
    return rng.standard_normal(shape) * scale


dims = st.integers(1, 5)


# -- one layer at a time, against finite differences ------------------------------------------------------------------

@FD
@given(B=dims, T=dims, C=dims, V=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_embedding_and_learned_positions(B, T, C, V, seed):
    rng = np.random.default_rng(seed)
    wte, wpe, R = r64(rng, V, C), r64(rng, T + 2, C), r64(rng, B, T, C)
    ids = rng.integers(0, V, (B, T))  # repeats are likely: their gradients must add up
    f = lambda: float((R * (layers.embedding(wte, ids) + wpe[:T])).sum())  # noqa: E731
    check(G.embedding_backward(R, ids, V), f, wte)
    check(G.learned_positions_backward(R, T + 2), f, wpe)


SIDES = pytest.mark.parametrize("ops", [G, FG], ids=["numpy", "kernels"])  # the two sides of backprop.py's seam


@SIDES
@FD
@given(B=st.integers(1, 2), H=st.integers(1, 3), T=dims, half=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_rope(ops, B, H, T, half, seed):
    rng = np.random.default_rng(seed)
    cos, sin = (a.astype(np.float64)[None] for a in layers.rope_tables(T + 3, 2 * half, 100.0))
    cos, sin = cos[:, 3:], sin[:, 3:]  # positions 3.. so no angle is zero
    x, R = r64(rng, B, H, T, 2 * half), r64(rng, B, H, T, 2 * half)
    np.testing.assert_allclose(ops.apply_rope(x, cos, sin), layers.apply_rope(x, cos, sin), rtol=1e-12, atol=1e-12)
    check(ops.rope_backward(R, cos, sin), lambda: float((R * layers.apply_rope(x, cos, sin)).sum()), x)


@FD
@given(N=dims, I=dims, O=dims, bias=st.booleans(), seed=st.integers(0, 2**16))
def test_linear(N, I, O, bias, seed):
    rng = np.random.default_rng(seed)
    x, w, b, R = r64(rng, 2, N, I), r64(rng, I, O), (r64(rng, O) if bias else None), r64(rng, 2, N, O)
    dx, dw, db = G.linear_backward(R, x, w, bias)
    f = lambda: float((R * layers.linear(x, w, b)).sum())  # noqa: E731
    check(dx, f, x)
    check(dw, f, w)
    if bias:
        check(db, f, b)
    else:
        assert db is None


@FD
@given(N=dims, C=st.integers(2, 8), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_layer_norm(N, C, bias, seed):
    rng = np.random.default_rng(seed)
    x, w, b, R = r64(rng, 2, N, C, scale=3.0), r64(rng, C), (r64(rng, C) if bias else None), r64(rng, 2, N, C)
    y, cache = G.layer_norm_forward(x, w, b, 1e-5)
    np.testing.assert_allclose(y, layers.layer_norm(x, w, b, 1e-5), rtol=1e-12, atol=1e-12)  # the same forward
    dx, dw, db = G.layer_norm_backward(R, cache)
    f = lambda: float((R * layers.layer_norm(x, w, b, 1e-5)).sum())  # noqa: E731
    check(dx, f, x)
    check(dw, f, w)
    if bias:
        check(db, f, b)


@SIDES
@FD
@given(N=dims, C=dims, seed=st.integers(0, 2**16))
def test_rms_norm(ops, N, C, seed):
    rng = np.random.default_rng(seed)
    x, w, R = r64(rng, 2, N, C, scale=3.0), r64(rng, C), r64(rng, 2, N, C)
    y, cache = ops.rms_norm_forward(x, w, 1e-5)
    np.testing.assert_allclose(y, layers.rms_norm(x, w, 1e-5), rtol=1e-12, atol=1e-12)
    dx, dw = ops.rms_norm_backward(R, cache)
    f = lambda: float((R * layers.rms_norm(x, w, 1e-5)).sum())  # noqa: E731
    check(dx, f, x)
    check(dw, f, w)


@FD
@given(n=st.integers(1, 30), scale=st.sampled_from([0.1, 1.0, 4.0]), seed=st.integers(0, 2**16))
def test_activations(n, scale, seed):
    rng = np.random.default_rng(seed)
    x, R = r64(rng, n, scale=scale), r64(rng, n)
    check(G.gelu_tanh_backward(R, x), lambda: float((R * layers.gelu_tanh(x)).sum()), x)
    check(G.silu_backward(R, x), lambda: float((R * layers.silu(x)).sum()), x)


@FD
@given(N=dims, C=dims, F=dims, bias=st.booleans(), seed=st.integers(0, 2**16))
def test_mlp_gelu(N, C, F, bias, seed):
    rng = np.random.default_rng(seed)
    x, R = r64(rng, 2, N, C), r64(rng, 2, N, C)
    w_fc, w_proj = r64(rng, C, F), r64(rng, F, C)
    b_fc, b_proj = (r64(rng, F), r64(rng, C)) if bias else (None, None)
    y, cache = G.mlp_gelu_forward(x, w_fc, b_fc, w_proj, b_proj)
    np.testing.assert_allclose(y, layers.mlp_gelu(x, w_fc, b_fc, w_proj, b_proj), rtol=1e-12)
    grads = G.mlp_gelu_backward(R, cache)
    f = lambda: float((R * layers.mlp_gelu(x, w_fc, b_fc, w_proj, b_proj)).sum())  # noqa: E731
    for g, v in zip(grads, (x, w_fc, b_fc, w_proj, b_proj)):
        if v is None:
            assert g is None
        else:
            check(g, f, v)


@SIDES
@FD
@given(N=dims, C=dims, F=dims, bias=st.booleans(), seed=st.integers(0, 2**16))
@example(N=3, C=5, F=3, bias=True, seed=3)  # |f| = 183: the rounding allowance of `check` matters here
def test_mlp_swiglu(ops, N, C, F, bias, seed):
    rng = np.random.default_rng(seed)
    x, R = r64(rng, 2, N, C), r64(rng, 2, N, C)
    ws = [r64(rng, C, F), r64(rng, C, F), r64(rng, F, C)]
    bs = [r64(rng, F), r64(rng, F), r64(rng, C)] if bias else [None, None, None]
    y, cache = ops.mlp_swiglu_forward(x, *ws, *bs)
    np.testing.assert_allclose(y, layers.mlp_swiglu(x, *ws, *bs), rtol=1e-12)
    grads = ops.mlp_swiglu_backward(R, cache)
    f = lambda: float((R * layers.mlp_swiglu(x, *ws, *bs)).sum())  # noqa: E731
    for g, v in zip(grads, (x, *ws, *bs)):
        if v is None:
            assert g is None
        else:
            check(g, f, v)


@FD
@given(B=st.integers(1, 2), K=st.integers(1, 2), group=st.integers(1, 3), T=dims, extra=st.integers(0, 2),
       D=st.integers(1, 4), causal=st.booleans(), seed=st.integers(0, 2**16))
def test_attention(B, K, group, T, extra, D, causal, seed):
    """Grouped-query attention (H = K * group query heads), with S = T + extra keys, causal or unmasked."""
    rng = np.random.default_rng(seed)
    H, S = K * group, T + extra
    q, k, v = r64(rng, B, H, T, D), r64(rng, B, K, S, D), r64(rng, B, K, S, D)
    R = r64(rng, B, H, T, D)
    mask = layers.causal_mask(T, S, offset=extra) if causal else None
    out, cache = G.attention_forward(q, k, v, mask)
    np.testing.assert_allclose(out, layers.attention(q, k, v, mask), rtol=1e-12)
    dq, dk, dv = G.attention_backward(R, cache)
    f = lambda: float((R * layers.attention(q, k, v, mask)).sum())  # noqa: E731
    check(dq, f, q)
    check(dk, f, k)
    check(dv, f, v)


@FD
@given(N=dims, S=dims, seed=st.integers(0, 2**16))
def test_softmax(N, S, seed):
    rng = np.random.default_rng(seed)
    s, R = r64(rng, N, S, scale=3.0), r64(rng, N, S)
    check(G.softmax_backward(R, layers.softmax(s)), lambda: float((R * layers.softmax(s)).sum()), s)


@FD
@given(N=dims, V=st.integers(2, 7), seed=st.integers(0, 2**16))
def test_cross_entropy(N, V, seed):
    rng = np.random.default_rng(seed)
    logits = r64(rng, N, V, scale=3.0)
    targets = rng.integers(0, V, N)
    weights = (rng.random(N) < 0.7).astype(np.float64)
    weights[0] = 1.0  # at least one target counts
    loss, dlogits = G.cross_entropy(logits, targets, weights)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = -(weights * np.log(p[np.arange(N), targets])).sum() / weights.sum()  # the textbook definition
    assert loss == pytest.approx(expected, rel=1e-12)
    check(dlogits, lambda: G.cross_entropy(logits, targets, weights)[0], logits)


def test_cross_entropy_rejects_an_empty_mask():
    with pytest.raises(ValueError, match="mask keeps no targets"):
        G.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), np.zeros(2))


# -- the training attention (blocked, row layout, kernels) against the reference pair above ---------------------------

@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), group=st.integers(1, 3), t=st.integers(1, 9), offset=st.integers(0, 4),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_causal_softmax_kernels_equal_their_twins(n, group, t, offset, dtype, seed):
    rng = np.random.default_rng(seed)
    S = offset + t + int(rng.integers(0, 3))  # sometimes keys beyond the last visible one (they must come out 0)
    s = (rng.standard_normal((n, t * group, S)) * 4).astype(dtype)
    scale = dtype(0.3)
    p_kernel, p_twin = kern.causal_softmax(s.copy(), offset, group, scale), kern.causal_softmax_reference(
        s.copy(), offset, group, scale)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(p_kernel, p_twin, rtol=tol * 10, atol=tol)
    visible = np.arange(S)[None, :] <= offset + np.arange(t * group)[:, None] // group  # (R, S)
    assert (p_kernel[:, ~visible] == 0).all() and np.allclose(p_kernel.sum(-1), 1, atol=tol * 10)
    dp = rng.standard_normal(s.shape).astype(dtype)
    d_kernel = kern.causal_softmax_backward(dp.copy(), p_twin, offset, group, scale)
    d_twin = kern.causal_softmax_backward_reference(dp.copy(), p_twin, offset, group, scale)
    np.testing.assert_allclose(d_kernel, d_twin, rtol=tol * 10, atol=tol)
    assert p_kernel.dtype == d_kernel.dtype == dtype


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 9), c=st.integers(1, 40), half=st.integers(1, 6), batch_angles=st.booleans(),
       sign=st.sampled_from([1, -1]), seed=st.integers(0, 2**16))
def test_training_elementwise_kernels_equal_their_twins(n, c, half, batch_angles, sign, seed):
    """float32, as training runs them (the float64 side is the finite-difference tests above)."""
    rng = np.random.default_rng(seed)
    f32 = lambda *shape, scale=1.0: (rng.standard_normal(shape) * scale).astype(np.float32)  # noqa: E731
    x, w, dy = f32(n, c, scale=3.0), f32(c), f32(n, c)
    outs = [[np.empty_like(x), np.empty_like(x), np.empty((n, 1), np.float32)] for _ in range(2)]
    for fn, out in zip((TK.rms_norm_forward, TK.rms_norm_forward_reference), outs):
        fn(x, w, 1e-5, *out)
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    xhat, rstd = outs[1][1], outs[1][2]
    grads = [(np.empty_like(x), np.zeros(c)) for _ in range(2)]
    for fn, (dx, dw) in zip((TK.rms_norm_backward, TK.rms_norm_backward_reference), grads):
        fn(dy, xhat, rstd, w, dx, dw)
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    B, H, T = 2, 3, n
    q = f32(B, H, T, 2 * half)
    cos, sin = f32(B if batch_angles else 1, T, half), f32(B if batch_angles else 1, T, half)
    got, want = (fn(q, cos, sin, np.float32(sign), np.empty_like(q)) for fn in (TK.rope_rotate,
                                                                                    TK.rope_rotate_reference))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    dm, g, u = f32(n, c), f32(n, c, scale=3.0), f32(n, c)
    sig = (1 / (1 + np.exp(-g))).astype(np.float32)
    got, want = ([np.empty_like(g), np.empty_like(g)] for _ in range(2))
    TK.swiglu_backward(dm, g, u, sig, *got)
    TK.swiglu_backward_reference(dm, g, u, sig, *want)
    for a, b in zip(got, want):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(B=st.integers(1, 2), K=st.integers(1, 2), group=st.integers(1, 3), T=st.integers(1, 12),
       block=st.integers(1, 5), use_numba=st.booleans(), seed=st.integers(0, 2**16))
def test_training_attention_equals_the_reference(B, K, group, T, block, use_numba, seed):
    rng = np.random.default_rng(seed)
    H, D = K * group, 4
    qkv = rng.standard_normal((B, T, (H + 2 * K) * D))
    q, k, v = A.split_heads(qkv, H, K, D)  # rows t * G + g
    out, probs = A.attention_forward(q, k, v, group, use_numba, block=block)
    dout = rng.standard_normal(out.shape)
    dq, dk, dv = A.attention_backward(dout, q, k, v, probs, group, use_numba)
    # the reference works on (B, H, T, D) heads
    qh = qkv[..., :H * D].reshape(B, T, H, D).transpose(0, 2, 1, 3)
    kh = qkv[..., H * D:(H + K) * D].reshape(B, T, K, D).transpose(0, 2, 1, 3)
    vh = qkv[..., (H + K) * D:].reshape(B, T, K, D).transpose(0, 2, 1, 3)
    ref, cache = G.attention_forward(qh, kh, vh, layers.causal_mask(T))
    np.testing.assert_allclose(A.rows_to_tokens(out, H), ref.transpose(0, 2, 1, 3).reshape(B, T, H * D), atol=1e-12)
    do_h = A.rows_to_tokens(dout, H).reshape(B, T, H, D).transpose(0, 2, 1, 3)
    rq, rk, rv = G.attention_backward(do_h, cache)
    np.testing.assert_allclose(A.merge_heads(dq, dk, dv, H), np.concatenate(
        [x.transpose(0, 2, 1, 3).reshape(B, T, -1) for x in (rq, rk, rv)], axis=-1), atol=1e-12)
    np.testing.assert_array_equal(A.tokens_to_rows(A.rows_to_tokens(dout, H), K, D), dout)  # inverse layouts


# -- the whole model against torch autograd ---------------------------------------------------------------------------

CONFIGS = {
    "gpt2": ModelConfig.gpt2(vocab_size=61, n_ctx=24, n_embd=16, n_layer=2, n_head=4),
    "llama-gqa": ModelConfig.llama(vocab_size=61, n_ctx=24, n_embd=16, n_layer=2, n_head=4, n_kv_head=2,
                                   n_inner=24, tie_embeddings=False),
    "llama-mqa-tied": ModelConfig.llama(vocab_size=61, n_ctx=24, n_embd=16, n_layer=2, n_head=4, n_kv_head=1,
                                        n_inner=40, rope_theta=500.0),
    "sinusoidal-nobias": ModelConfig.gpt2(vocab_size=61, n_ctx=24, n_embd=16, n_layer=2, n_head=2,
                                          positions="sinusoidal", bias=False, tie_embeddings=False),
    "swiglu-bias-layernorm": ModelConfig(vocab_size=61, n_ctx=24, n_embd=16, n_layer=1, n_head=2, mlp="swiglu",
                                         n_inner=20, positions="rope"),
    "llama-gqa-smeared": ModelConfig.llama(vocab_size=61, n_ctx=24, n_embd=16, n_layer=2, n_head=4, n_kv_head=2,
                                           n_inner=24, rope_theta=50.0, smear_keys=True),
    "gpt2-smeared": ModelConfig.gpt2(vocab_size=61, n_ctx=24, n_embd=16, n_layer=2, n_head=4, smear_keys=True),
}


def random_model(config: ModelConfig, seed: int = 0) -> Transformer:
    """Weights big enough that every path matters (norm gains and biases not left at 1 and 0)."""
    rng = np.random.default_rng(seed)
    params = init_params(config, rng, std=0.3)
    for name, p in params.items():
        if ".ln_" in name or name.startswith("ln_") or name.endswith("bias") or name.endswith("smear"):
            p += rng.standard_normal(p.shape).astype(np.float32) * np.float32(0.3)
    return Transformer(config, params)


def random_batch(config: ModelConfig, B: int, T: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, config.vocab_size, (B, T)).astype(np.int32)
    targets = rng.integers(0, config.vocab_size, (B, T)).astype(np.int32)
    mask = rng.random((B, T)) < 0.6
    mask[0, -1] = True
    targets[~mask] = -1  # whatever a dropped target is, it must not matter
    return ids, targets, mask


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("use_numba", [True, False], ids=["kernels", "numpy"])
def test_loss_and_every_gradient_match_torch(name, use_numba):
    torch = require_peer("torch")
    torch.set_num_threads(1)
    config = CONFIGS[name]
    model = random_model(config)
    model.use_numba = use_numba
    ids, targets, mask = random_batch(config, 3, 13)
    loss, grads = loss_and_grads(model, ids, targets, mask)
    tp = {n: torch.tensor(p.astype(np.float64), requires_grad=True) for n, p in model.params.items()}
    ref = torch_model_loss(torch, config, tp, ids, targets, mask)
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-5)
    assert set(grads) == set(model.params)
    for n, g in grads.items():
        assert g.dtype == np.float32 and g.shape == model.params[n].shape, n
        expected = tp[n].grad.numpy()
        scale = np.abs(expected).max()
        assert scale > 0, f"{n}: the reference gradient is zero, so the test would prove nothing"
        np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-4 * scale, err_msg=n)


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "llama-gqa-smeared", "gpt2-smeared"])
def test_training_forward_equals_the_inference_forward(name):
    config = CONFIGS[name]
    model = random_model(config)
    ids, targets, mask = random_batch(config, 2, 11)
    h, _ = forward_tape(model, ids.astype(np.int64))
    head = model.params["wte"] if config.tie_embeddings else model.params["lm_head"]
    np.testing.assert_allclose(h @ head.T, model.forward(ids), rtol=1e-4, atol=1e-4)
    assert loss_only(model, ids, targets, mask) == pytest.approx(loss_and_grads(model, ids, targets, mask)[0],
                                                                 rel=1e-5)


def test_accumulated_halves_equal_the_whole_batch():
    """Two micro-batches with the whole batch's normaliser add up to the whole batch's loss and gradients."""
    config = CONFIGS["llama-gqa"]
    model = random_model(config)
    ids, targets, mask = random_batch(config, 4, 9)
    loss, grads = loss_and_grads(model, ids, targets, mask)
    n = float(mask.sum())
    l1, g1 = loss_and_grads(model, ids[:2], targets[:2], mask[:2], normalizer=n)
    l2, g2 = loss_and_grads(model, ids[2:], targets[2:], mask[2:], normalizer=n)
    assert l1 + l2 == pytest.approx(loss, rel=1e-5)
    for name in grads:
        np.testing.assert_allclose(g1[name] + g2[name], grads[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_masked_targets_do_not_matter_and_bad_batches_are_refused():
    config = CONFIGS["gpt2"]
    model = random_model(config)
    ids, targets, mask = random_batch(config, 2, 8)
    other = targets.copy()
    other[~mask] = 7
    a, ga = loss_and_grads(model, ids, targets, mask)
    b, gb = loss_and_grads(model, ids, other, mask)
    assert a == b and all(np.array_equal(ga[n], gb[n]) for n in ga)
    with pytest.raises(ValueError, match="no targets"):
        loss_and_grads(model, ids, targets, np.zeros_like(mask))
    with pytest.raises(ValueError, match="same"):
        loss_and_grads(model, ids, targets[:, :-1], mask)
    with pytest.raises(ValueError, match="targets the mask keeps"):
        loss_and_grads(model, ids, np.full_like(targets, config.vocab_size), mask)
    with pytest.raises(ValueError, match="n_ctx"):
        big = np.zeros((1, config.n_ctx + 1), np.int32)
        loss_and_grads(model, big, big, np.ones_like(big))


def test_uniform_model_loss_is_log_vocab():
    """Hand-worked: with all weights zero the logits are equal, so the loss is exactly log V."""
    config = CONFIGS["gpt2"]
    params = {n: np.zeros_like(p) for n, p in random_model(config).params.items()}
    model = Transformer(config, params)
    ids, targets, mask = random_batch(config, 2, 5)
    loss, grads = loss_and_grads(model, ids, targets, mask)
    assert loss == pytest.approx(math.log(config.vocab_size), rel=1e-6)
