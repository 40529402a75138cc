"""The continuous-batching engine: a request's tokens are the same alone, among concurrent ones (joining at any
step, with chunked prefill, with the prefix cache on or off) as `generate` gives; cancellation frees the slot at once;
the queue limit; the threaded and asyncio interfaces. The reference is minichat's own `generate` (itself checked
against HF transformers and a cache-free recompute in test_generate.py / test_transformer.py).
"""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minichat.config import ModelConfig, SamplingConfig
from minichat.generate import generate
from minichat.model.transformer import Transformer, init_params
from minichat.server.scheduler import Engine, EngineConfig, QueueFull

GREEDY = SamplingConfig(temperature=0.0)


def tiny(family: str = "llama", seed: int = 0) -> Transformer:
    if family == "llama":
        cfg = ModelConfig(vocab_size=97, n_ctx=160, n_embd=32, n_layer=2, n_head=4, n_kv_head=2, n_inner=48,
                          positions="rope", norm="rmsnorm", mlp="swiglu", bias=False, rope_theta=500.0)
    else:
        cfg = ModelConfig(vocab_size=97, n_ctx=160, n_embd=32, n_layer=2, n_head=4)
    # std 0.3: logits far from flat, so a wrong key, position or row changes the argmax
    return Transformer(cfg, init_params(cfg, np.random.default_rng(seed), std=0.3))


def prompts(n: int, seed: int = 1, lo: int = 3, hi: int = 40) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 97, rng.integers(lo, hi)).tolist() for _ in range(n)]


def alone(model, prompt, sampling=GREEDY, n=12, **kw) -> list[int]:
    return [s.token_id for s in generate(model, prompt, sampling, max_new_tokens=n, **kw)]


def tokens(req) -> list[int]:
    steps = list(req.queue.queue)
    assert steps[-1].finish_reason in ("stop", "length") and all(s.finish_reason is None for s in steps[:-1])
    return [s.token_id for s in steps]


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def model(request):
    return tiny(request.param)


@pytest.mark.parametrize("cache_bytes", [0, 1 << 20])
@pytest.mark.parametrize("chunk", [5, 256])
def test_concurrent_requests_equal_alone(model, cache_bytes, chunk):
    ps = prompts(4)
    engine = Engine(model, config=EngineConfig(max_slots=4, prefill_chunk=chunk, prefix_cache_bytes=cache_bytes))
    reqs = [engine.submit(p, GREEDY, max_new_tokens=12) for p in ps]
    engine.run_until_idle()
    for p, r in zip(ps, reqs):
        assert tokens(r) == alone(model, p)
        assert r.finish_reason == "length" and r.completion_tokens == 12


def test_requests_join_and_leave_between_steps(model):
    """Requests arrive while others decode, with different lengths; more requests than slots wait their turn."""
    ps = prompts(7, seed=2)
    lengths = [3, 17, 8, 1, 12, 5, 9]
    engine = Engine(model, config=EngineConfig(max_slots=3, prefill_chunk=16))
    reqs = []
    for p, n in zip(ps, lengths):
        reqs.append(engine.submit(p, GREEDY, max_new_tokens=n))
        engine.step()
        engine.step()
    engine.run_until_idle()
    for p, n, r in zip(ps, lengths, reqs):
        assert tokens(r) == alone(model, p, n=n)
    stats = engine.stats()
    assert stats["running"] == 0 and (engine.cache.lengths == 0).all() and stats["kv_used_bytes"] == 0
    c = model.config  # keys and values, float32: 2 x L x slots x positions x kv heads x head width x 4 bytes
    assert stats["kv_bytes"] >= 2 * c.n_layer * 3 * c.n_ctx * c.n_kv_head * c.head_dim * 4


@pytest.mark.parametrize("lengths,prefill_calls", [((10, 12, 9, 11), [(4, 12)]),  # dense: one forward
                                                    ((1, 1, 1, 40), [(1, 1)] * 3 + [(1, 40)])])  # mostly padding
def test_rows_share_one_forward(model, lengths, prefill_calls):
    calls = []
    forward = model.forward

    def spy(ids, *a, **kw):
        calls.append(np.asarray(ids).shape)
        return forward(ids, *a, **kw)

    engine = Engine(model, config=EngineConfig(max_slots=4, prefix_cache_bytes=0))
    engine.model = type("Spy", (), {"forward": staticmethod(spy), "config": model.config})()
    ps = [list(range(1, n + 1)) for n in lengths]
    reqs = [engine.submit(p, GREEDY, max_new_tokens=6) for p in ps]
    engine.run_until_idle()
    # step 1: the prefills; then 5 decode steps of one (4, 1) forward each
    assert calls == prefill_calls + [(4, 1)] * 5
    assert [tokens(r) for r in reqs] == [alone(model, p, n=6) for p in ps]


def test_sampling_with_seed_equals_alone(model):
    cfg = SamplingConfig(temperature=0.9, top_p=0.9, seed=7)
    ps = prompts(3, seed=4)
    engine = Engine(model, config=EngineConfig(max_slots=3))
    reqs = [engine.submit(p, cfg, max_new_tokens=10) for p in ps]
    engine.run_until_idle()
    assert [tokens(r) for r in reqs] == [alone(model, p, cfg, n=10) for p in ps]


def test_stop_ids_finish_early(model):
    p = prompts(1, seed=5)[0]
    ref = alone(model, p, n=12)
    stop = ref[4]
    engine = Engine(model)
    r = engine.submit(p, GREEDY, max_new_tokens=12, stop_ids=[stop])
    engine.run_until_idle()
    got = tokens(r)
    assert got == ref[:ref.index(stop) + 1] and r.finish_reason == "stop"


def test_cancel_frees_slot_and_leaves_others_alone(model):
    ps = prompts(3, seed=6)
    engine = Engine(model, config=EngineConfig(max_slots=3, prefix_cache_bytes=1 << 20))
    reqs = [engine.submit(p, GREEDY, max_new_tokens=15) for p in ps]
    for _ in range(4):
        engine.step()
    slot = reqs[1].slot
    assert engine.cancel(reqs[1].id)
    engine.step()
    assert reqs[1].finish_reason == "cancelled" and reqs[1].slot is None
    assert engine.stats()["running"] == 2
    assert engine._slots[slot] is None and engine.cache.lengths[slot] == 0
    last = list(reqs[1].queue.queue)[-1]
    assert last.token_id == -1 and last.text == ""
    # no prefix-cache block is still held by the cancelled request
    assert all(engine.prefix.refs(h) == (1 if any(h in r.blocks for r in (reqs[0], reqs[2])) else 0)
               for h in list(engine.prefix._blocks))
    engine.run_until_idle()
    assert tokens(reqs[0]) == alone(model, ps[0], n=15) and tokens(reqs[2]) == alone(model, ps[2], n=15)
    assert not engine.cancel(reqs[0].id)  # finished: nothing to cancel


def test_cancel_while_waiting_and_queue_limit(model):
    engine = Engine(model, config=EngineConfig(max_slots=1, max_queue=2))
    a, b = (engine.submit(p, GREEDY, max_new_tokens=3) for p in prompts(2, seed=7))
    with pytest.raises(QueueFull, match="max_queue=2"):
        engine.submit([1, 2, 3], GREEDY)
    assert engine.cancel(b.id) and b.finish_reason == "cancelled" and not engine.cancel(b.id)
    c = engine.submit([1, 2, 3], GREEDY, max_new_tokens=2)  # room again
    engine.run_until_idle()
    assert a.finish_reason == c.finish_reason == "length" and list(b.queue.queue)[-1].token_id == -1


def test_bad_requests_raise_clearly(model):
    engine = Engine(model, config=EngineConfig(max_len=50))
    with pytest.raises(ValueError, match="engine slot holds 50"):
        engine.submit(list(range(60)), GREEDY)
    with pytest.raises(ValueError, match="empty"):
        engine.submit([], GREEDY)
    with pytest.raises(ValueError, match="vocabulary"):
        engine.submit([500], GREEDY)
    with pytest.raises(ValueError, match="tenant"):
        engine.submit([1], GREEDY, tenant=3)
    with pytest.raises(ValueError, match="max_slots"):
        EngineConfig(max_slots=0)


def test_slot_room_ends_output_with_length(model):
    engine = Engine(model, config=EngineConfig(max_len=20))
    r = engine.submit(list(range(1, 15)), GREEDY, max_new_tokens=50)
    engine.run_until_idle()
    assert r.finish_reason == "length" and r.completion_tokens == 20 - 14
    assert tokens(r) == alone(model, list(range(1, 15)), n=6)


def test_threads_submit_concurrently():
    model = tiny("llama", seed=3)
    ps = prompts(6, seed=8)
    results = {}
    with Engine(model, config=EngineConfig(max_slots=4)) as engine:
        def client(i):
            results[i] = [s.token_id for s in engine.submit(ps[i], GREEDY, max_new_tokens=8)]
        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert [results[i] for i in range(6)] == [alone(model, p, n=8) for p in ps]


def test_asyncio_stream_and_cancel():
    model = tiny("llama", seed=4)
    p = prompts(1, seed=9)[0]

    async def main(engine):
        full = [s async for s in engine.submit(p, GREEDY, max_new_tokens=8).stream()]
        req = engine.submit(p, GREEDY, max_new_tokens=150 - len(p))
        got = []
        async for s in req.stream():
            got.append(s)
            if len(got) == 2:
                engine.cancel(req.id)
        return full, got

    with Engine(model) as engine:
        full, got = asyncio.run(main(engine))
        assert [s.token_id for s in full] == alone(model, p, n=8)
        assert got[-1].finish_reason == "cancelled" and len(got) < 100
        assert engine.stats()["running"] == 0


_LLAMA = tiny("llama", seed=7)
_ALONE: dict[tuple, list[int]] = {}


def _alone_cached(prompt: tuple, n: int) -> list[int]:
    if (prompt, n) not in _ALONE:
        _ALONE[prompt, n] = alone(_LLAMA, list(prompt), n=n)
    return _ALONE[prompt, n]


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_any_interleaving_of_submits_cancels_and_steps(data):
    """Whatever arrives, leaves or is cancelled when: every request ends exactly once; the ones not cancelled give
    what they give alone; at the end every slot is free and no prefix block is still referenced."""
    slots = data.draw(st.integers(1, 4))
    engine = Engine(_LLAMA, config=EngineConfig(max_slots=slots, max_queue=100, block_size=4,
                                                prefill_chunk=data.draw(st.integers(1, 40)),
                                                prefix_cache_bytes=data.draw(st.sampled_from([0, 40_000, 1 << 20]))))
    base = prompts(1, seed=30, lo=30, hi=31)[0]
    reqs, cancelled = [], set()
    for _ in range(data.draw(st.integers(1, 12))):
        action = data.draw(st.sampled_from(["submit", "submit", "step", "cancel"]))
        if action == "submit":
            prompt = tuple(base[:data.draw(st.integers(1, 30))] + data.draw(st.lists(st.integers(0, 96), max_size=6)))
            n = data.draw(st.integers(1, 10))
            reqs.append((prompt, n, engine.submit(list(prompt), GREEDY, max_new_tokens=n,
                                                  tenant=data.draw(st.sampled_from(["a", "b"])))))
        elif action == "step":
            engine.step()
        elif reqs:
            _, _, r = reqs[data.draw(st.integers(0, len(reqs) - 1))]
            if engine.cancel(r.id):
                cancelled.add(r.id)
    engine.run_until_idle()
    for prompt, n, r in reqs:
        steps = list(r.queue.queue)
        assert [s.finish_reason is not None for s in steps].count(True) == 1 and steps[-1].finish_reason
        if r.id in cancelled:
            assert steps[-1].finish_reason == "cancelled" and steps[-1].token_id == -1
        else:
            assert [s.token_id for s in steps] == _alone_cached(prompt, n)
    assert all(s is None for s in engine._slots) and not engine._by_id
    if engine.prefix is not None:
        assert all(engine.prefix.refs(h) == 0 for h in engine.prefix._blocks)


def test_a_failing_forward_fails_its_requests_and_the_engine_keeps_serving():
    model = tiny("llama", seed=8)

    class Flaky:
        config, fail = model.config, True

        def new_cache(self, *a):
            return model.new_cache(*a)

        def forward(self, ids, *a, **kw):
            if self.fail and np.asarray(ids).shape[1] == 1:  # the first decode step breaks
                Flaky.fail = False
                raise FloatingPointError("simulated failure")
            return model.forward(ids, *a, **kw)

    p = prompts(1, seed=10)[0]
    with Engine(Flaky(), config=EngineConfig(max_slots=2, prefix_cache_bytes=1 << 20)) as engine:
        r = engine.submit(p, GREEDY, max_new_tokens=5)
        broken = list(r)
        fine = [s.token_id for s in engine.submit(p, GREEDY, max_new_tokens=5)]
    assert broken[-1].finish_reason == "error" and broken[-1].token_id == -1 and len(broken) == 2  # token 1 came
    assert r.error == "FloatingPointError: simulated failure"  # from the prefill, before the decode step broke
    assert fine == alone(model, p, n=5)
