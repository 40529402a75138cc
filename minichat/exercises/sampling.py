"""Checkers for notebook 03 (sampling and streaming): write the samplers yourself, then compare with minichat.

Each `check_*` runs your function on hand-made cases (the traps: overflow, ties, the top-p off-by-one, p = 1, a
stop string split across tokens) and random ones, and compares with `minichat.generate`:

    check_softmax_temperature(fn)   fn(logits, temperature) -> probabilities (float array summing to 1)
    check_top_k(fn)                 fn(logits, k) -> logits with all but the k largest set to -inf
    check_top_p(fn)                 fn(logits, p) -> logits with all but the nucleus set to -inf
    check_sample(fn)                fn(probs, u) -> the id whose cumulative-probability interval holds u in [0, 1)
    check_repetition_penalty(fn)    fn(logits, previous_ids, penalty) -> penalised logits (HF convention)
    check_holdback(fn)              fn(text, stop_strings) -> how many trailing characters to hold back

The rules the library follows, which yours must follow too:
  * filtered-out tokens get the logit -inf (so softmax gives them probability 0); kept ones keep their logit;
  * ties at a top-k/top-p boundary keep the lower token id first (so top-k keeps exactly k tokens);
  * top-p keeps the smallest set of most likely tokens whose probability adds up to at least p (the token that
    crosses p is kept); k = 0 or k >= V, and p = 1, keep everything;
  * sampling by inverse CDF: the first id i whose cumulative probability cdf[i] = p_0 + ... + p_i exceeds u;
  * repetition penalty: each distinct earlier token's logit is divided by the penalty if positive, multiplied if
    negative; other tokens are untouched;
  * hold back the longest tail of the text that is the beginning (but not the whole) of some stop string.

References: `softmax` + `apply_temperature`, `top_k_filter`, `top_p_filter`, `sample`, `apply_repetition_penalty` and
`holdback_length`, all from `minichat.generate`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from minichat.exercises import Feedback, run_cases
from minichat.generate.sampling import (apply_repetition_penalty, apply_temperature, sample, softmax, top_k_filter,
                                        top_p_filter)
from minichat.generate.text import holdback_length


def _logits(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _from_probs(probs: Sequence[float]) -> np.ndarray:
    return np.log(np.asarray(probs, dtype=np.float64)).astype(np.float32)


def _random_logits(rng: np.random.Generator, lo: int = 3, hi: int = 40, scale: float = 2.0) -> np.ndarray:
    return (rng.standard_normal(int(rng.integers(lo, hi))) * scale).astype(np.float32)


def _same_array(got: Any, expected: np.ndarray, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """Same shape, -inf in the same places, finite entries close."""
    try:
        g = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    e = np.asarray(expected, dtype=np.float64)
    if g.shape != e.shape or np.isnan(g).any():
        return False
    if not np.array_equal(np.isneginf(g), np.isneginf(e)):
        return False
    finite = np.isfinite(e)
    return bool(np.isfinite(g[finite]).all() and np.allclose(g[finite], e[finite], rtol=rtol, atol=atol))


def _same_int(got: Any, expected: int) -> bool:
    try:
        return int(got) == expected and float(got) == float(int(got))
    except (TypeError, ValueError):
        return False


class _FixedUniform:
    """Stands in for np.random.Generator so the library's `sample` draws with a chosen u."""

    def __init__(self, u: float):
        self.u = u

    def random(self) -> float:
        return self.u


def check_softmax_temperature(fn: Callable[[np.ndarray, float], np.ndarray], seed: int = 0) -> Feedback:
    """fn(logits, temperature) -> softmax(logits / temperature)."""
    rng = np.random.default_rng(seed)
    cases = [("[0, ln 2] at T = 1 -> [1/3, 2/3]", _logits([0.0, np.log(2.0)]), 1.0),
             ("[0, ln 2] at T = 0.5 -> [0.2, 0.8]", _logits([0.0, np.log(2.0)]), 0.5),
             ("T = 2 flattens", _logits([1.0, 2.0, 3.0]), 2.0),
             ("huge logits (subtract the max first, or exp overflows)", _logits([1000.0, 999.0, 990.0]), 1.0),
             ("a -inf logit gets probability 0", _logits([1.0, -np.inf, 0.5]), 0.7),
             ("one token", _logits([3.0]), 1.0)]
    cases += [(f"random #{k}", _random_logits(rng, scale=4.0), float(rng.uniform(0.2, 3.0))) for k in range(5)]
    return run_cases("softmax_temperature", fn,
                     [(name, (x.copy(), t), softmax(apply_temperature(x, t))) for name, x, t in cases],
                     same=_same_array)


def check_top_k(fn: Callable[[np.ndarray, int], np.ndarray], seed: int = 0) -> Feedback:
    """fn(logits, k) -> logits with every entry outside the k largest set to -inf."""
    rng = np.random.default_rng(seed)
    p4 = _from_probs([0.5, 0.3, 0.15, 0.05])
    cases = [("k = 2 of (0.5, 0.3, 0.15, 0.05)", p4, 2), ("k = 1 is greedy", p4, 1),
             ("shuffled ids: the order is by value, not position", _logits([0.1, 2.0, -1.0, 1.5, 0.3]), 2),
             ("k = V keeps all", p4, 4), ("k > V keeps all", p4, 10), ("k = 0 means no filter", p4, 0),
             ("ties at the boundary: lower id first", _logits([1.0, 2.0, 2.0, 0.0, 2.0]), 2)]
    cases += [(f"random #{k}", (x := _random_logits(rng)), int(rng.integers(1, x.size + 1))) for k in range(5)]
    return run_cases("top_k", fn, [(name, (x.copy(), k), top_k_filter(x, k)) for name, x, k in cases],
                     same=_same_array)


def _clear_nucleus(x: np.ndarray, p: float) -> bool:
    """No cumulative mass lies within 1e-4 of p, so float rounding cannot decide the case."""
    probs = np.sort(softmax(x).astype(np.float64))[::-1]
    return bool(np.abs(np.cumsum(probs) - p).min() > 1e-4)


def check_top_p(fn: Callable[[np.ndarray, float], np.ndarray], seed: int = 0) -> Feedback:
    """fn(logits, p) -> logits with every entry outside the nucleus (smallest set with mass >= p) set to -inf."""
    rng = np.random.default_rng(seed)
    p4 = _from_probs([0.5, 0.3, 0.15, 0.05])
    cases = [("p = 0.6: the token crossing p is kept (the off-by-one)", p4, 0.6),
             ("p = 0.3: the top token alone suffices", p4, 0.3),
             ("p = 0.9 needs three tokens", p4, 0.9),
             ("p = 1 keeps everything", p4, 1.0),
             ("p = 1 keeps even a token with probability ~0", _logits([0.0, -200.0, 1.0]), 1.0),
             ("shuffled ids", _from_probs([0.1, 0.45, 0.05, 0.4]), 0.7),
             ("ties: four equal tokens, p = 0.6 -> the three lowest ids", _logits([0.0, 0.0, 0.0, 0.0]), 0.6)]
    k = 0
    while k < 6:
        x, p = _random_logits(rng), float(rng.uniform(0.05, 0.99))
        if _clear_nucleus(x, p):
            cases.append((f"random #{k}", x, p))
            k += 1
    return run_cases("top_p", fn, [(name, (x.copy(), p), top_p_filter(x, p)) for name, x, p in cases],
                     same=_same_array)


def check_sample(fn: Callable[[np.ndarray, float], int], seed: int = 0) -> Feedback:
    """fn(probs, u) -> the first id whose cumulative probability exceeds u (inverse-CDF sampling)."""
    rng = np.random.default_rng(seed)
    probs = np.array([0.2, 0.5, 0.3], np.float32)
    zero = np.array([0.4, 0.0, 0.6], np.float32)
    cases = [("u = 0.1 falls in token 0's interval [0, 0.2)", probs, 0.1),
             ("u = 0.5 falls in token 1's interval [0.2, 0.7)", probs, 0.5),
             ("u = 0.95 falls in token 2's interval [0.7, 1)", probs, 0.95),
             ("u = 0 picks the first token with probability > 0", np.array([0.0, 1.0], np.float32), 0.0),
             ("a zero-probability token is never picked", zero, 0.4000001),
             ("one token", np.array([1.0], np.float32), 0.7)]
    for k in range(6):
        p = softmax(_random_logits(rng))
        cdf = np.cumsum(p, dtype=np.float64)
        u = float(rng.uniform(0, 1))
        if np.abs(cdf - u).min() > 1e-5:  # not on an interval's edge
            cases.append((f"random #{k}", p, u))
    return run_cases("sample", fn, [(name, (p.copy(), u), sample(p, _FixedUniform(u))) for name, p, u in cases],
                     same=_same_int)


def check_repetition_penalty(fn: Callable[[np.ndarray, list[int], float], np.ndarray], seed: int = 0) -> Feedback:
    """fn(logits, previous_ids, penalty) -> logits with each distinct previous token penalised once."""
    rng = np.random.default_rng(seed)
    cases = [("positive divided, negative multiplied", _logits([2.0, -2.0, 1.0, 0.0]), [0, 1, 3], 2.0),
             ("a token seen three times is penalised once", _logits([3.0, 1.0]), [0, 0, 0], 1.5),
             ("penalty < 1 rewards repetition", _logits([2.0, -2.0, 1.0]), [0, 1], 0.5),
             ("nothing seen yet", _logits([1.0, 2.0]), [], 1.3)]
    for k in range(5):
        x = _random_logits(rng)
        ids = rng.integers(0, x.size, size=int(rng.integers(1, 10))).tolist()
        cases.append((f"random #{k}", x, ids, float(rng.uniform(1.05, 2.0))))

    def reference(x: np.ndarray, ids: list[int], penalty: float) -> np.ndarray:
        seen = np.zeros(x.size, bool)
        seen[ids] = True
        return apply_repetition_penalty(x, seen, penalty)

    return run_cases("repetition_penalty", fn,
                     [(name, (x.copy(), list(ids), r), reference(x, ids, r)) for name, x, ids, r in cases],
                     same=_same_array)


def check_holdback(fn: Callable[[str, list[str]], int], seed: int = 0) -> Feedback:
    """fn(text, stop_strings) -> the length of the longest tail of text that could still start a stop string."""
    rng = np.random.default_rng(seed)
    cases = [("'Hello\\nUs' may become '\\nUser:'", "Hello\nUs", ["\nUser:"]),
             ("nothing to hold", "Hello", ["\nUser:"]), ("no stop strings", "Hello", []),
             ("empty text", "", ["abc"]),
             ("the longest candidate over all stop strings", "aba", ["abc", "bad"]),
             ("only a proper beginning counts", "xab", ["abc"]),
             ("a tail longer than the stop string's start does not count", "abcx", ["abcd"]),
             ("accents and emoji are single characters", "café 🙂", ["🙂!", "é 🙂?"])]
    alphabet = list("ab:\n")
    for k in range(6):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 12))))
        stops = ["".join(rng.choice(alphabet, size=int(rng.integers(1, 5)))) for _ in range(int(rng.integers(1, 4)))]
        cases.append((f"random #{k}", text, stops))
    return run_cases("holdback", fn, [(name, (t, list(s)), holdback_length(t, s)) for name, t, s in cases],
                     same=_same_int)
