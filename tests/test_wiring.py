"""The wired previous-token head and induction head (minichat/train/wiring.py): the attention the model computes
against the closed form of RoPE scores, the heads' effect on random tokens against unwired controls, the composed
maps of the induction wiring, what else it leaves alone, bad input, and the recipes that use it."""
from __future__ import annotations

import numpy as np
import pytest

from minichat.config import PRESETS, ModelConfig
from minichat.model.transformer import Transformer, init_params
from minichat.train.wiring import wire_induction_head, wire_previous_token_head

SMALL = ModelConfig.llama(vocab_size=512, n_ctx=256, n_embd=128, n_layer=2, n_head=4, n_kv_head=2, n_inner=256,
                          tie_embeddings=True)  # the built-in model's kind (head_dim 32 here, 64 there), smaller
WIDE = ModelConfig.llama(vocab_size=2048, n_ctx=256, n_embd=256, n_layer=2, n_head=4, n_kv_head=2, n_inner=256,
                         tie_embeddings=True)  # the built-in model's width and heads (the slow RoPE pairs need D = 64)


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


def wired_pair(seed: int, induction: bool) -> tuple[dict, dict]:
    plain = init_params(WIDE, np.random.default_rng(seed))
    wired = {k: v.copy() for k, v in plain.items()}
    u = wire_previous_token_head(wired, WIDE, np.random.default_rng(seed + 100))
    if induction:
        wire_induction_head(wired, WIDE, np.random.default_rng(seed + 200), u)
    return plain, wired


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_induction_wiring_copies_a_repeated_random_string(seed):
    """Random tokens written twice: at step 0 the wired model predicts some of the second copy's tokens and block 1's
    head 0 looks at the token after the earlier occurrence (at the built-in size: ~15 % right, attention ~0.3; at
    this width with 2 blocks ~4 % and ~0.2); the unwired model and the previous-token wiring alone predict none."""
    L = 50
    ids = np.random.default_rng(10 + seed).integers(0, WIDE.vocab_size, size=(8, L))
    ids = np.concatenate([ids, ids], axis=1)
    t = np.arange(L, 2 * L - 1)  # query positions in the second copy; the token to predict is ids[:, t + 1]
    right = {}
    for name, params in (("plain", wired_pair(seed, False)[0]), ("previous", wired_pair(seed, False)[1]),
                         ("induction", wired_pair(seed, True)[1])):
        logits, att = Transformer(WIDE, params).forward(ids, return_attention=True)
        right[name] = int((logits[:, t].argmax(-1) == ids[:, t + 1]).sum())  # of 8 x 49
        target = att[1][:, :, t, t - L + 1].mean(axis=(0, 2))  # (heads,): attention on the earlier next token
        if name == "induction":
            assert target[0] > 0.12 and target[1:].max() < 0.03
        else:
            assert target.max() < 0.03  # random keys: about 1/75 of the attention each
    assert right["plain"] <= 2 and right["previous"] <= 2 and right["induction"] >= 10


def test_the_induction_wiring_composes_as_documented():
    """The maps the docstring names, checked as matrices: what block 1's key head reads of block 0's write is the
    query head's own map times one scale; query and key maps are orthogonal (E and F), each amplitude x an
    orthonormal R; the value/copy path is G G^T times one scale; the shared direction u is in none of them."""
    plain, wired = wired_pair(0, True)
    C, D, H, K = WIDE.n_embd, WIDE.head_dim, WIDE.n_head, WIDE.n_kv_head
    slow = np.r_[D // 2 - 12:D // 2, D - 12:D]
    v0 = (H + K) * D
    E, write = wired["h.0.attn.c_attn.weight"][:, v0:v0 + D], wired["h.0.attn.c_proj.weight"][:D]  # (C, D), (D, C)
    q1 = wired["h.1.attn.c_attn.weight"][:, slow]  # (C, 24)
    k1 = wired["h.1.attn.c_attn.weight"][:, H * D + slow]
    np.testing.assert_allclose(E.T @ E, np.eye(D), atol=1e-5)
    shift = wired["wte"][0] - plain["wte"][0]
    u = shift / np.linalg.norm(shift)
    wte = wired["wte"]
    off_u = np.linalg.norm(wte - np.outer(wte @ u, u), axis=1).mean()  # an embedding's length off u
    seen = np.linalg.norm(wte / np.sqrt((wte * wte).mean(1, keepdims=True) + WIDE.norm_eps) @ E, axis=1).mean()
    through = E @ write @ k1  # a normalised row -> block 0's value -> its write -> block 1's key (slow dims)
    np.testing.assert_allclose(through, 3.0 * off_u / seen * q1, atol=1e-4 * np.abs(q1).max())  # write = 3
    np.testing.assert_allclose(q1.T @ q1, 64.0 * np.eye(24), atol=1e-3)  # amplitude 8, R orthonormal
    np.testing.assert_allclose(q1.T @ k1, 0.0, atol=1e-3)  # E and F orthogonal
    G, copy = wired["h.1.attn.c_attn.weight"][:, v0:v0 + D], wired["h.1.attn.c_proj.weight"][:D]
    gg = G @ copy  # (C, C)
    np.testing.assert_allclose(G.T @ G, np.eye(D), atol=1e-5)
    np.testing.assert_allclose(gg, np.trace(gg) / D * (G @ G.T), atol=1e-4 * np.abs(gg).max())
    np.testing.assert_allclose(np.trace(gg) / D, 20.0 * off_u / seen, rtol=0.3)  # copy = 20 (seen through G, not E)
    assert max(np.abs(u @ E).max(), np.abs(u @ q1).max() / 8, np.abs(u @ k1).max() / 8, np.abs(u @ G).max()) < 1e-4
    changed = {k for k in plain if not np.array_equal(plain[k], wired[k])}
    assert changed == {"wte", "h.0.attn.c_attn.weight", "h.0.attn.c_proj.weight", "h.1.attn.c_attn.weight",
                       "h.1.attn.c_proj.weight"}
    touched = np.abs(wired["h.1.attn.c_attn.weight"] - plain["h.1.attn.c_attn.weight"]).sum(0) > 0
    assert set(np.flatnonzero(touched)) <= set(slow) | set(H * D + slow) | set(range(v0, v0 + D))


def test_bad_input_to_the_induction_wiring_is_refused():
    u = np.eye(WIDE.n_embd, dtype=np.float32)[0]
    with pytest.raises(ValueError, match="tied embeddings"):
        wire_induction_head(init_params(SMALL.replace(n_embd=64), np.random.default_rng(0)),
                            SMALL.replace(n_embd=64), np.random.default_rng(0), u[:64])  # 64 < 3 x 32 + 1
    with pytest.raises(ValueError, match="tied embeddings"):
        wire_induction_head(init_params(WIDE.replace(n_layer=1), np.random.default_rng(0)), WIDE.replace(n_layer=1),
                            np.random.default_rng(0), u)
    with pytest.raises(ValueError, match="slow_pairs must be"):
        wire_induction_head(init_params(WIDE, np.random.default_rng(0)), WIDE, np.random.default_rng(0), u,
                            slow_pairs=0)


def test_the_wired_recipe_is_builtin_v1_with_the_wiring(tmp_path, monkeypatch):
    from dataclasses import replace

    from minichat.builtin import recipe as rec

    assert replace(rec.RECIPES["builtin-v1p"], wired="") == rec.RECIPES["builtin-v1"]
    assert replace(rec.RECIPES["builtin-v1i"], wired="") == rec.RECIPES["builtin-v1"]
    monkeypatch.setitem(rec.RECIPES, "tiny-wired", replace(rec.RECIPES["tiny"], wired="previous-token"))
    lines = []
    rec.run_recipe("tiny-wired", tmp_path, steps=1, progress=lines.append)
    assert any("previous-token head wired" in line for line in lines)
    from minichat.model import load_model

    model, tok = load_model(tmp_path / "model")
    ids = np.random.default_rng(3).integers(0, tok.n_vocab, size=(1, 60))
    got = prev_token_attention(model, ids)
    assert got[0, :2].min() > 0.3 > got[1:].max()  # one step of training later, the wired heads still stand out


def test_the_induction_recipe_wires_both_heads_and_a_wrong_name_is_refused(tmp_path, monkeypatch):
    from dataclasses import replace

    from minichat.builtin import recipe as rec

    tiny = rec.RECIPES["tiny"]
    tied = replace(tiny, train=replace(tiny.train, model=tiny.train.model.replace(tie_embeddings=True)))
    monkeypatch.setitem(rec.RECIPES, "tiny-induction", replace(tied, wired="induction"))
    lines = []
    rec.run_recipe("tiny-induction", tmp_path / "a", steps=1, progress=lines.append)
    assert any("previous-token head wired" in line for line in lines)
    assert any("induction head wired" in line for line in lines)
    monkeypatch.setitem(rec.RECIPES, "tiny-typo", replace(tied, wired="induktion"))
    with pytest.raises(ValueError, match="wired must be"):
        rec.run_recipe("tiny-typo", tmp_path / "b", steps=1)
