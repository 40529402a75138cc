"""The notebook-02 checkers: a correct answer passes, the classic mistakes fail, a stub is "not done yet".

The correct answers are written here from the textbook definitions with plain Python loops, independently of
minichat, so these tests also tie the library to the definitions.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from minichat.exercises import transformer as ex

# -- correct answers, from the definitions ---------------------------------------------------------------------------


def softmax(x):
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape[:-1]):
        row = x[idx]
        m = max(row)
        e = [math.exp(v - m) for v in row]
        out[idx] = [v / sum(e) for v in e]
    return out


def causal_mask(t):
    return np.array([[s <= q for s in range(t)] for q in range(t)])


def attention(q, k, v, mask):
    T, D = q.shape
    out = np.zeros((T, v.shape[1]))
    for t in range(T):
        scores = [float(q[t] @ k[s]) / math.sqrt(D) if mask[t, s] else -math.inf for s in range(len(k))]
        w = softmax(np.array(scores))
        out[t] = sum(w[s] * v[s] for s in range(len(k)))
    return out


def layer_norm(x, w, b, eps):
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape[:-1]):
        row = x[idx]
        mean = sum(row) / len(row)
        var = sum((v - mean) ** 2 for v in row) / len(row)
        out[idx] = [(v - mean) / math.sqrt(var + eps) * w[j] + b[j] for j, v in enumerate(row)]
    return out


def sinusoidal(n_pos, dim):
    pe = np.zeros((n_pos, dim))
    for p in range(n_pos):
        for i in range(0, dim, 2):
            pe[p, i] = math.sin(p / 10000 ** (i / dim))
            pe[p, i + 1] = math.cos(p / 10000 ** (i / dim))
    return pe


def rope(x, positions, theta):
    T, D = x.shape
    half = D // 2
    out = np.zeros((T, D))
    for t in range(T):
        for i in range(half):
            w = positions[t] / theta ** (2 * i / D)
            a, b = float(x[t, i]), float(x[t, i + half])
            out[t, i], out[t, i + half] = a * math.cos(w) - b * math.sin(w), b * math.cos(w) + a * math.sin(w)
    return out


def kv_cache_bytes(config, batch_size, n_tokens):
    return 2 * config.n_layer * batch_size * config.n_kv_head * n_tokens * config.head_dim * 4


def greedy(model, prompt, n):
    cache = model.new_cache(1, len(prompt) + n)
    logits = model.forward(np.array([prompt]), cache)
    out = []
    for _ in range(n):
        out.append(int(np.argmax(logits[0, -1])))
        logits = model.forward(np.array([[out[-1]]]), cache)
    return out


CASES = [(ex.check_softmax, softmax), (ex.check_causal_mask, causal_mask), (ex.check_attention, attention),
         (ex.check_layer_norm, layer_norm), (ex.check_sinusoidal, sinusoidal), (ex.check_rope, rope),
         (ex.check_kv_cache_bytes, kv_cache_bytes), (ex.check_greedy, greedy)]


@pytest.mark.parametrize("check,answer", CASES, ids=[c.__name__ for c, _ in CASES])
def test_correct_answers_pass(check, answer):
    fb = check(answer)
    assert fb.passed, str(fb)


@pytest.mark.parametrize("check", [c for c, _ in CASES], ids=[c.__name__ for c, _ in CASES])
def test_stubs_are_not_done(check):
    def stub(*args):
        raise NotImplementedError

    def empty(*args):
        pass

    assert check(stub).not_done and check(empty).not_done
    assert "not done yet" in str(check(stub))


# -- the usual mistakes fail -----------------------------------------------------------------------------------------

def softmax_no_max(x):
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(np.asarray(x, np.float32))
        return e / e.sum(-1, keepdims=True)


def softmax_whole_array(x):  # normalises over everything, not each row
    e = np.exp(x - x.max())
    return e / e.sum()


def mask_strictly_below(t):  # forgets that a token may look at itself
    return np.tril(np.ones((t, t), bool), -1)


def attention_no_scale(q, k, v, mask):
    return attention(q * math.sqrt(q.shape[1]), k, v, mask)


def attention_ignores_mask(q, k, v, mask):
    return attention(q, k, v, np.ones_like(mask))


def layer_norm_unbiased(x, w, b, eps):  # divides by C - 1
    x = np.asarray(x, np.float64)
    c = x.shape[-1]
    return (layer_norm(x, np.ones(c), np.zeros(c), eps) * math.sqrt((c - 1) / c)) * w + b


def sinusoidal_swapped(n_pos, dim):  # cos in the even dims
    return sinusoidal(n_pos, dim)[:, [i ^ 1 for i in range(dim)]]


def rope_interleaved(x, positions, theta):  # pairs (2i, 2i+1), the GGUF layout, not HF's halves
    T, D = x.shape
    out = np.zeros((T, D))
    for t in range(T):
        for i in range(D // 2):
            w = positions[t] / theta ** (2 * i / D)
            a, b = float(x[t, 2 * i]), float(x[t, 2 * i + 1])
            out[t, 2 * i], out[t, 2 * i + 1] = a * math.cos(w) - b * math.sin(w), b * math.cos(w) + a * math.sin(w)
    return out


def kv_bytes_query_heads(config, batch_size, n_tokens):  # counts query heads instead of key/value heads
    return 2 * config.n_layer * batch_size * config.n_head * n_tokens * config.head_dim * 4


def greedy_off_by_one(model, prompt, n):  # returns the prompt's last prediction twice
    out = greedy(model, prompt, n)
    return [out[0]] + out[:-1]


MISTAKES = [(ex.check_softmax, softmax_no_max), (ex.check_softmax, softmax_whole_array),
            (ex.check_causal_mask, mask_strictly_below), (ex.check_attention, attention_no_scale),
            (ex.check_attention, attention_ignores_mask), (ex.check_layer_norm, layer_norm_unbiased),
            (ex.check_sinusoidal, sinusoidal_swapped), (ex.check_rope, rope_interleaved),
            (ex.check_kv_cache_bytes, kv_bytes_query_heads), (ex.check_greedy, greedy_off_by_one)]


@pytest.mark.parametrize("check,wrong", MISTAKES, ids=[w.__name__ for _, w in MISTAKES])
def test_mistakes_fail(check, wrong):
    fb = check(wrong)
    assert not fb.passed and not fb.not_done
    assert "FAIL" in str(fb)
