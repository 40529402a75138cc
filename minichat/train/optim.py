"""The optimiser side of training: AdamW, the learning-rate schedule, and global-norm gradient clipping.

    AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"), step t with gradient g:
        p <- p - lr * wd * p                        decay, decoupled: it does not pass through the moments
        m <- b1 m + (1 - b1) g                      running mean of gradients
        v <- b2 v + (1 - b2) g^2                    running mean of squared gradients
        p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)      bias-corrected, per-parameter step

    schedule: linear warmup to the peak lr over `warmup_steps`, then cosine (or linear) decay to `min_lr`
    clipping: if the L2 norm of *all* gradients together exceeds `max_norm`, scale them all by max_norm / norm

Parameters and gradients are dicts of float32 arrays keyed by parameter name (see minichat/model/transformer.py).
The optimiser updates the parameter arrays *in place*, so a `Transformer` holding them sees every step. The numbers
follow torch.optim.AdamW and torch.nn.utils.clip_grad_norm_ exactly (the tests check 10 steps against them).

What it leaves out: other optimisers (SGD, Lion, Muon), per-group learning rates, fused multi-tensor kernels
(measured: the whole update of the built-in model costs ~2% of a training step in plain NumPy).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from minichat.config import TrainConfig


def lr_at(step: int, config: TrainConfig) -> float:
    """The learning rate of optimiser step `step` (1-based: the first update is step 1).

    Warmup: lr * step / warmup_steps for step <= warmup_steps. Then, with progress going from 0 (just after warmup)
    to 1 (step == config.steps): cosine min_lr + (lr - min_lr) * (1 + cos(pi * progress)) / 2, linear
    lr - (lr - min_lr) * progress, or constant lr. Steps past config.steps keep min_lr.
    """
    if step < 1:
        raise ValueError(f"optimiser steps are numbered from 1, got {step}")
    c = config
    if step <= c.warmup_steps:
        return c.lr * step / c.warmup_steps
    if c.schedule == "constant":
        return c.lr
    span = c.steps - c.warmup_steps
    progress = 1.0 if span <= 0 else min(1.0, (step - c.warmup_steps) / span)
    if c.schedule == "linear":
        return c.lr - (c.lr - c.min_lr) * progress
    return c.min_lr + (c.lr - c.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def global_norm(grads: Mapping[str, np.ndarray]) -> float:
    """sqrt of the sum of every gradient entry squared (accumulated in float64)."""
    total = 0.0
    for g in grads.values():
        flat = g.reshape(-1)
        total += float(np.dot(flat, flat))  # one BLAS dot per tensor, no temporary
    return math.sqrt(total)


def clip_grad_norm(grads: Mapping[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients in place so their global norm is at most `max_norm`; return the norm *before* clipping.

    As torch.nn.utils.clip_grad_norm_: the factor is max_norm / (norm + 1e-6), applied only when it is below 1.
    max_norm <= 0 measures without clipping.
    """
    norm = global_norm(grads)
    if max_norm > 0:
        factor = max_norm / (norm + 1e-6)
        if factor < 1.0:
            for g in grads.values():
                g *= np.float32(factor)
    return norm


def decays(name: str, config: TrainConfig) -> bool:
    """Whether parameter `name` gets weight decay: matrices inside the blocks always; embeddings and the untied head
    only with `decay_embeddings`; norm gains, biases and smear logits only with `decay_norms_and_biases`."""
    if name in ("wte", "wpe", "lm_head"):
        return config.decay_embeddings
    if name.endswith(".bias") or ".ln_" in name or name.startswith("ln_") or name.endswith(".smear"):
        return config.decay_norms_and_biases
    return True


class AdamW:
    """AdamW over a dict of float32 parameter arrays, updated in place. `state_dict()` / `load_state_dict()` give
    exact resume (the moments are saved bit for bit)."""

    def __init__(self, params: Mapping[str, np.ndarray], config: TrainConfig,
                 decay: Iterable[str] | None = None):
        """params: name -> float32 array (the model's own arrays). decay: names that get weight decay (default: the
        rule of `decays`)."""
        self.params = params
        self.config = config
        self.decay = set(n for n in params if decays(n, config)) if decay is None else set(decay)
        unknown = self.decay - set(params)
        if unknown:
            raise ValueError(f"decay names parameters that do not exist: {sorted(unknown)[:5]}")
        self.m = {n: np.zeros_like(p) for n, p in params.items()}  # first moments, shaped like the parameters
        self.v = {n: np.zeros_like(p) for n, p in params.items()}  # second moments
        self.t = 0  # updates taken so far
        self._tmp = {n: np.empty_like(p) for n, p in params.items()}  # scratch, reused every step

    def step(self, grads: Mapping[str, np.ndarray], lr: float) -> None:
        """One update of every parameter with its gradient, at learning rate `lr`."""
        missing = set(self.params) - set(grads)
        if missing:
            raise ValueError(f"no gradient for parameter(s) {sorted(missing)[:5]}")
        c = self.config
        self.t += 1
        b1, b2 = c.beta1, c.beta2
        bc1, bc2 = 1.0 - b1 ** self.t, 1.0 - b2 ** self.t
        step_size = np.float32(lr / bc1)
        inv_sqrt_bc2 = np.float32(1.0 / math.sqrt(bc2))
        eps = np.float32(c.eps)
        for name, p in self.params.items():
            g, m, v, tmp = grads[name], self.m[name], self.v[name], self._tmp[name]
            if name in self.decay and c.weight_decay:
                p *= np.float32(1.0 - lr * c.weight_decay)
            m *= np.float32(b1)  # m = b1 m + (1 - b1) g, in place
            np.multiply(g, np.float32(1.0 - b1), out=tmp)
            m += tmp
            v *= np.float32(b2)  # v = b2 v + (1 - b2) g^2, in place
            np.multiply(g, g, out=tmp)
            tmp *= np.float32(1.0 - b2)
            v += tmp
            np.sqrt(v, out=tmp)  # tmp = sqrt(v) / sqrt(bc2) + eps: torch's order of operations
            tmp *= inv_sqrt_bc2
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= step_size
            p -= tmp

    def state_dict(self) -> dict[str, np.ndarray]:
        """The moments as arrays named "m.<param>" / "v.<param>", and the step count as "t" (a 0-d int64 array)."""
        state = {f"m.{n}": a for n, a in self.m.items()}
        state.update({f"v.{n}": a for n, a in self.v.items()})
        state["t"] = np.array(self.t, dtype=np.int64)
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what `state_dict` returned (copied into the existing buffers)."""
        for prefix, moments in (("m.", self.m), ("v.", self.v)):
            for n, buf in moments.items():
                key = prefix + n
                if key not in state:
                    raise ValueError(f"optimiser state lacks {key!r}: it was saved for another model")
                if tuple(state[key].shape) != buf.shape:
                    raise ValueError(f"optimiser state {key!r} has shape {tuple(state[key].shape)}, the parameter "
                                     f"has {buf.shape}: it was saved for another model")
                np.copyto(buf, state[key])
        self.t = int(state["t"])
