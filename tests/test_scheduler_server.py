"""The batching engine behind the real HTTP server, driven by the official `openai` client: concurrent streams give
what each request gives alone, usage.prompt_tokens_details.cached_tokens is true to the prefix cache and per tenant,
and /health shows the engine's counters. The server pieces (build_state, create_app) are the server-core's; this
test swaps its SerialEngine for BatchingEngine, as `minichat serve` does when batching is on."""
from __future__ import annotations

import argparse
import json
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import require_peer
from minichat.config import ModelConfig
from minichat.model.transformer import Transformer, init_params
from minichat.server.engine import BatchingEngine, EngineConfig
from minichat.tokenizer import train

TEXT = "Hello there, how are you today? The capital of France is Paris. 12 + 30 = 42. " * 8
TOK = train(TEXT, vocab_size=300, special_tokens={"<|endoftext|>": 300, "<|im_start|>": 301, "<|im_end|>": 302})
KEY_A, KEY_B = "mc-test-key-alice-0123456789", "mc-test-key-bob-0123456789"


@pytest.fixture(scope="module")
def server():
    uvicorn = require_peer("uvicorn")
    from minichat.server.app import create_app
    from minichat.server.keys import record_for
    from minichat.server.web import add_serve_arguments, build_state

    cfg = ModelConfig.llama(vocab_size=303, n_ctx=384, n_embd=32, n_layer=2, n_head=4, n_kv_head=2, n_inner=48)
    model = Transformer(cfg, init_params(cfg, np.random.default_rng(0), std=0.3))
    p = argparse.ArgumentParser()
    add_serve_arguments(p)
    args = p.parse_args(["--no-safety", "--api-key", KEY_A, "--user", "alice", "--max-tokens", "12"])
    state, _ = build_state(args, model=model, tokenizer=TOK, log=lambda *_: None)
    state.auth.fixed.append(record_for(KEY_B, "bob", 1000, key_id="key_bob"))
    state.engine.close()
    state.engine = BatchingEngine(model, TOK, EngineConfig(max_slots=4, block_size=8))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(create_app(state), log_level="critical", timeout_graceful_shutdown=0.5))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        assert time.time() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", state
    srv.should_exit = True
    thread.join(timeout=10)
    state.engine.close()


def client(url, key=KEY_A):
    openai = require_peer("openai")
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)


def ask(url, text, key=KEY_A, stream=False):
    messages = [{"role": "system", "content": "You are a test. " * 6}, {"role": "user", "content": text}]
    c = client(url, key)
    if not stream:
        r = c.chat.completions.create(model="minichat-builtin", messages=messages, temperature=0, max_tokens=12)
        return r.choices[0].message.content, r.usage
    chunks = list(c.chat.completions.create(model="minichat-builtin", messages=messages, temperature=0, max_tokens=12,
                                            stream=True, stream_options={"include_usage": True}))
    return "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices), chunks[-1].usage


def test_concurrent_streams_equal_alone_and_cached_tokens(server):
    url, state = server
    questions = ["Hello there", "how are you today?", "The capital of France", "12 + 30 ="]
    alone = [ask(url, q) for q in questions]  # one at a time, not streamed
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda q: ask(url, q, stream=True), questions))
    assert [t[0] for t in together] == [a[0] for a in alone]
    # the shared system prompt was cached by the first request: every later one reports its full blocks
    assert alone[0][1].prompt_tokens_details.cached_tokens == 0
    cached = [u.prompt_tokens_details.cached_tokens for _, u in together]
    assert all(c > 0 and c % 8 == 0 for c in cached)
    _, bob = ask(url, questions[0], key=KEY_B)
    assert bob.prompt_tokens_details.cached_tokens == 0  # another tenant never hits alice's blocks
    _, again = ask(url, questions[0])
    assert again.prompt_tokens_details.cached_tokens == (again.prompt_tokens - 1) // 8 * 8
    with urllib.request.urlopen(url + "/health", timeout=30) as r:
        health = json.load(r)
    assert health["engine"] == "batching" and health["prefix_cache"]["hit_tokens"] > 0
