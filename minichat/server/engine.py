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
from collections.abc import Callable, Iterator
from typing import Any

from minichat.server.scheduler import Engine, EngineConfig, QueueFull
from minichat.server.worker import EngineBusy, Generation

__all__ = ["BatchingEngine", "EngineBusy", "EngineConfig"]

class BatchingEngine:
    """The server's engine: a started `Engine` (continuous batching, prefix cache) behind the routes' interface."""

    def __init__(self, model: Any, tokenizer: Any = None, config: EngineConfig | None = None):
        self.engine = Engine(model, tokenizer, config).start()
        self.model, self.tokenizer = model, tokenizer

    def submit(self, request: Any) -> Generation:
        g = Generation(asyncio.get_running_loop())
        admitted: list[Any] = []  # the Request, given by on_admit: the engine thread may admit it before submit returns

        def on_step(step):
            if step.token_id >= 0:
                g._put(step)
            elif step.finish_reason == "error":  # only a running (so admitted) request fails
                g._put(RuntimeError((admitted[0].error if admitted else None) or "the engine failed"))
            if step.finish_reason is not None:
                g._done()

        def on_admit(req):
            admitted.append(req)
            g.cached_tokens = req.cached_tokens  # before the first Step is put
            g._start()

        try:
            req = self.engine.submit(
                request.prompt_ids, request.sampling, max_new_tokens=request.max_tokens, stop_ids=request.stop_ids,
                stop_strings=request.stop_strings, tenant=request.salt, tokenizer=getattr(request, "tokenizer", None),
                on_step=on_step, on_admit=on_admit, cancel_event=g.cancelled)
        except QueueFull as e:  # the routes answer EngineBusy with 503 and Retry-After
            raise EngineBusy(str(e)) from e
        g.id = req.id
        return g

    def run_exclusive(self, make_iterator: Callable[[], Iterator[Any]]) -> Generation:
        g = Generation(asyncio.get_running_loop())
        g.started.set()

        def on_item(item):
            if isinstance(item, StopIteration):
                g._done()
            elif isinstance(item, Exception):
                g._put(item)
                g._done()
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
