"""Checkers for notebook 02 (the transformer): write the pieces yourself, then compare with minichat.

Each `check_*` runs your function on hand-made cases (the traps: overflow in softmax, a row with one key, the
diagonal of the mask, grouped heads) and random ones, and compares with minichat's own code:

    check_softmax(fn)          fn(x) -> softmax over the last axis          softmax([0, ln 3]) -> [0.25, 0.75]
    check_causal_mask(fn)      fn(T) -> (T, T) bool, True where query t may see key s (s <= t)
    check_attention(fn)        fn(q, k, v, mask) -> (T, D): one head, q (T, D), k and v (S, D), mask (T, S) bool
    check_layer_norm(fn)       fn(x, w, b, eps) -> (..., C) normalised over the last axis
    check_sinusoidal(fn)       fn(n_pos, dim) -> (n_pos, dim) table, PE[p, 2i] = sin(p / 10000^(2i/dim)), 2i+1: cos
    check_rope(fn)             fn(x, positions, theta) -> x rotated: x (T, D), positions (T,) ints
    check_kv_cache_bytes(fn)   fn(config, batch_size, n_tokens) -> bytes the keys and values of n_tokens take
    check_greedy(fn)           fn(model, prompt_ids, n) -> the n ids a cached greedy loop produces

The rules the library follows, which yours must follow too:
  * attention scores are q k^T / sqrt(D); masked scores get (practically) -infinity before the softmax;
  * LayerNorm uses the biased variance (divide by C) and puts eps inside the square root;
  * RoPE pairs dimension i with i + D/2 ("rotate half", as HF Llama): (a, b) -> (a cos w - b sin w, b cos w + a sin w)
    with w = position / theta^(2i / D);
  * the KV cache stores float32 keys and values for every layer and key/value head: 2 * L * B * H_kv * T * D * 4.

References: `minichat.model.layers` (softmax, causal_mask, attention, layer_norm, sinusoidal_table, rope_tables +
apply_rope), `minichat.model.kv_cache.KVCache` and `minichat.model.transformer.Transformer`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from minichat.config import PRESETS, ModelConfig
from minichat.exercises import Feedback, run_cases
from minichat.model import layers
from minichat.model.kv_cache import KVCache
from minichat.model.transformer import Transformer, init_params


def _same_array(got: Any, expected: np.ndarray, atol: float = 1e-5, rtol: float = 1e-5) -> bool:
    try:
        g = np.asarray(got)
    except (TypeError, ValueError):
        return False
    e = np.asarray(expected)
    if g.shape != e.shape:
        return False
    if e.dtype == bool:
        return g.dtype == bool and bool(np.array_equal(g, e))
    return bool(np.allclose(g.astype(np.float64), e, atol=atol, rtol=rtol))


def _randn(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def check_softmax(fn: Callable[[np.ndarray], np.ndarray], seed: int = 0) -> Feedback:
    """fn(x) -> exp(x) / sum(exp(x)) along the last axis, without overflowing."""
    rng = np.random.default_rng(seed)
    cases = [("[0, ln 3] -> [1/4, 3/4]", np.array([0.0, math.log(3)], np.float32)),
             ("all equal", np.zeros(5, np.float32)),
             ("huge logits [1000, 1001] (exp overflows unless you subtract the max)", np.array([1000, 1001],
                                                                                               np.float32)),
             ("one element", np.array([3.5], np.float32)),
             ("rows of a matrix, each on its own", _randn(rng, 4, 6, scale=3.0))]
    cases += [(f"random #{k}", _randn(rng, 2, 3, 7, scale=5.0)) for k in range(3)]
    return run_cases("softmax", fn, [(n, (x.copy(),), layers.softmax(x)) for n, x in cases], same=_same_array)


def check_causal_mask(fn: Callable[[int], np.ndarray]) -> Feedback:
    """fn(T) -> (T, T) bool array, True on and below the diagonal."""
    return run_cases("causal_mask", fn, [(f"T = {t}", (t,), layers.causal_mask(t)) for t in (1, 2, 3, 6)],
                     same=_same_array)


def _one_head(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return layers.attention(q[None, None], k[None, None], v[None, None], mask[None])[0, 0]  # (T, D)


def check_attention(fn: Callable[..., np.ndarray], seed: int = 0) -> Feedback:
    """fn(q (T, D), k (S, D), v (S, D), mask (T, S) bool) -> (T, D)."""
    rng = np.random.default_rng(seed)
    by_hand = (np.ones((1, 1), np.float32), np.array([[0.0], [math.log(3)]], np.float32),
               np.array([[4.0], [8.0]], np.float32), np.ones((1, 2), bool))  # weights 1/4, 3/4 -> 7
    cases = [("by hand: weights [1/4, 3/4] over values [4, 8] -> 7", by_hand)]
    for t, s, d in ((4, 4, 8), (1, 6, 4), (3, 7, 16)):
        mask = layers.causal_mask(t, s, offset=s - t)
        cases.append((f"causal, T={t} queries over S={s} keys, D={d}", (_randn(rng, t, d), _randn(rng, s, d),
                                                                     _randn(rng, s, d), mask)))
    q, k, v = _randn(rng, 3, 4, scale=4.0), _randn(rng, 3, 4, scale=4.0), _randn(rng, 3, 4)
    cases.append(("large scores, all keys visible", (q, k, v, np.ones((3, 3), bool))))
    return run_cases("attention", fn, [(n, tuple(a.copy() for a in args), _one_head(*args)) for n, args in cases],
                     same=_same_array)


def check_layer_norm(fn: Callable[..., np.ndarray], seed: int = 0) -> Feedback:
    """fn(x, w, b, eps) -> normalised x (last axis), scaled by w, shifted by b."""
    rng = np.random.default_rng(seed)
    cases = [("[1, 2, 3] with w = 1, b = 0", (np.array([1.0, 2.0, 3.0], np.float32), np.ones(3, np.float32),
                                              np.zeros(3, np.float32), 1e-5)),
             ("a constant row (variance 0: eps keeps it finite)", (np.full(4, 7.0, np.float32),
                                                                   np.ones(4, np.float32), np.zeros(4, np.float32),
                                                                   1e-5))]
    for k in range(3):
        c = int(rng.integers(4, 20))
        cases.append((f"random batch #{k}", (_randn(rng, 2, 3, c, scale=5.0) + 3, _randn(rng, c), _randn(rng, c),
                                             1e-5)))
    return run_cases("layer_norm", fn, [(n, tuple(np.copy(a) for a in args[:3]) + (args[3],),
                                         layers.layer_norm(*args)) for n, args in cases],
                     same=lambda g, e: _same_array(g, e, atol=1e-4, rtol=1e-4))


def check_sinusoidal(fn: Callable[[int, int], np.ndarray]) -> Feedback:
    """fn(n_pos, dim) -> the (n_pos, dim) table of Vaswani et al."""
    return run_cases("sinusoidal", fn, [(f"{p} positions x {d} dims", (p, d), layers.sinusoidal_table(p, d))
                                        for p, d in ((1, 2), (3, 4), (50, 16), (8, 64))], same=_same_array)


def _rope(x: np.ndarray, positions: np.ndarray, theta: float) -> np.ndarray:
    cos, sin = layers.rope_tables(int(positions.max()) + 1, x.shape[-1], theta)
    return layers.apply_rope(x[None, None], cos[positions][None], sin[positions][None])[0, 0]  # (T, D)


def check_rope(fn: Callable[[np.ndarray, np.ndarray, float], np.ndarray], seed: int = 0) -> Feedback:
    """fn(x (T, D), positions (T,) ints, theta) -> x with each pair (i, i + D/2) rotated by position / theta^(2i/D)."""
    rng = np.random.default_rng(seed)
    cases = [("position 0 changes nothing", (_randn(rng, 1, 4), np.array([0]), 10000.0)),
             ("D = 2, position 1, theta 1: a rotation by 1 radian", (np.array([[1.0, 0.0]], np.float32),
                                                                     np.array([1]), 1.0)),
             ("positions 0..5, D = 8", (_randn(rng, 6, 8), np.arange(6), 10000.0)),
             ("scattered positions, theta 500", (_randn(rng, 4, 16), np.array([3, 0, 40, 7]), 500.0))]
    return run_cases("rope", fn, [(n, (x.copy(), p.copy(), th), _rope(x, p, th)) for n, (x, p, th) in cases],
                     same=_same_array)


def check_kv_cache_bytes(fn: Callable[[ModelConfig, int, int], int]) -> Feedback:
    """fn(config, batch_size, n_tokens) -> bytes of float32 keys + values for that many tokens per row."""
    def truth(config: ModelConfig, batch: int, n: int) -> int:
        cache = KVCache(config.n_layer, batch, config.n_kv_head, n, config.head_dim)
        return cache.k.nbytes + cache.v.nbytes

    cases = [("GPT-2 124M, 1 row, 1024 tokens", PRESETS["gpt2-124m"], 1, 1024),
             ("SmolLM2-135M (grouped-query: 3 key/value heads), 1 row, 2048 tokens", PRESETS["smollm2-135m"], 1, 2048),
             ("tiny-llama, 8 rows, 10 tokens", PRESETS["tiny-llama"], 8, 10)]
    return run_cases("kv_cache_bytes", fn, [(n, (c, b, t), truth(c, b, t)) for n, c, b, t in cases],
                     same=lambda g, e: isinstance(g, (int, np.integer)) and int(g) == e)


def _greedy(model: Transformer, prompt: list[int], n: int) -> list[int]:
    cache = model.new_cache(1, len(prompt) + n)
    logits = model.forward(np.array([prompt]), cache)  # (1, T, V)
    out: list[int] = []
    for _ in range(n):
        out.append(int(logits[0, -1].argmax()))
        logits = model.forward(np.array([out[-1:]]), cache)  # (1, 1, V)
    return out


def check_greedy(fn: Callable[[Transformer, list[int], int], list[int]], seed: int = 0) -> Feedback:
    """fn(model, prompt_ids, n) -> n greedily chosen ids, using the model's KV cache (any correct loop passes)."""
    cases = []
    for name in ("tiny-gpt2", "tiny-llama"):
        config = PRESETS[name]
        model = Transformer(config, init_params(config, np.random.default_rng(seed), std=0.5))
        for prompt, n in (([1, 2, 3], 8), ([42], 12)):
            cases.append((f"{name}, prompt {prompt}, {n} tokens", (model, list(prompt), n), _greedy(model, prompt, n)))
    return run_cases("greedy", fn, cases,
                     same=lambda g, e: g is not None and [int(i) for i in g] == e)
