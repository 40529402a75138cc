"""Growing a model deeper (minichat/train/grow.py): hand-worked placements, a hypothesis property of the placement,
the grown model's logits equal to the small model's bit for bit (GPT-2 and Llama shapes), and the new blocks
learning from the first step (their output projections get a gradient, their inner weights none yet)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minichat.model.transformer import Transformer, init_params
from minichat.train.backprop import loss_and_grads
from minichat.train.grow import deepen, placement
from test_grads import CONFIGS, random_model


def test_placement_hand_worked():
    assert placement(4, 6) == [0, 1, None, 2, 3, None]  # the builtin-v2g recipe: a new block after each pair
    assert placement(2, 5) == [0, None, 1, None, None]
    assert placement(4, 5) == [0, 1, 2, 3, None]
    assert placement(3, 3) == [0, 1, 2]
    for small, big in ((5, 4), (0, 2)):
        with pytest.raises(ValueError, match="grow deeper"):
            placement(small, big)


@given(small=st.integers(1, 12), extra=st.integers(0, 12))
def test_placement_keeps_every_old_block_once_in_order(small, extra):
    order = placement(small, small + extra)
    assert len(order) == small + extra and order.count(None) == extra
    assert [j for j in order if j is not None] == list(range(small))
    assert order[0] == 0  # the first block is always an old one: the embeddings feed what they fed before


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "swiglu-bias-layernorm"])
def test_a_grown_model_computes_the_same_logits(name):
    small_config = CONFIGS[name]
    small = random_model(small_config, seed=3)
    big_config = small_config.replace(n_layer=small_config.n_layer + 3)
    fresh = init_params(big_config, np.random.default_rng(4), std=0.3)
    big = Transformer(big_config, deepen(small.params, small_config, fresh, big_config))
    ids = np.random.default_rng(5).integers(0, small_config.vocab_size, (2, small_config.n_ctx))
    np.testing.assert_array_equal(big.forward(ids), small.forward(ids))  # bit for bit: the new blocks add 0.0
    news = [i for i, j in enumerate(placement(small_config.n_layer, big_config.n_layer)) if j is None]
    for i in news:  # the new blocks are not empty: their inner weights are fresh's, only the exits are zero
        np.testing.assert_array_equal(big.params[f"h.{i}.attn.c_attn.weight"], fresh[f"h.{i}.attn.c_attn.weight"])
        assert not big.params[f"h.{i}.attn.c_proj.weight"].any() and not big.params[f"h.{i}.mlp.c_proj.weight"].any()


def test_the_new_blocks_learn_from_the_first_step():
    """Zero exits: a branch's output projection gets a gradient (its input times what arrives from above), nothing
    flows further into the branch yet; the old blocks' gradients are those of the small model."""
    small_config = CONFIGS["llama-gqa"]
    small = random_model(small_config, seed=1)
    big_config = small_config.replace(n_layer=4)
    big = Transformer(big_config, deepen(small.params, small_config,
                                         init_params(big_config, np.random.default_rng(2), std=0.3), big_config))
    rng = np.random.default_rng(6)
    ids, targets = (rng.integers(0, small_config.vocab_size, (2, 16)) for _ in range(2))
    mask = np.ones((2, 16), np.float32)
    loss_small, g_small = loss_and_grads(small, ids, targets, mask)
    loss_big, g_big = loss_and_grads(big, ids, targets, mask)
    assert loss_big == loss_small
    assert placement(2, 4) == [0, None, 1, None]
    for i in (1, 3):  # the new ones
        assert np.abs(g_big[f"h.{i}.attn.c_proj.weight"]).max() > 1e-4
        assert np.abs(g_big[f"h.{i}.mlp.c_proj.weight"]).max() > 1e-4
        assert not g_big[f"h.{i}.attn.c_attn.weight"].any() and not g_big[f"h.{i}.mlp.c_fc.weight"].any()
    for i, j in ((0, 0), (2, 1)):  # the old ones, renumbered
        np.testing.assert_allclose(g_big[f"h.{i}.mlp.c_fc.weight"], g_small[f"h.{j}.mlp.c_fc.weight"], rtol=1e-5,
                                   atol=1e-7)


def test_deepen_refuses_any_other_change_of_shape():
    small_config = CONFIGS["gpt2"]
    small = random_model(small_config)
    wide = small_config.replace(n_layer=3, n_embd=32)
    with pytest.raises(ValueError, match="only the number of blocks"):
        deepen(small.params, small_config, init_params(wide, np.random.default_rng(0)), wide)
