"""The model worker behind the HTTP routes: one request at a time through the generation loop (the simple engine).

The routes never touch the model. They hand an `Engine` a `GenerationRequest` (prompt ids, sampling, limits, the
tenant's salt) and read back an async iterator of `Step`s (minichat.generate.loop), or hand it a whole pipeline
(`Chat.send`, for the events route) to run with the model to itself. That is the seam where the batching helper's
scheduler (minichat/server/scheduler.py, engine.py) replaces this one; the interface, written down in
docs/serving.md, is:

    engine.submit(request) -> Generation     raises EngineBusy when its queue is full (the route answers 429)
    generation.__aiter__()                   the request's Steps as they are produced; the last has finish_reason
    generation.cached_tokens                 prompt tokens whose keys/values came from a cache (set before the first
                                             Step is handed out; the usage's prompt_tokens_details.cached_tokens)
    generation.cancel()                      stop it (a client went away); safe to call at any time, more than once
    engine.run_exclusive(make_iterator)      -> Generation over the items of a *sync* iterator run in the worker with
                                             nobody else using the model (the Chat pipeline's events)
    engine.stats() -> dict                   queued / running / served, for /health
    engine.close()                           stop the worker

`SerialEngine` runs jobs in one thread, first come first served. Its prompt cache is the chat session's trick: one
KV cache kept from the last request, reused up to the longest common prefix with the next prompt — but only when
the next request comes from the same tenant (same salt), so a tenant can never learn from timing or `cached_tokens`
that another one sent a prompt. What it leaves out (the scheduler's job): serving several requests in one batched
forward, block-level caching of many prefixes.
"""
from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minichat.config import SamplingConfig
from minichat.errors import MinichatError
from minichat.generate.loop import Step, generate


class EngineBusy(MinichatError):
    """The queue is full: the request was not accepted (HTTP 429 with Retry-After)."""


@dataclass(frozen=True)
class GenerationRequest:
    prompt_ids: tuple[int, ...]
    sampling: SamplingConfig
    max_tokens: int  # already clamped so prompt + reply fit the window
    stop_ids: tuple[int, ...] = ()
    stop_strings: tuple[str, ...] = ()
    salt: str = ""  # the tenant: caches are never shared across different salts
    tokenizer: Any = field(default=None, compare=False)  # for the Steps' text (UTF-8 safe, stop strings)


_DONE = object()


class Generation:
    """One submitted job as seen from the event loop: an async iterator of its items, cancellable."""

    _ids = itertools.count(1)

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.id = next(self._ids)
        self.cached_tokens = 0
        self.cancelled = threading.Event()
        self._loop, self._queue = loop, asyncio.Queue()
        self.started = asyncio.Event()  # set when the worker picks the job up (time in queue ends)

    # called from the worker thread
    def _put(self, item: Any) -> None:
        self._call(self._queue.put_nowait, item)

    def _start(self) -> None:
        self._call(self.started.set)

    def _done(self) -> None:
        self._put(_DONE)

    def _call(self, fn: Callable, *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the reader's event loop is gone (closed): nobody is listening any more
            self.cancelled.set()

    def cancel(self) -> None:
        self.cancelled.set()

    def __aiter__(self):
        return self

    async def __anext__(self) -> Any:
        item = await self._queue.get()
        if item is _DONE:
            self._queue.put_nowait(_DONE)  # a second reader (or a second loop) ends too
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item


class SerialEngine:
    """One worker thread; jobs wait in a bounded queue. `model` follows the generation loop's LanguageModel."""

    def __init__(self, model: Any, tokenizer: Any, *, max_queue: int = 16, prefix_cache: bool = True):
        self.model, self.tokenizer = model, tokenizer
        self.max_queue, self.prefix_cache = max_queue, prefix_cache
        self._jobs: queue.Queue = queue.Queue()
        self._waiting = 0  # submitted, not yet started (guarded by _lock)
        self._lock = threading.Lock()
        self.running = 0
        self.served = 0
        self._cache = None  # the kept KV cache (batch 1, full window) and the ids / salt it holds
        self._cached_ids: list[int] = []
        self._cached_salt: str | None = None
        self._thread = threading.Thread(target=self._work, name="minichat-engine", daemon=True)
        self._thread.start()

    # -- the interface ----------------------------------------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> Generation:
        return self._enqueue(lambda g: self._generate(request, g))

    def run_exclusive(self, make_iterator: Callable[[], Iterator[Any]]) -> Generation:
        return self._enqueue(lambda g: make_iterator())

    def stats(self) -> dict:
        return {"engine": "serial", "queued": self._waiting, "running": self.running, "served": self.served,
                "max_queue": self.max_queue}

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=5)

    # -- inside -----------------------------------------------------------------------------------------------------

    def _enqueue(self, body: Callable[[Generation], Iterator[Any]]) -> Generation:
        with self._lock:
            if self._waiting >= self.max_queue:
                raise EngineBusy(f"the server is busy: {self._waiting} requests are waiting (the limit); "
                                 f"retry in a few seconds")
            self._waiting += 1
        g = Generation(asyncio.get_running_loop())
        self._jobs.put((g, body))
        return g

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            g, body = job
            with self._lock:
                self._waiting -= 1
            if g.cancelled.is_set():  # the client left while waiting: never run it
                g._put(_DONE)
                continue
            self.running = 1
            g._start()
            items = None
            try:
                items = body(g)
                for item in items:
                    g._put(item)
                    if g.cancelled.is_set():
                        break
            except Exception as e:  # noqa: BLE001 - a failing job must not kill the worker; its reader gets it
                g._put(e)
            finally:
                if items is not None and hasattr(items, "close"):
                    items.close()  # a cancelled Chat.send keeps what was shown (GeneratorExit)
                self.running = 0
                self.served += 1
                g._put(_DONE)

    def _generate(self, r: GenerationRequest, g: Generation) -> Iterator[Step]:
        """The generation loop with the kept KV cache rewound to the prefix this prompt shares with the last one."""
        prompt = list(r.prompt_ids)
        n = 0
        if self.prefix_cache and self._cache is not None and self._cached_salt == r.salt:
            for a, b in zip(self._cached_ids, prompt):
                if a != b:
                    break
                n += 1
            n = min(n, len(prompt) - 1)  # the last prompt token is always fed: its logits pick the first token
        if self._cache is None:
            self._cache = self.model.new_cache(1, int(self.model.config.n_ctx))
        self._cache.crop(n)
        self._cached_ids, self._cached_salt = prompt[:n], r.salt
        g.cached_tokens = n
        generated: list[int] = []
        t0 = time.perf_counter()
        try:
            for step in generate(self.model, prompt, r.sampling, max_new_tokens=r.max_tokens, stop_ids=r.stop_ids,
                                 stop_strings=r.stop_strings, tokenizer=r.tokenizer, cache=self._cache):
                generated.append(step.token_id)
                yield step
        finally:
            # the cache holds the prompt and every generated token but the last (never fed back)
            held = int(np.asarray(self._cache.lengths)[0])
            self._cached_ids = (prompt + generated)[:held]
            self.last_seconds = time.perf_counter() - t0
