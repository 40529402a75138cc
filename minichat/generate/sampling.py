"""Sampling: turning one step's logits into the next token id.

The model gives a score (logit) per vocabulary entry; softmax turns scores into a probability distribution. Sampling
is everything between the two: reshaping the scores, cutting away unlikely tokens, renormalising, drawing. Every
function here is pure, works on float32 arrays shaped (..., V) (one row or a batch of rows) and returns float32; an
excluded token gets the logit -inf, so the softmax that follows gives it probability 0 and the survivors are
renormalised by that single softmax.

The pipeline (`process_logits`), in this order — the order of HF transformers' `generate`:

  1. logit bias          logits[i] += bias[i]                         (OpenAI's `logit_bias`; -inf bans a token)
  2. repetition penalty  for every token already seen (prompt + generated): positive logits are divided by the
                         penalty, negative ones multiplied (HF/CTRL convention; both push the token down when > 1)
  3. frequency/presence  logits[i] -= frequency * count[i] + presence * (count[i] > 0), counting generated tokens
                         only (the OpenAI/vLLM convention)
  4. temperature         logits / T (T < 1 sharpens, T > 1 flattens); T == 0 means greedy: stop here, take argmax
  5. top-k               keep the k most likely tokens
  6. top-p (nucleus)     keep the smallest set of most likely tokens whose probability mass is >= p
  7. min-p               keep tokens with probability >= min_p * (probability of the most likely token)

Each filter (5-7) looks at the distribution renormalised over the survivors of the filters before it (masking to -inf
then taking a softmax renormalises); the final distribution is one softmax over the surviving logits. The classic bug
is the opposite: renormalising once per filter on stale numbers, or measuring top-p's mass on the distribution from
before top-k.

Ties: when tokens with equal probability straddle a top-k or top-p boundary, the lower token id is kept first, so the
kept set always has exactly k tokens (top-k) and is the smallest set reaching p (top-p). HF's top-k keeps every tied
token instead; on real (untied) logits the two agree. Top-p treats a mass within `TOP_P_TOLERANCE` of p as reaching p
(float32 softmax is only exact to ~1e-7), and p == 1 keeps every token.

What it leaves out: beam search, typical/eta/epsilon sampling, mirostat, grammar-constrained decoding.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from minichat.config import SamplingConfig  # noqa: F401  (re-exported: the knobs this module's functions read)
from minichat.model.layers import softmax  # (..., V) -> (..., V): the library's one softmax, re-exported

TOP_P_TOLERANCE = 1e-6  # a kept mass within this of p counts as reaching p (float32 rounding, not a tuning knob)
NEG_INF = np.float32(-np.inf)


# -- distributions -------------------------------------------------------------------------------------------------

def log_softmax(logits: np.ndarray) -> np.ndarray:  # (..., V) -> (..., V) float32
    x = np.asarray(logits, dtype=np.float32)
    shifted = x - x.max(axis=-1, keepdims=True)  # (..., V) <= 0
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def top_logprobs(logits: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:  # (V,) -> (n,) int64, (n,) float32
    """The n most likely tokens of one row and their log-probabilities, most likely first (ties: lower id first)."""
    lp = log_softmax(np.asarray(logits, dtype=np.float32).reshape(-1))  # (V,)
    n = min(int(n), lp.shape[0])
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    ids = top_ids(lp, n)  # (n,)
    return ids, lp[ids]


def top_ids(x: np.ndarray, k: int) -> np.ndarray:  # (V,) -> (k,) int64, descending value, ties by lower id
    """The ids of the k largest entries of one row, in order; O(V) selection plus a sort of only k items."""
    if k >= x.shape[0]:
        return np.argsort(-x, kind="stable")
    kth = -np.partition(-x, k - 1)[k - 1]  # the k-th largest value (selecting from the top end: numpy's
    #                                        introselect crawls when k is near the end and many values tie, e.g. -inf)
    above = np.flatnonzero(x > kth)  # strictly larger: all of them are in
    tied = np.flatnonzero(x == kth)[: k - above.size]  # the boundary value: lowest ids first
    ids = np.concatenate([above, tied])  # (k,)
    return ids[np.argsort(-x[ids], kind="stable")]  # stable on ascending ids -> ties stay in id order


# -- step 1-3: bias and penalties ------------------------------------------------------------------------------------

def apply_logit_bias(logits: np.ndarray, bias: Mapping[int, float]) -> np.ndarray:  # (..., V) -> (..., V)
    out = np.array(logits, dtype=np.float32)  # a copy: callers' arrays are never modified
    if bias:
        ids = np.fromiter(bias.keys(), np.int64, len(bias))
        if ids.max() >= out.shape[-1]:
            raise ValueError(f"logit_bias names token {int(ids.max())}, but the vocabulary has {out.shape[-1]} tokens")
        out[..., ids] += np.fromiter(bias.values(), np.float32, len(bias))
    return out


def apply_repetition_penalty(logits: np.ndarray, seen: np.ndarray, penalty: float) -> np.ndarray:
    """(..., V), (..., V) bool -> (..., V). HF/CTRL: a seen token's logit is divided by `penalty` if positive,
    multiplied if negative, so penalty > 1 always lowers it. Applied once per token, however often it occurred."""
    x = np.array(logits, dtype=np.float32)
    p = np.float32(penalty)
    penalised = np.where(x > 0, x / p, x * p)  # (..., V)
    return np.where(seen, penalised, x).astype(np.float32)


def apply_frequency_presence(logits: np.ndarray, counts: np.ndarray, frequency: float, presence: float) -> np.ndarray:
    """(..., V), (..., V) int -> (..., V). OpenAI: subtract frequency * count and presence * [count > 0]."""
    c = np.asarray(counts).astype(np.float32)  # int counts * float32 would promote to float64
    x = np.asarray(logits, dtype=np.float32)
    return x - np.float32(frequency) * c - np.float32(presence) * (c > 0).astype(np.float32)


# -- step 4-7: temperature and filters -------------------------------------------------------------------------------

def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:  # (..., V) -> (..., V)
    """logits / T, shifted so the largest is 0 (softmax ignores a shift; the shift keeps tiny T from overflowing)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 here (0 means greedy: use `greedy`), not {temperature!r}")
    x = np.asarray(logits, dtype=np.float32)
    return ((x - x.max(axis=-1, keepdims=True)) / np.float32(temperature)).astype(np.float32)


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:  # (..., V) -> (..., V), all but k entries -inf per row
    """Keep the k largest logits of each row (exactly k; ties at the boundary keep the lower id). k = 0 or k >= V
    keeps everything."""
    x = np.array(logits, dtype=np.float32)
    V = x.shape[-1]
    if k <= 0 or k >= V:
        return x
    rows = x.reshape(-1, V)  # (N, V) view
    for r in rows:
        keep = np.zeros(V, bool)
        keep[top_ids(r, k)] = True
        r[~keep] = NEG_INF
    return x


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:  # (..., V) -> (..., V)
    """Nucleus sampling (Holtzman et al. 2019): keep the smallest set of most likely tokens whose mass is >= p.

    Sorted by probability, token i is kept when the mass *before* it is still short of p — so the token that
    crosses p is kept (testing the mass *including* it, `cumsum <= p`, drops it: the off-by-one). The most likely
    token is therefore always kept. Worked example: probs (0.5, 0.3, 0.2) with p = 0.6 -> masses before each token
    are (0, 0.5, 0.8) -> keep the first two (mass 0.8 >= 0.6); p = 0.5 keeps only the first.
    """
    x = np.array(logits, dtype=np.float32)
    if p >= 1.0:
        return x
    V = x.shape[-1]
    for r in x.reshape(-1, V):
        probs = softmax(r)  # (V,)
        ids = _nucleus_candidates(probs, p)  # (m,) most likely first: certainly contains the nucleus
        mass_before = np.cumsum(probs[ids], dtype=np.float64) - probs[ids]  # (m,) exclusive cumulative mass
        n_keep = int(np.count_nonzero(mass_before < p - TOP_P_TOLERANCE))
        keep = np.zeros(V, bool)
        keep[ids[: max(n_keep, 1)]] = True
        r[~keep] = NEG_INF
    return x


def _nucleus_candidates(probs: np.ndarray, p: float) -> np.ndarray:  # (V,) -> (m,) ids, descending, ties by id
    """The m most likely tokens, for the smallest m (64, 256, ...) whose mass already reaches p. Sorting a whole
    50k vocabulary costs ~5 ms per token; usually a few dozen tokens hold the nucleus."""
    V = probs.shape[0]
    m = 64
    while m < V:
        ids = top_ids(probs, m)
        if float(probs[ids].sum(dtype=np.float64)) >= p:
            return ids
        m *= 4
    return top_ids(probs, V)


def min_p_filter(logits: np.ndarray, min_p: float) -> np.ndarray:  # (..., V) -> (..., V)
    """Min-p (Nguyen et al. 2024): keep tokens whose probability is >= min_p times the top token's probability.
    prob_i / prob_max = exp(logit_i - logit_max), so no normalisation is needed. min_p = 0 keeps everything."""
    x = np.array(logits, dtype=np.float32)
    if min_p <= 0.0:
        return x
    ratio = np.exp(x - x.max(axis=-1, keepdims=True))  # (..., V) prob_i / prob_max, in [0, 1]
    x[ratio < np.float32(min_p)] = NEG_INF
    return x


# -- the pipeline ---------------------------------------------------------------------------------------------------

def process_logits(logits: np.ndarray, config: SamplingConfig, *, seen: np.ndarray | None = None,
                   counts: np.ndarray | None = None) -> np.ndarray:  # (..., V) -> (..., V) float32
    """Steps 1-7 of the module docstring: the logits whose softmax is the sampling distribution (-inf = excluded).

    seen: (..., V) bool, tokens in the prompt or output so far (for the repetition penalty);
    counts: (..., V) int, how often each token occurs in the output so far (frequency/presence penalties).
    With temperature 0 the filters are skipped (the argmax survives all of them anyway).
    """
    x = np.asarray(logits)
    if x.dtype != np.float32:
        raise ValueError(f"logits must be float32, got {x.dtype}; the model computes in float32")
    if np.isnan(x).any():
        raise ValueError("the logits contain NaN: the model produced invalid numbers (check its weights/inputs)")
    x = apply_logit_bias(x, config.logit_bias)
    if config.repetition_penalty != 1.0:
        if seen is None:
            raise ValueError("repetition_penalty needs `seen`, the mask of tokens already in the sequence")
        x = apply_repetition_penalty(x, seen, config.repetition_penalty)
    if config.frequency_penalty != 0.0 or config.presence_penalty != 0.0:
        if counts is None:
            raise ValueError("frequency/presence penalties need `counts`, the output's token counts")
        x = apply_frequency_presence(x, counts, config.frequency_penalty, config.presence_penalty)
    if np.isneginf(x).all(axis=-1).any():
        raise ValueError("every token is excluded (logit_bias bans them all): leave at least one token allowed")
    if config.greedy:
        return x
    x = apply_temperature(x, config.temperature)
    x = top_k_filter(x, config.top_k)
    x = top_p_filter(x, config.top_p)
    return min_p_filter(x, config.min_p)


def sampling_distribution(logits: np.ndarray, config: SamplingConfig, *, seen: np.ndarray | None = None,
                          counts: np.ndarray | None = None) -> np.ndarray:  # (..., V) -> (..., V) float32
    """The probabilities a token is drawn from: one softmax over `process_logits` (greedy: one-hot on the argmax)."""
    x = process_logits(logits, config, seen=seen, counts=counts)
    if config.greedy:
        one_hot = np.zeros_like(x)  # (..., V)
        np.put_along_axis(one_hot, greedy(x)[..., None], np.float32(1.0), axis=-1)
        return one_hot
    return softmax(x)


def greedy(logits: np.ndarray) -> np.ndarray:  # (..., V) -> (...,) int64
    """The most likely token (the lowest id among equals)."""
    return np.argmax(np.asarray(logits), axis=-1)


def sample(probs: np.ndarray, rng: np.random.Generator) -> int:  # (V,) -> id
    """Draw one id from a probability row by inverting its cumulative distribution: one uniform number u, and the
    first token whose cumulative mass exceeds u. Zero-probability tokens can never be drawn."""
    cdf = np.cumsum(np.asarray(probs, dtype=np.float32).reshape(-1), dtype=np.float64)  # (V,) rising to ~1
    u = rng.random() * cdf[-1]  # scaling by the total absorbs float32 rounding in the sum
    return min(int(np.searchsorted(cdf, u, side="right")), cdf.shape[0] - 1)


def choose(logits: np.ndarray, config: SamplingConfig, rng: np.random.Generator, *, seen: np.ndarray | None = None,
           counts: np.ndarray | None = None) -> int:  # (V,) -> id
    """One step for one sequence: process, then argmax (temperature 0) or draw with `rng`."""
    x = process_logits(np.asarray(logits).reshape(-1), config, seen=seen, counts=counts)  # (V,)
    if config.greedy:
        return int(greedy(x))
    return sample(softmax(x), rng)
