"""The decoder-only transformer forward: token ids in, next-token logits out, with an optional KV cache.

    x = wte[ids] (+ wpe[pos] or sinusoids[pos])               embed          (B, T) -> (B, T, C)
    for each block:                                          pre-norm residual blocks (GPT-2, Llama)
        x = x + attn_proj(attention(norm_1(x)))              RoPE rotates q and k here when positions="rope"
        x = x + mlp(norm_2(x))                               GELU-tanh or SwiGLU
    logits = norm_f(x) @ (wte or lm_head).T                  (B, T, C) -> (B, T, V)

Parameters are a flat dict of float32 arrays named as in GPT-2's checkpoints, for both families, so a loader is a
readable renaming (see `param_shapes`). Linear weights are stored (in, out): `x @ w` feeds BLAS a row-major matrix
with no transpose. Query, key and value weights are one concatenated `c_attn` matrix, one matmul instead of three.

Batches of unequal sequences use right padding: `lengths[b]` says how many of row b's T ids are real. Each row's
positions continue from its own cache length, only its real tokens enter the cache, and the mask hides padding and
the future. Padding queries get finite, meaningless logits; callers read row b's logits at t < lengths[b], or ask
for `last_only` (each row's last real position only: a generation loop's prefill needs no other logits).

Speed lives behind one `if` in `forward`: with `use_numba` (the default) the norms, linear layers and MLPs run on
`FastOps` (minichat/model/fast.py: Numba kernels, a small-batch matmul for batched decoding, its thread pool),
which has the same functions as layers.py; otherwise layers.py's NumPy runs. Both compute the same numbers.

What it leaves out: training (minichat/train has the backward), dropout, attention-logit soft-capping, RoPE scaling.
"""
from __future__ import annotations

import copy
from contextlib import AbstractContextManager, nullcontext

import numpy as np

from minichat.config import ModelConfig
from minichat.errors import CheckpointError
from minichat.model import layers
from minichat.model.fast import FastOps
from minichat.model.kv_cache import KVCache

# The tensors of one block, as named in the parameter dict after the "h.{i}." prefix (the optional ones may be absent).
BLOCK_TENSORS = ("ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                 "attn.c_proj.weight", "attn.c_proj.bias", "mlp.c_gate.weight", "mlp.c_gate.bias", "mlp.c_fc.weight",
                 "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias", "attn.smear")


def param_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape for `config` (the contract loaders and `init_params` follow)."""
    c = config
    C, V, F, D = c.n_embd, c.vocab_size, c.n_inner, c.head_dim
    qkv = (c.n_head + 2 * c.n_kv_head) * D  # q heads, then k heads, then v heads
    shapes: dict[str, tuple[int, ...]] = {"wte": (V, C)}
    if c.positions == "learned":
        shapes["wpe"] = (c.n_ctx, C)
    norm_names = ("weight", "bias") if c.norm == "layernorm" and c.bias else ("weight",)
    for i in range(c.n_layer):
        p = f"h.{i}."
        for ln in ("ln_1", "ln_2"):
            shapes.update({f"{p}{ln}.{n}": (C,) for n in norm_names})
        shapes[p + "attn.c_attn.weight"] = (C, qkv)
        shapes[p + "attn.c_proj.weight"] = (c.n_head * D, C)
        if c.smear_keys:
            shapes[p + "attn.smear"] = (c.n_kv_head,)  # per key head, the logit of the current key's share
        if c.mlp == "swiglu":
            shapes[p + "mlp.c_gate.weight"] = (C, F)
        shapes[p + "mlp.c_fc.weight"] = (C, F)
        shapes[p + "mlp.c_proj.weight"] = (F, C)
        if c.bias:
            shapes.update({p + "attn.c_attn.bias": (qkv,), p + "attn.c_proj.bias": (C,), p + "mlp.c_fc.bias": (F,),
                           p + "mlp.c_proj.bias": (C,)})
            if c.mlp == "swiglu":
                shapes[p + "mlp.c_gate.bias"] = (F,)
    shapes.update({f"ln_f.{n}": (C,) for n in norm_names})
    if not c.tie_embeddings:
        shapes["lm_head"] = (V, C)
    return shapes


def init_params(config: ModelConfig, rng: np.random.Generator, std: float = 0.02) -> dict[str, np.ndarray]:
    """Random parameters as GPT-2 initialises them: weights ~ N(0, std), the residual projections (`c_proj`) scaled
    by 1/sqrt(2 L) so the residual stream's variance does not grow with depth, biases 0, norm gains 1."""
    params = {}
    for name, shape in param_shapes(config).items():
        if ".ln_" in name or name.startswith("ln_"):
            params[name] = (np.ones if name.endswith("weight") else np.zeros)(shape, dtype=np.float32)
        elif name.endswith("bias") or name.endswith("attn.smear"):  # smear 0: each key half its own, half the last
            params[name] = np.zeros(shape, dtype=np.float32)
        else:
            scale = std / np.sqrt(2 * config.n_layer) if name.endswith("c_proj.weight") else std
            params[name] = (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))
    return params


def check_params(config: ModelConfig, params: dict[str, np.ndarray]) -> None:
    """Raise CheckpointError naming the first missing, unexpected or wrongly shaped tensor."""
    expected = param_shapes(config)
    for name, shape in expected.items():
        if name not in params:
            raise CheckpointError(f"missing tensor {name!r} (expected shape {shape}); the checkpoint does not match "
                                  f"the config (n_layer={config.n_layer}, family={config.family})")
        got = tuple(params[name].shape)
        if got != shape:
            raise CheckpointError(f"tensor {name!r} has shape {got} but the config expects {shape}")
        if params[name].dtype != np.float32:
            raise CheckpointError(f"tensor {name!r} is {params[name].dtype}; minichat computes in float32, convert "
                                  f"it with .astype(np.float32) first")
    extra = sorted(set(params) - set(expected))
    if extra:
        raise CheckpointError(f"unexpected tensor(s) {extra[:5]} for this config; wrong config or wrong file?")


class Transformer:
    """A GPT-2- or Llama-family model over a dict of float32 parameters (see `param_shapes`)."""

    def __init__(self, config: ModelConfig, params: dict[str, np.ndarray], use_numba: bool = True,
                 threads: int | None = None):
        """use_numba: run the norms, and the matrix products of batched decoding, on the Numba kernels of fast.py,
        which agree with NumPy to ~1e-6; False keeps everything in the plain NumPy of layers.py.
        threads: how many threads fast.py's matmul kernel may use (default: as many as BLAS uses)."""
        check_params(config, params)
        c = config
        self.config, self.params, self.use_numba = config, params, use_numba
        self.fast = FastOps(params, threads)
        self._blocks = [{name: params.get(f"h.{i}.{name}") for name in BLOCK_TENSORS} for i in range(c.n_layer)]
        self._head = params["wte"] if c.tie_embeddings else params["lm_head"]  # (V, C)
        self._sinusoids = layers.sinusoidal_table(c.n_ctx, c.n_embd) if c.positions == "sinusoidal" else None
        self._rope = layers.rope_tables(c.n_ctx, c.head_dim, c.rope_theta) if c.positions == "rope" else None
        self._turn1 = (None, None)  # the RoPE angle of one position (cos, sin), for smeared keys
        if self._rope is not None:
            self._turn1 = tuple(t[1] for t in layers.rope_tables(2, c.head_dim, c.rope_theta))

    def __repr__(self) -> str:
        return f"Transformer({self.config.family}, {self.n_params / 1e6:.1f}M parameters, {self.config})"

    @property
    def n_params(self) -> int:
        return sum(p.size for p in self.params.values())

    def new_cache(self, batch_size: int = 1, max_len: int | None = None) -> KVCache:
        """An empty KV cache for `batch_size` rows of up to `max_len` tokens (default: the context length)."""
        c = self.config
        max_len = c.n_ctx if max_len is None else max_len
        if max_len > c.n_ctx:
            raise ValueError(f"max_len {max_len} exceeds the model's context length n_ctx={c.n_ctx}")
        return KVCache(c.n_layer, batch_size, c.n_kv_head, max_len, c.head_dim)

    def first_blocks(self, n: int) -> "Transformer":
        """A shallow copy (the same weights) that runs only the first n blocks: its residual stream (forward with
        return_hidden=True) stops at block n. For readers of a middle layer, such as safety/semantic.py's probe."""
        if not 0 <= n <= self.config.n_layer:
            raise ValueError(f"n must be between 0 and the model's {self.config.n_layer} blocks, got {n}")
        short = copy.copy(self)
        short._blocks = self._blocks[:n]
        return short

    def small_batch_decoding(self) -> AbstractContextManager[None]:
        """A block inside which batched decode steps (2..16 rows) run every layer's products on fast.py's kernel
        (see `FastOps.small_batch_decoding`); with use_numba=False, a block that changes nothing."""
        return self.fast.small_batch_decoding() if self.use_numba else nullcontext()

    def forward(self, ids, cache: KVCache | None = None, lengths=None, *, last_only: bool = False,
                return_attention: bool = False, return_hidden: bool = False):  # (B, T) int -> (B, T, V) float32
        """Next-token logits for the positions of `ids`, plus the attention weights and the residual stream if asked.

        ids: (B, T) token ids. cache: a KVCache with B rows; the ids continue each row from its cache length, and
        the real tokens are appended to it. lengths: (B,) real tokens per row (right padding), default all T.
        last_only: logits for each row's last real token only, (B, 1, V): what generation needs after a prefill,
        without a (T, C) @ (C, V) product for positions nobody reads.
        return_attention: also return a list, one (B, H, T, S) array per layer, of attention probabilities.
        return_hidden: also return the residual stream, L + 1 arrays (B, T, C): after the embedding and after each
        block (before the final norm).
        Returns logits, or (logits, attentions), (logits, hidden), (logits, attentions, hidden).
        """
        c, p = self.config, self.params
        ids, n_new, pos, mask = self._inputs(ids, cache, lengths)  # (B, T), (B,) new per row, (B, T), (B, T, S)
        B, T = ids.shape
        if T == 0:
            return self._nothing_to_compute(B, return_attention, return_hidden)
        if self.use_numba:  # the fast path: the same functions on Numba kernels and a small-batch matmul (fast.py)
            ops = self.fast
        else:  # the manual implementation: layers.py's NumPy
            ops = layers

        def norm(x, w, b):  # (B, T, C) -> (B, T, C): LayerNorm (GPT-2) or RMSNorm (Llama)
            return ops.rms_norm(x, w, c.norm_eps) if c.norm == "rmsnorm" else ops.layer_norm(x, w, b, c.norm_eps)

        x = layers.embedding(p["wte"], ids)  # (B, T) -> (B, T, C)
        if c.positions == "learned":
            x = x + p["wpe"][pos]  # (B, T, C)
        elif c.positions == "sinusoidal":
            x = x + self._sinusoids[pos]  # (B, T, C)
        rope = None if self._rope is None else (self._rope[0][pos], self._rope[1][pos])  # 2 x (B, T, D/2)
        attentions, hidden = [], [x]
        for i, w in enumerate(self._blocks):
            # attention: each token's query against the keys of itself and everything before it
            qkv = ops.linear(norm(x, w["ln_1.weight"], w["ln_1.bias"]), w["attn.c_attn.weight"],
                             w["attn.c_attn.bias"])  # (B, T, (H + 2K) D)
            q, k, v = layers.split_heads(qkv, c.n_head, c.n_kv_head)  # (B, H, T, D), (B, K, T, D), (B, K, T, D)
            if rope is not None:
                q, k = layers.apply_rope(q, *rope), layers.apply_rope(k, *rope)  # rotated by position
            if cache is not None:  # keep the new keys and values; attend over everything kept
                cache.store(i, k, v, n_new)
                k, v = cache.keys(i, mask.shape[-1]), cache.values(i, mask.shape[-1])  # (B, K, S, D) views
            if c.smear_keys:  # from the kept keys each time, so the cache holds plain keys and crop/fork just work
                k = layers.smear_keys(k, w["attn.smear"], *self._turn1)  # (B, K, S, D)
            a, probs = layers.attention(q, k, v, mask, return_probs=True)  # (B, H, T, D), (B, H, T, S)
            x = x + ops.linear(layers.merge_heads(a), w["attn.c_proj.weight"], w["attn.c_proj.bias"])  # (B, T, C)
            # MLP: each token on its own
            h = norm(x, w["ln_2.weight"], w["ln_2.bias"])  # (B, T, C)
            if c.mlp == "swiglu":
                x = x + ops.mlp_swiglu(h, w["mlp.c_gate.weight"], w["mlp.c_fc.weight"], w["mlp.c_proj.weight"],
                                       w["mlp.c_gate.bias"], w["mlp.c_fc.bias"], w["mlp.c_proj.bias"])  # (B, T, C)
            else:
                x = x + ops.mlp_gelu(h, w["mlp.c_fc.weight"], w["mlp.c_fc.bias"], w["mlp.c_proj.weight"],
                                     w["mlp.c_proj.bias"])  # (B, T, C)
            if return_attention:
                attentions.append(probs)
            if return_hidden:
                hidden.append(x)
        if cache is not None:
            cache.advance(n_new)
        if last_only:  # only the positions whose logits are wanted go through the (C, V) head
            x = x[np.arange(B), np.maximum(n_new - 1, 0)][:, None]  # (B, T, C) -> (B, 1, C)
        logits = ops.linear(norm(x, p["ln_f.weight"], p.get("ln_f.bias")), self._head.T)  # (B, T, C) -> (B, T, V)
        extras = ([attentions] if return_attention else []) + ([hidden] if return_hidden else [])
        return (logits, *extras) if extras else logits

    __call__ = forward

    def _inputs(self, ids, cache: KVCache | None, lengths):  # -> ids (B, T), n_new (B,), pos (B, T), mask (B, T, S)
        """Check the arguments of `forward` (raising ValueError with what to change) and work out, for each row,
        how many tokens are real, the position of every query, and which keys each query may see."""
        c = self.config
        ids = np.asarray(ids)
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids must be a 2-D integer array (batch, tokens), got shape {ids.shape} {ids.dtype}")
        B, T = ids.shape
        if ids.size and (ids.min() < 0 or ids.max() >= c.vocab_size):
            raise ValueError(f"token ids must be in [0, {c.vocab_size}); got min {ids.min()}, max {ids.max()}")
        n_new = np.full(B, T, dtype=np.int64) if lengths is None else np.asarray(lengths, np.int64).reshape(-1)  # (B,)
        if n_new.shape != (B,) or (n_new < 0).any() or (n_new > T).any():
            raise ValueError(f"lengths must hold {B} values in [0, {T}], got {lengths!r}")
        start = np.zeros(B, dtype=np.int64)  # (B,): each row's first new position
        if cache is not None:
            if cache.batch_size != B:
                raise ValueError(f"the cache has {cache.batch_size} rows but ids has {B}")
            cache.check_room(n_new)
            start = cache.lengths.copy()
        end = start + n_new  # (B,): each row's length after this call
        if (end > c.n_ctx).any():
            raise ValueError(f"a sequence would reach {int(end.max())} tokens, beyond n_ctx={c.n_ctx}")
        # Keys attended to: cache + new, or just the new. At least one, so that a batch whose rows are all padding
        # still has a (masked) key to put its finite, ignored weight on.
        S = max(int(end.max()), 1) if cache is not None else T
        # Positions of every query (padding clamped into the table; its output is ignored anyway).
        pos = np.minimum(start[:, None] + np.arange(T), c.n_ctx - 1)  # (B, T)
        # mask[b, t, s]: key s is real (s < end_b) and not in the future of query t (s <= start_b + t).
        key_pos = np.arange(S)  # (S,)
        mask = (key_pos <= pos[:, :, None]) & (key_pos < end[:, None, None])  # (B, T, S)
        return ids, n_new, pos, mask

    def _nothing_to_compute(self, B: int, return_attention: bool, return_hidden: bool):
        """`forward`'s results for T == 0: empty arrays of the promised shapes (nothing is appended to a cache)."""
        c = self.config
        empty = np.zeros((B, 0, c.n_embd), dtype=np.float32)  # (B, 0, C)
        extras = ([[np.zeros((B, c.n_head, 0, 0), np.float32)] * c.n_layer] if return_attention else []) + \
            ([[empty] * (c.n_layer + 1)] if return_hidden else [])
        logits = np.zeros((B, 0, c.vocab_size), dtype=np.float32)  # (B, 0, V)
        return (logits, *extras) if extras else logits
