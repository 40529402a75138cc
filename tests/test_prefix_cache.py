"""The block prefix cache: hand-worked block chains, a re-sent 500-token system prompt served from cache (>= 496 of
500 tokens with 16-token blocks), multi-turn reuse, tenant isolation, reference counts and LRU eviction under the
memory cap, and the cached keys/values equal to a fresh prefill's (so greedy tokens match with the cache on or off).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minichat.config import ModelConfig, SamplingConfig
from minichat.generate import generate
from minichat.model.transformer import Transformer, init_params
from minichat.server.prefix_cache import PrefixCache, block_hashes
from minichat.server.scheduler import Engine, EngineConfig

GREEDY = SamplingConfig(temperature=0.0)
CFG = ModelConfig(vocab_size=97, n_ctx=640, n_embd=32, n_layer=2, n_head=4, n_kv_head=2, n_inner=48,
                  positions="rope", norm="rmsnorm", mlp="swiglu", bias=False)
MODEL = Transformer(CFG, init_params(CFG, np.random.default_rng(0), std=0.3))
RNG = np.random.default_rng(11)
SYSTEM = RNG.integers(0, 97, 500).tolist()


def run(engine, prompt, n=8, tenant=""):
    r = engine.submit(prompt, GREEDY, max_new_tokens=n, tenant=tenant)
    engine.run_until_idle()
    return r, [s.token_id for s in r.queue.queue]


def test_block_hashes_chain_by_hand():
    a = block_hashes(list(range(40)), 16)
    assert len(a) == 2  # 40 tokens: two full blocks, 8 left over
    b = block_hashes(list(range(32)) + [99] * 8, 16)
    assert a == b  # the partial block plays no part
    c = block_hashes([5] + list(range(1, 40)), 16)
    assert c[0] != a[0] and c[1] != a[1]  # block 1's ids are equal, but its prefix differs: so does its hash
    assert block_hashes(list(range(32)), 16, salt="alice") != block_hashes(list(range(32)), 16, salt="bob")
    assert block_hashes(list(range(15)), 16) == []


def test_resent_system_prompt_is_cached():
    engine = Engine(MODEL, config=EngineConfig(block_size=16))
    first, out1 = run(engine, SYSTEM)
    assert first.cached_tokens == 0
    again, out2 = run(engine, SYSTEM)
    assert again.cached_tokens == 496 and out2 == out1  # 31 full blocks; the last 4 tokens are computed
    question, _ = run(engine, SYSTEM + [1, 2, 3])
    assert question.cached_tokens == 496
    assert engine.stats()["prefix_cache"]["hit_tokens"] == 992


def test_multi_turn_history_is_not_recomputed():
    engine = Engine(MODEL, config=EngineConfig(block_size=16))
    turn1 = SYSTEM[:100]
    r1, out1 = run(engine, turn1, n=30)
    turn2 = turn1 + out1 + [7, 8, 9, 10]  # the history, the answer, the next user message
    r2, out2 = run(engine, turn2, n=5)
    held = len(turn1) + len(out1) - 1  # the row held the prompt and every output token but the last
    assert r2.cached_tokens == held // 16 * 16 == 128
    assert out2 == [s.token_id for s in generate(MODEL, turn2, GREEDY, max_new_tokens=5)]


def test_tenants_never_share_blocks():
    engine = Engine(MODEL, config=EngineConfig(block_size=16))
    run(engine, SYSTEM, tenant="alice")
    blocks_alice = set(engine.prefix._blocks)
    r, _ = run(engine, SYSTEM, tenant="bob")
    assert r.cached_tokens == 0
    blocks_bob = set(engine.prefix._blocks) - blocks_alice
    assert len(blocks_bob) == 31 and not blocks_alice & set(block_hashes(SYSTEM, 16, "bob"))
    slots_a = {engine.prefix._blocks[h].slot for h in blocks_alice}
    assert not slots_a & {engine.prefix._blocks[h].slot for h in blocks_bob}
    r, _ = run(engine, SYSTEM, tenant="alice")
    assert r.cached_tokens == 496


@pytest.mark.parametrize("block_size", [1, 7, 16])
def test_same_greedy_tokens_with_cache_on_or_off(block_size):
    prompts = [SYSTEM[:200] + RNG.integers(0, 97, k).tolist() for k in (5, 30, 1)] + [SYSTEM[:37]]
    outs = {}
    for cache_bytes in (0, 8 << 20):
        engine = Engine(MODEL, config=EngineConfig(max_slots=2, block_size=block_size, prefill_chunk=64,
                                                   prefix_cache_bytes=cache_bytes))
        outs[cache_bytes] = [run(engine, p, n=10)[1] for p in prompts]
        reqs = [engine.submit(p, GREEDY, max_new_tokens=10) for p in prompts]  # concurrent, cache warm
        engine.run_until_idle()
        assert [[s.token_id for s in r.queue.queue] for r in reqs] == outs[cache_bytes]
        if cache_bytes:
            assert all(r.cached_tokens > 0 for r in reqs)
    assert outs[0] == outs[8 << 20]


def _prefix_kv(ids):  # keys/values of a fresh prefill: (L, K, T, D) each
    cache = MODEL.new_cache(1, len(ids))
    MODEL.forward(np.asarray([ids]), cache=cache)
    return cache.k[:, 0], cache.v[:, 0]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 96), min_size=1, max_size=60), st.lists(st.integers(0, 96), max_size=30),
       st.integers(1, 9))
def test_loaded_blocks_equal_fresh_prefill(common, tail, bs):
    """Whatever was stored, what `load` puts in a row equals the keys/values a fresh prefill computes."""
    pc = PrefixCache(CFG.n_layer, CFG.n_kv_head, CFG.head_dim, bs, 1 << 20)
    first = common + tail
    cache = MODEL.new_cache(1, 200)
    MODEL.forward(np.asarray([first]), cache=cache)
    held = pc.store(first, cache, 0)
    assert len(held) == len(first) // bs and all(pc.refs(h) == 1 for h in held)
    pc.release(held)
    second = common + [int(t) % 97 + 0 for t in reversed(tail)]
    hashes = pc.match(second, limit=len(second) - 1)
    target = MODEL.new_cache(1, 200)
    n = pc.load(hashes, target, 0)
    same = next((i for i, (a, b) in enumerate(zip(first, second)) if a != b), min(len(first), len(second)))
    assert n == min(same, len(second) - 1) // bs * bs
    if n:
        k, v = _prefix_kv(second[:n])
        np.testing.assert_allclose(target.k[:, 0, :, :n], k, atol=1e-5)
        np.testing.assert_allclose(target.v[:, 0, :, :n], v, atol=1e-5)


def test_refcounts_and_lru_eviction_under_the_cap():
    bs = 4
    one_block = 2 * CFG.n_layer * CFG.n_kv_head * bs * CFG.head_dim * 4
    pc = PrefixCache(CFG.n_layer, CFG.n_kv_head, CFG.head_dim, bs, max_bytes=3 * one_block + 1)
    assert pc.n_blocks == 3
    cache = MODEL.new_cache(1, 64)
    a = list(range(1, 13))  # 3 blocks
    MODEL.forward(np.asarray([a]), cache=cache)
    held_a = pc.store(a, cache, 0)
    assert len(held_a) == 3 and pc.used_bytes == 3 * one_block
    b = list(range(50, 62))
    cache.reset()
    MODEL.forward(np.asarray([b]), cache=cache)
    assert pc.store(b, cache, 0) == []  # the pool is full of blocks in use: nothing can be evicted
    pc.release(held_a)  # a's blocks are idle now, its tail first in line for eviction
    held_b = pc.store(b[:8], cache, 0)
    assert len(held_b) == 2 and pc.evictions == 2
    assert len(pc.match(a)) == 1  # a's head block survived; its tail went first
    pc.acquire(pc.match(a), len(a))
    assert pc.hits == 4 and pc.misses == 8
    assert pc.store(b, cache, 0)[:2] == held_b  # b's third block needs a slot: a's head is held, so none is free
    with pytest.raises(ValueError, match="block_size"):
        PrefixCache(2, 2, 8, block_size=0)
