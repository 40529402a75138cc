"""Continuous batching: one scheduler owns the model and serves many requests at once, one step at a time.

Decoding one token for one request reads every weight of the model from memory; decoding one token for eight
requests reads them once too. So the server batches: each *step* runs

    1. cancellations: a cancelled request's slot (its row of the KV cache) and its prefix-cache blocks are freed
    2. admission:     waiting requests take free slots; their prompt's cached prefix blocks are copied in
    3. prefill:       up to `prefill_chunk` prompt tokens of newly admitted requests (chunked prefill: a long prompt
                      is cut into chunks across steps, so the running requests pause for one chunk at most); a request
                      whose prompt is done picks its first token
    4. decode:        one batched forward over the rows of every running request: one new token each

and requests join and leave between steps (continuous, or "in-flight", batching, Orca/vLLM), instead of a batch
that starts together and waits for its slowest member. A row's numbers do not depend on the other rows (attention
is masked per row, every other layer works per token), so a request's greedy output is the same alone or among
others (tests/test_scheduler.py checks it against `generate`).

The interface the server uses (all thread-safe; the engine runs in its own thread):

    engine = Engine(model, tokenizer, EngineConfig(max_slots=8, max_queue=64))
    engine.start()                                     # or `with Engine(...) as engine:`
    req = engine.submit(prompt_ids, SamplingConfig(temperature=0), max_new_tokens=100,
                        stop_ids=[end_id], stop_strings=(), tenant="user-42")   # QueueFull when the queue is full
    for step in req:                                   # blocking; or `async for step in req.stream():` in asyncio
        step.token_id, step.text, step.finish_reason   # generate.loop.Step; the last one has finish_reason set
    req.cached_tokens, req.prompt_tokens, req.completion_tokens   # usage (cached_tokens: prefix-cache hit)
    engine.cancel(req.id)                              # a disconnected client: the stream ends with "cancelled"
    engine.stop()

Every request's stream ends with exactly one Step whose finish_reason is set: "stop" or "length" (a real token,
as from `generate`), or "cancelled" / "error" (token_id -1, text ""; `req.error` says what went wrong).
Without `start()`, `engine.step()` / `engine.run_until_idle()` drive it by hand (tests, notebooks). The asyncio
adapter the HTTP routes use (engine.py) rides on three hooks of `submit` (on_step, on_admit, cancel_event) and on
`add_job`, which runs a whole Chat pipeline in the engine thread between the batched forwards.

What it leaves out: one packed forward for prefill and decode together (minichat's attention wants rectangular
(B, T) batches, so prefill chunks run as their own forward beside the decode forward), preemption when memory runs
out (a slot is reserved for a request's whole life instead), priorities, speculative decoding.
"""
from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from minichat.config import SamplingConfig
from minichat.errors import MinichatError
from minichat.generate.loop import Step, _setup
from minichat.model.kv_cache import KVCache
from minichat.server.prefix_cache import PrefixCache


class QueueFull(MinichatError):
    """The engine's waiting queue is at its limit: retry later (BatchingEngine turns it into the routes' EngineBusy,
    which the server answers with 503 and Retry-After)."""


@dataclass(frozen=True)
class EngineConfig:
    """The engine's limits and cache sizes (the server maps its flags onto them)."""

    max_slots: int = 8  # requests running at once: rows of the KV cache, rows of the decode batch
    max_queue: int = 64  # requests allowed to wait for a slot; submit raises QueueFull beyond
    max_len: int | None = None  # positions per slot (prompt + output); None = the model's context length
    prefill_chunk: int = 256  # prompt tokens prefilled per step: bounds how long running requests pause
    block_size: int = 16  # tokens per prefix-cache block
    prefix_cache_bytes: int = 256 * 2**20  # memory cap of the prefix cache; 0 turns it off
    small_batch: bool = True  # run inside model.small_batch_decoding() (faster 2..16-row decode, a weight copy)

    def __post_init__(self) -> None:
        for name in ("max_slots", "prefill_chunk", "block_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"EngineConfig.{name} must be an integer >= 1, not {getattr(self, name)!r}")
        if not isinstance(self.max_queue, int) or self.max_queue < 0:
            raise ValueError(f"EngineConfig.max_queue must be an integer >= 0, not {self.max_queue!r}")
        if self.prefix_cache_bytes < 0:
            raise ValueError(f"EngineConfig.prefix_cache_bytes must be >= 0, not {self.prefix_cache_bytes!r}")


class Request:
    """One submitted generation: its state inside the engine and the stream of Steps it produces."""

    def __init__(self, rid: str, prompt: list[int], seq, tenant: str, on_step=None, on_admit=None,
                 cancel_event: threading.Event | None = None):
        self.id, self.prompt_ids, self.tenant, self._seq = rid, tuple(prompt), tenant, seq
        self.on_step, self.on_admit, self.cancel_event = on_step, on_admit, cancel_event  # see Engine.submit
        self.prompt_tokens = len(prompt)
        self.cached_tokens = 0  # prompt tokens whose keys/values came from the prefix cache (set on admission)
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self.error: str | None = None
        self.t_submit, self.t_first, self.t_done = time.perf_counter(), None, None  # perf_counter seconds
        self.slot: int | None = None  # the KV-cache row while running
        self.n_done = 0  # prompt tokens in the slot so far (cached + prefilled)
        self.blocks: list[bytes] = []  # prefix-cache blocks this request holds a reference on
        self.cancelled = False
        self.queue: queue.Queue[Step] = queue.Queue()  # the thread-safe stream
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._aqueue: asyncio.Queue[Step] | None = None

    @property
    def ttft(self) -> float | None:
        """Seconds from submit to the first token."""
        return None if self.t_first is None else self.t_first - self.t_submit

    def _deliver(self, step: Step) -> None:  # called by the engine thread
        if step.finish_reason is not None:
            self.finish_reason, self.t_done = step.finish_reason, time.perf_counter()
        if self.on_step is not None:
            self.on_step(step)
            return
        with self._lock:
            if self._loop is None:
                self.queue.put(step)
                return
            try:
                self._loop.call_soon_threadsafe(self._aqueue.put_nowait, step)
            except RuntimeError:  # the event loop is closed: nobody is listening any more
                pass

    def __iter__(self) -> Iterator[Step]:
        """The Steps, blocking until each arrives; ends after the one with finish_reason set."""
        while True:
            step = self.queue.get()
            yield step
            if step.finish_reason is not None:
                return

    async def stream(self) -> AsyncIterator[Step]:
        """The Steps for asyncio code: the engine thread hands each to this event loop (no thread is blocked)."""
        with self._lock:
            self._loop, self._aqueue = asyncio.get_running_loop(), asyncio.Queue()
            while not self.queue.empty():  # steps delivered before we switched over
                self._aqueue.put_nowait(self.queue.get_nowait())
        while True:
            step = await self._aqueue.get()
            yield step
            if step.finish_reason is not None:
                return


def _rows(cache: KVCache, start: int, stop: int) -> KVCache:
    """A KVCache over rows [start, stop) of `cache` that shares its memory (basic slicing makes views), so a
    forward through it writes straight into the big cache. KVCache.select would copy."""
    view = KVCache.__new__(KVCache)
    view.k, view.v, view.lengths = cache.k[:, start:stop], cache.v[:, start:stop], cache.lengths[start:stop]
    return view


class Engine:
    """The scheduler: owns `model` and a KV cache of `max_slots` rows; see the module docstring."""

    def __init__(self, model, tokenizer=None, config: EngineConfig | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.config = c = config if config is not None else EngineConfig()
        mc = model.config
        self.max_len = mc.n_ctx if c.max_len is None else min(int(c.max_len), mc.n_ctx)
        self.cache = model.new_cache(c.max_slots, self.max_len)  # (L, slots, K, max_len, D), preallocated
        self.prefix = (PrefixCache(mc.n_layer, mc.n_kv_head, mc.head_dim, c.block_size, c.prefix_cache_bytes)
                       if c.prefix_cache_bytes else None)
        self._slots: list[Request | None] = [None] * c.max_slots
        self._waiting: deque[Request] = deque()
        self._cancels: set[str] = set()
        self._by_id: dict[str, Request] = {}
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._jobs: list[tuple[Iterator, object, threading.Event | None]] = []  # see add_job
        self.steps = self.decode_rows = 0  # counters: scheduler steps, decode rows computed (for batch size)

    # -- the interface for the server (any thread) ---------------------------------------------------------------------

    def submit(self, prompt_ids: Sequence[int], sampling: SamplingConfig | None = None, *, max_new_tokens: int = 256,
               stop_ids: Iterable[int] = (), stop_strings: Iterable[str] = (), tenant: str = "", tokenizer=None,
               on_step=None, on_admit=None, cancel_event: threading.Event | None = None) -> Request:
        """Queue a generation; returns its Request at once (iterate it for the Steps). Raises ValueError for a bad
        prompt or settings, QueueFull when `max_queue` requests already wait.

        tenant: whose prefix-cache blocks it may use (the salt of its block hashes). tokenizer: for the Steps' text
        (default: the engine's). Hooks for adapters (engine.py), called in the engine thread: on_step(step) receives
        the Steps instead of `queue`; on_admit(request) when it gets a slot, which may happen before submit returns;
        cancel_event: setting it cancels the request."""
        prompt = [int(i) for i in prompt_ids]
        tok = tokenizer if tokenizer is not None else self.tokenizer
        (seq,) = _setup(self.model, [prompt], sampling, max_new_tokens, stop_ids, stop_strings, tok, None)
        if len(prompt) >= self.max_len:
            raise ValueError(f"the prompt has {len(prompt)} tokens but an engine slot holds {self.max_len}: shorten "
                             f"it to at most {self.max_len - 1} tokens")
        seq.n_ctx = min(seq.n_ctx, self.max_len)  # the slot's room, not just the model's window, ends the output
        if not isinstance(tenant, str):
            raise ValueError(f"tenant must be a string (e.g. the API key's user id), not {type(tenant).__name__}")
        with self._cond:
            if len(self._waiting) >= self.config.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests are already waiting (max_queue="
                                f"{self.config.max_queue}); retry in a moment")
            req = Request(f"req-{next(self._ids)}", prompt, seq, tenant, on_step, on_admit, cancel_event)
            self._by_id[req.id] = req
            self._waiting.append(req)
            self._cond.notify()
        return req

    def cancel(self, rid: str) -> bool:
        """Cancel request `rid` (e.g. its client disconnected): a waiting one ends at once, a running one at the next
        step boundary, its slot and blocks freed. Returns False if it is unknown or already finished."""
        with self._cond:
            req = self._by_id.get(rid)
            if req is None or req.finish_reason is not None:
                return False
            req.cancelled = True
            if req in self._waiting:
                self._waiting.remove(req)
                self._finish(req, Step(-1, "", finish_reason="cancelled", index=req.completion_tokens))
            else:
                self._cancels.add(rid)
                self._cond.notify()
            return True

    def add_job(self, items: Iterator, on_item, cancel_event: threading.Event | None = None) -> None:
        """Run a plain iterator that uses the model itself (e.g. a whole Chat pipeline) in the engine thread, one
        item per step between the batched forwards, so it never runs at the same time as them. on_item(item) gets
        each item, then on_item(StopIteration()) at its end or on_item(exception) if it raised."""
        with self._cond:
            self._jobs.append((items, on_item, cancel_event))
            self._cond.notify()

    def start(self) -> Engine:
        """Run the scheduler in a background thread (daemon) until `stop`."""
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="minichat-engine", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread (after its current step); requests still running end with "cancelled"."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for req in [*self._waiting, *(r for r in self._slots if r is not None)]:
            self._free(req)
            self._finish(req, Step(-1, "", finish_reason="cancelled", index=req.completion_tokens))
        self._waiting.clear()

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stats(self) -> dict:
        """Counters for the server's /health and the web page's inspector."""
        p = self.prefix
        return {"running": sum(r is not None for r in self._slots), "waiting": len(self._waiting),
                "slots": self.config.max_slots, "steps": self.steps, "decode_rows": self.decode_rows,
                "kv_bytes": self.cache.nbytes, "kv_used_bytes": self.cache.used_bytes,
                "prefix_cache": None if p is None else {
                    "blocks": len(p), "capacity_blocks": p.n_blocks, "block_size": p.block_size,
                    "used_bytes": p.used_bytes, "hit_tokens": p.hits, "miss_tokens": p.misses,
                    "evicted_blocks": p.evictions}}

    # -- the scheduler (the engine thread, or the caller of step) -------------------------------------------------------

    def _run(self) -> None:
        scope = self.model.small_batch_decoding if self.config.small_batch and hasattr(
            self.model, "small_batch_decoding") else nullcontext
        with scope():  # entered once: it copies the weights, too costly per step
            while True:
                with self._cond:
                    while not self._stopping and not self._has_work():
                        self._cond.wait()
                    if self._stopping:
                        return
                try:
                    self.step()
                except Exception as e:  # a bug must not hang every client: fail the running requests, keep serving
                    for req in [r for r in self._slots if r is not None]:
                        req.error = f"{type(e).__name__}: {e}"
                        self._free(req)
                        self._finish(req, Step(-1, "", finish_reason="error", index=req.completion_tokens))

    def _has_work(self) -> bool:
        return bool(self._waiting or self._cancels or self._jobs or any(r is not None for r in self._slots))

    def run_until_idle(self, max_steps: int = 1_000_000) -> None:
        """Drive the scheduler by hand (no thread) until every request has finished."""
        for _ in range(max_steps):
            if not self._has_work():
                return
            self.step()
        raise RuntimeError(f"still busy after {max_steps} steps")

    def step(self) -> None:
        """One scheduler step: cancellations, admission, one prefill chunk budget, one batched decode."""
        self.steps += 1
        with self._cond:  # take the cross-thread inputs under the lock, work on them outside it
            for req in [r for r in self._waiting if r.cancel_event is not None and r.cancel_event.is_set()]:
                self.cancel(req.id)
            cancels, self._cancels = self._cancels, set()
            cancels |= {r.id for r in self._slots if r is not None and r.cancel_event is not None
                        and r.cancel_event.is_set()}
            jobs = list(self._jobs)
            admit = []
            free = [i for i, r in enumerate(self._slots) if r is None]
            while self._waiting and len(admit) < len(free):
                admit.append(self._waiting.popleft())
        for req in [r for r in self._slots if r is not None and r.id in cancels]:
            self._free(req)
            self._finish(req, Step(-1, "", finish_reason="cancelled", index=req.completion_tokens))
        free = [i for i, r in enumerate(self._slots) if r is None]
        for req, slot in zip(admit, free):
            self._admit(req, slot)
        decoding = [r for r in self._slots if r is not None and r.n_done == r.prompt_tokens]
        self._prefill()
        if decoding:
            self._decode(decoding)
        for job in jobs:
            self._advance_job(job)

    def _advance_job(self, job) -> None:
        items, on_item, cancel_event = job
        end = None
        try:
            if cancel_event is not None and cancel_event.is_set():
                end = StopIteration()
                if hasattr(items, "close"):
                    items.close()
            else:
                on_item(next(items))
        except StopIteration as e:
            end = e
        except Exception as e:  # the job's reader gets the error; the engine keeps serving
            end = e
        if end is not None:
            with self._cond:
                self._jobs.remove(job)
            on_item(end)

    def _admit(self, req: Request, slot: int) -> None:
        """Give `req` a slot; copy its prompt's longest cached prefix in (at least one token is left to compute)."""
        req.slot, self._slots[slot] = slot, req
        self.cache.lengths[slot] = 0
        if self.prefix is not None:
            hashes = self.prefix.match(req.prompt_ids, req.tenant, limit=req.prompt_tokens - 1)
            self.prefix.acquire(hashes, req.prompt_tokens)
            req.blocks = hashes
            req.cached_tokens = self.prefix.load(hashes, self.cache, slot)
        req.n_done = req.cached_tokens
        if req.on_admit is not None:
            req.on_admit(req)

    def _prefill(self) -> None:
        """Run up to `prefill_chunk` prompt tokens, oldest request first; finished prompts pick their first token.

        The chunks of this step share one forward when their rows are dense enough in the slot range they span
        (padding at most doubles the work): short prompts arriving together are read with one pass over the
        weights, not one pass each. Otherwise each chunk runs on its own row."""
        budget, chunks = self.config.prefill_chunk, []  # chunks: (request, tokens this step)
        for req in sorted((r for r in self._slots if r is not None and r.n_done < r.prompt_tokens),
                          key=lambda r: r.t_submit):
            n = min(budget, req.prompt_tokens - req.n_done)
            if n <= 0:
                break
            chunks.append((req, n))
            budget -= n
        if not chunks:
            return
        lo, hi = min(r.slot for r, _ in chunks), max(r.slot for r, _ in chunks) + 1
        T = max(n for _, n in chunks)
        groups = [chunks] if 2 * sum(n for _, n in chunks) >= (hi - lo) * T else [[c] for c in chunks]
        for group in groups:
            lo, hi = min(r.slot for r, _ in group), max(r.slot for r, _ in group) + 1
            T = max(n for _, n in group)
            ids = np.zeros((hi - lo, T), dtype=np.int64)  # (B, T) right-padded; rows not prefilling stay length 0
            lengths = np.zeros(hi - lo, dtype=np.int64)  # (B,)
            for req, n in group:
                ids[req.slot - lo, :n] = req.prompt_ids[req.n_done:req.n_done + n]
                lengths[req.slot - lo] = n
            ragged = hi - lo != len(group) or (lengths != T).any()
            logits = self.model.forward(ids, cache=_rows(self.cache, lo, hi), lengths=lengths if ragged else None,
                                        last_only=True)[:, -1]  # (B, 1, V) -> (B, V): each row's last real token
            for req, n in group:
                req.n_done += n
                if req.n_done == req.prompt_tokens:
                    if self.prefix is not None:  # the prompt's blocks, for the next request that starts the same way
                        kept = self.prefix.store(req.prompt_ids, self.cache, req.slot, req.tenant)
                        self.prefix.release(req.blocks)
                        req.blocks = kept
                    self._emit(req, req._seq.step(logits[req.slot - lo]))

    def _decode(self, reqs: list[Request]) -> None:
        """One token for every running request, in one forward over slot rows [0, highest used slot]."""
        hi = max(r.slot for r in reqs) + 1
        ids = np.zeros((hi, 1), dtype=np.int64)  # (B, 1): each running row's last token
        live = np.zeros(hi, dtype=np.int64)  # (B,): 1 for rows that decode now, 0 for free or prefilling rows
        for r in reqs:
            ids[r.slot, 0], live[r.slot] = r._seq.ids[-1], 1
        self.decode_rows += hi
        logits = self.model.forward(ids, cache=_rows(self.cache, 0, hi),
                                    lengths=None if live.all() else live)[:, -1]  # (B, 1, V) -> (B, V)
        for r in reqs:
            self._emit(r, r._seq.step(logits[r.slot]))

    def _emit(self, req: Request, step: Step) -> None:
        if req.t_first is None:
            req.t_first = time.perf_counter()
        req.completion_tokens += 1
        if step.finish_reason is None:
            req._deliver(step)
            return
        self._free(req)
        self._finish(req, step)

    def _free(self, req: Request) -> None:
        """Give the slot back. The full blocks of everything the row holds (prompt and output) go to the prefix
        cache first, so the next turn of the same conversation starts from them."""
        if req.slot is None:
            return
        if self.prefix is not None:
            n = int(self.cache.lengths[req.slot])
            if not req.cancelled and n > len(req.blocks) * self.prefix.block_size:
                kept = self.prefix.store(req._seq.ids[:n], self.cache, req.slot, req.tenant)
                self.prefix.release(req.blocks)
                req.blocks = kept
            self.prefix.release(req.blocks)
            req.blocks = []
        self.cache.lengths[req.slot] = 0
        self._slots[req.slot], req.slot = None, None

    def _finish(self, req: Request, step: Step) -> None:
        req._deliver(step)
        with self._cond:
            self._by_id.pop(req.id, None)
