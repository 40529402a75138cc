"""The serving exercises' checkers (notebook 08): right answers pass, typical mistakes fail, stubs are 'not done yet'.

The right answers are written here from the rules in minichat/exercises/serving.py's docstring, not by calling the
library: the SSE event from json.dumps, the hashes from hashlib, the cached blocks from a longest common prefix. The
event format is also checked against the official `openai` client's own SSE decoder and chunk type (peer), so a
checker that drifted from what the client reads would fail here.
"""
import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require_peer
from minichat.exercises.serving import check_block_hashes, check_lcp_blocks, check_sse_chunk, read_event
from minichat.server.prefix_cache import block_hashes


# -- right answers -----------------------------------------------------------------------------------------------------

def chunk_right(cid, model, created, delta, finish_reason):
    chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
    return "data: " + json.dumps(chunk) + "\n\n"


def hashes_right(ids, block_size, salt):
    h = hashlib.blake2b(b"minichat-prefix\0" + salt.encode("utf-8"), digest_size=16).digest()
    out = []
    for start in range(0, len(ids) - block_size + 1, block_size):
        block = b"".join(i.to_bytes(8, "little", signed=True) for i in ids[start:start + block_size])
        h = hashlib.blake2b(h + block, digest_size=16).digest()
        out.append(h)
    return out


def lcp_right(earlier, prompt, tenant, block_size):
    best = 0
    for who, ids in earlier:
        if who != tenant:
            continue
        n = 0
        while n < min(len(ids), len(prompt)) and ids[n] == prompt[n]:
            n += 1
        best = max(best, min(n, len(prompt) - 1) // block_size)
    return best


def test_correct_answers_pass():
    for check, fn in ((check_sse_chunk, chunk_right), (check_block_hashes, hashes_right),
                      (check_lcp_blocks, lcp_right)):
        fb = check(fn)
        assert fb.passed, str(fb)


def test_other_correct_spellings_pass():
    def compact_bytes(cid, model, created, delta, finish_reason):  # bytes, no spaces, no space after "data:"
        chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        return b"data:" + json.dumps(chunk, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
    assert check_sse_chunk(compact_bytes).passed

    def numpy_ids(ids, block_size, salt):
        import numpy as np
        a = np.asarray(ids, dtype="<i8")
        h = hashlib.blake2b(b"minichat-prefix\0" + salt.encode(), digest_size=16).digest()
        out = []
        for i in range(len(a) // block_size):
            h = hashlib.blake2b(h + a[i * block_size:(i + 1) * block_size].tobytes(), digest_size=16).digest()
            out.append(h)
        return out
    assert check_block_hashes(numpy_ids).passed


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**40), max_size=50), st.integers(1, 9), st.text(max_size=6))
def test_the_right_hashes_are_the_library_hashes(ids, block_size, salt):
    assert hashes_right(ids, block_size, salt) == block_hashes(ids, block_size, salt)


def test_the_event_is_what_the_openai_client_reads():
    require_peer("openai")
    from openai._streaming import SSEDecoder
    from openai.types.chat import ChatCompletionChunk

    delta = {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                             "function": {"name": "calculator", "arguments": ""}}]}
    for d, reason in (({"role": "assistant", "content": ""}, None), ({"content": "é\n\nx"}, None), (delta, None),
                      ({}, "stop")):
        text = chunk_right("chatcmpl-1", "m", 7, d, reason)
        events = list(SSEDecoder().iter_bytes(iter([text.encode()])))
        assert len(events) == 1 and json.loads(events[0].data) == read_event(text)
        chunk = ChatCompletionChunk.model_validate(read_event(text))
        assert chunk.object == "chat.completion.chunk" and chunk.choices[0].finish_reason == reason


# -- typical mistakes --------------------------------------------------------------------------------------------------

def test_typical_sse_mistakes_fail():
    def one_newline(*a):  # the event never ends: the client waits for the blank line
        return chunk_right(*a)[:-1]

    def wrong_object(cid, model, created, delta, finish_reason):  # the non-streaming object's name
        return chunk_right(cid, model, created, delta, finish_reason).replace("chat.completion.chunk",
                                                                              "chat.completion")

    def choice_not_a_list(cid, model, created, delta, finish_reason):
        chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}}
        return "data: " + json.dumps(chunk) + "\n\n"

    def no_finish_reason_key(cid, model, created, delta, finish_reason):
        chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None}]}
        return "data: " + json.dumps(chunk) + "\n\n"

    def python_repr(cid, model, created, delta, finish_reason):  # str(dict) is not JSON
        chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        return f"data: {chunk}\n\n"

    def raw_text_in_data(cid, model, created, delta, finish_reason):  # the text itself, not a chunk
        return f"data: {delta.get('content', '')}\n\n"

    def pretty_printed(*a):  # json.dumps(indent=2): line breaks inside one data line
        return "data: " + json.dumps(read_event(chunk_right(*a)), indent=2) + "\n\n"

    for wrong in (one_newline, wrong_object, choice_not_a_list, no_finish_reason_key, python_repr, raw_text_in_data,
                  pretty_printed):
        fb = check_sse_chunk(wrong)
        assert not fb.passed and not fb.not_done, wrong.__name__


def test_typical_hash_mistakes_fail():
    def partial_block_too(ids, block_size, salt):  # the trailing partial block gets a hash
        full = hashes_right(ids, block_size, salt)
        if len(ids) % block_size:
            h = full[-1] if full else hashlib.blake2b(b"minichat-prefix\0" + salt.encode(), digest_size=16).digest()
            tail = b"".join(i.to_bytes(8, "little", signed=True) for i in ids[len(full) * block_size:])
            full.append(hashlib.blake2b(h + tail, digest_size=16).digest())
        return full

    def not_chained(ids, block_size, salt):  # each block on its own: equal blocks anywhere collide
        root = hashlib.blake2b(b"minichat-prefix\0" + salt.encode(), digest_size=16).digest()
        return [hashlib.blake2b(root + b"".join(i.to_bytes(8, "little", signed=True)
                                                 for i in ids[s:s + block_size]), digest_size=16).digest()
                for s in range(0, len(ids) - block_size + 1, block_size)]

    def no_salt(ids, block_size, salt):
        return hashes_right(ids, block_size, "")

    def four_byte_ids(ids, block_size, salt):
        h = hashlib.blake2b(b"minichat-prefix\0" + salt.encode(), digest_size=16).digest()
        out = []
        for s in range(0, len(ids) - block_size + 1, block_size):
            h = hashlib.blake2b(h + b"".join(i.to_bytes(4, "little") for i in ids[s:s + block_size]),
                                digest_size=16).digest()
            out.append(h)
        return out

    def big_endian(ids, block_size, salt):
        h = hashlib.blake2b(b"minichat-prefix\0" + salt.encode(), digest_size=16).digest()
        out = []
        for s in range(0, len(ids) - block_size + 1, block_size):
            h = hashlib.blake2b(h + b"".join(i.to_bytes(8, "big", signed=True) for i in ids[s:s + block_size]),
                                digest_size=16).digest()
            out.append(h)
        return out

    def sha256(ids, block_size, salt):  # another hash function
        h = hashlib.sha256(b"minichat-prefix\0" + salt.encode()).digest()
        out = []
        for s in range(0, len(ids) - block_size + 1, block_size):
            h = hashlib.sha256(h + b"".join(i.to_bytes(8, "little", signed=True)
                                            for i in ids[s:s + block_size])).digest()
            out.append(h)
        return out

    def hex_digests(ids, block_size, salt):  # the right hashes, as hex strings instead of bytes
        return [h.hex() for h in hashes_right(ids, block_size, salt)]

    for wrong in (partial_block_too, not_chained, no_salt, four_byte_ids, big_endian, sha256, hex_digests):
        fb = check_block_hashes(wrong)
        assert not fb.passed and not fb.not_done, wrong.__name__


def test_typical_lcp_mistakes_fail():
    def no_last_token_rule(earlier, prompt, tenant, block_size):  # a re-sent prompt would compute nothing
        best = 0
        for who, ids in earlier:
            n = 0
            while who == tenant and n < min(len(ids), len(prompt)) and ids[n] == prompt[n]:
                n += 1
            best = max(best, n // block_size)
        return best

    def ignores_tenants(earlier, prompt, tenant, block_size):
        return lcp_right([(tenant, ids) for _, ids in earlier], prompt, tenant, block_size)

    def partial_blocks_count(earlier, prompt, tenant, block_size):  # rounds up
        best = 0
        for who, ids in earlier:
            n = 0
            while who == tenant and n < min(len(ids), len(prompt)) and ids[n] == prompt[n]:
                n += 1
            best = max(best, -(-min(n, len(prompt) - 1) // block_size))
        return best

    def blockwise_not_prefix(earlier, prompt, tenant, block_size):  # equal blocks anywhere, no chain
        best = 0
        for who, ids in earlier:
            if who != tenant:
                continue
            n = sum(1 for s in range(0, min(len(ids), len(prompt) - 1) - block_size + 1, block_size)
                    if ids[s:s + block_size] == prompt[s:s + block_size])
            best = max(best, n)
        return best

    def tokens_not_blocks(earlier, prompt, tenant, block_size):
        return lcp_right(earlier, prompt, tenant, block_size) * block_size

    for wrong in (no_last_token_rule, ignores_tenants, partial_blocks_count, blockwise_not_prefix,
                  tokens_not_blocks):
        fb = check_lcp_blocks(wrong)
        assert not fb.passed and not fb.not_done, wrong.__name__


def test_a_crash_is_feedback_not_an_exception():
    def crashes(earlier, prompt, tenant, block_size):
        return max(lcp_right([e], prompt, tenant, block_size) for e in earlier)  # max() of nothing
    fb = check_lcp_blocks(crashes)
    assert not fb.passed and not fb.not_done and "ValueError" in str(fb)


def test_an_unreadable_event_says_why():
    fb = check_sse_chunk(lambda *a: chunk_right(*a)[:-1])
    assert "empty line" in str(fb)


def test_stubs_are_not_done():
    def stub(*args):
        raise NotImplementedError

    def empty(*args):
        pass
    for check in (check_sse_chunk, check_block_hashes, check_lcp_blocks):
        for fn in (stub, empty):
            fb = check(fn)
            assert fb.not_done and not fb.passed and "not done yet" in str(fb)
