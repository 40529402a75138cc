"""The asyncio adapter the HTTP routes use (minichat/server/engine.py): 4 concurrent streams equal `generate` one at a
time, cached_tokens is set before the first Step, cancel frees the slot, a job runs between the batched steps, a
full queue raises the routes' EngineBusy, a failing job hands its error to its reader, and a request the engine thread
admits (or finishes) before `submit` returns still streams right."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from minichat.config import SamplingConfig
from minichat.generate import generate
from minichat.server.engine import BatchingEngine, EngineBusy, EngineConfig
from test_scheduler import prompts, tiny

GREEDY = SamplingConfig(temperature=0.0)


def request(p, n=8, salt=""):
    return SimpleNamespace(prompt_ids=tuple(p), sampling=GREEDY, max_tokens=n, stop_ids=(), stop_strings=(),
                           salt=salt, tokenizer=None)


def test_concurrent_streams_cache_and_cancel():
    model = tiny("llama", seed=5)
    ps = [prompts(1, seed=20 + i, lo=40, hi=60)[0] for i in range(4)]
    engine = BatchingEngine(model, config=EngineConfig(max_slots=4, block_size=8))

    async def collect(p, salt=""):
        g = engine.submit(request(p, salt=salt))
        steps = []
        async for s in g:
            if not steps:
                cached = g.cached_tokens
            steps.append(s.token_id)
        return steps, cached

    async def main():
        got = await asyncio.gather(*(collect(p) for p in ps))
        again = await collect(ps[0])
        other = await collect(ps[0], salt="someone else")
        g = engine.submit(request(ps[1], n=100))
        n = 0
        async for _ in g:
            n += 1
            if n == 3:
                g.cancel()
        return got, again, other, n

    try:
        got, again, other, n = asyncio.run(main())
    finally:
        engine.close()
    ref = [[s.token_id for s in generate(model, p, GREEDY, max_new_tokens=8)] for p in ps]
    assert [g[0] for g in got] == ref and all(g[1] == 0 for g in got)
    assert again == (ref[0], (len(ps[0]) - 1) // 8 * 8) and other == (ref[0], 0)
    assert n < 100 and engine.engine.stats()["running"] == 0


def test_exclusive_job_queue_limit_and_errors():
    model = tiny("llama", seed=6)
    engine = BatchingEngine(model, config=EngineConfig(max_slots=1, max_queue=1))

    def job():
        yield "a"
        yield "b"

    def broken():
        yield 1
        raise KeyError("boom")

    async def main():
        items = [i async for i in engine.run_exclusive(job)]
        with pytest.raises(KeyError, match="boom"):
            async for _ in engine.run_exclusive(broken):
                pass
        engine.engine.stop()  # no thread: requests stay queued, so the limit shows
        engine.submit(request([1, 2, 3]))
        with pytest.raises(EngineBusy, match="max_queue=1"):
            engine.submit(request([1, 2, 3]))
        return items

    assert asyncio.run(main()) == ["a", "b"]


def test_admitted_before_submit_returns():
    """The engine thread may admit a request while Engine.submit is still returning (CI saw it: the adapter's hooks
    then looked up a request it had not stored yet, and the client timed out). Force that order every time."""
    model = tiny("llama", seed=7)
    p = prompts(1, seed=31, lo=40, hi=60)[0]
    engine = BatchingEngine(model, config=EngineConfig(max_slots=2, block_size=8))
    real_submit = engine.engine.submit

    def submit_then_wait(*args, **kwargs):
        req = real_submit(*args, **kwargs)
        deadline = time.monotonic() + 30
        while req.finish_reason is None and time.monotonic() < deadline:  # admitted, run and finished meanwhile
            time.sleep(0.001)
        assert req.finish_reason == "length"
        return req

    engine.engine.submit = submit_then_wait

    async def collect():
        g = engine.submit(request(p))
        steps = [s.token_id async for s in g]
        return steps, g.cached_tokens

    async def main():
        return await collect(), await collect()

    try:
        first, again = asyncio.run(main())
    finally:
        engine.close()
    ref = [s.token_id for s in generate(model, p, GREEDY, max_new_tokens=8)]
    assert first == (ref, 0) and again == (ref, (len(p) - 1) // 8 * 8)
