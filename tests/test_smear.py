"""Smeared keys (ModelConfig.smear_keys, layers.smear_keys, grads.smear_keys_backward): hand-worked values, the
identity that lets minichat smear keys after RoPE (the same as smearing before it, as the torch reference in
peer_helpers does), the backward against central finite differences in float64, and what a smeared model does with
checkpoints, export and weight decay. The whole model's gradients against torch and cached/batched decoding are in
test_grads.py and test_transformer.py."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minichat.config import TRAIN_PRESETS, ModelConfig
from minichat.model import layers
from minichat.model.transformer import Transformer, init_params
from minichat.train import grads as G
from minichat.train.optim import decays

SMEARED = ModelConfig.llama(vocab_size=64, n_ctx=32, n_embd=16, n_layer=2, n_head=4, n_kv_head=2, n_inner=24,
                            smear_keys=True)


def test_hand_worked_values():
    k = np.array([[[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]]], dtype=np.float32)  # (B=1, K=1, S=3, D=2)
    # sigmoid(0) = 1/2: each key is half itself, half the one before (the first has none)
    np.testing.assert_allclose(layers.smear_keys(k, np.zeros(1, np.float32))[0, 0], [[0.5, 1], [2, 3], [4, 5]])
    # sigmoid(ln 3) = 3/4; with RoPE's angle of one position (D = 2: one pair turning by 1 rad) the earlier key is
    # turned by 1 rad first: (3, 4) -> (3 cos 1 - 4 sin 1, 4 cos 1 + 3 sin 1)
    c, s = np.cos(1.0), np.sin(1.0)
    got = layers.smear_keys(k, np.log([3.0]).astype(np.float32), np.float32([c]), np.float32([s]))[0, 0, 2]
    np.testing.assert_allclose(got, [0.75 * 5 + 0.25 * (3 * c - 4 * s), 0.75 * 6 + 0.25 * (4 * c + 3 * s)],
                               rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(B=st.integers(1, 2), K=st.integers(1, 3), S=st.integers(1, 9), half=st.integers(1, 4),
       theta=st.sampled_from([10.0, 1e4]), seed=st.integers(0, 1000))
def test_smearing_rotated_keys_equals_rotating_smeared_ones(B, K, S, half, theta, seed):
    """minichat smears keys after RoPE, turning the earlier key on by one position; mixing the plain keys first and
    rotating the mix by its position is the same thing, since a rotation is linear."""
    rng = np.random.default_rng(seed)
    D = 2 * half
    raw = rng.standard_normal((B, K, S, D))
    alpha = rng.standard_normal(K)
    cos, sin = (t.astype(np.float64) for t in layers.rope_tables(S + 1, D, theta))
    rotate = lambda x: layers.apply_rope(x, np.broadcast_to(cos[:S], (B, S, half)), np.broadcast_to(sin[:S], (B, S, half)))  # noqa: E731
    a = 1 / (1 + np.exp(-alpha))[None, :, None, None]
    before = a * raw + (1 - a) * np.concatenate([np.zeros((B, K, 1, D)), raw[:, :, :-1]], axis=2)
    # to the rounding of the float32 tables (turning by angle 1 then angle s-1 is angle s up to that)
    np.testing.assert_allclose(layers.smear_keys(rotate(raw), alpha, cos[1], sin[1]), rotate(before), atol=2e-6)


@settings(max_examples=25, deadline=None)
@given(K=st.integers(1, 2), S=st.integers(1, 6), half=st.integers(1, 3), rope=st.booleans(),
       seed=st.integers(0, 1000))
def test_backward_matches_finite_differences(K, S, half, rope, seed):
    rng = np.random.default_rng(seed)
    D = 2 * half
    k, alpha, dy = rng.standard_normal((2, K, S, D)), rng.standard_normal(K), rng.standard_normal((2, K, S, D))
    turn = tuple(t[1].astype(np.float64) for t in layers.rope_tables(2, D, 100.0)) if rope else (None, None)
    loss = lambda k_, a_: float((layers.smear_keys(k_, a_, *turn) * dy).sum())  # noqa: E731
    dk, dalpha = G.smear_keys_backward(dy, k, alpha, *turn)
    h = 1e-6
    num_k = np.zeros_like(k)
    for i in np.ndindex(k.shape):
        e = np.zeros_like(k)
        e[i] = h
        num_k[i] = (loss(k + e, alpha) - loss(k - e, alpha)) / (2 * h)
    num_a = np.array([(loss(k, alpha + h * np.eye(K)[j]) - loss(k, alpha - h * np.eye(K)[j])) / (2 * h)
                      for j in range(K)])
    np.testing.assert_allclose(dk, num_k, atol=1e-6)
    np.testing.assert_allclose(dalpha, num_a, atol=1e-6)


def test_the_smear_is_a_parameter_per_key_head_without_weight_decay():
    params = init_params(SMEARED, np.random.default_rng(0))
    assert [params[f"h.{i}.attn.smear"].shape for i in range(2)] == [(2,), (2,)]
    assert not params["h.0.attn.smear"].any()  # starts at half and half
    assert "h.0.attn.smear" not in init_params(SMEARED.replace(smear_keys=False), np.random.default_rng(0))
    assert not decays("h.0.attn.smear", TRAIN_PRESETS["tiny"]) and decays("h.0.attn.c_attn.weight",
                                                                          TRAIN_PRESETS["tiny"])
    with pytest.raises(ValueError, match="smear_keys must be true or false"):
        SMEARED.replace(smear_keys="yes")


def test_a_smeared_checkpoint_round_trips_and_refuses_export(tmp_path):
    from minichat.model.checkpoint import load_checkpoint, save_checkpoint
    from minichat.model.export import export_gguf, export_hf

    params = init_params(SMEARED, np.random.default_rng(0), std=0.3)
    params["h.1.attn.smear"][:] = [2.0, -1.0]
    model = Transformer(SMEARED, params)
    save_checkpoint(tmp_path / "m", model, None)
    back, _ = load_checkpoint(tmp_path / "m")
    assert back.config.smear_keys
    ids = np.arange(20)[None] % SMEARED.vocab_size
    np.testing.assert_array_equal(back.forward(ids), model.forward(ids))
    assert not np.allclose(Transformer(SMEARED.replace(smear_keys=False), {
        k: v for k, v in params.items() if not k.endswith("smear")}).forward(ids), model.forward(ids), atol=1e-3)
    for export in (export_hf, export_gguf):
        with pytest.raises(ValueError, match="smears its keys"):
            export(model, None, tmp_path / "out")


def test_the_smeared_recipe_is_builtin_v1_with_smeared_keys_and_its_model_generates(tmp_path, monkeypatch):
    from dataclasses import replace

    from minichat.builtin import recipe as rec
    from minichat.model import load_model

    v1, v1k = rec.RECIPES["builtin-v1"], rec.RECIPES["builtin-v1k"]
    assert v1k.train.model.smear_keys and replace(v1k, train=replace(
        v1k.train, model=v1k.train.model.replace(smear_keys=False))) == v1
    tiny = rec.RECIPES["tiny"]
    monkeypatch.setitem(rec.RECIPES, "tiny-smeared", replace(tiny, train=replace(
        tiny.train, model=tiny.train.model.replace(smear_keys=True))))
    rec.run_recipe("tiny-smeared", tmp_path, steps=2, progress=None)
    model, tok = load_model(tmp_path / "model")
    assert model.config.smear_keys and model.params["h.0.attn.smear"].any()  # trained away from 0
    ids = np.array(tok.encode("hello there"))[None]
    cache = model.new_cache(1, 24)
    step_by_step = [model.forward(ids, cache)[0, -1]]
    nxt = int(step_by_step[0].argmax())
    full = [model.forward(ids)[0, -1]]
    for _ in range(5):  # greedy decoding with the cache equals recomputing everything
        step_by_step.append(model.forward(np.array([[nxt]]), cache)[0, -1])
        ids = np.concatenate([ids, [[nxt]]], axis=1)
        full.append(model.forward(ids)[0, -1])
        nxt = int(step_by_step[-1].argmax())
    np.testing.assert_allclose(np.array(step_by_step), np.array(full), atol=1e-4)
