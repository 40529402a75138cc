"""The fast path of `Transformer.forward`: layers.py's norms, linear layers and MLPs, run where a benchmark showed
a Numba kernel or a small-batch matrix product beats plain NumPy.

    norms    LayerNorm / RMSNorm rows on kernels/norms.py. A decode row is only C = 576..768 numbers, so NumPy's
             ~8 calls per norm are mostly dispatch overhead (~10 us in NumPy, ~3 us in the kernel).
    linear   x @ w + b for 2..16 rows (a batched decode step) on kernels/matmul.py, which reads w stored (out, in)
             and beats BLAS there (BLAS spends its time packing w for so few rows). The output head's (V, C) table
             is stored that way already; the layer matrices, stored (in, out), get (out, in) copies only inside
             `small_batch_decoding`. One row (a memory-bound matrix-vector product) and many rows (prefill) stay on
             BLAS.
    threads  the matmul kernel releases the GIL, so a thread pool splits w's rows between the cores.

`FastOps` has the same methods, with the same signatures, as the functions of layers.py that the forward calls
(`layer_norm`, `rms_norm`, `linear`, `mlp_gelu`, `mlp_swiglu`), so `Transformer.forward` picks the fast path or
layers.py at one `if` and reads the same either way. Results agree with layers.py to ~1e-6 relative (sums in a
different order); tests/test_transformer.py compares the two models on prefill, decode and batched decode.
What it leaves out: attention (NumPy's batched matmuls are fine there), `parallel=True` (it fights BLAS's threads).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from minichat.kernels import matmul, norms
from minichat.model import layers

SMALL_BATCH_ROWS = 16  # from 2 up to this many rows, a product with an (out, in) weight runs on kernels/matmul.py


def default_threads() -> int:
    """The thread count BLAS uses: OPENBLAS_NUM_THREADS / OMP_NUM_THREADS if set, else the usable cores."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit() and int(os.environ[var]) > 0:
            return int(os.environ[var])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class FastOps:
    """layers.py's norms, `linear` and MLPs on Numba kernels, for one model's parameters (see the module docstring).

    params: the model's parameters (the layer matrices, "h.*", are the ones `small_batch_decoding` copies).
    threads: how many threads the matmul kernel may use (default: as many as BLAS uses).
    """

    def __init__(self, params: dict[str, np.ndarray], threads: int | None = None):
        self.threads = default_threads() if threads is None else max(1, int(threads))
        self._matrices = [w for name, w in params.items() if name.startswith("h.") and w.ndim == 2]
        self._pool: ThreadPoolExecutor | None = None  # made on first use
        self._out_in: dict[int, tuple[np.ndarray, np.ndarray]] | None = None  # id(w) -> (w, (out, in) copy of w)

    # -- norms -------------------------------------------------------------------------------------------------------

    def layer_norm(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                   eps: float = 1e-5) -> np.ndarray:  # (..., C) -> (..., C)
        rows = x.reshape(-1, x.shape[-1])  # (N, C)
        out = np.empty_like(rows)  # (N, C)
        norms.layer_norm_rows(rows, w, np.zeros_like(w) if b is None else b, eps, out)
        return out.reshape(x.shape)

    def rms_norm(self, x: np.ndarray, w: np.ndarray, eps: float = 1e-5) -> np.ndarray:  # (..., C) -> (..., C)
        rows = x.reshape(-1, x.shape[-1])  # (N, C)
        out = np.empty_like(rows)  # (N, C)
        norms.rms_norm_rows(rows, w, eps, out)
        return out.reshape(x.shape)

    # -- matrix products ---------------------------------------------------------------------------------------------

    def linear(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        """x @ w + b, (..., I), (I, O), (O,) -> (..., O): on the small-batch kernel when x has 2..16 rows and w's
        (out, in) layout is at hand (w is a transposed view, like the head's `wte.T`, or inside
        `small_batch_decoding`); on BLAS otherwise."""
        rows = x.reshape(-1, x.shape[-1])  # (M, I)
        w_t = self._out_in_layout(w) if 2 <= rows.shape[0] <= SMALL_BATCH_ROWS else None  # (O, I)
        if w_t is None:
            return layers.linear(x, w, b)
        if self._pool is None and self.threads > 1:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="minichat-matmul")
        y = matmul.matmul_nt_split(rows, w_t, self._pool, self.threads)  # (M, O)
        if b is not None:
            y += b
        return y.reshape(*x.shape[:-1], w_t.shape[0])  # (..., O)

    def _out_in_layout(self, w: np.ndarray) -> np.ndarray | None:  # (I, O) -> (O, I) C-contiguous, or None
        if w.T.flags.c_contiguous:  # a transposed view: its (out, in) layout is the array underneath
            return w.T
        if self._out_in is not None and id(w) in self._out_in:
            return self._out_in[id(w)][1]  # the dict holds w itself, so its id cannot be reused meanwhile
        return None

    def mlp_gelu(self, x, w_fc, b_fc, w_proj, b_proj) -> np.ndarray:  # (..., C) -> (..., C), as layers.mlp_gelu
        return self.linear(layers.gelu_tanh(self.linear(x, w_fc, b_fc)), w_proj, b_proj)

    def mlp_swiglu(self, x, w_gate, w_up, w_down, b_gate=None, b_up=None,
                   b_down=None) -> np.ndarray:  # (..., C) -> (..., C), as layers.mlp_swiglu
        gate = layers.silu(self.linear(x, w_gate, b_gate))  # (..., F)
        return self.linear(gate * self.linear(x, w_up, b_up), w_down, b_down)

    @contextmanager
    def small_batch_decoding(self) -> Iterator[None]:
        """Inside this block, 2..16-row products with any layer matrix run on the kernel too. The block makes
        (out, in) copies of the layer matrices on entry (one more copy of the layer weights while it lasts: 340 MB
        for GPT-2-124M) and drops them on exit, so the parameters must not change inside it. Nested blocks share
        the outer block's copies."""
        if self._out_in is not None:
            yield
            return
        self._out_in = {id(w): (w, np.ascontiguousarray(w.T)) for w in self._matrices}  # (in, out) -> (out, in)
        try:
            yield
        finally:
            self._out_in = None
