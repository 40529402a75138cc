"""Smeared keys as a scaffold: used while the copying circuit forms, then taken away during training.

A model with smeared keys (`ModelConfig.smear_keys`, `layers.smear_keys`) forms its copying circuit early: each key
is a k_s + (1 - a) k_{s-1}, so an induction head can match "the token before this key" without waiting for a
previous-token head in an earlier block (docs/training_log.md: builtin-v1k left the loss plateau by step 800 on
three seeds; unsmeared runs at 1,600-2,400). But no other format has the field: such a model cannot be exported to
Hugging Face or GGUF, and every decode step pays one more pass over the cached keys.

So a stage can remove the smear while it trains. Over its first `steps` steps the previous key's share 1 - a of
every key head is capped, the cap falling linearly from 1 to 0:

    cap(t) = max(1 - t / steps, tiny)            share 1 - a = sigmoid(-logit), so
    logit >= floor(t) = log((1 - cap) / cap)     after each optimiser step, for every `*.attn.smear`

A projected gradient step: AdamW updates the logits as it likes, then each is raised to the floor if below it. The
cap binds once it falls below a head's own share (the builtin-v1k heads used 0.2-0.8), so the heads that lean on the
previous key give it up gradually, and the rest of the model has the remaining steps to take over its work (a
previous-token head in an earlier block: the circuit unsmeared models grow, now with a reader that needs it). After
`steps` the floor stays at the `tiny` cap's logit, where the previous key weighs 1e-4, and `unsmear` drops the
tensors: the same function to about that weight, as an ordinary Llama model.

Measured, it does not keep the circuit (docs/training_log.md, builtin-v2wks): the smeared first stage put its
copying head in block 0, where no earlier block can hold a previous-token head, and once the cap bound, the loss
went back up to the plateau's level. The mechanism is kept, with its tests, as the record of that try.

What it leaves out: any other schedule (linear in the share is the simplest that starts non-binding and ends at 0),
and smeared keys outside this trainer (the cap is applied by `train_model`'s `after_step` hook).
"""
from __future__ import annotations

import numpy as np

from minichat.model.transformer import Transformer

TINY = 1e-4  # the previous key's largest share once the schedule has run: what unsmear then drops


def smear_floor(step: int, steps: int) -> float:
    """The least smear logit allowed after optimiser step `step` of a `steps`-step removal (-inf: no floor yet)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"the removal takes a whole number of steps >= 1, not {steps!r}")
    cap = max(1.0 - step / steps, TINY)
    return -np.inf if cap >= 1.0 else float(np.log((1.0 - cap) / cap))


def hold_smear_floor(params: dict[str, np.ndarray], floor: float) -> int:
    """Raise every `*.attn.smear` logit below `floor` to it, in place; returns how many were raised."""
    raised = 0
    for name, p in params.items():
        if name.endswith(".attn.smear"):
            low = p < floor
            raised += int(low.sum())
            p[low] = np.float32(floor)
    return raised


def unsmear(model: Transformer) -> Transformer:
    """The model without smeared keys: the config's smear_keys off, the `*.attn.smear` tensors dropped (the weights
    are shared, not copied). Refuses a model whose previous keys still weigh more than the schedule's last cap."""
    if not model.config.smear_keys:
        raise ValueError("this model does not smear its keys; there is nothing to remove")
    smear = {k: v for k, v in model.params.items() if k.endswith(".attn.smear")}
    share = max(float((1.0 / (1.0 + np.exp(v.astype(np.float64)))).max()) for v in smear.values())
    if share > 1.01 * TINY:
        raise ValueError(f"a key head still gives the previous key a share of {share:.3g} (> {TINY}); removing it "
                         f"would change the model: hold the smear floor for the whole schedule first")
    params = {k: v for k, v in model.params.items() if k not in smear}
    return Transformer(model.config.replace(smear_keys=False), params, use_numba=model.use_numba)
