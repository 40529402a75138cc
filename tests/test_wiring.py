"""The wired previous-token head (minichat/train/wiring.py): the attention the model computes against the closed form
of RoPE scores, the head's effect on random tokens against an unwired control, what else it leaves alone, bad input,
and the recipe that uses it."""
from __future__ import annotations

import numpy as np
import pytest

from minichat.config import PRESETS, ModelConfig
from minichat.model.transformer import Transformer, init_params
from minichat.train.wiring import wire_previous_token_head

SMALL = ModelConfig.llama(vocab_size=512, n_ctx=256, n_embd=128, n_layer=2, n_head=4, n_kv_head=2, n_inner=256,
                          tie_embeddings=True)  # the built-in model's kind (head_dim 32 here, 64 there), smaller


def prev_token_attention(model: Transformer, ids: np.ndarray) -> np.ndarray:
    """(layers, heads): the mean attention each head puts on the token just before the query."""
    _, att = model.forward(ids, return_attention=True)
    T = ids.shape[1]
    return np.array([[a[:, h][:, np.arange(1, T), np.arange(T - 1)].mean() for h in range(a.shape[1])] for a in att])


def test_scores_follow_the_rope_closed_form():
    """When every token has the same embedding and the random part of head group 0's q and k weights is zero, q and
    k are exactly the wired constants; then the attention of heads 0 and 1 at query position m is softmax over
    n <= m of (A^2 / sqrt(D)) sum_i cos(theta_i (m - n - 1)), computed here without the model."""
    rng = np.random.default_rng(0)
    params = init_params(SMALL, rng)
    D, H = SMALL.head_dim, SMALL.n_head
    row = rng.standard_normal(SMALL.n_embd).astype(np.float32)
    params["wte"][:] = row
    w = params["h.0.attn.c_attn.weight"]
    w[:, :2 * D] = 0.0  # query heads 0 and 1
    w[:, H * D:(H + 1) * D] = 0.0  # key head 0
    u = wire_previous_token_head(params, SMALL, np.random.default_rng(1), pairs=8, amplitude=3.0)
    np.testing.assert_allclose(params["wte"], np.broadcast_to(row + np.linalg.norm(row) * u, params["wte"].shape),
                               rtol=1e-5, atol=1e-6)  # the shared vector, as long as a row
    _, att = Transformer(SMALL, params).forward(np.arange(40)[None] % SMALL.vocab_size, return_attention=True)
    theta = SMALL.rope_theta ** (-np.arange(8) * 2 / D)
    for m in (1, 5, 39):
        dist = m - np.arange(m + 1)  # keys 0..m
        scores = 9.0 / np.sqrt(D) * np.cos(np.outer(dist - 1, theta)).sum(1)
        expected = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        np.testing.assert_allclose(att[0][0, 0, m, :m + 1], expected, atol=2e-3)
        np.testing.assert_allclose(att[0][0, 1, m, :m + 1], expected, atol=2e-3)  # head 1 reads key head 0 too


def test_random_tokens_attend_to_their_predecessor_only_where_wired():
    ids = np.random.default_rng(2).integers(0, SMALL.vocab_size, size=(2, 200))
    plain = init_params(SMALL, np.random.default_rng(0))
    wired = {k: v.copy() for k, v in plain.items()}
    wire_previous_token_head(wired, SMALL, np.random.default_rng(1))
    before, after = prev_token_attention(Transformer(SMALL, plain), ids), prev_token_attention(
        Transformer(SMALL, wired), ids)
    assert before.max() < 0.05  # random weights: about 1/200 of the attention on any one key
    assert (after[0, :2] > 0.45).all()  # the query heads of key/value head 0 in block 0 (0.68 at the built-in size)
    assert after[0, 2:].max() < 0.05 and after[1:].max() < 0.05  # nothing else
    # what changed: wte by one shared vector, block 0's c_attn by rank-1 terms in q and k of head group 0 only
    shift = wired["wte"] - plain["wte"]
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-6)
    D, H = SMALL.head_dim, SMALL.n_head
    delta = wired["h.0.attn.c_attn.weight"] - plain["h.0.attn.c_attn.weight"]
    touched = np.abs(delta).sum(0) > 0
    assert touched[:2 * D].any() and touched[H * D:(H + 1) * D].any()
    assert not touched[2 * D:H * D].any() and not touched[(H + 1) * D:].any()  # heads 2-3, key head 1, values
    assert np.linalg.matrix_rank(delta) == 1
    assert all(np.array_equal(wired[k], plain[k]) for k in plain if k not in ("wte", "h.0.attn.c_attn.weight"))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="RoPE and RMSNorm"):
        wire_previous_token_head(init_params(PRESETS["tiny-gpt2"], np.random.default_rng(0)), PRESETS["tiny-gpt2"],
                                 np.random.default_rng(0))
    with pytest.raises(ValueError, match="pairs must be"):
        wire_previous_token_head(init_params(SMALL, np.random.default_rng(0)), SMALL, np.random.default_rng(0),
                                 pairs=SMALL.head_dim)


def test_the_wired_recipe_is_builtin_v1_with_the_wiring(tmp_path, monkeypatch):
    from dataclasses import replace

    from minichat.builtin import recipe as rec

    assert replace(rec.RECIPES["builtin-v1p"], wired=False) == rec.RECIPES["builtin-v1"]
    monkeypatch.setitem(rec.RECIPES, "tiny-wired", replace(rec.RECIPES["tiny"], wired=True))
    lines = []
    rec.run_recipe("tiny-wired", tmp_path, steps=1, progress=lines.append)
    assert any("previous-token head wired" in line for line in lines)
    from minichat.model import load_model

    model, tok = load_model(tmp_path / "model")
    ids = np.random.default_rng(3).integers(0, tok.n_vocab, size=(1, 60))
    got = prev_token_attention(model, ids)
    assert got[0, :2].min() > 0.3 > got[1:].max()  # one step of training later, the wired heads still stand out
