"""Samplers: hand-worked token sets, the renormalisation order, properties (hypothesis), HF's warpers as a reference."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import require_peer
from minichat.generate import (SamplingConfig, apply_frequency_presence, apply_logit_bias, apply_repetition_penalty,
                               apply_temperature, choose, greedy, log_softmax, min_p_filter, process_logits, sample,
                               sampling_distribution, softmax, top_k_filter, top_logprobs, top_p_filter)
from minichat.generate.sampling import TOP_P_TOLERANCE


def logits_of(probs) -> np.ndarray:
    return np.log(np.asarray(probs, dtype=np.float64)).astype(np.float32)


def kept(x: np.ndarray) -> set[int]:
    return set(np.flatnonzero(np.isfinite(x)).tolist())


P4 = [0.5, 0.3, 0.15, 0.05]  # the running hand-made distribution


# -- SamplingConfig ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"temperature": -0.1}, {"temperature": math.nan}, {"temperature": math.inf}, {"top_p": 0.0}, {"top_p": 1.01},
    {"top_p": -0.5}, {"min_p": -0.1}, {"min_p": 1.5}, {"top_k": -1}, {"top_k": 2.5}, {"top_k": True},
    {"repetition_penalty": 0.0}, {"repetition_penalty": -1.0}, {"frequency_penalty": math.inf},
    {"presence_penalty": math.nan}, {"logit_bias": {-1: 1.0}}, {"logit_bias": {"a": 1.0}},
    {"logit_bias": {3: math.nan}}, {"logit_bias": {3: math.inf}}, {"logit_bias": [(1, 2.0)]}, {"logprobs": -1},
    {"seed": -3}, {"seed": 1.5}, {"temperature": "hot"},
])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError) as e:
        SamplingConfig(**kwargs)
    assert list(kwargs)[0] in str(e.value)  # the message names the field at fault


def test_config_is_frozen_and_normalised():
    bias = {np.int64(3): 2, 5: -math.inf}
    c = SamplingConfig(temperature=1, top_k=np.int64(4), logit_bias=bias)
    assert type(c.temperature) is float and type(c.top_k) is int
    assert c.logit_bias == {3: 2.0, 5: -math.inf} and c.logit_bias is not bias
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.temperature = 2.0  # type: ignore[misc]
    assert SamplingConfig(temperature=0).greedy and not SamplingConfig().greedy
    assert hash(c) == hash(SamplingConfig(temperature=1, top_k=4))  # hashable despite the dict field


# -- hand-worked values -----------------------------------------------------------------------------------------------

def test_softmax_and_log_softmax_hand_values():
    x = np.array([0.0, math.log(3.0), -np.inf], np.float32)
    np.testing.assert_allclose(softmax(x), [0.25, 0.75, 0.0], atol=1e-7)
    np.testing.assert_allclose(log_softmax(x)[:2], [math.log(0.25), math.log(0.75)], atol=1e-6)
    assert softmax(x).dtype == log_softmax(x).dtype == np.float32
    big = np.array([1000.0, 1000.0], np.float32)  # overflow-safe
    np.testing.assert_allclose(softmax(big), [0.5, 0.5])


@pytest.mark.parametrize("k, expected", [(1, {0}), (2, {0, 1}), (3, {0, 1, 2}), (4, {0, 1, 2, 3}), (10, {0, 1, 2, 3}),
                                         (0, {0, 1, 2, 3})])
def test_top_k_hand(k, expected):
    x = top_k_filter(logits_of(P4), k)
    assert kept(x) == expected
    probs = softmax(x)
    total = sum(P4[i] for i in expected)
    np.testing.assert_allclose(probs[sorted(expected)], [P4[i] / total for i in sorted(expected)], rtol=1e-5)


@pytest.mark.parametrize("p, expected", [
    (0.3, {0}), (0.5, {0}),  # the top token alone already has mass 0.5
    (0.6, {0, 1}),  # masses before each token: 0, 0.5, 0.8, 0.95 -> the token crossing 0.6 is kept
    (0.8, {0, 1}),  # exactly reached (within float32 rounding) by two tokens
    (0.81, {0, 1, 2}), (0.95, {0, 1, 2}), (0.96, {0, 1, 2, 3}), (1.0, {0, 1, 2, 3}),
])
def test_top_p_hand(p, expected):
    assert kept(top_p_filter(logits_of(P4), p)) == expected


def test_top_p_is_not_the_off_by_one():
    """The classic bug keeps tokens with `cumsum <= p` and drops the one that crosses p: for p=0.6 it keeps {0}."""
    probs = np.array(P4)
    buggy = set(np.flatnonzero(np.cumsum(probs) <= 0.6).tolist())
    assert buggy == {0}
    assert kept(top_p_filter(logits_of(P4), 0.6)) == {0, 1}


def test_filters_follow_the_token_ids_not_positions():
    perm = np.array([2, 0, 3, 1])  # token 2 is the most likely, then 0, 3, 1
    x = np.empty(4, np.float32)
    x[perm] = logits_of(P4)
    assert kept(top_k_filter(x, 2)) == {2, 0}
    assert kept(top_p_filter(x, 0.81)) == {2, 0, 3}
    assert kept(min_p_filter(x, 0.5)) == {2, 0}


def test_ties_keep_lower_ids_first():
    uniform = np.zeros(4, np.float32)  # each 0.25
    assert kept(top_p_filter(uniform, 0.25)) == {0}
    assert kept(top_p_filter(uniform, 0.3)) == {0, 1}
    assert kept(top_p_filter(uniform, 0.5)) == {0, 1}
    assert kept(top_p_filter(uniform, 0.51)) == {0, 1, 2}
    assert kept(top_k_filter(uniform, 3)) == {0, 1, 2}
    x = np.array([1.0, 2.0, 2.0, 0.0, 2.0], np.float32)
    assert kept(top_k_filter(x, 1)) == {1}
    assert kept(top_k_filter(x, 2)) == {1, 2}
    assert kept(top_k_filter(x, 4)) == {0, 1, 2, 4}


def test_top_p_one_keeps_even_underflowed_tokens():
    x = np.array([0.0, -200.0, -1e30], np.float32)  # exp(-200) is 0 in float32
    assert kept(top_p_filter(x, 1.0)) == {0, 1, 2}
    assert kept(top_p_filter(x, 0.999999)) == {0}  # p just below 1 needs only the token holding all the mass


@pytest.mark.parametrize("min_p, expected", [(0.0, {0, 1, 2, 3}), (0.09, {0, 1, 2, 3}), (0.29, {0, 1, 2}),
                                             (0.5, {0, 1}), (0.61, {0}), (1.0, {0})])
def test_min_p_hand(min_p, expected):
    # threshold = min_p * 0.5: min_p=0.5 keeps probs >= 0.25, i.e. 0.5 and 0.3
    assert kept(min_p_filter(logits_of(P4), min_p)) == expected


def test_temperature_hand():
    x = np.array([0.0, math.log(2.0)], np.float32)
    np.testing.assert_allclose(softmax(apply_temperature(x, 1.0)), [1 / 3, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(softmax(apply_temperature(x, 0.5)), [0.2, 0.8], rtol=1e-6)  # 2^2 = 4
    r = math.sqrt(2.0)
    np.testing.assert_allclose(softmax(apply_temperature(x, 2.0)), [1 / (1 + r), r / (1 + r)], rtol=1e-6)
    tiny = apply_temperature(x, 1e-30)  # overflow-safe: the shift makes the max 0 before dividing
    assert tiny.dtype == np.float32 and not np.isnan(tiny).any()
    np.testing.assert_array_equal(softmax(tiny), [0.0, 1.0])
    with pytest.raises(ValueError):
        apply_temperature(x, 0.0)


def test_repetition_penalty_hf_convention():
    x = np.array([2.0, -2.0, 1.0, 0.0], np.float32)
    seen = np.array([True, True, False, True])
    np.testing.assert_array_equal(apply_repetition_penalty(x, seen, 2.0), [1.0, -4.0, 1.0, 0.0])
    np.testing.assert_array_equal(apply_repetition_penalty(x, seen, 0.5), [4.0, -1.0, 1.0, 0.0])  # < 1 rewards


def test_frequency_presence_openai_convention():
    x = np.array([1.0, 1.0, 1.0], np.float32)
    out = apply_frequency_presence(x, np.array([0, 1, 3]), 0.5, 0.25)
    np.testing.assert_allclose(out, [1.0, 0.25, -0.75])
    assert out.dtype == np.float32


def test_logit_bias():
    x = np.zeros(4, np.float32)
    out = apply_logit_bias(x, {1: 5.0, 2: -math.inf})
    np.testing.assert_array_equal(out, [0.0, 5.0, -np.inf, 0.0])
    assert out.dtype == np.float32 and x[1] == 0.0  # the input is not modified
    with pytest.raises(ValueError, match="vocabulary has 4"):
        apply_logit_bias(x, {4: 1.0})


def test_filters_see_the_renormalised_distribution():
    """top-k 3 of (0.4, 0.3, 0.2, 0.1) leaves (4/9, 3/9, 2/9); top-p 0.75 on *that* keeps 2 tokens (mass 7/9).
    Measured on the stale distribution (masses before: 0, 0.4, 0.7 < 0.75) it would wrongly keep 3."""
    cfg = SamplingConfig(top_k=3, top_p=0.75)
    probs = sampling_distribution(logits_of([0.4, 0.3, 0.2, 0.1]), cfg)
    np.testing.assert_allclose(probs, [4 / 7, 3 / 7, 0.0, 0.0], rtol=1e-5, atol=1e-7)
    # min-p after top-p: with top_p=1, top_k=3 and min_p=0.6, the threshold is 0.6 * 4/9 -> keeps 4/9 and 3/9
    probs = sampling_distribution(logits_of([0.4, 0.3, 0.2, 0.1]), SamplingConfig(top_k=3, min_p=0.6))
    np.testing.assert_allclose(probs, [4 / 7, 3 / 7, 0.0, 0.0], rtol=1e-5, atol=1e-7)


def test_pipeline_order_bias_then_penalty_then_temperature():
    x = np.array([1.0, 0.5, -1.0], np.float32)
    seen = np.array([False, True, True])
    cfg = SamplingConfig(temperature=2.0, repetition_penalty=2.0, logit_bias={2: 3.0})
    # bias: (1, 0.5, 2); penalty on seen 1, 2 (both positive): (1, 0.25, 1); temperature 2: (0.5, 0.125, 0.5)
    expected = softmax(np.array([0.5, 0.125, 0.5], np.float32))
    np.testing.assert_allclose(sampling_distribution(x, cfg, seen=seen), expected, rtol=1e-6)


def test_greedy_and_temperature_zero():
    x = np.array([0.1, 3.0, 3.0, -1.0], np.float32)
    assert greedy(x) == 1  # ties: lowest id
    cfg = SamplingConfig(temperature=0.0, top_k=1, top_p=0.1)
    rng = np.random.default_rng(0)
    assert all(choose(x, cfg, rng) == 1 for _ in range(20))
    np.testing.assert_array_equal(sampling_distribution(x, cfg), [0, 1, 0, 0])
    # penalties still act before the argmax
    assert choose(x, SamplingConfig(temperature=0.0, presence_penalty=5.0), rng, counts=np.array([0, 1, 0, 0])) == 2


def test_temperature_to_zero_equals_greedy():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((200, 50)) * 3).astype(np.float32)  # (N, V)
    top2 = np.sort(x, axis=1)[:, -2:]
    x = x[(top2[:, 1] - top2[:, 0]) > 1e-3]  # rows with a clear winner (float32 resolution)
    cfg = SamplingConfig(temperature=1e-5)
    draws = np.array([choose(row, cfg, rng) for row in x])
    np.testing.assert_array_equal(draws, greedy(x))


def test_same_seed_same_tokens():
    x = logits_of(np.full(20, 1 / 20))
    cfg = SamplingConfig(temperature=0.9, top_p=0.9)
    r1, r2, r3 = np.random.default_rng(7), np.random.default_rng(7), np.random.default_rng(8)
    a = [choose(x, cfg, r1) for _ in range(50)]
    b = [choose(x, cfg, r2) for _ in range(50)]
    c = [choose(x, cfg, r3) for _ in range(50)]
    assert a == b and a != c


def test_empirical_frequencies_match_the_renormalised_distribution():
    """20,000 draws through top-k + top-p + min-p: excluded tokens never appear, the rest follow the renormalised
    probabilities (chi-square well under a 5-sigma bound; the seed is fixed, so this is deterministic)."""
    rng = np.random.default_rng(2024)
    x = (rng.standard_normal(40) * 1.5).astype(np.float32)
    cfg = SamplingConfig(temperature=0.8, top_k=20, top_p=0.9, min_p=0.02)
    probs = sampling_distribution(x, cfg)
    n = 20_000
    draws = np.array([sample(probs, rng) for _ in range(n)])
    counts = np.bincount(draws, minlength=40)
    support = probs > 0
    assert counts[~support].sum() == 0
    assert support.sum() >= 5  # the test is about a real distribution, not a spike
    expected = n * probs[support]
    chi2 = float((((counts[support] - expected) ** 2) / expected).sum())
    df = int(support.sum()) - 1
    assert chi2 < df + 5 * math.sqrt(2 * df), (chi2, df)


def test_top_logprobs():
    x = logits_of([0.2, 0.5, 0.3])
    ids, lps = top_logprobs(x, 2)
    assert ids.tolist() == [1, 2] and lps.dtype == np.float32
    np.testing.assert_allclose(lps, np.log([0.5, 0.3]), atol=1e-6)
    assert top_logprobs(x, 10)[0].tolist() == [1, 2, 0]
    assert top_logprobs(x, 0)[0].size == 0


def test_process_logits_rejects_bad_input():
    with pytest.raises(ValueError, match="float32"):
        process_logits(np.zeros(3), SamplingConfig())
    with pytest.raises(ValueError, match="NaN"):
        process_logits(np.array([0.0, np.nan], np.float32), SamplingConfig())
    with pytest.raises(ValueError, match="every token"):
        process_logits(np.zeros(2, np.float32), SamplingConfig(logit_bias={0: -math.inf, 1: -math.inf}))
    with pytest.raises(ValueError, match="seen"):
        process_logits(np.zeros(2, np.float32), SamplingConfig(repetition_penalty=1.2))
    with pytest.raises(ValueError, match="counts"):
        process_logits(np.zeros(2, np.float32), SamplingConfig(frequency_penalty=1.0))


def test_batched_rows_are_filtered_independently():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 4, 30)) * 2).astype(np.float32)  # (B1, B2, V)
    cfg = SamplingConfig(temperature=0.7, top_k=10, top_p=0.8, min_p=0.05)
    out = process_logits(x, cfg)
    assert out.shape == x.shape and out.dtype == np.float32
    for i in range(3):
        for j in range(4):
            np.testing.assert_array_equal(out[i, j], process_logits(x[i, j], cfg))


# -- properties ------------------------------------------------------------------------------------------------------

def logit_rows(max_v: int = 64):
    # coarse values make ties common; wide ones make underflow common
    value = st.one_of(st.integers(-6, 6).map(float), st.floats(-30, 30, width=32))
    return st.lists(value, min_size=1, max_size=max_v).map(lambda v: np.array(v, np.float32))


@settings(max_examples=300, deadline=None)
@given(logit_rows(), st.one_of(st.floats(1e-6, 1.0), st.sampled_from([1.0, 0.999999, 0.5, 1e-9])))
def test_top_p_keeps_the_minimal_prefix_reaching_p(x, p):
    out = top_p_filter(x, p)
    assert out.dtype == np.float32
    probs = softmax(x).astype(np.float64)
    order = np.lexsort((np.arange(x.size), -probs))  # by probability, then lower id
    keep = np.isfinite(out)
    n = int(keep.sum())
    assert n >= 1 and set(np.flatnonzero(keep)) == set(order[:n].tolist())  # a prefix of the order
    np.testing.assert_array_equal(out[keep], x[keep])  # survivors untouched
    if p < 1.0:
        assert probs[order[:n]].sum() >= p - 2 * TOP_P_TOLERANCE  # reaches p
        if n > 1:
            assert probs[order[: n - 1]].sum() < p  # minimal: one token fewer falls short
    else:
        assert n == x.size
    q = softmax(out)
    assert q.dtype == np.float32 and abs(float(q.sum(dtype=np.float64)) - 1.0) < 1e-5


@settings(max_examples=200, deadline=None)
@given(logit_rows(), st.integers(0, 70))
def test_top_k_keeps_exactly_the_k_largest(x, k):
    out = top_k_filter(x, k)
    keep = np.flatnonzero(np.isfinite(out))
    assert len(keep) == (x.size if k == 0 else min(k, x.size))
    order = np.lexsort((np.arange(x.size), -x))
    assert set(keep.tolist()) == set(order[: len(keep)].tolist())


@settings(max_examples=200, deadline=None)
@given(logit_rows(), st.floats(0.0, 1.0))
def test_min_p_keeps_tokens_above_the_scaled_threshold(x, min_p):
    out = min_p_filter(x, min_p)
    ratio = np.exp(x.astype(np.float64) - x.max())  # prob / max prob
    keep = np.isfinite(out)
    assert keep[np.argmax(x)]
    assert (ratio[keep] >= min_p * (1 - 1e-5)).all() and (ratio[~keep] < min_p * (1 + 1e-5)).all()


@settings(max_examples=200, deadline=None)
@given(logit_rows(), st.floats(0.05, 3.0), st.integers(0, 10), st.floats(0.05, 1.0), st.floats(0.0, 0.5))
@example(np.array([0.0, 2.220446049250313e-16], np.float32), 1.0, 0, 0.5, 0.0)
@example(np.array([-1.0, -5.960464477539063e-08, 0.0, 0.0], np.float32), 0.5, 0, 0.5, 0.0)
def test_combined_distribution_is_a_distribution(x, t, k, p, m):
    probs = sampling_distribution(x, SamplingConfig(temperature=t, top_k=k, top_p=p, min_p=m))
    assert probs.dtype == np.float32 and probs.shape == x.shape
    assert (probs >= 0).all() and abs(float(probs.sum(dtype=np.float64)) - 1.0) < 1e-5
    # the most likely token survives every filter, "most likely" in the distribution the filters see (after the
    # temperature, step 4: (x - max) / T in float32). Tokens within float32 rounding of the top probability count as
    # tied, and one of them must survive: which one is the filters' tie rule, and a rule judged on x itself fails on
    # ties made or broken by rounding (x = [0, 2e-16]; x = [-1, -6e-8, 0, 0] at T = 0.5, where tokens 1-3 tie in
    # softmax(x) and token 1 is below the others in softmax(x / T))
    top = softmax((x - x.max()) / np.float32(t))
    assert probs[top >= top.max() * np.float32(1 - 1e-6)].max() > 0
    assert sample(probs, np.random.default_rng(0)) in set(np.flatnonzero(probs > 0).tolist())


# -- HF transformers' logits warpers as an independent reference ------------------------------------------------------

@pytest.fixture(scope="module")
def hf():
    torch = require_peer("torch")
    require_peer("transformers")
    torch.set_num_threads(1)
    import transformers.generation.logits_process as lp

    return torch, lp


def _hf_apply(torch, processors, x: np.ndarray, input_ids: np.ndarray | None = None) -> np.ndarray:
    ids = torch.tensor(input_ids if input_ids is not None else np.zeros((x.shape[0], 1), np.int64))
    scores = torch.tensor(x)
    for proc in processors:
        scores = proc(ids, scores)
    return scores.numpy()


def _same_distribution(ours: np.ndarray, theirs: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isfinite(ours), np.isfinite(theirs))
    np.testing.assert_allclose(softmax(ours), softmax(theirs.astype(np.float32)), rtol=1e-5, atol=1e-7)


@pytest.mark.peer
@pytest.mark.parametrize("seed", range(6))
def test_matches_hf_warpers(hf, seed):
    torch, lp = hf
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((8, 300)) * 3).astype(np.float32)  # (B, V)
    for t in (0.3, 1.0, 1.7):
        _same_distribution(apply_temperature(x, t), _hf_apply(torch, [lp.TemperatureLogitsWarper(t)], x))
    for k in (1, 5, 50, 299, 300, 1000):
        _same_distribution(top_k_filter(x, k), _hf_apply(torch, [lp.TopKLogitsWarper(k)], x))
    for p in (0.05, 0.3, 0.6, 0.9, 0.99):
        _same_distribution(top_p_filter(x, p), _hf_apply(torch, [lp.TopPLogitsWarper(p)], x))
    for m in (0.01, 0.1, 0.5, 0.9):
        _same_distribution(min_p_filter(x, m), _hf_apply(torch, [lp.MinPLogitsWarper(m)], x))


@pytest.mark.peer
@pytest.mark.parametrize("seed", range(4))
def test_matches_hf_penalty_and_chain(hf, seed):
    torch, lp = hf
    rng = np.random.default_rng(100 + seed)
    B, V = 4, 200
    x = (rng.standard_normal((B, V)) * 3).astype(np.float32)
    history = rng.integers(0, V, (B, 30))  # (B, T) prompt + output so far
    seen = np.zeros((B, V), bool)
    np.put_along_axis(seen, history, True, axis=1)
    for penalty in (0.7, 1.3, 2.0):
        ours = apply_repetition_penalty(x, seen, penalty)
        theirs = _hf_apply(torch, [lp.RepetitionPenaltyLogitsProcessor(penalty)], x, history)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    cfg = SamplingConfig(repetition_penalty=1.2, temperature=0.8, top_k=40, top_p=0.85, min_p=0.05)
    chain = [lp.RepetitionPenaltyLogitsProcessor(1.2), lp.TemperatureLogitsWarper(0.8), lp.TopKLogitsWarper(40),
             lp.TopPLogitsWarper(0.85), lp.MinPLogitsWarper(0.05)]
    _same_distribution(process_logits(x, cfg, seen=seen), _hf_apply(torch, chain, x, history))
