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
the future. Padding queries get finite, meaningless logits; callers read row b's logits at t < lengths[b].

What it leaves out: training (minichat/train has the backward), dropout, attention-logit soft-capping, RoPE scaling.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from minichat.config import ModelConfig
from minichat.errors import CheckpointError
from minichat.kernels import matmul, norms
from minichat.model import layers
from minichat.model.kv_cache import KVCache


SMALL_BATCH_ROWS = 16  # from 2 up to this many rows, decode runs on kernels/matmul.py instead of BLAS (see there)


def default_threads() -> int:
    """The thread count BLAS uses: OPENBLAS_NUM_THREADS / OMP_NUM_THREADS if set, else the usable cores."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit() and int(os.environ[var]) > 0:
            return int(os.environ[var])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


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
        elif name.endswith("bias"):
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
        """use_numba: run the norms (minichat/kernels/norms.py) and the output head of batched decoding
        (kernels/matmul.py) as Numba kernels, which agree with NumPy to ~1e-6; False keeps everything in the plain
        NumPy of layers.py. threads: how many threads the head kernel may use (default: as many as BLAS uses)."""
        check_params(config, params)
        self.config = config
        self.params = params
        self.use_numba = use_numba
        self.threads = default_threads() if threads is None else max(1, int(threads))
        self._pool: ThreadPoolExecutor | None = None  # made on first use by _small_matmul
        self._transposed: dict[int, tuple[np.ndarray, np.ndarray]] | None = None  # id(w) -> (w, w.T copy), see below
        c = config
        self._zeros = np.zeros(c.n_embd, dtype=np.float32)  # (C,): the bias of a bias-free LayerNorm, for the kernel
        # The per-layer tensors, fetched once, so the hot loop does no string formatting or dict lookups.
        self._blocks = [{key: params.get(f"h.{i}.{key}") for key in (
            "ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias", "attn.c_attn.weight", "attn.c_attn.bias",
            "attn.c_proj.weight", "attn.c_proj.bias", "mlp.c_gate.weight", "mlp.c_gate.bias", "mlp.c_fc.weight",
            "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")} for i in range(c.n_layer)]
        self._head = params["wte"] if c.tie_embeddings else params["lm_head"]  # (V, C)
        self._sinusoids = layers.sinusoidal_table(c.n_ctx, c.n_embd) if c.positions == "sinusoidal" else None
        self._rope = layers.rope_tables(c.n_ctx, c.head_dim, c.rope_theta) if c.positions == "rope" else None

    def __repr__(self) -> str:
        n = sum(p.size for p in self.params.values())
        return f"Transformer({self.config.family}, {n / 1e6:.1f}M parameters, {self.config})"

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

    @contextmanager
    def small_batch_decoding(self) -> Iterator[None]:
        """Inside this block, forward calls with 2..16 rows in all (batched decode steps) compute every layer's
        matrix products with the kernel of kernels/matmul.py, which reads weights stored (out, in). The block makes
        those (out, in) copies of the layer matrices on entry (one more copy of the layer weights while it lasts:
        340 MB for GPT-2-124M) and drops them on exit, so the parameters must not change inside it. `generate_batch`
        uses it. Outside it (and with use_numba=False) only the output head, already stored (V, C), uses the
        kernel. Nested blocks share the outer block's copies."""
        if not self.use_numba or self._transposed is not None:
            yield
            return
        self._transposed = {id(w): (w, np.ascontiguousarray(w.T)) for block in self._blocks  # (in, out) -> (out, in)
                            for w in block.values() if w is not None and w.ndim == 2}
        try:
            yield
        finally:
            self._transposed = None

    def _small_matmul(self, x: np.ndarray, w_t: np.ndarray) -> np.ndarray:  # (M, I), (O, I) -> (M, O)
        """x @ w_t.T on the small-batch kernel, w_t's rows split over `threads` threads."""
        if self._pool is None and self.threads > 1:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="minichat-matmul")
        return matmul.matmul_nt_split(x, w_t, self._pool, self.threads)

    def _small_linear(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        """layers.linear for a batched decode step inside `small_batch_decoding`: (..., I) -> (..., O)."""
        w_t = self._transposed[id(w)][1]  # (O, I); the dict holds w itself, so its id cannot be reused meanwhile
        y = self._small_matmul(x.reshape(-1, x.shape[-1]), w_t)  # (M, O)
        if b is not None:
            y += b
        return y.reshape(*x.shape[:-1], w_t.shape[0])  # (..., O)

    def _output_head(self, x: np.ndarray) -> np.ndarray:  # (M, C) -> (M, V)
        """x @ head.T. A few rows (batched decode) go to the kernel of kernels/matmul.py, split over threads;
        one row (a memory-bound matrix-vector product) and many rows (prefill) go to BLAS."""
        if not (self.use_numba and 2 <= x.shape[0] <= SMALL_BATCH_ROWS):
            return x @ self._head.T  # (M, C) @ (C, V)
        return self._small_matmul(x, self._head)  # (M, V)

    def _norm(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:  # (B, T, C) -> (B, T, C)
        c = self.config
        if not self.use_numba:
            if c.norm == "rmsnorm":
                return layers.rms_norm(x, w, c.norm_eps)
            return layers.layer_norm(x, w, b, c.norm_eps)
        rows = x.reshape(-1, x.shape[-1])  # (B*T, C)
        out = np.empty_like(rows)  # (B*T, C)
        if c.norm == "rmsnorm":
            norms.rms_norm_rows(rows, w, c.norm_eps, out)
        else:
            norms.layer_norm_rows(rows, w, self._zeros if b is None else b, c.norm_eps, out)
        return out.reshape(x.shape)  # (B, T, C)

    def forward(self, ids, cache: KVCache | None = None, lengths=None, return_attention: bool = False,
                return_hidden: bool = False):  # (B, T) int -> (B, T, V) float32 [, attentions][, hidden]
        """Logits for every position of `ids`.

        ids: (B, T) token ids. cache: a KVCache with B rows; the ids continue each row from its cache length, and
        the real tokens are appended to it. lengths: (B,) real tokens per row (right padding), default all T.
        return_attention: also return a list, one (B, H, T, S) array per layer, of attention probabilities.
        return_hidden: also return the residual stream, L + 1 arrays (B, T, C): after the embedding and after each
        block (before the final norm).
        Returns logits, or (logits, attentions), (logits, hidden), (logits, attentions, hidden).
        """
        c = self.config
        ids = np.asarray(ids)
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids must be a 2-D integer array (batch, tokens), got shape {ids.shape} {ids.dtype}")
        B, T = ids.shape
        if ids.size and (ids.min() < 0 or ids.max() >= c.vocab_size):
            raise ValueError(f"token ids must be in [0, {c.vocab_size}); got min {ids.min()}, max {ids.max()}")
        full = lengths is None
        n_new = np.full(B, T, dtype=np.int64) if full else np.asarray(lengths, dtype=np.int64).reshape(-1)  # (B,)
        if n_new.shape != (B,) or (n_new < 0).any() or (n_new > T).any():
            raise ValueError(f"lengths must hold {B} values in [0, {T}], got {lengths!r}")
        full = full or bool((n_new == T).all())
        if cache is not None:
            if cache.batch_size != B:
                raise ValueError(f"the cache has {cache.batch_size} rows but ids has {B}")
            cache.check_room(n_new)
            start = cache.lengths.copy()  # (B,): each row's first new position
        else:
            start = np.zeros(B, dtype=np.int64)
        end = start + n_new  # (B,): each row's length after this call
        if (end > c.n_ctx).any():
            raise ValueError(f"a sequence would reach {int(end.max())} tokens, beyond n_ctx={c.n_ctx}")
        if T == 0:  # nothing to compute and nothing to append; empty results of the promised shapes
            L, empty = c.n_layer, np.zeros((B, 0, c.n_embd), dtype=np.float32)
            extras = ([[np.zeros((B, c.n_head, 0, 0), np.float32)] * L] if return_attention else []) + \
                ([[empty] * (L + 1)] if return_hidden else [])
            logits = np.zeros((B, 0, c.vocab_size), dtype=np.float32)
            return (logits, *extras) if extras else logits
        # Keys attended to: cache + new, or just the new. At least one, so that a batch whose rows are all padding
        # still has a (masked) key to put its finite, ignored weight on.
        S = max(int(end.max()), 1) if cache is not None else T
        # Positions of every query (padding clamped into the table; its output is ignored anyway).
        pos = np.minimum(start[:, None] + np.arange(T), c.n_ctx - 1)  # (B, T)
        # mask[b, t, s]: key s is real (s < end_b) and not in the future of query t (s <= start_b + t).
        key_pos = np.arange(S)  # (S,)
        mask = (key_pos <= pos[:, :, None]) & (key_pos < end[:, None, None])  # (B, T, S)

        x = layers.embedding(self.params["wte"], ids)  # (B, T) -> (B, T, C)
        if c.positions == "learned":
            x = x + self.params["wpe"][pos]  # (B, T, C)
        elif c.positions == "sinusoidal":
            x = x + self._sinusoids[pos]  # (B, T, C)
        rope = None if self._rope is None else (self._rope[0][pos], self._rope[1][pos])  # 2 x (B, T, D/2)

        H, K, D = c.n_head, c.n_kv_head, c.head_dim
        small = self._transposed is not None and 2 <= B * T <= SMALL_BATCH_ROWS
        linear = self._small_linear if small else layers.linear  # x @ w + b, on the kernel or on BLAS
        attentions, hidden = [], [x] if return_hidden else None
        for i, w in enumerate(self._blocks):
            # -- attention sub-block --
            h = self._norm(x, w["ln_1.weight"], w["ln_1.bias"])  # (B, T, C)
            qkv = linear(h, w["attn.c_attn.weight"], w["attn.c_attn.bias"])  # (B, T, (H + 2K) D)
            q = qkv[..., :H * D].reshape(B, T, H, D).transpose(0, 2, 1, 3)  # (B, T, H*D) -> (B, H, T, D)
            k = qkv[..., H * D:(H + K) * D].reshape(B, T, K, D).transpose(0, 2, 1, 3)  # -> (B, K, T, D)
            v = qkv[..., (H + K) * D:].reshape(B, T, K, D).transpose(0, 2, 1, 3)  # -> (B, K, T, D)
            if rope is not None:
                q = layers.apply_rope(q, *rope)  # (B, H, T, D)
                k = layers.apply_rope(k, *rope)  # (B, K, T, D)
            if cache is not None:
                cache.store(i, k, v, None if full else n_new)
                k, v = cache.keys(i, S), cache.values(i, S)  # (B, K, S, D) views of the cache
            a = layers.attention(q, k, v, mask, return_probs=return_attention)  # (B, H, T, D)
            if return_attention:
                a, probs = a
                attentions.append(probs)  # (B, H, T, S)
            a = a.transpose(0, 2, 1, 3).reshape(B, T, H * D)  # (B, H, T, D) -> (B, T, H*D)
            x = x + linear(a, w["attn.c_proj.weight"], w["attn.c_proj.bias"])  # (B, T, C)
            # -- MLP sub-block --
            h = self._norm(x, w["ln_2.weight"], w["ln_2.bias"])  # (B, T, C)
            if c.mlp == "swiglu":
                x = x + layers.mlp_swiglu(h, w["mlp.c_gate.weight"], w["mlp.c_fc.weight"], w["mlp.c_proj.weight"],
                                          w["mlp.c_gate.bias"], w["mlp.c_fc.bias"], w["mlp.c_proj.bias"],
                                          linear=linear)  # (B, T, C)
            else:
                x = x + layers.mlp_gelu(h, w["mlp.c_fc.weight"], w["mlp.c_fc.bias"], w["mlp.c_proj.weight"],
                                        w["mlp.c_proj.bias"], linear=linear)  # (B, T, C)
            if return_hidden:
                hidden.append(x)
        if cache is not None:
            cache.advance(n_new)
        x = self._norm(x, self.params["ln_f.weight"], self.params.get("ln_f.bias"))  # (B, T, C)
        logits = self._output_head(x.reshape(B * T, -1)).reshape(B, T, -1)  # (B*T, C) @ (C, V) -> (B, T, V)
        extras = ([attentions] if return_attention else []) + ([hidden] if return_hidden else [])
        return (logits, *extras) if extras else logits

    __call__ = forward
