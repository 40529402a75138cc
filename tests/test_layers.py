"""The layer functions against torch / HF transformers, hand-worked values and properties; the norm kernels against
their NumPy twins; float32 in, float32 out everywhere."""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require_peer
from minichat.kernels import matmul, norms
from minichat.model import layers

RNG = np.random.default_rng(1234)
THREADS = ThreadPoolExecutor(2)


def randn(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


@pytest.fixture(scope="module")
def torch():
    t = require_peer("torch")
    t.set_num_threads(1)
    return t


# -- hand-worked values ----------------------------------------------------------------------------------------------

def test_embedding_picks_rows():
    wte = np.arange(12, dtype=np.float32).reshape(4, 3)  # token i -> [3i, 3i+1, 3i+2]
    out = layers.embedding(wte, np.array([[3, 0], [1, 1]]))
    np.testing.assert_array_equal(out, [[[9, 10, 11], [0, 1, 2]], [[3, 4, 5], [3, 4, 5]]])
    assert out.dtype == np.float32


def test_sinusoidal_table_hand_values():
    pe = layers.sinusoidal_table(3, 4)  # dims 0,1 turn at rate 1; dims 2,3 at rate 1/100
    expected = [[0, 1, 0, 1],
                [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)],
                [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)]]
    np.testing.assert_allclose(pe, expected, atol=1e-7)
    assert pe.dtype == np.float32


def test_sinusoidal_similarity_depends_only_on_offset():
    pe = layers.sinusoidal_table(64, 16).astype(np.float64)
    for k in (1, 5, 17):
        dots = [pe[p] @ pe[p + k] for p in range(0, 40)]
        np.testing.assert_allclose(dots, dots[0], atol=1e-5)  # sum_i cos(k w_i), whatever p is


def test_causal_mask():
    np.testing.assert_array_equal(layers.causal_mask(3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    # two cached keys in front of two new queries
    np.testing.assert_array_equal(layers.causal_mask(2, offset=2), [[1, 1, 1, 0], [1, 1, 1, 1]])


def test_attention_by_hand():
    # one head, D=1: q = 1 attends over keys [0, ln 3] -> weights [1/4, 3/4] (scale 1/sqrt(1))
    q = np.ones((1, 1, 1, 1), np.float32)
    k = np.array([0.0, math.log(3)], np.float32).reshape(1, 1, 2, 1)
    v = np.array([4.0, 8.0], np.float32).reshape(1, 1, 2, 1)
    out, p = layers.attention(q, k, v, None, return_probs=True)
    np.testing.assert_allclose(p.ravel(), [0.25, 0.75], rtol=1e-6)
    np.testing.assert_allclose(out.ravel(), [7.0], rtol=1e-6)
    # masking the second key leaves all the weight on the first
    out = layers.attention(q, k, v, np.array([[True, False]]))
    np.testing.assert_allclose(out.ravel(), [4.0])


def test_fully_masked_row_is_finite():
    q, k, v = randn(1, 2, 1, 4), randn(1, 2, 3, 4), randn(1, 2, 3, 4)
    out, p = layers.attention(q, k, v, np.zeros((1, 1, 3), bool), return_probs=True)
    assert np.isfinite(out).all() and np.isfinite(p).all()


def test_linear_flattens_batch():
    x, w, b = randn(3, 5, 8), randn(8, 6), randn(6)
    y = layers.linear(x, w, b)
    assert y.shape == (3, 5, 6) and y.dtype == np.float32
    np.testing.assert_allclose(y[2, 4], x[2, 4] @ w + b, rtol=1e-5, atol=1e-6)


# -- against torch ---------------------------------------------------------------------------------------------------

def test_layer_norm_matches_torch(torch):
    x, w, b = randn(2, 5, 16, scale=3.0), randn(16), randn(16)
    ref = torch.nn.functional.layer_norm(torch.tensor(x), (16,), torch.tensor(w), torch.tensor(b), eps=1e-5)
    out = layers.layer_norm(x, w, b, 1e-5)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(layers.layer_norm(x, w, None), ref.numpy() - b, atol=1e-5)


def test_rms_norm_matches_torch(torch):
    x, w = randn(2, 5, 16, scale=3.0), randn(16)
    ref = torch.nn.functional.rms_norm(torch.tensor(x), (16,), torch.tensor(w), eps=1e-6)
    out = layers.rms_norm(x, w, 1e-6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-5)


def test_activations_match_torch(torch):
    x = randn(1000, scale=4.0)
    np.testing.assert_allclose(layers.gelu_tanh(x), torch.nn.functional.gelu(torch.tensor(x), approximate="tanh"),
                               atol=1e-6)
    np.testing.assert_allclose(layers.silu(x), torch.nn.functional.silu(torch.tensor(x)), atol=1e-6)
    s = randn(4, 7, scale=10.0)
    np.testing.assert_allclose(layers.softmax(s), torch.softmax(torch.tensor(s), -1), atol=1e-7)
    assert layers.gelu_tanh(x).dtype == layers.silu(x).dtype == layers.softmax(s).dtype == np.float32


@pytest.mark.parametrize("H,K", [(4, 4), (4, 2), (6, 1)])
def test_attention_matches_torch_sdpa(torch, H, K):
    B, T, S, D = 2, 3, 5, 8
    q, k, v = randn(B, H, T, D), randn(B, K, S, D), randn(B, K, S, D)
    mask = layers.causal_mask(T, S, offset=S - T)[None].repeat(B, 0)  # (B, T, S)
    mask[1, :, 0] = False  # row 1 also hides its first key
    ref = torch.nn.functional.scaled_dot_product_attention(
        torch.tensor(q), torch.tensor(k), torch.tensor(v), attn_mask=torch.tensor(mask)[:, None], enable_gqa=True)
    out, probs = layers.attention(q, k, v, mask, return_probs=True)
    assert out.dtype == probs.dtype == np.float32 and probs.shape == (B, H, T, S)
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    assert (probs[~np.broadcast_to(mask[:, None], probs.shape)] == 0).all()


def test_rope_matches_hf_llama(torch):
    require_peer("transformers")
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    B, H, T, D, theta = 2, 3, 5, 8, 500.0
    q, k = randn(B, H, T, D), randn(B, H, T, D)
    pos = np.array([[0, 1, 2, 3, 4], [7, 8, 9, 10, 11]])
    cos_t, sin_t = layers.rope_tables(16, D, theta)
    qr, kr = layers.apply_rope(q, cos_t[pos], sin_t[pos]), layers.apply_rope(k, cos_t[pos], sin_t[pos])
    # HF builds cos/sin over the full head width: the half-width angles repeated twice
    inv = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    ang = torch.tensor(pos, dtype=torch.float64)[..., None] * inv
    emb = torch.cat([ang, ang], -1)
    q_ref, k_ref = apply_rotary_pos_emb(torch.tensor(q), torch.tensor(k), emb.cos().float(), emb.sin().float())
    np.testing.assert_allclose(qr, q_ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(kr, k_ref.numpy(), atol=1e-5)
    assert qr.dtype == np.float32


def test_rope_scores_depend_only_on_relative_position():
    D = 16
    cos_t, sin_t = layers.rope_tables(64, D)
    q, k = randn(1, 1, 1, D), randn(1, 1, 1, D)

    def score(pq, pk):
        a = layers.apply_rope(q, cos_t[[[pq]]], sin_t[[[pq]]])
        b = layers.apply_rope(k, cos_t[[[pk]]], sin_t[[[pk]]])
        return float((a * b).sum())

    assert score(3, 1) == pytest.approx(score(40, 38), abs=1e-4)
    assert score(3, 1) != pytest.approx(score(3, 2), abs=1e-4)


def test_mlps_match_torch(torch):
    F = torch.nn.functional
    x, w1, b1, w2, b2 = randn(2, 3, 8), randn(8, 32), randn(32), randn(32, 8), randn(8)
    ref = F.linear(F.gelu(F.linear(torch.tensor(x), torch.tensor(w1.T), torch.tensor(b1)), approximate="tanh"),
                   torch.tensor(w2.T), torch.tensor(b2))
    np.testing.assert_allclose(layers.mlp_gelu(x, w1, b1, w2, b2), ref.numpy(), atol=1e-4)
    wg, wu, wd = randn(8, 32), randn(8, 32), randn(32, 8)
    t = torch.tensor(x)
    ref = (F.silu(t @ torch.tensor(wg)) * (t @ torch.tensor(wu))) @ torch.tensor(wd)
    out = layers.mlp_swiglu(x, wg, wu, wd)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-4)


# -- the norm kernels ------------------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(1, 40), scale=st.sampled_from([1e-3, 1.0, 50.0]),
       seed=st.integers(0, 2**32 - 1))
def test_norm_kernels_equal_twins_and_layers(n, c, scale, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c)) * scale).astype(np.float32)
    w, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    fast = norms.layer_norm_rows(x, w, b, 1e-5, np.empty_like(x))
    twin = norms.layer_norm_rows_reference(x, w, b, 1e-5, np.empty_like(x))
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, twin, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast, layers.layer_norm(x, w, b, 1e-5), rtol=1e-4, atol=1e-4)
    fast = norms.rms_norm_rows(x, w, 1e-5, np.empty_like(x))
    twin = norms.rms_norm_rows_reference(x, w, 1e-5, np.empty_like(x))
    np.testing.assert_allclose(fast, twin, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast, layers.rms_norm(x, w, 1e-5), rtol=1e-4, atol=1e-4)


# -- the small-batch head kernel -------------------------------------------------------------------------------------

@settings(max_examples=20, deadline=None)
@given(m=st.integers(1, 12), n=st.integers(1, 70), k=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_matmul_kernel_equals_twin_and_numpy(m, n, k, seed):
    rng = np.random.default_rng(seed)
    x, w = randn(m, k), randn(n, k)
    m4 = -(-m // 4) * 4
    xp = np.zeros((m4, k), np.float32)
    xp[:m] = x
    fast = matmul.matmul_nt(xp, w, np.empty((m4, n), np.float32))
    twin = matmul.matmul_nt_reference(xp, w, np.empty((m4, n), np.float32))
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, twin, rtol=1e-4, atol=1e-4)
    for pool, parts in ((None, 1), (THREADS, 3)):  # split over threads: the same numbers
        out = matmul.matmul_nt_split(x, w, pool, parts)
        assert out.shape == (m, n) and out.dtype == np.float32
        np.testing.assert_allclose(out, x.astype(np.float64) @ w.T.astype(np.float64), rtol=1e-4, atol=1e-4)


# -- fast.py: the same functions on the kernels -----------------------------------------------------------------------

def test_fast_ops_equal_layers_with_the_same_signatures(monkeypatch):
    """`FastOps` stands in for layers.py behind the forward's one `if`: same parameter names, same numbers, for 1, 2..16
    and 17+ rows, (in, out) weights (BLAS outside `small_batch_decoding`, the kernel inside), a transposed view like
    the output head's `wte.T` (the kernel without a copy), biases and bias-free norms."""
    import inspect
    from contextlib import nullcontext

    from minichat.model.fast import FastOps

    for name in ["layer_norm", "rms_norm", "linear", "mlp_gelu", "mlp_swiglu"]:
        fast_params = list(inspect.signature(getattr(FastOps, name)).parameters)[1:]  # without self
        assert fast_params == list(inspect.signature(getattr(layers, name)).parameters), name
    kernel_rows = []  # rows of every product that went to the small-batch kernel
    real_split = matmul.matmul_nt_split
    monkeypatch.setattr(matmul, "matmul_nt_split", lambda x, *a: kernel_rows.append(x.shape[0]) or real_split(x, *a))
    w_fc, b_fc, w_proj, b_proj = randn(8, 24), randn(24), randn(24, 8), randn(8)
    w_gate, w_up = randn(8, 24), randn(8, 24)
    head = randn(40, 8)  # (V, C), used as head.T: an (in, out) view of an (out, in) array
    ops = FastOps({"h.0.mlp.c_fc.weight": w_fc, "h.0.mlp.c_proj.weight": w_proj, "h.0.mlp.c_gate.weight": w_gate,
                   "h.0.mlp.c_up.weight": w_up, "wte": head}, threads=2)
    g, b = randn(8), randn(8)
    # rtol: the kernel sums float32 in another order, so outputs near 1e3 may differ in the last bits
    for rows in (1, 2, 5, 16, 17):
        x = randn(rows, 1, 8, scale=2.0)
        small = 2 <= rows <= 16
        for inside in (False, True):
            with ops.small_batch_decoding() if inside else nullcontext():
                assert (ops._out_in is not None) == inside
                np.testing.assert_allclose(ops.layer_norm(x, g, b, 1e-5), layers.layer_norm(x, g, b, 1e-5), atol=1e-5)
                np.testing.assert_allclose(ops.layer_norm(x, g, None), layers.layer_norm(x, g, None), atol=1e-5)
                np.testing.assert_allclose(ops.rms_norm(x, g, 1e-6), layers.rms_norm(x, g, 1e-6), atol=1e-5)
                kernel_rows.clear()
                np.testing.assert_allclose(ops.linear(x, head.T), layers.linear(x, head.T), atol=1e-4, rtol=1e-5)
                assert kernel_rows == ([rows] if small else [])  # the head: the kernel, in or out of the block
                np.testing.assert_allclose(ops.linear(x, w_fc, b_fc), layers.linear(x, w_fc, b_fc),
                                           atol=1e-4, rtol=1e-5)
                assert len(kernel_rows) == small + (small and inside)  # layer matrices: only inside the block
                np.testing.assert_allclose(ops.mlp_gelu(x, w_fc, b_fc, w_proj, b_proj),
                                           layers.mlp_gelu(x, w_fc, b_fc, w_proj, b_proj), atol=1e-4, rtol=1e-5)
                np.testing.assert_allclose(ops.mlp_swiglu(x, w_gate, w_up, w_proj),
                                           layers.mlp_swiglu(x, w_gate, w_up, w_proj), atol=1e-4, rtol=1e-5)
                assert ops.linear(x, head.T).dtype == ops.rms_norm(x, g).dtype == np.float32
    assert ops._out_in is None  # the copies are gone after the block
