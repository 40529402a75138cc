"""Checkers for notebook 04 (training): write the backward passes and the optimiser yourself, then compare with
minichat's.

Each `check_*` runs your function on hand-made cases (the traps: overflow, the loss mask, a masked future key,
AdamW's bias correction and decoupled decay) and random ones, and compares with `minichat.train`:

    check_softmax_backward(fn)      fn(dp, p) -> ds                       p = softmax(s) row by row, (N, S) arrays
    check_cross_entropy(fn)         fn(logits, targets, mask) -> (loss, dlogits)    mean over the rows mask keeps
    check_layer_norm_backward(fn)   fn(dy, x, w, eps) -> (dx, dw, db)     y = (x - mean) / sqrt(var + eps) * w + b
    check_attention_backward(fn)    fn(dout, q, k, v) -> (dq, dk, dv)     one causal head, (T, D) arrays
    check_adamw_step(fn)            fn(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay) -> (p, m, v)
    check_lr_schedule(fn)           fn(step, warmup_steps, total_steps, lr, min_lr) -> learning rate

The conventions the library follows, which yours must follow too:
  * the loss is the mean of -log softmax(logits)[target] over the rows whose mask is 1 (rows with mask 0 count for
    nothing, not even in the denominator), and dlogits is the gradient of that mean;
  * attention is softmax(q k^T / sqrt(D)) v with key j hidden from query i when j > i;
  * AdamW (torch's): p <- p (1 - lr wd), then m, v updated, then p <- p - lr m_hat / (sqrt(v_hat) + eps) with
    m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t); t counts from 1;
  * the schedule: lr * step / warmup_steps while step <= warmup_steps, then a half cosine from lr down to min_lr
    at step == total_steps (steps count from 1).

References: `minichat.train.grads` (softmax_backward, cross_entropy, layer_norm_forward/backward,
attention_forward/backward), `minichat.train.AdamW`, `minichat.train.lr_at`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minichat.config import TrainConfig
from minichat.exercises import Feedback, run_cases
from minichat.model import layers
from minichat.train import grads as G
from minichat.train.optim import AdamW, lr_at


def _same_arrays(got: Any, expected: Any, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Same structure (an array, a number, or a tuple of them), close values, no NaN."""
    if isinstance(expected, tuple):
        return (isinstance(got, (tuple, list)) and len(got) == len(expected)
                and all(_same_arrays(g, e, rtol, atol) for g, e in zip(got, expected)))
    try:
        g = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    e = np.asarray(expected, dtype=np.float64)
    return g.shape == e.shape and bool(np.isfinite(g).all()) and bool(np.allclose(g, e, rtol=rtol, atol=atol))


def _rand(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def check_softmax_backward(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], seed: int = 0) -> Feedback:
    """fn(dp, p) -> ds, the gradient with respect to the scores s of each row's softmax p = softmax(s)."""
    rng = np.random.default_rng(seed)
    cases = [("a uniform dp moves nothing (softmax ignores a constant)", np.ones((1, 3), np.float32),
              layers.softmax(np.array([[0.0, 1.0, 2.0]], np.float32))),
             ("dp on one entry", np.array([[0.0, 1.0, 0.0]], np.float32),
              layers.softmax(np.array([[0.5, -1.0, 2.0]], np.float32))),
             ("a zero-probability entry gets no gradient", np.array([[1.0, 2.0, 3.0]], np.float32),
              np.array([[0.25, 0.0, 0.75]], np.float32))]
    for k in range(4):
        n, s = int(rng.integers(1, 5)), int(rng.integers(2, 9))
        cases.append((f"random #{k}", _rand(rng, n, s), layers.softmax(_rand(rng, n, s, scale=2.0))))
    return run_cases("softmax_backward", fn,
                     [(name, (dp.copy(), p.copy()), G.softmax_backward(dp, p)) for name, dp, p in cases],
                     same=_same_arrays)


def check_cross_entropy(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple], seed: int = 0) -> Feedback:
    """fn(logits (N, V), targets (N,), mask (N,)) -> (loss, dlogits): the mean over mask-1 rows and its gradient."""
    rng = np.random.default_rng(seed)
    uniform = np.zeros((2, 4), np.float32)
    cases = [("equal logits: loss = log V", uniform, np.array([1, 3]), np.ones(2, np.float32)),
             ("a masked row counts for nothing", _rand(rng, 3, 5), np.array([0, 4, 2]),
              np.array([1, 0, 1], np.float32)),
             ("huge logits (subtract the max, or exp overflows)", np.array([[1000.0, 990.0, 995.0]], np.float32),
              np.array([1]), np.ones(1, np.float32))]
    for k in range(4):
        n, v = int(rng.integers(2, 7)), int(rng.integers(2, 12))
        mask = (rng.random(n) < 0.7).astype(np.float32)
        mask[0] = 1.0
        cases.append((f"random #{k}", _rand(rng, n, v, scale=3.0), rng.integers(0, v, n), mask))
    return run_cases("cross_entropy", fn,
                     [(name, (x.copy(), t.copy(), m.copy()), tuple(G.cross_entropy(x.astype(np.float64), t, m)))
                      for name, x, t, m in cases], same=_same_arrays)


def check_layer_norm_backward(fn: Callable[..., tuple], seed: int = 0) -> Feedback:
    """fn(dy, x, w, eps) -> (dx, dw, db) for y = (x - mean) / sqrt(var + eps) * w + b, rows along the last axis."""
    rng = np.random.default_rng(seed)
    cases = [("dy = 1 everywhere: dx = 0 (a constant shift of y is the bias's job)", np.ones((2, 4), np.float32),
              _rand(rng, 2, 4), np.ones(4, np.float32)),
             ("one row, gain 2", _rand(rng, 1, 5), _rand(rng, 1, 5, scale=3.0), np.full(5, 2.0, np.float32))]
    for k in range(4):
        n, c = int(rng.integers(1, 6)), int(rng.integers(2, 10))
        cases.append((f"random #{k}", _rand(rng, n, c), _rand(rng, n, c, scale=2.0), _rand(rng, c)))

    def reference(dy, x, w):
        _, cache = G.layer_norm_forward(x.astype(np.float64), w.astype(np.float64), None, 1e-5)
        return tuple(G.layer_norm_backward(dy.astype(np.float64), cache))

    return run_cases("layer_norm_backward", fn,
                     [(name, (dy.copy(), x.copy(), w.copy(), 1e-5), reference(dy, x, w)) for name, dy, x, w in cases],
                     same=lambda g, e: _same_arrays(g, e, rtol=1e-3, atol=1e-4))


def check_attention_backward(fn: Callable[..., tuple], seed: int = 0) -> Feedback:
    """fn(dout, q, k, v) -> (dq, dk, dv) for one causal head: out = softmax(q k^T / sqrt(D), future masked) v."""
    rng = np.random.default_rng(seed)
    cases = [("one token: it can only attend to itself", *(_rand(rng, 1, 3) for _ in range(4))),
             ("the last key is seen only by the last query (its dk comes from one row)",
              *(_rand(rng, 3, 2) for _ in range(4)))]
    for k in range(4):
        t, d = int(rng.integers(2, 7)), int(rng.integers(1, 6))
        cases.append((f"random #{k}", *(_rand(rng, t, d) for _ in range(4))))

    def reference(dout, q, k, v):
        T = q.shape[0]
        up = [a.astype(np.float64)[None, None] for a in (q, k, v)]  # (1, 1, T, D): one batch row, one head
        _, cache = G.attention_forward(*up, layers.causal_mask(T))
        return tuple(g[0, 0] for g in G.attention_backward(dout.astype(np.float64)[None, None], cache))

    return run_cases("attention_backward", fn,
                     [(name, (do.copy(), q.copy(), k.copy(), v.copy()), reference(do, q, k, v))
                      for name, do, q, k, v in cases], same=lambda g, e: _same_arrays(g, e, rtol=1e-3, atol=1e-5))


def check_adamw_step(fn: Callable[..., tuple], seed: int = 0) -> Feedback:
    """fn(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay) -> (new p, new m, new v), t = 1 for the first step."""
    rng = np.random.default_rng(seed)
    cases = []
    for name, t, wd in (("the first step (bias correction makes it ~lr * sign(g))", 1, 0.0),
                        ("the first step with weight decay", 1, 0.1),
                        ("step 10 with existing moments", 10, 0.1), ("step 1000: bias correction ~1", 1000, 0.0)):
        p, g = _rand(rng, 3, 4), _rand(rng, 3, 4)
        m = np.zeros_like(p) if t == 1 else _rand(rng, 3, 4, scale=0.1)
        v = np.zeros_like(p) if t == 1 else np.abs(_rand(rng, 3, 4, scale=0.1))
        cases.append((name, p, g, m, v, t, 0.01, 0.9, 0.95, 1e-8, wd))

    def reference(p, g, m, v, t, lr, b1, b2, eps, wd):
        config = TrainConfig(beta1=b1, beta2=b2, eps=eps, weight_decay=wd)
        params = {"w": p.copy()}
        opt = AdamW(params, config, decay=["w"])
        opt.m["w"][...], opt.v["w"][...], opt.t = m, v, t - 1
        opt.step({"w": g}, lr)
        return params["w"], opt.m["w"], opt.v["w"]

    return run_cases("adamw_step", fn, [(name, tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args),
                                         reference(*args)) for name, *args in cases],
                     same=lambda g, e: _same_arrays(g, e, rtol=1e-5, atol=1e-7))


def check_lr_schedule(fn: Callable[[int, int, int, float, float], float], seed: int = 0) -> Feedback:
    """fn(step, warmup_steps, total_steps, lr, min_lr) -> the learning rate of step `step` (from 1)."""
    rng = np.random.default_rng(seed)
    cases = [("first warmup step", 1, 10, 100, 1.0, 0.1), ("end of warmup: the peak", 10, 10, 100, 1.0, 0.1),
             ("half-way through the decay: the middle of lr and min_lr", 55, 10, 100, 1.0, 0.1),
             ("the last step: min_lr", 100, 10, 100, 1.0, 0.1), ("no warmup", 1, 0, 10, 0.5, 0.0)]
    for k in range(5):
        total = int(rng.integers(10, 200))
        warm = int(rng.integers(0, total // 2))
        cases.append((f"random #{k}", int(rng.integers(1, total + 1)), warm, total, float(rng.uniform(1e-4, 1e-2)),
                      0.0))

    def reference(step, warm, total, lr, min_lr):
        return lr_at(step, TrainConfig(warmup_steps=warm, steps=total, lr=lr, min_lr=min_lr))

    return run_cases("lr_schedule", fn, [(name, args, reference(*args)) for name, *args in cases],
                     same=lambda g, e: _same_arrays(g, e, rtol=1e-6, atol=1e-12))
