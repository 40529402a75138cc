"""Growing a trained model deeper without changing what it computes (Net2Net's "deeper" step, for a pre-norm block).

A pre-norm transformer block adds two branches to the residual stream, x + attn(norm(x)) and then x + mlp(norm(x)),
and each branch ends in a projection (`attn.c_proj`, `mlp.c_proj`). A block whose two output projections are zero
adds exactly 0.0 to the stream: it is the identity, whatever its other weights are. So a model with extra blocks,
each such a block, computes the same logits as the model it grew from, bit for bit, and training starts where the
smaller model ended. The new blocks still learn: the gradient of an output projection is its input (the branch's
activations, which the random inner weights make non-zero) times the gradient arriving from above.

    deepen(params, small, fresh, big)   the small model's blocks spread over the big model's depth, identity blocks
                                        (fresh's inner weights, zero output projections) in the gaps

Where the new blocks go: spread evenly, new block k after the small model's block ceil((k + 1) * L / E) - 1 (L old
blocks, E new ones): 4 -> 6 gives old, old, new, old, old, new. Chen, Goodfellow and Shlens (2016), "Net2Net:
Accelerating Learning via Knowledge Transfer", section 3.2; Net2Net initialises the new layer's weights as an
identity matrix, which a residual network gets from zero output projections instead.

What it leaves out: growing wider (Net2WiderNet), and any other change of shape: only n_layer may differ.
"""
from __future__ import annotations

import numpy as np

from minichat.config import ModelConfig


def placement(small_layers: int, big_layers: int) -> list[int | None]:
    """For each block of the big model, the small model's block it copies, or None for a new identity block."""
    if not 0 < small_layers <= big_layers:
        raise ValueError(f"can only grow deeper: {small_layers} -> {big_layers} blocks")
    extra = big_layers - small_layers
    after = [-(-(k + 1) * small_layers // extra) - 1 for k in range(extra)]  # new block k follows this old block
    order: list[int | None] = []
    for j in range(small_layers):
        order.append(j)
        order += [None] * after.count(j)
    return order


def deepen(params: dict[str, np.ndarray], small: ModelConfig, fresh: dict[str, np.ndarray],
           big: ModelConfig) -> dict[str, np.ndarray]:
    """The big model's parameters: the small model's (`params`) for every block it had and every tensor outside the
    blocks; for the new blocks, `fresh`'s (the big model's own initialisation) with both output projections zeroed."""
    if small.replace(n_layer=big.n_layer) != big:
        raise ValueError(f"only the number of blocks may differ: {small} -> {big}")
    out = {k: v.copy() for k, v in params.items() if not k.startswith("h.")}  # embeddings, final norm, head
    for i, j in enumerate(placement(small.n_layer, big.n_layer)):
        prefix = f"h.{i}."
        names = [k for k in fresh if k.startswith(prefix)]
        for k in names:
            if j is not None:  # a block the small model had: its weights, under its new number
                out[k] = params[f"h.{j}." + k[len(prefix):]].copy()
            elif k.endswith(("attn.c_proj.weight", "mlp.c_proj.weight", "attn.c_proj.bias", "mlp.c_proj.bias")):
                out[k] = np.zeros_like(fresh[k])  # the branch adds nothing: the block is the identity
            else:
                out[k] = fresh[k].copy()
    missing = set(fresh) - set(out)
    if missing:
        raise ValueError(f"deepen left tensors without a value: {sorted(missing)[:5]}")
    return out
