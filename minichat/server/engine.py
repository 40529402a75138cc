"""`BatchingEngine`: the continuous-batching scheduler behind the HTTP routes' engine seam.

The routes (minichat/server/openai_api.py) talk to an engine through a small asyncio interface, first written for
the one-at-a-time `SerialEngine` (minichat/server/worker.py):

    generation = engine.submit(request)      request: prompt_ids, sampling, max_tokens, stop_ids, stop_strings,
                                             salt (the tenant), tokenizer; raises EngineBusy when the queue is full
    async for step in generation: ...        generate.loop.Steps; the last one has finish_reason set
    generation.cached_tokens                 prompt tokens served from the prefix cache (set before the first Step)
    generation.cancel()                      the client went away: its slot and KV memory are freed at the next step
    engine.run_exclusive(make_iterator)      a Generation over a sync iterator that uses the model itself (the whole
                                             Chat pipeline of the events route), advanced one item per scheduler step
    engine.stats(), engine.close()

This module adapts the thread-side `Engine` (scheduler.py) to it: Steps cross from the engine thread to the event
loop with `call_soon_threadsafe`, so no thread blocks per stream. What it leaves out: everything about HTTP.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

from minichat.server.scheduler import Engine, EngineConfig, QueueFull
from minichat.server.worker import EngineBusy

__all__ = ["BatchingEngine", "BatchGeneration", "EngineBusy", "EngineConfig"]

_DONE = object()


class BatchGeneration:
    """One request or job as seen from the event loop: an async iterator of its items, cancellable."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.id: str | None = None
        self.cached_tokens = 0
        self.cancelled = threading.Event()
        self.started = asyncio.Event()  # set when the request gets a slot (its time in the queue ends)
        self._loop, self._queue = loop, asyncio.Queue()

    def _put(self, item: Any) -> None:  # any thread
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is reading any more
            pass

    def cancel(self) -> None:
        self.cancelled.set()

    def __aiter__(self):
        return self

    async def __anext__(self) -> Any:
        item = await self._queue.get()
        if item is _DONE:
            self._queue.put_nowait(_DONE)  # a second reader ends too
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item


class BatchingEngine:
    """The server's engine: a started `Engine` (continuous batching, prefix cache) behind the routes' interface."""

    def __init__(self, model: Any, tokenizer: Any = None, config: EngineConfig | None = None):
        self.engine = Engine(model, tokenizer, config).start()
        self.model, self.tokenizer = model, tokenizer

    def submit(self, request: Any) -> BatchGeneration:
        g = BatchGeneration(asyncio.get_running_loop())
        holder: dict[str, Any] = {}

        def on_step(step):
            if step.token_id >= 0:
                g._put(step)
            elif step.finish_reason == "error":
                g._put(RuntimeError(holder["req"].error or "the engine failed"))
            if step.finish_reason is not None:
                g._put(_DONE)

        def on_admit():
            g.cached_tokens = holder["req"].cached_tokens  # before the first Step is put
            g._loop.call_soon_threadsafe(g.started.set)

        try:
            holder["req"] = req = self.engine.submit(
                request.prompt_ids, request.sampling, max_new_tokens=request.max_tokens, stop_ids=request.stop_ids,
                stop_strings=request.stop_strings, tenant=request.salt, tokenizer=getattr(request, "tokenizer", None),
                on_step=on_step, on_admit=on_admit, cancel_event=g.cancelled)
        except QueueFull as e:  # the routes answer EngineBusy with 503 and Retry-After
            raise EngineBusy(str(e)) from e
        g.id = req.id
        return g

    def run_exclusive(self, make_iterator: Callable[[], Iterator[Any]]) -> BatchGeneration:
        g = BatchGeneration(asyncio.get_running_loop())
        g.started.set()

        def on_item(item):
            if isinstance(item, StopIteration):
                g._put(_DONE)
            elif isinstance(item, Exception):
                g._put(item)
                g._put(_DONE)
            else:
                g._put(item)

        self.engine.add_job(_lazy(make_iterator), on_item, g.cancelled)
        return g

    def stats(self) -> dict:
        s = self.engine.stats()
        return {"engine": "batching", "queued": s["waiting"], **s}

    def close(self) -> None:
        self.engine.stop()


def _lazy(make_iterator: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    """Call make_iterator in the engine thread, on the job's first step (it may already use the model)."""
    items = make_iterator()
    try:
        yield from items
    finally:
        if hasattr(items, "close"):
            items.close()
