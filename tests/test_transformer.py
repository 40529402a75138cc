"""The forward pass against HF transformers (logits, attention, hidden states, 20 greedy tokens), cached decode against
full recompute (hypothesis), batched mixed lengths against one row at a time, dtypes, and input validation.

HF models are built with a large init range (so logits are far from flat and a wrong wire shows), saved with
`save_pretrained(safe_serialization=True)` and read back with minichat's loader: the comparison tests it too.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require_peer
from minichat.config import PRESETS, ModelConfig
from minichat.model.checkpoint import load_model
from minichat.model.transformer import Transformer, init_params, param_shapes

TOL = dict(atol=1e-4, rtol=1e-4)


# -- HF reference models ---------------------------------------------------------------------------------------------

def _peers():
    torch = require_peer("torch")
    transformers = require_peer("transformers")
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    return torch, transformers


def hf_gpt2(folder, seed=0, **overrides):
    """A tiny random HF GPT-2 saved to `folder`; returns the torch model."""
    torch, transformers = _peers()
    kw = dict(vocab_size=97, n_positions=48, n_embd=32, n_layer=2, n_head=4, initializer_range=0.5,
              bos_token_id=None, eos_token_id=None, attn_implementation="eager")
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**{**kw, **overrides})).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return model


def hf_llama(folder, seed=0, **overrides):
    """A tiny random HF Llama (GQA: 4 query heads over 2 key/value heads, RoPE theta 500) saved to `folder`."""
    torch, transformers = _peers()
    kw = dict(vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=48, rope_theta=500.0, initializer_range=0.5,
              tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, attn_implementation="eager")
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**kw, **overrides})).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return model


def hf_forward(model, ids):
    torch, _ = _peers()
    with torch.no_grad():
        out = model(torch.tensor(ids), output_attentions=True, output_hidden_states=True)
    return (out.logits.numpy(), [a.numpy() for a in out.attentions], [h.numpy() for h in out.hidden_states])


FAMILIES = {"gpt2": hf_gpt2, "llama": hf_llama, "llama-tied": lambda f: hf_llama(f, tie_word_embeddings=True),
            "llama-mha-theta1e4": lambda f: hf_llama(f, num_key_value_heads=4, rope_theta=10000.0)}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_logits_attention_hidden_match_hf(tmp_path, family):
    ref_model = FAMILIES[family](tmp_path)
    model, tokenizer = load_model(tmp_path)
    assert tokenizer is None
    ids = np.random.default_rng(0).integers(0, 97, size=(2, 11))
    ref_logits, ref_att, ref_hidden = hf_forward(ref_model, ids)
    logits, att, hidden = model.forward(ids, return_attention=True, return_hidden=True)
    assert np.abs(ref_logits).max() > 5  # the big init range makes the comparison meaningful
    np.testing.assert_allclose(logits, ref_logits, **TOL)
    for ours, ref in zip(att, ref_att, strict=True):
        np.testing.assert_allclose(ours, ref, atol=1e-5)
    # HF's hidden states are each block's input, then the final output *after* the final norm: compare the inputs
    assert len(hidden) == len(ref_hidden) == model.config.n_layer + 1
    for ours, ref in zip(hidden[:-1], ref_hidden[:-1]):
        np.testing.assert_allclose(ours, ref, **TOL)


def greedy(model: Transformer, prompt: list[int], n: int) -> list[int]:
    """The simplest cached generation loop: prefill, then feed back the argmax one token at a time."""
    cache = model.new_cache(1, len(prompt) + n)
    logits = model.forward(np.array([prompt]), cache)  # (1, T, V)
    out = []
    for _ in range(n):
        out.append(int(logits[0, -1].argmax()))
        logits = model.forward(np.array([[out[-1]]]), cache)  # (1, 1, V)
    return out


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_20_greedy_tokens_match_hf_generate(tmp_path, family):
    torch, _ = _peers()
    ref_model = FAMILIES[family](tmp_path, seed=1)
    model, _ = load_model(tmp_path)
    prompt = [5, 17, 3, 88, 41]
    with torch.no_grad():
        ref = ref_model.generate(torch.tensor([prompt]), max_new_tokens=20, min_new_tokens=20, do_sample=False,
                                 pad_token_id=0)[0, len(prompt):].tolist()
    assert len(ref) == 20
    assert greedy(model, prompt, 20) == ref


# -- cached decode == full recompute, batching == one row at a time --------------------------------------------------

@st.composite
def model_configs(draw):
    kind = draw(st.sampled_from(["gpt2", "llama", "sinusoidal", "gpt2-rope"]))
    K, G = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    D = draw(st.sampled_from([2, 4, 8]))
    common = dict(vocab_size=31, n_ctx=40, n_layer=draw(st.integers(1, 2)), n_head=K * G, n_kv_head=K, head_dim=D,
                  n_embd=draw(st.sampled_from([8, 12])), n_inner=16, smear_keys=draw(st.booleans()))
    if kind == "llama":
        return ModelConfig.llama(**common, rope_theta=draw(st.sampled_from([100.0, 10000.0])),
                                 tie_embeddings=draw(st.booleans()))
    return ModelConfig.gpt2(**common, positions={"gpt2": "learned", "sinusoidal": "sinusoidal",
                                                 "gpt2-rope": "rope"}[kind])


def random_model(config: ModelConfig, seed: int, use_numba: bool = True) -> Transformer:
    params = init_params(config, np.random.default_rng(seed), std=0.5)
    for name in params:
        if name.endswith("attn.smear"):  # smeared keys: another share than the initial half for each key head
            params[name] = np.random.default_rng(seed + 1).normal(0, 2, params[name].shape).astype(np.float32)
    return Transformer(config, params, use_numba=use_numba)


@settings(max_examples=40, deadline=None)
@given(config=model_configs(), seed=st.integers(0, 10_000), n=st.integers(1, 24), data=st.data())
def test_cached_decode_equals_full_recompute(config, seed, n, data):
    model = random_model(config, seed)
    ids = np.random.default_rng(seed).integers(0, config.vocab_size, size=(1, n))
    full = model.forward(ids)  # (1, n, V), no cache
    cuts = sorted(data.draw(st.lists(st.integers(1, n - 1), max_size=4, unique=True)) if n > 1 else [])
    cache = model.new_cache(1, n + data.draw(st.integers(0, 3)))
    pieces = [model.forward(ids[:, a:b], cache) for a, b in zip([0] + cuts, cuts + [n])]
    assert cache.lengths.tolist() == [n]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama", "tiny-llama-smeared"])
def test_batched_mixed_lengths_equal_one_row_at_a_time(name):
    config = PRESETS[name.removesuffix("-smeared")].replace(smear_keys=name.endswith("-smeared"))
    model = random_model(config, 7)
    rng = np.random.default_rng(3)
    lengths = np.array([5, 2, 7, 1])
    prompts = [rng.integers(0, config.vocab_size, size=n) for n in lengths]
    batch = np.zeros((4, 7), dtype=np.int64)  # right padding with id 0
    for b, p in enumerate(prompts):
        batch[b, :len(p)] = p
    steps = rng.integers(0, config.vocab_size, size=(4, 3))  # three decode steps, one new token per row each

    # without a cache: the real positions of each row equal that row alone (to float32 rounding: BLAS sums other
    # shapes in another order; logits here reach ~11, and on one AMD EPYC host the prompts differed by up to 1.1e-5
    # and the decode steps below by up to 1.6e-5, hence their 5e-5;
    # smeared keys add two more float32 sums per key: the prompts differed by up to 2.7e-5 there, hence its 5e-5)
    tol = 5e-5 if config.smear_keys else 1e-5
    out = model.forward(batch, lengths=lengths)
    for b, p in enumerate(prompts):
        np.testing.assert_allclose(out[b, :len(p)], model.forward(p[None])[0], atol=tol, rtol=1e-5)

    # with a cache: a batched prefill then batched decode steps, each row continuing from its own length
    cache = model.new_cache(4, 16)
    first = model.forward(batch, cache, lengths=lengths)
    assert cache.lengths.tolist() == lengths.tolist()
    decoded = [model.forward(steps[:, j:j + 1], cache)[:, 0] for j in range(3)]  # 3 x (4, V)
    for b, p in enumerate(prompts):
        solo = model.new_cache(1, 16)
        np.testing.assert_allclose(first[b, :len(p)], model.forward(p[None], solo)[0], atol=tol, rtol=1e-5)
        for j in range(3):
            np.testing.assert_allclose(decoded[j][b], model.forward(steps[b:b + 1, j:j + 1], solo)[0, 0],
                                       atol=5e-5, rtol=1e-5)


def test_attention_hides_future_and_padding():
    model = random_model(PRESETS["tiny-llama"], 0)
    ids = np.array([[1, 2, 3, 4], [5, 6, 0, 0]])
    _, att = model.forward(ids, lengths=[4, 2], return_attention=True)
    assert len(att) == 2 and att[0].shape == (2, 4, 4, 4)  # (B, H, T, S) per layer
    for p in att:
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)
        assert (np.triu(np.ones((4, 4)), 1)[None, None] * p == 0).all()  # nothing above the diagonal
        assert (p[1, :, :2, 2:] == 0).all()  # row 1's real queries never see its padding


@pytest.mark.parametrize("use_numba", [True, False])
@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_everything_is_float32(name, use_numba):
    model = random_model(PRESETS[name], 0, use_numba=use_numba)
    cache = model.new_cache(2, 8)
    logits, att, hidden = model.forward(np.array([[1, 2, 3], [4, 5, 6]]), cache, return_attention=True,
                                        return_hidden=True)
    assert logits.dtype == np.float32 and logits.shape == (2, 3, model.config.vocab_size)
    assert all(a.dtype == np.float32 for a in att) and all(h.dtype == np.float32 for h in hidden)
    assert cache.k.dtype == cache.v.dtype == np.float32
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert model.forward(np.array([[7], [8]]), cache).dtype == np.float32


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_numba_kernels_equal_numpy_forward(name):
    ids = np.array([[3, 1, 4, 1, 5, 9, 2, 6]])
    fast, slow = random_model(PRESETS[name], 2), random_model(PRESETS[name], 2, use_numba=False)
    np.testing.assert_allclose(fast.forward(ids), slow.forward(ids), atol=1e-4, rtol=1e-4)
    # 2..16 rows take the head kernel (split over threads), one row and 17+ rows take BLAS
    for rows in (1, 2, 3, 8, 16, 17):
        batch = (np.arange(rows) * 7 % 128)[:, None]  # (rows, 1): the head sees `rows` rows
        np.testing.assert_allclose(fast.forward(batch), slow.forward(batch), atol=1e-4, rtol=1e-4)
    assert random_model(PRESETS[name], 2).fast.threads >= 1


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_small_batch_decoding_equals_numpy_and_leaves_no_stale_copies(name):
    """Inside `small_batch_decoding` every layer's products of a 2..16-row step run on the (out, in) kernel: the
    cached decode step equals the NumPy model's; the copies go on exit, so later changes to the weights count."""
    fast, slow = random_model(PRESETS[name], 3), random_model(PRESETS[name], 3, use_numba=False)
    prompt = np.array([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3], [5, 8, 9, 7, 9]])  # (3, 5)
    for rows in (2, 3):
        caches = fast.new_cache(rows), slow.new_cache(rows)
        fast.forward(prompt[:rows], caches[0]), slow.forward(prompt[:rows], caches[1])  # prefill: BLAS
        with fast.small_batch_decoding():
            with fast.small_batch_decoding():  # nested: the outer block's copies
                assert fast.fast._out_in is not None
                step = fast.forward(prompt[:rows, :1], caches[0])  # (rows, 1, V) on the kernel
            assert fast.fast._out_in is not None
        assert fast.fast._out_in is None  # dropped on exit
        np.testing.assert_allclose(step, slow.forward(prompt[:rows, :1], caches[1]), atol=1e-4, rtol=1e-4)
    for model in (fast, slow):  # change a weight in place after the block: both models see it
        model.params["h.0.attn.c_proj.weight"] *= np.float32(2.0)
    with fast.small_batch_decoding():
        np.testing.assert_allclose(fast.forward(prompt[:, :2]), slow.forward(prompt[:, :2]), atol=1e-4, rtol=1e-4)
    with slow.small_batch_decoding():  # use_numba=False: a no-op block
        assert slow.fast._out_in is None


@pytest.mark.parametrize("use_numba", [True, False])
@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_last_only_is_each_rows_last_real_position(name, use_numba):
    """`last_only` (what generation asks for after a prefill) gives exactly the full forward's logits at each row's
    last real token, with and without a cache, ragged rows included; the cache fills the same either way."""
    model = random_model(PRESETS[name], 5, use_numba=use_numba)
    rng = np.random.default_rng(4)
    for B in (1, 3, 9):  # 3 and 9 rows: the head of a last_only call goes to fast.py's small-batch kernel
        ids = rng.integers(0, model.config.vocab_size, size=(B, 6))
        lengths = rng.integers(1, 7, size=B)
        full = model.forward(ids, lengths=lengths)  # (B, 6, V)
        last = model.forward(ids, lengths=lengths, last_only=True)  # (B, 1, V)
        assert last.shape == (B, 1, model.config.vocab_size) and last.dtype == np.float32
        np.testing.assert_allclose(last[:, 0], full[np.arange(B), lengths - 1], atol=1e-5, rtol=1e-5)
        caches = model.new_cache(B, 12), model.new_cache(B, 12)
        model.forward(ids, caches[0], lengths=lengths)
        last = model.forward(ids, caches[1], lengths=lengths, last_only=True)
        np.testing.assert_allclose(last[:, 0], full[np.arange(B), lengths - 1], atol=1e-5, rtol=1e-5)
        assert caches[0].lengths.tolist() == caches[1].lengths.tolist() == lengths.tolist()
        np.testing.assert_array_equal(caches[0].k, caches[1].k)
        step = rng.integers(0, model.config.vocab_size, size=(B, 2))  # a later chunk, continuing from the cache
        np.testing.assert_allclose(model.forward(step, caches[1], last_only=True),
                                   model.forward(step, caches[0])[:, -1:], atol=1e-5, rtol=1e-5)


# -- parameters and validation ---------------------------------------------------------------------------------------

def test_param_counts_of_real_models():
    # the published sizes: HF gpt2 has 124,439,808 parameters, SmolLM2-135M 134,515,008
    assert sum(np.prod(s) for s in param_shapes(PRESETS["gpt2-124m"]).values()) == 124_439_808
    assert sum(np.prod(s) for s in param_shapes(PRESETS["smollm2-135m"]).values()) == 134_515_008


def test_init_is_seeded():
    a = init_params(PRESETS["tiny-llama"], np.random.default_rng(5))
    b = init_params(PRESETS["tiny-llama"], np.random.default_rng(5))
    c = init_params(PRESETS["tiny-llama"], np.random.default_rng(6))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["wte"], c["wte"])
    assert (a["h.0.ln_1.weight"] == 1).all()


def test_bad_inputs_raise_clear_errors():
    model = random_model(PRESETS["tiny-gpt2"], 0)
    with pytest.raises(ValueError, match="2-D integer"):
        model.forward(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 128\)"):
        model.forward(np.array([[1, 128]]))
    with pytest.raises(ValueError, match="lengths"):
        model.forward(np.array([[1, 2]]), lengths=[3])
    with pytest.raises(ValueError, match="n_ctx"):
        model.forward(np.zeros((1, 65), dtype=np.int64))
    cache = model.new_cache(1, 4)
    model.forward(np.array([[1, 2, 3]]), cache)
    with pytest.raises(ValueError, match="KV cache full"):
        model.forward(np.array([[1, 2]]), cache)
    assert cache.lengths.tolist() == [3]  # a refused call leaves the cache as it was
    with pytest.raises(ValueError, match="rows"):
        model.forward(np.array([[1], [2]]), cache)
    with pytest.raises(ValueError, match="n_ctx"):
        model.new_cache(1, 65)


def test_empty_and_all_padding_calls():
    model = random_model(PRESETS["tiny-llama"], 0)
    cache = model.new_cache(2, 8)
    assert model.forward(np.zeros((2, 0), dtype=np.int64), cache).shape == (2, 0, 128)
    logits, att = model.forward(np.zeros((2, 0), dtype=np.int64), return_attention=True)
    assert logits.shape == (2, 0, 128) and len(att) == 2
    out = model.forward(np.zeros((2, 3), dtype=np.int64), cache, lengths=[0, 0])  # every row is padding
    assert np.isfinite(out).all() and cache.lengths.tolist() == [0, 0]
    model.forward(np.array([[4, 5], [6, 0]]), cache, lengths=[2, 1])
    model.forward(np.array([[7], [9]]), cache, lengths=[0, 1])  # a finished row (length 0) is left alone
    assert cache.lengths.tolist() == [2, 2]
    # row 1 now holds [6, 9]: its next step equals computing [6, 9, 3] from scratch
    step = model.forward(np.array([[3], [3]]), cache)[1, 0]
    np.testing.assert_allclose(step, model.forward(np.array([[6, 9, 3]]))[0, -1], atol=1e-5, rtol=1e-5)
