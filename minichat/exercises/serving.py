"""Checkers for notebook 08 (serving): one streamed chunk, the prefix cache's hash chain, and what a prompt finds in it.

    check_sse_chunk(fn)     fn(cid, model, created, delta, finish_reason) -> str: one server-sent event carrying one
                            `chat.completion.chunk`, as minichat.server.sse.ChunkWriter sends it
    check_block_hashes(fn)  fn(ids, block_size, salt) -> list[bytes]: the chained hashes of the full blocks of `ids`,
                            equal to minichat.server.prefix_cache.block_hashes
    check_lcp_blocks(fn)    fn(earlier, prompt, tenant, block_size) -> int: how many whole blocks of `prompt` the
                            prefix cache serves after the `earlier` prompts were cached; equal to what
                            minichat.server.prefix_cache.PrefixCache.match finds

The rules:
  * An SSE event (WHATWG HTML, "Server-sent events") is `data: <text>` lines ended by an empty line; the text here
    is the chunk as JSON: {"id", "object": "chat.completion.chunk", "created", "model", "choices": [{"index": 0,
    "delta": delta, "logprobs": null, "finish_reason": finish_reason}]}. The checker reads your event the way a
    client does (one optional space after "data:", data lines joined with "\\n", JSON parsed), so any spacing
    inside the JSON is fine; what the client would read must equal the library's chunk.
  * Block hashes (blake2b with digest_size=16, from hashlib): the root is H(b"minichat-prefix\\0" + salt as UTF-8);
    block i's hash is H(hash of block i-1 + the block's ids as little-endian signed 64-bit integers, 8 bytes
    each). Only full blocks get a hash: the ids after the last full block have none.
  * The prefix cache finds the longest run of blocks at the start of the prompt whose hashes it holds for this
    tenant (the tenant is the salt), but never all of the prompt: its last token must still run through the model,
    because its logits choose the first new token (at most len(prompt) - 1 tokens' worth of blocks). Every full
    block of each earlier prompt (of its own tenant) is cached; the cache is large enough that nothing is evicted.

Reference: minichat.server.sse, minichat.server.prefix_cache (imported here; neither needs the `serve` extra).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np

from minichat.exercises import Feedback, _short, run_cases
from minichat.model.kv_cache import KVCache
from minichat.server.prefix_cache import PrefixCache, block_hashes
from minichat.server.sse import ChunkWriter


def read_event(text: object) -> object:
    """The JSON value one SSE event carries, read as a client reads it; ValueError if it is not exactly one event."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if not isinstance(text, str):
        raise ValueError(f"an event is a str (or bytes), not {type(text).__name__}")
    if not text.endswith("\n\n"):
        raise ValueError("an event must end with an empty line: its last line and then '\\n\\n'")
    lines = text[:-2].split("\n")
    if any(line == "" for line in lines):
        raise ValueError("an empty line inside: that ends the event early, so this is more than one event")
    data = []
    for line in lines:
        if not line.startswith("data:"):
            raise ValueError(f"every line of this event should be a 'data:' line, not {line[:30]!r}")
        value = line[len("data:"):]
        data.append(value[1:] if value.startswith(" ") else value)  # the spec strips one space after the colon
    return json.loads("\n".join(data))


# -- 1. one streamed chunk ---------------------------------------------------------------------------------------------

_CALL = {"id": "call_5b1e0c", "type": "function", "function": {"name": "calculator", "arguments": ""}}


def check_sse_chunk(fn: Callable[[str, str, int, dict, str | None], str]) -> Feedback:
    """fn(cid, model, created, delta, finish_reason) -> one SSE event of a chat.completion.chunk."""
    cid, created = "chatcmpl-8f2a41c9d07b", 1764489600
    cases = [  # (name, model, delta, finish_reason, the library's event)
        ("the first chunk: the role", "minichat-builtin", {"role": "assistant", "content": ""}, None,
         lambda w: w.role()),
        ("a piece of text", "minichat-builtin", {"content": "Hello"}, None, lambda w: w.text("Hello")),
        ("text with a line break, quotes and an accent", "minichat-builtin", {"content": 'a "café"\n\nb'}, None,
         lambda w: w.text('a "café"\n\nb')),
        ("a tool call's header", "minichat-builtin",
         {"tool_calls": [{"index": 0, "id": _CALL["id"], "type": "function",
                          "function": {"name": "calculator", "arguments": ""}}]}, None,
         lambda w: w.tool_call(0, _CALL)),
        ("a piece of its arguments", "minichat-builtin",
         {"tool_calls": [{"index": 0, "function": {"arguments": '{"expression": "17'}}]}, None,
         lambda w: w.tool_args(0, '{"expression": "17')),
        ("the last chunk: finish_reason stop", "minichat-builtin", {}, "stop", lambda w: w.finish("stop")),
        ("cut off: finish_reason length, another model name", "my-model", {}, "length",
         lambda w: w.finish("length")),
        ("after a tool call: finish_reason tool_calls", "minichat-builtin", {}, "tool_calls",
         lambda w: w.finish("tool_calls")),
    ]
    out = []
    for name, model, delta, reason, make in cases:
        want = read_event(make(ChunkWriter(cid, model, created)))
        out.append((name, (cid, model, created, json.loads(json.dumps(delta)), reason), want))

    def same(got: object, want: object) -> bool:
        try:
            return read_event(got) == want
        except (ValueError, UnicodeDecodeError):  # json.JSONDecodeError is a ValueError
            return False

    fb = run_cases("sse_chunk", fn, out, same=same)
    return _explain(fb, fn, out, read_event)


def _explain(fb: Feedback, fn: Callable, cases: list, read: Callable) -> Feedback:
    """Replace a failing case's "expected ..., got ..." by why the event could not be read, when it could not."""
    for k, (name, ok, detail) in enumerate(fb.cases):
        if ok or detail.startswith("raised"):
            continue
        try:
            read(fn(*cases[k][1]))
        except (ValueError, UnicodeDecodeError) as e:
            fb.cases[k] = (name, False, f"{e} (got {_short(fn(*cases[k][1]), 80)})")
        except Exception:  # noqa: BLE001 - the first call already reported what it could
            pass
    return fb


# -- 2. the hash chain -------------------------------------------------------------------------------------------------

def check_block_hashes(fn: Callable[[Sequence[int], int, str], list], seed: int = 0) -> Feedback:
    """fn(ids, block_size, salt) -> the chained hashes of every full block, as bytes."""
    rng = np.random.default_rng(seed)
    system = [int(i) for i in rng.integers(0, 4096, 40)]
    cases = [
        ("one block of 4", list(range(4)), 4, ""),
        ("two blocks of 4 and a partial one (no hash)", list(range(10)), 4, ""),
        ("fewer ids than a block: no hash", [5, 6, 7], 4, ""),
        ("no ids at all", [], 16, ""),
        ("the same ids, another tenant", list(range(10)), 4, "alice"),
        ("a non-ASCII salt", list(range(8)), 4, "zoë"),
        ("block size 1: one hash per id", [3, 1, 4, 1, 5], 1, "t"),
        ("equal blocks at different positions", [7, 7, 7, 7] * 3, 4, ""),
        ("ids above 255 and 65535 (8 bytes each)", [300, 70000, 4095, 2**31 + 5], 2, ""),
        ("a 40-token prompt, 16-token blocks", system, 16, "key_3f9a1c2b"),
    ]
    for i in range(6):
        n, bs = int(rng.integers(0, 70)), int(rng.choice([1, 3, 8, 16]))
        cases.append((f"random {i}", [int(x) for x in rng.integers(0, 50_000, n)], bs, str(rng.choice(["", "bob"]))))
    out = [(f"{name}: ids {_short(ids, 40)} block_size {bs} salt {salt!r}", (list(ids), bs, salt),
            block_hashes(ids, bs, salt)) for name, ids, bs, salt in cases]

    def same(got: object, want: list[bytes]) -> bool:
        try:
            return [bytes(h) for h in got] == want
        except TypeError:
            return False

    return run_cases("block_hashes", fn, out, same=same)


# -- 3. what a prompt finds in the cache -------------------------------------------------------------------------------

def library_lcp_blocks(earlier: Sequence[tuple[str, Sequence[int]]], prompt: Sequence[int], tenant: str,
                       block_size: int) -> int:
    """The answer from minichat's PrefixCache: store every earlier prompt (a KV row of zeros stands in for the
    keys and values), then match the prompt as the scheduler does on admission."""
    longest = max([len(ids) for _, ids in earlier] + [1])
    cache = PrefixCache(n_layer=1, n_kv_head=1, head_dim=1, block_size=block_size, max_bytes=1 << 22)
    kv = KVCache(1, 1, 1, longest, 1)
    for who, ids in earlier:
        kv.lengths[0] = len(ids)
        cache.release(cache.store(ids, kv, 0, who))  # cached and idle, as after the request ended
    return len(cache.match(prompt, tenant, limit=len(prompt) - 1))


def check_lcp_blocks(fn: Callable[[list, list[int], str, int], int], seed: int = 0) -> Feedback:
    """fn(earlier, prompt, tenant, block_size) -> how many whole blocks of `prompt` the cache serves.

    earlier: a list of (tenant, ids) sent before (all of their full blocks are cached)."""
    rng = np.random.default_rng(seed)
    sys_a = [int(i) for i in rng.integers(0, 4096, 35)]  # a "system prompt" of 35 tokens
    q1, q2 = [int(i) for i in rng.integers(0, 4096, 9)], [int(i) for i in rng.integers(0, 4096, 12)]
    cases = [
        ("nothing cached yet", [], sys_a + q1, "a", 16),
        ("a shared 35-token system prompt: 2 whole blocks", [("a", sys_a + q1)], sys_a + q2, "a", 16),
        ("the same shared start, another tenant: nothing", [("b", sys_a + q1)], sys_a + q2, "a", 16),
        ("a re-sent 44-token prompt: its 2 full blocks", [("a", sys_a + q1)], sys_a + q1, "a", 16),
        ("a re-sent 32-token prompt: the last token must run, so 1 block", [("a", sys_a[:32])], sys_a[:32], "a",
         16),
        ("a re-sent 33-token prompt: 2 blocks", [("a", sys_a[:33])], sys_a[:33], "a", 16),
        ("a prompt that is a prefix of a longer earlier one", [("a", sys_a + q1)], sys_a[:20], "a", 16),
        ("the first block differs, later blocks equal: nothing (a chain)", [("a", [1] + sys_a[1:])], sys_a,
         "a", 4),
        ("an earlier prompt's partial last block is not cached", [("a", sys_a[:30])], sys_a, "a", 16),
        ("the best of several earlier prompts", [("a", sys_a[:10]), ("a", sys_a[:26] + q1), ("b", sys_a)],
         sys_a + q2, "a", 4),
        ("block size 1", [("a", [5, 6, 7, 8])], [5, 6, 9, 8], "a", 1),
        ("empty earlier prompts and a one-token prompt", [("a", [])], [42], "a", 4),
    ]
    for i in range(8):
        base = [int(x) for x in rng.integers(0, 6, int(rng.integers(0, 60)))]  # few distinct ids: many overlaps
        earlier = []
        for _ in range(int(rng.integers(0, 4))):
            cut = int(rng.integers(0, len(base) + 1))
            earlier.append((str(rng.choice(["a", "b"])), base[:cut] + [int(x) for x in rng.integers(0, 6, 5)]))
        cut = int(rng.integers(0, len(base) + 1))
        prompt = base[:cut] + [int(x) for x in rng.integers(0, 6, int(rng.integers(1, 8)))]
        cases.append((f"random {i}", earlier, prompt, str(rng.choice(["a", "b"])), int(rng.choice([2, 4, 8]))))
    out = [(f"{name}: {len(earlier)} earlier, prompt of {len(prompt)}, tenant {tenant!r}, block_size {bs}",
            ([(t, list(ids)) for t, ids in earlier], list(prompt), tenant, bs),
            library_lcp_blocks(earlier, prompt, tenant, bs)) for name, earlier, prompt, tenant, bs in cases]
    return run_cases("lcp_blocks", fn, out, same=lambda got, want: isinstance(got, (int, np.integer))
                     and not isinstance(got, bool) and int(got) == want)
