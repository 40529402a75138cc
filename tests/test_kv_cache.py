"""The KV cache: layout and memory accounting, append/crop/fork/select semantics, and — through the model — that
rewinding, forking and prefix reuse give exactly the logits of computing from scratch."""
from __future__ import annotations

import numpy as np
import pytest

from minichat.config import PRESETS
from minichat.model.kv_cache import KVCache
from minichat.model.transformer import Transformer, init_params

L, B, K, S, D = 2, 3, 2, 6, 4


def filled(T: int, start: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """k, v of shape (L, B, K, T, D) whose values encode (layer, row, head, step) so misplacement shows."""
    idx = np.indices((L, B, K, T, D)).astype(np.float32)
    k = idx[0] * 1000 + idx[1] * 100 + idx[2] * 10 + idx[3] + start  # (L, B, K, T, D)
    return k, -k


def test_layout_and_nbytes():
    cache = KVCache(L, B, K, S, D)
    assert cache.k.shape == cache.v.shape == (L, B, K, S, D) and cache.k.dtype == np.float32
    assert cache.nbytes == 2 * L * B * K * S * D * 4 + B * 8  # k and v in float32, plus the int64 lengths
    assert cache.used_bytes == 0
    cache.append(*filled(2))
    assert cache.used_bytes == 2 * (2 * L * K * D * 4) * B  # 2 tokens per row


def test_gpt2_124m_cache_size_by_hand():
    model_config = PRESETS["gpt2-124m"]
    # 12 layers x 12 heads x 64 dims x 2 (k and v) x 4 bytes = 73,728 bytes per token; 1024 tokens = 72 MiB
    cache = KVCache(model_config.n_layer, 1, model_config.n_kv_head, 1024, model_config.head_dim)
    assert cache.nbytes - cache.lengths.nbytes == 73_728 * 1024


def test_append_with_ragged_rows():
    cache = KVCache(L, B, K, S, D)
    k, v = filled(3)
    cache.append(k, v, n_new=[3, 1, 0])
    assert cache.lengths.tolist() == [3, 1, 0]
    np.testing.assert_array_equal(cache.keys(0, 3)[0], k[0, 0])
    np.testing.assert_array_equal(cache.values(1, 1)[1], v[1, 1, :, :1])
    k2, v2 = filled(2, start=0.5)
    cache.append(k2, v2)  # every row continues from its own length
    assert cache.lengths.tolist() == [5, 3, 2]
    np.testing.assert_array_equal(cache.k[:, 1, :, 1:3], k2[:, 1])
    np.testing.assert_array_equal(cache.k[:, 2, :, 0:2], k2[:, 2])
    np.testing.assert_array_equal(cache.k[:, 1, :, 0], k[:, 1, :, 0])  # earlier entries untouched


def test_overflow_and_bad_shapes_are_refused():
    cache = KVCache(L, B, K, S, D)
    cache.append(*filled(5))
    with pytest.raises(ValueError, match="KV cache full: row 0 holds 5 of 6"):
        cache.append(*filled(2))
    assert cache.lengths.tolist() == [5, 5, 5]
    with pytest.raises(ValueError, match=r"\(L, B, K, T, D\)"):
        cache.append(np.zeros((L, B, K + 1, 1, D), np.float32), np.zeros((L, B, K + 1, 1, D), np.float32))
    with pytest.raises(ValueError, match="positive integer"):
        KVCache(L, 0, K, S, D)


def test_crop_fork_select_copy():
    cache = KVCache(L, B, K, S, D)
    k, v = filled(4)
    cache.append(k, v, n_new=[4, 2, 3])
    cache.crop(3)
    assert cache.lengths.tolist() == [3, 2, 3]  # crop never lengthens a row
    cache.crop(1, rows=[2])
    assert cache.lengths.tolist() == [3, 2, 1]
    with pytest.raises(ValueError):
        cache.crop(-1)

    cache.fork(0, [1, 2])
    assert cache.lengths.tolist() == [3, 3, 3]
    for b in (1, 2):
        np.testing.assert_array_equal(cache.k[:, b, :, :3], k[:, 0, :, :3])
        np.testing.assert_array_equal(cache.v[:, b, :, :3], v[:, 0, :, :3])
    with pytest.raises(ValueError, match="fork rows"):
        cache.fork(0, [3])

    twin = cache.copy()
    twin.k[...] = 0
    twin.crop(0)
    assert cache.lengths.tolist() == [3, 3, 3] and cache.k[0, 0, 0, 1, 0] == k[0, 0, 0, 1, 0]
    picked = cache.select([2, 2, 0, 1])  # one row may be taken several times
    assert picked.batch_size == 4 and picked.lengths.tolist() == [3, 3, 3, 3]
    np.testing.assert_array_equal(picked.k[:, 0], cache.k[:, 2])
    with pytest.raises(ValueError):
        cache.select([5])
    cache.reset()
    assert cache.lengths.tolist() == [0, 0, 0]


# -- through the model -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["tiny-gpt2", "tiny-llama"])
def model(request):
    config = PRESETS[request.param]
    return Transformer(config, init_params(config, np.random.default_rng(0), std=0.5))


def test_rewind_then_continue_equals_fresh(model):
    rng = np.random.default_rng(1)
    prefix, a, b = (rng.integers(0, 128, size=(1, n)) for n in (6, 4, 3))
    cache = model.new_cache(1, 20)
    model.forward(prefix, cache)
    model.forward(a, cache)  # one continuation ...
    cache.crop(6)  # ... rewound to the shared prefix ...
    reused = model.forward(b, cache)  # ... and another one reuses it
    fresh = model.forward(np.concatenate([prefix, b], axis=1))[:, 6:]
    np.testing.assert_allclose(reused, fresh, atol=1e-5, rtol=1e-5)


def test_fork_one_prompt_to_many_rows(model):
    rng = np.random.default_rng(2)
    prompt = rng.integers(0, 128, size=(1, 5))
    cache = model.new_cache(3, 12)
    model.forward(np.repeat(prompt, 3, axis=0), cache, lengths=[5, 0, 0])  # prompt in row 0 only
    cache.fork(0, [1, 2])
    nxt = np.array([[7], [8], [9]])
    logits = model.forward(nxt, cache)[:, 0]  # (3, V)
    for r in range(3):
        solo = model.forward(np.concatenate([prompt, nxt[r:r + 1]], axis=1))[0, -1]
        np.testing.assert_allclose(logits[r], solo, atol=1e-5, rtol=1e-5)
    # select makes a fresh cache with the chosen rows, equally usable
    two = cache.select([2, 0])
    out = model.forward(np.array([[3], [3]]), two)[:, 0]
    np.testing.assert_allclose(out[0], model.forward(np.concatenate([prompt, [[9, 3]]], axis=1))[0, -1],
                               atol=1e-5, rtol=1e-5)
