"""Server-sent events, and the chunks of a streamed chat completion in exactly the shape OpenAI's client reads.

SSE (the WHATWG HTML standard, "Server-sent events"): a response of type `text/event-stream`, each event one or more
`data: ...` lines ended by a blank line. OpenAI's stream is a sequence of `data: {chunk JSON}` events and then
`data: [DONE]` (the client stops reading there: openai-python `_streaming.py`). Every chunk of one completion has:

    {"id": "chatcmpl-...", "object": "chat.completion.chunk", "created": ..., "model": ...,
     "choices": [{"index": 0, "delta": {...}, "logprobs": null, "finish_reason": null}]}

    1st chunk     delta {"role": "assistant", "content": ""}
    text          delta {"content": "piece"}
    a tool call   delta {"tool_calls": [{"index": i, "id": "call_...", "type": "function",
                                         "function": {"name": "...", "arguments": ""}}]}
                  then  {"tool_calls": [{"index": i, "function": {"arguments": "piece"}}]} (the client concatenates)
    last          delta {} with finish_reason "stop" | "length" | "tool_calls" | "content_filter"
    usage         (with stream_options.include_usage) "choices": [] and "usage": {...}; the other chunks carry
                  "usage": null
    error         (after the 200 was sent) data: {"error": {...}}: the client raises APIError from it

What it leaves out: SSE `id:`/`retry:` fields and reconnection (a chat completion cannot be resumed).
"""
from __future__ import annotations

import json
from typing import Any


def event(data: Any) -> bytes:
    """One SSE event carrying `data` (a JSON value, or a str sent as is) as a single data line."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if "\n" in text or "\r" in text:  # JSON never contains raw line breaks; a str might: one data line each
        return ("".join(f"data: {line}\n" for line in text.splitlines()) + "\n").encode("utf-8")
    return f"data: {text}\n\n".encode("utf-8")


DONE = event("[DONE]")


class ChunkWriter:
    """Makes the chunks of one streamed completion (same id, created and model in each)."""

    def __init__(self, cid: str, model: str, created: int, include_usage: bool = False):
        self.cid, self.model, self.created, self.include_usage = cid, model, created, include_usage

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> bytes:
        chunk = {"id": self.cid, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        if self.include_usage:
            chunk["usage"] = None
        return event(chunk)

    def role(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def text(self, piece: str) -> bytes:
        return self._chunk({"content": piece})

    def tool_call(self, index: int, call: dict) -> bytes:
        """A call's header: index, id, type, function name, empty arguments."""
        head = {"index": index, "id": call["id"], "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""}}
        return self._chunk({"tool_calls": [head]})

    def tool_args(self, index: int, piece: str) -> bytes:
        """A piece of a call's arguments (the client appends it to the call with this index)."""
        return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})

    def finish(self, reason: str) -> bytes:
        return self._chunk({}, reason)

    def usage(self, use: dict) -> bytes:
        return event({"id": self.cid, "object": "chat.completion.chunk", "created": self.created,
                      "model": self.model, "choices": [], "usage": use})


def error_event(body: dict) -> bytes:
    """An error after the stream began (the status line is already sent): OpenAI's client raises APIError."""
    return event(body)
