"""Numba kernels, compiled lazily.

Each kernel module keeps a plain-Python/NumPy twin beside every jitted function, with the same signature, and the
tests compare the two. `import minichat` never imports numba (that alone costs ~0.8 s): `lazy_jit` wraps a function
so numba is imported and the function compiled on its first call, with `cache=True` so later processes reuse the
machine code. When the package folder is read-only (a system-wide install) numba cannot write its cache beside the
source and refuses at decoration time, so we point `NUMBA_CACHE_DIR` at a per-user folder first.

What it leaves out: `parallel=True` (two cores gain little and the threads fight BLAS), GPU targets.
"""
from __future__ import annotations

import os
import sys
import types
from typing import Any, Callable

_numba_ready = False


def _prepare_numba() -> None:
    """Import numba once, after making sure it has somewhere writable to cache compiled code."""
    global _numba_ready  # a one-way latch: the import itself is process-global anyway
    if _numba_ready:
        return
    here = os.path.dirname(os.path.abspath(__file__))
    if "NUMBA_CACHE_DIR" not in os.environ and not os.access(here, os.W_OK):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        os.environ["NUMBA_CACHE_DIR"] = os.path.join(base, "minichat", "numba")
    import numba  # noqa: F401  (the expensive import, deferred to here)

    _numba_ready = True


class LazyKernel:
    """A function that becomes `numba.njit(cache=True)(fn)` the first time it is called."""

    def __init__(self, fn: Callable[..., Any], **options: Any):
        self.py_func = fn  # the undecorated function (numba's own name for it)
        self.options = options  # extra numba.njit options, e.g. fastmath flags
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__wrapped__ = fn
        self._compiled: Callable[..., Any] | None = None

    def compiled(self) -> Callable[..., Any]:
        if self._compiled is None:
            _prepare_numba()
            import numba

            fn = self.py_func
            # A kernel may call other lazy kernels by their global name; numba needs to see compiled dispatchers
            # there, so we compile against a copy of the module's globals with those names swapped in.
            names = {n: g.compiled() for n in fn.__code__.co_names if isinstance(g := fn.__globals__.get(n), LazyKernel)}
            if names:
                fn = types.FunctionType(fn.__code__, {**fn.__globals__, **names}, fn.__name__, fn.__defaults__)
                fn.__qualname__ = self.py_func.__qualname__
            self._compiled = numba.njit(cache=True, nogil=True, **self.options)(fn)
        return self._compiled

    def __call__(self, *args: Any) -> Any:
        return self.compiled()(*args)


def lazy_jit(fn: Callable[..., Any] | None = None, **options: Any):
    """Decorator: compile `fn` with numba on first use (see the module docstring). `@lazy_jit(fastmath=...)` passes
    options on to numba.njit."""
    if fn is None:
        return lambda f: LazyKernel(f, **options)
    return LazyKernel(fn, **options)


def numba_loaded() -> bool:
    """True once numba has been imported in this process (tests use it to check import laziness)."""
    return "numba" in sys.modules
