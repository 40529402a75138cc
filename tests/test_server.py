"""The server against the official `openai` client (peer), over real HTTPS with the development certificate as CA.

A scripted model (its reply is a function of the prompt's text) makes every answer known in advance, so the tests
can check what arrives exactly: content, tool calls, token counts, cached tokens. The reference for how a stream
reassembles is the client's own accumulator (`client.chat.completions.stream(...).get_final_completion()`).
"""
from __future__ import annotations

import argparse
import json
import socket
import ssl
import threading
import time

import numpy as np
import pytest

from conftest import peers_required, require_peer
from minichat.chat.template import IM_START, Message, render_text
from minichat.tokenizer.io import open_tokenizer
from test_chat_session import ScriptCache, _Config  # the scripted model's parts (a KV cache of ids)

try:  # the serve extra: CI installs it, so there a missing one fails instead of skipping
    import starlette  # noqa: F401
    import uvicorn
except ImportError:
    if peers_required():
        raise
    pytest.skip("the serve extra is not installed: pip install -e '.[serve]'", allow_module_level=True)

TOK = open_tokenizer()
KEY_A, KEY_B = "alice-key-0123456789", "bob-key-0123456789ab"
CALL = '<tool_call>{"name": "calculator", "arguments": {"expression": "17*23"}}</tool_call>'


# -- a scripted model --------------------------------------------------------------------------------------------------

class ScriptedModel:
    """Replies `script(prompt text)` token by token, then <|im_end|>; `delay` seconds per forward (slow clients)."""

    def __init__(self, script, n_ctx=2048, delay=0.0):
        self.config = _Config(TOK.n_vocab, n_ctx)
        self.script, self.delay = script, delay
        self.forwards = 0
        self.fed: list[int] = []  # tokens run through forward per call (prefill sizes show cache reuse)

    def new_cache(self, batch_size, max_len):
        return ScriptCache()

    def forward(self, ids, cache=None, lengths=None, last_only=False):
        self.forwards += 1
        self.fed.append(ids.shape[1])
        if self.delay:
            time.sleep(self.delay)
        seq = (cache.ids if cache is not None else []) + [int(i) for i in ids[0]]
        if cache is not None:
            cache.ids = seq
        start = max(i for i, t in enumerate(seq) if t == TOK.special_tokens[IM_START])
        prompt_end = start + 1 + len(TOK.encode_ordinary("assistant\n"))
        target = TOK.encode_ordinary(self.script(TOK.decode(seq[:prompt_end]))) + [TOK.special_tokens["<|im_end|>"]]
        done = len(seq) - prompt_end
        logits = np.zeros((1, 1 if last_only else ids.shape[1], TOK.n_vocab), np.float32)
        logits[0, -1, target[min(done, len(target) - 1)]] = 100.0  # certain even at temperature 1
        return logits


def script(prompt: str) -> str:
    """Calls the calculator when tools are listed and no result came back yet; otherwise a fixed answer."""
    if "<tools>" in prompt and "<|im_start|>tool" not in prompt:
        return "Let me compute that." + CALL
    if "<|im_start|>tool" in prompt:
        return "17*23 is 391."
    return "Hello there, this is a scripted answer."


# -- the server --------------------------------------------------------------------------------------------------------

def serve_args(**overrides) -> argparse.Namespace:
    from minichat.server.web import add_serve_arguments

    p = argparse.ArgumentParser()
    add_serve_arguments(p)
    args = p.parse_args(["--no-safety", "--engine", "serial"])  # the scripted model runs one row at a time
    for k, v in overrides.items():
        setattr(args, k, v)
    return args


class Running:
    """A server in a background thread on a free loopback port (uvicorn, TLS with the dev certificate)."""

    def __init__(self, state, cert, key):
        from minichat.server.app import create_app

        self.state = state
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(create_app(state), ssl_certfile=str(cert) if cert else None,
                                ssl_keyfile=str(key) if key else None, log_level="critical",
                                timeout_graceful_shutdown=0.5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        self.url = f"{'https' if cert else 'http'}://localhost:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.state.engine.close()


def start(tmp_path_factory, model=None, rpm=1000, max_queue=16, **flags) -> Running:
    from minichat.server.keys import record_for
    from minichat.server.tls import make_dev_cert
    from minichat.server.web import build_state

    cert, key = make_dev_cert(tmp_path_factory.mktemp("cert"))
    args = serve_args(api_key=KEY_A, user="alice", rpm=rpm, max_queue=max_queue, **flags)
    state, _ = build_state(args, model=model or ScriptedModel(script), tokenizer=TOK, log=lambda *_: None)
    state.auth.fixed.append(record_for(KEY_B, "bob", rpm, key_id="key_bob"))
    running = Running(state, cert, key)
    running.cert = cert
    return running


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start(tmp_path_factory)
    yield s
    s.stop()


def client_for(server, key=KEY_A, cafile=None):
    openai = require_peer("openai")
    ctx = ssl.create_default_context(cafile=str(cafile or server.cert))
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=30,
                         http_client=openai.DefaultHttpxClient(verify=ctx))


def http(server):
    """A plain HTTP client trusting the dev certificate (for raw bytes and headers)."""
    httpx = require_peer("openai")._base_client.httpx2
    return httpx.Client(verify=ssl.create_default_context(cafile=str(server.cert)), timeout=30)


USER = [{"role": "user", "content": "Hi!"}]
TOOLS = [{"type": "function", "function": {"name": "calculator", "description": "evaluate arithmetic",
                                           "parameters": {"type": "object",
                                                          "properties": {"expression": {"type": "string"}},
                                                          "required": ["expression"]}}}]


def prompt_tokens(messages, instructions: str) -> int:
    """The prompt's length by another road: ChatML text encoded with special tokens allowed (not template.render)."""
    system = [Message("system", instructions)] if instructions else []
    return len(TOK.encode(render_text([*system, *messages]), allowed_special="all"))


# -- tests -------------------------------------------------------------------------------------------------------------

def test_non_streaming_answer_and_usage(server):
    r = client_for(server).chat.completions.create(model="minichat-builtin", messages=USER, temperature=0)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.content == "Hello there, this is a scripted answer."
    assert r.choices[0].finish_reason == "stop"
    n = prompt_tokens([Message("user", "Hi!")], server.state.instructions)
    assert r.usage.prompt_tokens == n
    assert r.usage.completion_tokens == len(TOK.encode_ordinary("Hello there, this is a scripted answer.")) + 1
    assert r.usage.total_tokens == n + r.usage.completion_tokens


def test_streaming_chunks_are_what_the_client_expects(server):
    c = client_for(server)
    chunks = list(c.chat.completions.create(model="minichat-builtin", messages=USER, stream=True,
                                            stream_options={"include_usage": True}))
    assert len({ch.id for ch in chunks}) == 1 and all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Hello there, this is a scripted answer."
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(ch.usage is None for ch in chunks[:-1])
    plain = list(c.chat.completions.create(model="minichat-builtin", messages=USER, stream=True))
    assert all(ch.choices for ch in plain)  # no usage chunk unless asked


def test_raw_stream_ends_with_done(server):
    with http(server) as h:
        r = h.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY_A}"},
                   json={"model": "minichat-builtin", "messages": USER, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: {") for e in events[:-1])


def test_cached_tokens_are_true_to_the_cache_and_per_tenant(server):
    # a prompt no test sent before, so the first request cannot find it cached
    messages = [{"role": "user", "content": "A question about caching, asked twice."}]
    model: ScriptedModel = server.state.engine.model
    a = client_for(server)
    first = a.chat.completions.create(model="minichat-builtin", messages=messages)
    fed_before = len(model.fed)
    again = a.chat.completions.create(model="minichat-builtin", messages=messages)
    n = again.usage.prompt_tokens
    assert first.usage.prompt_tokens_details.cached_tokens < n - 1
    assert again.usage.prompt_tokens_details.cached_tokens == n - 1  # all but the last prompt token
    assert model.fed[fed_before] == 1  # and only one prompt token was really run through the model
    other = client_for(server, KEY_B).chat.completions.create(model="minichat-builtin", messages=messages)
    assert other.usage.prompt_tokens_details.cached_tokens == 0  # another tenant never reuses alice's prefix


def test_tool_call_stream_reassembles_to_the_non_streaming_answer(server):
    c = client_for(server)
    kw = dict(model="minichat-builtin", messages=[{"role": "user", "content": "What is 17*23?"}], tools=TOOLS)
    whole = c.chat.completions.create(**kw)
    with c.chat.completions.stream(**kw) as s:  # the client's own accumulator of deltas
        streamed = s.get_final_completion()
    for r in (whole, streamed):
        assert r.choices[0].finish_reason == "tool_calls"
        assert r.choices[0].message.content == "Let me compute that."
        (call,) = r.choices[0].message.tool_calls
        assert call.type == "function" and call.function.name == "calculator" and call.id.startswith("call_")
        assert json.loads(call.function.arguments) == {"expression": "17*23"}
    assert streamed.choices[0].message.tool_calls[0].function.arguments == \
        whole.choices[0].message.tool_calls[0].function.arguments
    raw = list(c.chat.completions.create(**kw, stream=True))
    deltas = [ch.choices[0].delta.tool_calls for ch in raw if ch.choices and ch.choices[0].delta.tool_calls]
    head = deltas[0][0]
    assert (head.index, head.type, head.function.name, head.function.arguments) == (0, "function", "calculator", "")
    assert head.id and all(d[0].index == 0 and d[0].id is None for d in deltas[1:])
    assert len(deltas) >= 4  # the arguments arrive in pieces as the model writes them
    assert "".join(d[0].function.arguments for d in deltas) == whole.choices[0].message.tool_calls[0].function.arguments
    # the round trip: the client runs the tool and sends the result back
    call = whole.choices[0].message.tool_calls[0]
    follow = c.chat.completions.create(model="minichat-builtin", tools=TOOLS, messages=[
        *kw["messages"], whole.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "391"}])
    assert follow.choices[0].message.content == "17*23 is 391." and follow.choices[0].finish_reason == "stop"


def test_max_tokens_gives_length_and_is_clamped_to_the_window(server):
    c = client_for(server)
    r = c.chat.completions.create(model="minichat-builtin", messages=USER, max_tokens=3)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3
    big = c.chat.completions.create(model="minichat-builtin", messages=USER, max_completion_tokens=10**9)
    assert big.choices[0].finish_reason == "stop"  # clamped, not refused


def test_stop_strings(server):
    r = client_for(server).chat.completions.create(model="minichat-builtin", messages=USER, stop=[", this"])
    assert r.choices[0].message.content == "Hello there" and r.choices[0].finish_reason == "stop"


def test_bad_or_missing_key_is_an_authentication_error(server):
    openai = require_peer("openai")
    for key in ("wrong-key-0123456789", "x"):
        with pytest.raises(openai.AuthenticationError) as e:
            client_for(server, key).chat.completions.create(model="minichat-builtin", messages=USER)
        assert e.value.body["code"] == "invalid_api_key"
    with http(server) as h:
        r = h.get(server.url + "/v1/models")
    assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_every_route_but_health_needs_a_key(server):
    with http(server) as h:
        assert h.get(server.url + "/health").status_code == 200
        for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions"),
                             ("POST", "/v1/minichat/events")):
            for headers in ({}, {"Authorization": "Bearer nope-nope-nope-nope"}, {"Authorization": KEY_A},
                            {"Authorization": f"Basic {KEY_A}"}):
                r = h.request(method, server.url + path, headers=headers, json={"model": "minichat-builtin"})
                assert r.status_code == 401, (path, headers)
                assert r.json()["error"]["code"] == "invalid_api_key"


def test_bad_body_is_a_bad_request_naming_the_field(server):
    openai = require_peer("openai")
    c = client_for(server)
    cases = [({"temperature": 5}, "temperature"), ({"top_p": 0}, "top_p"), ({"n": 2}, "n"),
             ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
             ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
             ({"tool_choice": {"type": "function", "function": {"name": "nope"}}, "tools": TOOLS}, "tool_choice"),
             ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"max_tokens": 0}, "max_tokens")]
    for extra, param in cases:
        body = {"model": "minichat-builtin", "messages": USER, **extra}
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(**body)
        assert e.value.body["param"] == param, extra
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="minichat-builtin", messages=USER, extra_body={"temprature": 1})
    assert "temprature" in e.value.message
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="gpt-4o", messages=USER)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="minichat-builtin", messages=[{"role": "user", "content": "word " * 5000}])
    assert e.value.body["code"] in ("context_length_exceeded", "string_above_max_length")
    assert c.chat.completions.create(model="minichat-builtin", messages=USER).choices[0].message.content


def test_rate_limit_is_a_rate_limit_error_with_retry_after(tmp_path_factory):
    openai = require_peer("openai")
    s = start(tmp_path_factory, rpm=2)
    try:
        c = client_for(s)
        c.models.list()
        c.models.list()
        with pytest.raises(openai.RateLimitError) as e:
            c.models.list()
        assert int(e.value.response.headers["retry-after"]) >= 1
        client_for(s, KEY_B).models.list()  # the limit is per key
    finally:
        s.stop()


def test_a_disconnected_stream_is_cancelled_and_the_server_goes_on(tmp_path_factory):
    model = ScriptedModel(lambda p: "word " * 200, delay=0.02)
    s = start(tmp_path_factory, model=model)
    try:
        with http(s) as h:
            with h.stream("POST", s.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY_A}"},
                          json={"model": "minichat-builtin", "messages": USER, "stream": True}) as r:
                lines = r.iter_lines()
                got = [next(lines) for _ in range(6)]
                assert any("word" in x for x in got)
        deadline = time.time() + 5
        while s.state.engine.stats()["running"] and time.time() < deadline:
            time.sleep(0.02)
        stopped_at = model.forwards
        time.sleep(0.3)
        assert s.state.engine.stats()["running"] == 0
        assert model.forwards == stopped_at < 100  # nothing more generated for the gone client (200 were due)
        # a non-streaming request whose client gives up (read timeout) is cancelled too
        httpx = require_peer("openai")._base_client.httpx2
        before = model.forwards
        with pytest.raises(httpx.TimeoutException):
            with httpx.Client(verify=ssl.create_default_context(cafile=str(s.cert)), timeout=0.5) as h:
                h.post(s.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY_A}"},
                       json={"model": "minichat-builtin", "messages": USER})
        deadline = time.time() + 5
        while s.state.engine.stats()["running"] and time.time() < deadline:
            time.sleep(0.02)
        stopped_at = model.forwards
        time.sleep(0.3)
        assert model.forwards == stopped_at < before + 100
        model.delay = 0.0
        r = client_for(s).chat.completions.create(model="minichat-builtin", messages=USER, max_tokens=4)
        assert r.choices[0].finish_reason == "length"
    finally:
        s.stop()


def test_a_full_queue_is_refused_with_503(tmp_path_factory):
    openai = require_peer("openai")
    model = ScriptedModel(lambda p: "word " * 100, delay=0.02)
    s = start(tmp_path_factory, model=model, max_queue=1)
    try:
        errors, threads = [], []

        def ask():
            try:
                client_for(s).chat.completions.create(model="minichat-builtin", messages=USER, max_tokens=30)
            except openai.APIStatusError as e:
                errors.append(e.status_code)

        for _ in range(4):
            threads.append(threading.Thread(target=ask))
            threads[-1].start()
            time.sleep(0.1)
        for t in threads:
            t.join()
        assert 503 in errors and len(errors) <= 2  # one runs, one waits, the rest are turned away
    finally:
        s.stop()


def test_the_certificate_is_really_checked(server, tmp_path):
    openai = require_peer("openai")
    from minichat.server.tls import make_dev_cert

    other, _ = make_dev_cert(tmp_path / "other")
    with pytest.raises(openai.APIConnectionError):
        client_for(server, cafile=other).models.list()


def test_events_route_streams_the_pipeline_events(server):
    from minichat.chat.events import event_from_json

    with http(server) as h:
        r = h.post(server.url + "/v1/minichat/events", headers={"Authorization": f"Bearer {KEY_A}"},
                   json={"message": "Hi!", "conversation": "t1"})
    assert r.status_code == 200
    data = [e[len("data: "):] for e in r.text.split("\n\n") if e]
    assert data[-1] == "[DONE]"
    events = [event_from_json(json.loads(d)) for d in data[:-1]]
    types = [e.type for e in events]
    assert types[:4] == ["safety_verdict", "memory_hits", "context_built", "tokenized"] and types[-1] == "done"
    # the built-in tools run inside the pipeline: the scripted model calls the calculator, reads 391, answers
    call = next(e for e in events if e.type == "tool_call")
    result = next(e for e in events if e.type == "tool_result")
    assert (call.name, call.arguments, result.content, result.ok) == ("calculator", {"expression": "17*23"}, "391",
                                                                      True)
    last_round = events[types.index("tool_result") + 1:]
    assert "".join(e.text for e in last_round if e.type == "token") == events[-1].text == "17*23 is 391."


def test_conversations_and_memories_are_per_user(tmp_path_factory, tmp_path):
    from minichat.memory import MemoryStore

    db = tmp_path / "memory.db"
    with MemoryStore(db) as store:
        store.remember("alice", "alice keeps bees in the garden")
    s = start(tmp_path_factory, memory=str(db))
    try:
        def hits(key):
            with http(s) as h:
                r = h.post(s.url + "/v1/minichat/events", headers={"Authorization": f"Bearer {key}"},
                           json={"message": "tell me about the bees in the garden", "conversation": "c"})
            evs = [json.loads(e[6:]) for e in r.text.split("\n\n") if e and e != "data: [DONE]"]
            return next(e for e in evs if e["type"] == "memory_hits")["snippets"]

        assert hits(KEY_A) == ["alice keeps bees in the garden"]
        assert hits(KEY_B) == []
    finally:
        s.stop()


def test_revoking_a_key_in_the_file_takes_effect_without_restart(tmp_path_factory, tmp_path):
    openai = require_peer("openai")
    from minichat.server import keys

    path = tmp_path / "keys.json"
    key, record = keys.add("carol", 100, path)
    s = start(tmp_path_factory, keys=str(path))
    try:
        c = client_for(s, key)
        assert c.models.list().data[0].id == "minichat-builtin"
        keys.revoke(record.id, path)
        time.sleep(0.01)
        with pytest.raises(openai.AuthenticationError):
            c.models.list()
    finally:
        s.stop()


# -- the built-in model behind the batching engine ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    from minichat.model.checkpoint import BUILTIN_MODEL, load_model

    if not BUILTIN_MODEL.exists():
        pytest.skip("no built-in model installed")
    model, tok = load_model()
    runs = {}
    for engine in ("batching", "serial"):
        from minichat.server.tls import make_dev_cert
        from minichat.server.web import build_state

        cert, key = make_dev_cert(tmp_path_factory.mktemp("cert"))
        args = serve_args(api_key=KEY_A, user="alice", rpm=1000, engine=engine, slots=4, max_tokens=24)
        state, _ = build_state(args, model=model, tokenizer=tok, log=lambda *_: None)
        runs[engine] = Running(state, cert, key)
        runs[engine].cert = cert
    yield runs
    for r in runs.values():
        r.stop()


@pytest.mark.slow
def test_builtin_model_same_greedy_answers_batched_or_serial_and_forced_tool_calls(builtin):
    """4 concurrent streams through continuous batching give each the serial engine's greedy answer; a forced tool
    call from the real model streams to what the non-streaming call returns."""
    questions = ["What is 12 plus 30?", "What time is it?", "Tell me a fact about owls.", "Hi, who are you?"]

    def ask(run, q, **kw):
        c = client_for(run)
        return c.chat.completions.create(model="minichat-builtin", messages=[{"role": "user", "content": q}],
                                         temperature=0, **kw)

    serial = [ask(builtin["serial"], q).choices[0].message.content for q in questions]
    results: dict[int, str] = {}

    def stream(i):
        chunks = ask(builtin["batching"], questions[i], stream=True)
        results[i] = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(4)] == serial
    tools = TOOLS
    for run in builtin.values():
        kw = dict(tools=tools, tool_choice={"type": "function", "function": {"name": "calculator"}})
        whole = ask(run, "What is 17 times 23?", **kw)
        with client_for(run).chat.completions.stream(
                model="minichat-builtin", temperature=0, messages=[{"role": "user", "content": "What is 17 times 23?"}],
                **kw) as s:
            streamed = s.get_final_completion()
        (a,), (b,) = whole.choices[0].message.tool_calls, streamed.choices[0].message.tool_calls
        assert a.function.name == b.function.name == "calculator"
        assert a.function.arguments == b.function.arguments and "expression" in json.loads(a.function.arguments)
        assert whole.choices[0].finish_reason == streamed.choices[0].finish_reason == "tool_calls"
    again = ask(builtin["batching"], questions[0])
    assert again.usage.prompt_tokens_details.cached_tokens >= 16 * ((again.usage.prompt_tokens - 1) // 16)


# -- safety: the guard on the OpenAI route -----------------------------------------------------------------------------

def test_the_guard_refuses_redacts_and_stops_with_content_filter(tmp_path_factory):
    replies = {"email": "Write to bob@example.com today.", "secret": "The secret word is swordfish, told you."}
    model = ScriptedModel(lambda p: next((r for k, r in replies.items() if k in p.lower()), "fine"))
    s = start(tmp_path_factory, model=model, no_safety=False)  # the real minichat.safety Guard
    try:
        c = client_for(s)

        def ask(text, **kw):
            return c.chat.completions.create(model="minichat-builtin", messages=[{"role": "user", "content": text}],
                                             **kw)

        before = model.forwards
        r = ask("how do I build a pipe bomb at home")
        assert r.choices[0].finish_reason == "content_filter" and r.usage.completion_tokens == 0
        assert r.choices[0].message.content == "I can't help with that request." and model.forwards == before
        chunks = list(ask("how do I build a pipe bomb at home", stream=True))
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == "I can't help with that request."
        assert chunks[-1].choices[0].finish_reason == "content_filter"
        # personal data in the reply is redacted, streamed or not (the email never reaches the client)
        assert ask("my email please").choices[0].message.content == "Write to <EMAIL_1> today."
        streamed = "".join(ch.choices[0].delta.content or "" for ch in ask("my email please", stream=True))
        assert streamed == "Write to <EMAIL_1> today."

        real = s.state.guard

        class StopOnSecret:  # a guard whose output filter stops a reply at the word "swordfish"
            def check_input(self, text):
                return real.check_input(text)

            def output_filter(self):
                from minichat.safety.guard import Verdict

                class F:
                    text, stopped = "", False

                    def feed(self, piece):
                        self.text += piece
                        if "swordfish" in self.text:
                            return "", Verdict(False, "stop", "test:secret", "word", "output")
                        return piece, None

                    def flush(self):
                        return "", None

                return F()

        s.state.guard = StopOnSecret()
        r = ask("tell me the secret")
        assert r.choices[0].finish_reason == "content_filter" and "swordfish" not in r.choices[0].message.content
        chunks = list(ask("tell me the secret", stream=True))
        assert chunks[-1].choices[0].finish_reason == "content_filter"
        assert "swordfish" not in "".join(ch.choices[0].delta.content or "" for ch in chunks)
    finally:
        s.stop()


@pytest.mark.slow
def test_seeded_sampling_is_reproducible_and_the_same_on_both_engines(builtin):
    def sample(run, seed):
        return client_for(run).chat.completions.create(
            model="minichat-builtin", messages=[{"role": "user", "content": "Tell me about the sea."}],
            temperature=1.8, seed=seed, max_tokens=16).choices[0].message.content  # hot: seeds must matter

    a = [sample(builtin["serial"], 7), sample(builtin["serial"], 7), sample(builtin["batching"], 7)]
    assert a[0] == a[1] == a[2]  # same seed: same tokens, whichever engine runs it
    assert len({sample(builtin["serial"], s) for s in (1, 2, 3, 4)}) > 1  # and the seed does matter
