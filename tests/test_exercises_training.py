"""The notebook-04 checkers: a correct answer passes, the classic mistakes fail, a stub is "not done yet".

The correct answers are written here from the textbook formulas with plain loops, independently of minichat, so these
tests also tie the library to the definitions.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from minichat.exercises import training as ex

# -- correct answers -------------------------------------------------------------------------------------------------


def softmax_backward(dp, p):
    out = np.zeros_like(dp, dtype=np.float64)
    for n in range(dp.shape[0]):
        for i in range(dp.shape[1]):  # ds_i = sum_j dp_j * p_j * ([i == j] - p_i)
            out[n, i] = sum(dp[n, j] * p[n, j] * ((i == j) - p[n, i]) for j in range(dp.shape[1]))
    return out


def cross_entropy(logits, targets, mask):
    x = np.asarray(logits, np.float64)
    n = float(sum(mask))
    loss, grad = 0.0, np.zeros_like(x)
    for i in range(x.shape[0]):
        m = max(x[i])
        z = sum(math.exp(v - m) for v in x[i])
        loss += mask[i] * (math.log(z) + m - x[i, targets[i]])
        for j in range(x.shape[1]):
            grad[i, j] = mask[i] * (math.exp(x[i, j] - m) / z - (j == targets[i])) / n
    return loss / n, grad


def layer_norm_backward(dy, x, w, eps):
    dy, x = np.asarray(dy, np.float64), np.asarray(x, np.float64)
    dx, dw, db = np.zeros_like(x), np.zeros(x.shape[1]), np.zeros(x.shape[1])
    C = x.shape[1]
    for r in range(x.shape[0]):
        mu = x[r].mean()
        sd = math.sqrt(((x[r] - mu) ** 2).mean() + eps)
        xhat = (x[r] - mu) / sd
        dw += dy[r] * xhat
        db += dy[r]
        g = dy[r] * w
        # the full Jacobian: d xhat_j / d x_i = ([i == j] - 1/C - xhat_i xhat_j / C) / sd
        for i in range(C):
            dx[r, i] = sum(g[j] * ((i == j) - 1 / C - xhat[i] * xhat[j] / C) for j in range(C)) / sd
    return dx, dw, db


def attention_backward(dout, q, k, v):
    q, k, v, dout = (np.asarray(a, np.float64) for a in (q, k, v, dout))
    T, D = q.shape
    s = q @ k.T / math.sqrt(D)
    s[np.triu_indices(T, 1)] = -np.inf
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dv = p.T @ dout
    dp = dout @ v.T
    ds = softmax_backward(dp, p) / math.sqrt(D)
    return ds @ k, ds.T @ q, dv


def adamw_step(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
    p = p * (1 - lr * weight_decay)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    p = p - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
    return p, m, v


def lr_schedule(step, warmup_steps, total_steps, lr, min_lr):
    if step <= warmup_steps:
        return lr * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2


CORRECT = {"softmax_backward": softmax_backward, "cross_entropy": cross_entropy,
           "layer_norm_backward": layer_norm_backward, "attention_backward": attention_backward,
           "adamw_step": adamw_step, "lr_schedule": lr_schedule}
CHECKERS = {"softmax_backward": ex.check_softmax_backward, "cross_entropy": ex.check_cross_entropy,
            "layer_norm_backward": ex.check_layer_norm_backward, "attention_backward": ex.check_attention_backward,
            "adamw_step": ex.check_adamw_step, "lr_schedule": ex.check_lr_schedule}

# -- the usual mistakes ----------------------------------------------------------------------------------------------


def softmax_backward_diagonal_only(dp, p):  # forgets the -p p^T part of the Jacobian
    return dp * p * (1 - p)


def cross_entropy_mean_over_all_rows(logits, targets, mask):  # divides by N, not by the mask's count
    loss, grad = cross_entropy(logits, targets, mask)
    n, total = float(sum(mask)), len(mask)
    return loss * n / total, grad * n / total


def cross_entropy_no_max_shift(logits, targets, mask):  # exp(1000) overflows
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.asarray(logits, np.float32)
        e = np.exp(x)
        p = e / e.sum(1, keepdims=True)
        n = float(sum(mask))
        loss = float(-(np.asarray(mask) * np.log(p[np.arange(len(targets)), targets])).sum() / n)
        grad = p.copy()
        grad[np.arange(len(targets)), targets] -= 1
        return loss, grad * np.asarray(mask)[:, None] / n


def layer_norm_backward_as_if_constant_stats(dy, x, w, eps):  # treats mean and variance as constants
    x = np.asarray(x, np.float64)
    mu, sd = x.mean(1, keepdims=True), np.sqrt(x.var(1, keepdims=True) + eps)
    xhat = (x - mu) / sd
    return dy * w / sd, (dy * xhat).sum(0), dy.sum(0)


def attention_backward_without_mask(dout, q, k, v):  # lets queries see the future
    q, k, v, dout = (np.asarray(a, np.float64) for a in (q, k, v, dout))
    D = q.shape[1]
    s = q @ k.T / math.sqrt(D)
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ds = softmax_backward(dout @ v.T, p) / math.sqrt(D)
    return ds @ k, ds.T @ q, p.T @ dout


def attention_backward_no_scale(dout, q, k, v):  # forgets the 1/sqrt(D) on the way back
    dq, dk, dv = attention_backward(dout, q, k, v)
    D = q.shape[1]
    return dq * math.sqrt(D), dk * math.sqrt(D), dv


def adamw_coupled_decay(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):  # Adam + L2: decay in the gradient
    return adamw_step(p, g + weight_decay * p, m, v, t, lr, beta1, beta2, eps, 0.0)


def adamw_no_bias_correction(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
    p = p * (1 - lr * weight_decay)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    return p - lr * m / (np.sqrt(v) + eps), m, v


def lr_schedule_warmup_from_zero_index(step, warmup_steps, total_steps, lr, min_lr):  # counts steps from 0
    return lr_schedule(step - 1, warmup_steps, total_steps, lr, min_lr) if step > 1 else 0.0


def lr_schedule_cosine_to_zero(step, warmup_steps, total_steps, lr, min_lr):  # ignores min_lr
    if step <= warmup_steps:
        return lr * step / warmup_steps
    return lr * (1 + math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps))) / 2


MISTAKES = [("softmax_backward", softmax_backward_diagonal_only),
            ("cross_entropy", cross_entropy_mean_over_all_rows), ("cross_entropy", cross_entropy_no_max_shift),
            ("layer_norm_backward", layer_norm_backward_as_if_constant_stats),
            ("attention_backward", attention_backward_without_mask),
            ("attention_backward", attention_backward_no_scale),
            ("adamw_step", adamw_coupled_decay), ("adamw_step", adamw_no_bias_correction),
            ("lr_schedule", lr_schedule_warmup_from_zero_index), ("lr_schedule", lr_schedule_cosine_to_zero)]


@pytest.mark.parametrize("name", list(CHECKERS))
def test_correct_answers_pass(name):
    fb = CHECKERS[name](CORRECT[name])
    assert fb.passed, str(fb)


@pytest.mark.parametrize("name,fn", MISTAKES, ids=[f"{n}-{f.__name__}" for n, f in MISTAKES])
def test_mistakes_fail(name, fn):
    fb = CHECKERS[name](fn)
    assert not fb.passed and not fb.not_done, str(fb)
    assert "FAIL" in str(fb)


@pytest.mark.parametrize("name", list(CHECKERS))
def test_stubs_are_not_done(name):
    def stub(*args):
        raise NotImplementedError

    fb = CHECKERS[name](stub)
    assert fb.not_done and not fb.passed
    assert "not done yet" in str(fb)
    assert CHECKERS[name](lambda *args: None).not_done
