"""A previous-token head wired in at initialisation, so the copying circuit need not wait for one to form.

Copying a value from the prompt ("Repeat exactly: 4417" -> "4417") is done by an induction circuit (Olsson et al.
2022, "In-context Learning and Induction Heads"): a *previous-token head* writes, at each position, which token came
just before it; a later *induction head* then looks for the earlier position whose previous token is the current
token, and copies what stands there. Trained from random weights, the built-in model sits on a plateau until the
circuit forms (docs/training_log.md: between steps 1,000 and 2,000, later on some seeds; before it, no head of a
4,000-step checkpoint put more than 0.13 of its attention on the previous token). Wiring the first half in did not
end the plateau: it ran about 200 steps ahead of unwired runs, and the second half still had to be found by
training (docs/training_log.md, 2026-12-01, fourth session). Wiring both halves did not either: training erased the
circuit within 200 steps, and the loss ran behind unwired runs (the same log, fifth session).

A previous-token head needs a score that depends on the distance between query and key, not on the tokens. With
RoPE, q.k of a query at position m and a key at n is, pair of dimensions by pair, |q_i||k_i| cos(theta_i (m - n) +
phase_i), so constant q and k with phase_i = -theta_i score distance 1 highest. A constant q needs a direction that
every token's embedding shares; random embeddings have none (trained ones do: the shipped model's rows have a median
cosine of 0.78 with their mean). So:

    1. every row of wte gets the same vector c u added (u a random unit vector, |c u| as long as a random row):
       with tied embeddings this adds the same number to every logit, which softmax ignores
    2. in block 0, the query heads of key/value head 0 get q = A (cos theta_i, -sin theta_i) and that key head
       k = A (1, 0) in the `pairs` fastest-turning pairs (rotate-half layout, layers.apply_rope), as rank-1 terms
       u (x) q / g in c_attn (g: the mean of norm(row) . u, so a normalised embedding gives q)

With 16 pairs and A = 4, and q and k exactly these constants, the head would put 0.81 of its attention on the
previous token at any position (0.19 on the token itself and the one before the previous; not saturated, so
gradients still flow through it); the random weights beside the wired terms make it 0.68 at the built-in size.
Everything else keeps its random initial value; training may reshape or discard the head.

`wire_induction_head` wires the other half as well (a test of whether the first half waited for its reader):

    3. block 0's value head 0 reads the embedding's part in a 64-dimensional subspace E (orthogonal to u), and the
       c_proj rows of query head 0 write it, `write` times as long as an embedding's part there, into a subspace F
       (orthogonal to u and E): at position t, F now holds E's view of token t-1
    4. in block 1, query head 0 reads E (the current token) and key head 0 reads F (the previous token) into the
       `slow_pairs` slowest-turning RoPE pairs, through the same random map R: q.k is large where the key's previous
       token is the query's token, wherever it stands (those pairs turn by at most 0.3 rad over 100 positions)
    5. block 1's value head 0 reads a third subspace G and query head 0's c_proj rows write it back, `copy` times as
       long as an embedding's part there: with tied embeddings that raises the logit of the token found

All of that replaces the random values of just those columns and rows. On random tokens written twice, the built-in
size then predicts about 15 % of the second copy's tokens right at step 0 (unwired: 0 %); block 1's head puts about
0.3 of its attention on the right position. Not more: a match is read through 24 dimensions, so the score of a
random key has a standard deviation about half the match's. In training (builtin-v1i) none of it survives the first
200 steps, even with the wired entries held fixed: the wired signals have the size of an initial embedding, and
AdamW at 3e-3 grows the rest of the residual stream past them, so after the norms they shrink to noise.

What it leaves out: learned or sinusoidal positions (GPT-2), and keys shared differently than HF's repeat_kv order.
"""
from __future__ import annotations

import numpy as np

from minichat.config import ModelConfig


def wire_previous_token_head(params: dict[str, np.ndarray], config: ModelConfig, rng: np.random.Generator, *,
                             pairs: int | None = None, amplitude: float = 4.0) -> np.ndarray:
    """Change freshly initialised `params` in place as the module docstring says; returns the shared direction u.
    pairs: how many of the fastest-turning RoPE pairs carry the pattern (default 16, at most head_dim / 2)."""
    if config.positions != "rope" or config.norm != "rmsnorm":
        raise ValueError(f"the wiring needs RoPE and RMSNorm (a Llama-family model), not positions="
                         f"{config.positions!r}, norm={config.norm!r}")
    D, H, K = config.head_dim, config.n_head, config.n_kv_head
    pairs = min(16, D // 2) if pairs is None else pairs
    if not 1 <= pairs <= D // 2:
        raise ValueError(f"pairs must be 1..{D // 2} (head_dim / 2), not {pairs}")
    wte = params["wte"]
    u = rng.standard_normal(wte.shape[1]).astype(np.float32)
    u /= np.linalg.norm(u)
    wte += np.float32(np.linalg.norm(wte, axis=1).mean()) * u  # 1. the shared direction, as long as a random row

    normed = _unit_rows_norm(wte, config.norm_eps)
    g = np.float32((normed @ u).mean())  # what an embedding, RMS-normalised by block 0's ln_1, reads along u
    theta = config.rope_theta ** (-np.arange(pairs, dtype=np.float64) * 2 / D)  # the fastest-turning pairs
    q, k = np.zeros(D, np.float32), np.zeros(D, np.float32)
    q[:pairs], q[D // 2:D // 2 + pairs] = amplitude * np.cos(theta), -amplitude * np.sin(theta)  # phase -theta
    k[:pairs] = amplitude
    w = params["h.0.attn.c_attn.weight"]  # (C, (H + 2K) D): query heads, then key heads, then value heads
    for h in range(H // K):  # the query heads that read key/value head 0 (h // (H / K) == 0)
        w[:, h * D:(h + 1) * D] += np.outer(u, q) / g
    w[:, H * D:(H + 1) * D] += np.outer(u, k) / g
    return u


def _unit_rows_norm(wte: np.ndarray, eps: float) -> np.ndarray:  # (V, C) -> (V, C): what block 0's ln_1 gives
    return wte / np.sqrt((wte * wte).mean(axis=1, keepdims=True) + np.float32(eps))


def wire_induction_head(params: dict[str, np.ndarray], config: ModelConfig, rng: np.random.Generator,
                        u: np.ndarray, *, slow_pairs: int | None = None, amplitude: float = 8.0, write: float = 3.0,
                        copy: float = 20.0) -> None:
    """After `wire_previous_token_head` (which returned u): wire steps 3-5 of the module docstring into `params`.
    slow_pairs: how many of the slowest-turning RoPE pairs carry the match (default 12, at most head_dim / 2)."""
    C, D, H, K = config.n_embd, config.head_dim, config.n_head, config.n_kv_head
    slow_pairs = min(12, D // 2) if slow_pairs is None else slow_pairs
    if config.n_layer < 2 or C < 3 * D + 1 or not config.tie_embeddings:
        raise ValueError(f"the induction wiring needs 2 blocks, n_embd >= 3 head_dim + 1 and tied embeddings, not "
                         f"n_layer={config.n_layer}, n_embd={C}, head_dim={D}, tie_embeddings={config.tie_embeddings}")
    if not 1 <= slow_pairs <= D // 2:
        raise ValueError(f"slow_pairs must be 1..{D // 2} (head_dim / 2), not {slow_pairs}")
    m = rng.standard_normal((C, 3 * D))
    m -= np.outer(u, u @ m)  # off the shared direction
    E, F, G = np.split(np.linalg.qr(m)[0].astype(np.float32), 3, axis=1)  # (C, D) each, orthonormal columns
    wte = params["wte"]
    off_u = float(np.linalg.norm(wte - np.outer(wte @ u, u), axis=1).mean())  # an embedding row's length off u
    seen = float(np.linalg.norm(_unit_rows_norm(wte, config.norm_eps) @ E, axis=1).mean())  # |E^T ln_1(row)|
    v0 = (H + K) * D  # the columns of value head 0 in c_attn
    params["h.0.attn.c_attn.weight"][:, v0:v0 + D] = E  # 3.
    params["h.0.attn.c_proj.weight"][:D] = np.float32(write * off_u / seen) * F.T
    slow = np.r_[D // 2 - slow_pairs:D // 2, D - slow_pairs:D]  # both halves of the slowest pairs (rotate-half)
    r = np.linalg.qr(rng.standard_normal((D, 2 * slow_pairs)))[0].astype(np.float32)  # (D, 2 slow_pairs)
    w1 = params["h.1.attn.c_attn.weight"]
    w1[:, slow] = np.float32(amplitude) * (E @ r)  # 4. query head 0 reads the current token
    w1[:, H * D + slow] = np.float32(amplitude) * (F @ r)  # key head 0 reads the previous one
    w1[:, v0:v0 + D] = G  # 5.
    params["h.1.attn.c_proj.weight"][:D] = np.float32(copy * off_u / seen) * G.T
