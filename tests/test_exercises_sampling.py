"""The notebook-03 checkers: a correct answer passes, the classic mistakes fail, a stub is "not done yet".

The correct answers are written here from the textbook definitions, independently of minichat (plain loops and
sorts), so these tests also tie the library to the definitions.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from minichat.exercises import sampling as ex

# -- correct answers -------------------------------------------------------------------------------------------------


def softmax_temperature(logits, temperature):
    z = [v / temperature for v in logits]
    m = max(z)
    e = [math.exp(v - m) for v in z]
    return np.array([v / sum(e) for v in e])


def top_k(logits, k):
    x = [float(v) for v in logits]
    if k <= 0 or k >= len(x):
        return np.array(x)
    order = sorted(range(len(x)), key=lambda i: (-x[i], i))
    keep = set(order[:k])
    return np.array([v if i in keep else -math.inf for i, v in enumerate(x)])


def top_p(logits, p):
    x = [float(v) for v in logits]
    if p >= 1.0:
        return np.array(x)
    probs = softmax_temperature(x, 1.0)
    order = sorted(range(len(x)), key=lambda i: (-probs[i], i))
    keep, mass = set(), 0.0
    for i in order:
        keep.add(i)
        mass += probs[i]
        if mass >= p:
            break
    return np.array([v if i in keep else -math.inf for i, v in enumerate(x)])


def sample(probs, u):
    total = 0.0
    for i, q in enumerate(probs):
        total += q
        if total > u:
            return i
    return len(probs) - 1


def repetition_penalty(logits, previous_ids, penalty):
    x = np.array(logits, dtype=np.float64)
    for i in set(previous_ids):
        x[i] = x[i] / penalty if x[i] > 0 else x[i] * penalty
    return x


def holdback(text, stop_strings):
    best = 0
    for s in stop_strings:
        for k in range(1, len(s)):
            if k <= len(text) and text[len(text) - k:] == s[:k]:
                best = max(best, k)
    return best


CORRECT = {"softmax_temperature": softmax_temperature, "top_k": top_k, "top_p": top_p, "sample": sample,
           "repetition_penalty": repetition_penalty, "holdback": holdback}
CHECKERS = {"softmax_temperature": ex.check_softmax_temperature, "top_k": ex.check_top_k, "top_p": ex.check_top_p,
            "sample": ex.check_sample, "repetition_penalty": ex.check_repetition_penalty, "holdback": ex.check_holdback}

# -- the usual mistakes ----------------------------------------------------------------------------------------------


def softmax_no_max_shift(logits, temperature):  # overflows on large logits
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(np.asarray(logits, np.float32) / np.float32(temperature))
        return e / e.sum()


def softmax_times_temperature(logits, temperature):  # multiplies instead of dividing
    return softmax_temperature([v * temperature for v in logits], 1.0)


def top_k_keeps_ties(logits, k):  # HF's rule: everything >= the k-th value (more than k with ties)
    x = np.array(logits, dtype=np.float64)
    if k <= 0 or k >= len(x):
        return x
    kth = np.sort(x)[-k]
    return np.where(x >= kth, x, -np.inf)


def top_p_off_by_one(logits, p):  # drops the token that crosses p
    x = np.array(logits, dtype=np.float64)
    probs = softmax_temperature(x, 1.0)
    order = np.argsort(-probs, kind="stable")
    keep = order[np.cumsum(probs[order]) <= p]
    if len(keep) == 0:
        keep = order[:1]
    out = np.full_like(x, -np.inf)
    out[keep] = x[keep]
    return out if p < 1 else x


def top_p_stale_cumsum_unsorted(logits, p):  # forgets to sort before accumulating
    x = np.array(logits, dtype=np.float64)
    probs = softmax_temperature(x, 1.0)
    before = np.cumsum(probs) - probs
    return np.where(before < p, x, -np.inf)


def sample_greater_equal(probs, u):  # cdf >= u picks a zero-probability token at an interval's edge
    return int(np.argmax(np.cumsum(probs) >= u))


def penalty_subtracts(logits, previous_ids, penalty):  # "penalise" by subtracting: not the HF convention
    x = np.array(logits, dtype=np.float64)
    x[list(set(previous_ids))] -= penalty
    return x


def penalty_divides_always(logits, previous_ids, penalty):  # dividing a negative logit raises it
    x = np.array(logits, dtype=np.float64)
    x[list(set(previous_ids))] /= penalty
    return x


def holdback_whole_match_only(text, stop_strings):  # only holds when the full stop string is there
    return max((len(s) for s in stop_strings if text.endswith(s)), default=0)


def holdback_includes_full(text, stop_strings):  # lets k reach len(s)
    best = 0
    for s in stop_strings:
        for k in range(1, len(s) + 1):
            if k <= len(text) and text.endswith(s[:k]):
                best = max(best, k)
    return best


MISTAKES = [("softmax_temperature", softmax_no_max_shift), ("softmax_temperature", softmax_times_temperature),
            ("top_k", top_k_keeps_ties), ("top_p", top_p_off_by_one), ("top_p", top_p_stale_cumsum_unsorted),
            ("sample", sample_greater_equal), ("repetition_penalty", penalty_subtracts),
            ("repetition_penalty", penalty_divides_always), ("holdback", holdback_whole_match_only),
            ("holdback", holdback_includes_full)]


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_correct_answers_pass(name):
    fb = CHECKERS[name](CORRECT[name])
    assert fb.passed, str(fb)
    assert len(fb.cases) >= 6 and "all cases pass" in str(fb)


@pytest.mark.parametrize("name, wrong", MISTAKES, ids=[w.__name__ for _, w in MISTAKES])
def test_mistakes_fail(name, wrong):
    fb = CHECKERS[name](wrong)
    assert not fb.passed and not fb.not_done
    assert "FAIL" in str(fb)


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_stubs_are_not_done(name):
    def returns_none(*args):
        pass

    def raises(*args):
        raise NotImplementedError

    for stub in (returns_none, raises):
        fb = CHECKERS[name](stub)
        assert fb.not_done and not fb.passed and "not done yet" in str(fb)


def test_a_crashing_answer_is_feedback_not_a_crash():
    fb = ex.check_top_k(lambda logits, k: logits[k + 1000])
    assert not fb.passed and "raised IndexError" in str(fb)


def test_feedback_names_the_failing_case():
    fb = ex.check_top_p(top_p_off_by_one)
    failing = [name for name, ok, _ in fb.cases if not ok]
    assert any("off-by-one" in name for name in failing)
    fb = ex.check_sample(sample_greater_equal)
    assert any("u = 0" in name for name, ok, _ in fb.cases if not ok)
