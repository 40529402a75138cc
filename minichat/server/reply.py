"""The reply as an API client sees it: generated Steps in; text pieces, tool-call headers and argument pieces out.

One `ReplyAssembler` serves both answers: the stream sends each piece as a chunk, the non-streaming answer joins
them, so the two cannot disagree. Text goes through minichat.chat.toolstream (a call's text is never content) and
then the safety output filter. Tool calls are followed in the raw text as it grows (`CallTracker`):

    <tool_call>{"name": "calculator", "arguments": {"expression": "17*23"}}</tool_call>
               |---- header: once the name is complete ----|-- argument pieces --|
                 -> ("call", i, {"id", "type", "function": {"name", "arguments": ""}})
                                                             -> ("args", i, '{"expression": "17')
                                                             -> ("args", i, '*23"}')

An argument piece is released as soon as it cannot be the end of the call: a trailing "}" may be the one that closes
the outer object and a trailing "</tool" may begin "</tool_call>", so those wait for the next token. What was sent
is the call's `arguments`, in both answers: the exact JSON text the model wrote. A call whose text does not start
with "name" then "arguments" is reported at its end from the full parse (`parse_assistant`), in one piece.

What it leaves out: taking back pieces of a call that turns out malformed (like OpenAI's API, the client then holds
arguments that are not valid JSON); keys after "arguments" inside the call object.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from minichat.chat.template import CALL_CLOSE, CALL_OPEN, parse_assistant
from minichat.chat.toolstream import ToolStreamParser

HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest tail of `text` that is a proper prefix of `tag` ('"x"}</to', '</tool_call>' -> 4)."""
    return next((n for n in range(min(len(text), len(tag) - 1), 0, -1) if tag.startswith(text[-n:])), 0)


def call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def new_completion_id() -> tuple[str, int]:
    return "chatcmpl-" + uuid.uuid4().hex[:24], int(time.time())


class CallTracker:
    """Follows the tool calls in the raw reply text; `update(raw, final)` -> the pieces that became known."""

    def __init__(self):
        self.calls: list[dict] = []  # OpenAI's {"id", "type", "function": {"name", "arguments"}}, as sent so far
        self._seen: list[dict] = []  # per <tool_call> in the text: {"call": index into calls or None, "done": bool}

    def update(self, raw: str, final: bool = False) -> list[tuple[str, int, Any]]:
        out, pos, k = [], 0, 0
        while (start := raw.find(CALL_OPEN, pos)) >= 0:
            body_at = start + len(CALL_OPEN)
            end = raw.find(CALL_CLOSE, body_at)  # the first close ends the call (as the parse reads it)
            if k == len(self._seen):
                self._seen.append({"call": None, "done": False})
            out += self._follow(self._seen[k], raw[body_at:] if end < 0 else raw[body_at:end], end >= 0, final)
            k += 1
            if end < 0:
                break
            pos = end + len(CALL_CLOSE)
        return out

    def _follow(self, st: dict, body: str, closed: bool, final: bool) -> list[tuple[str, int, Any]]:
        if st["done"]:
            return []
        out: list[tuple[str, int, Any]] = []
        m = HEAD.match(body)
        if st["call"] is None:
            if m is None:
                if closed or final:  # not in the usual order: report it whole, from the parse, or not at all
                    st["done"] = True
                    parsed = parse_assistant(CALL_OPEN + body + CALL_CLOSE).tool_calls
                    if parsed:
                        out.append(self._head(st, parsed[0].name))
                        out += self._args(st, json.dumps(dict(parsed[0].arguments), ensure_ascii=False))
                return out
            try:
                name = json.loads(f'"{m.group(1)}"')
            except json.JSONDecodeError:
                name = m.group(1)
            out.append(self._head(st, name))
        args = body[m.end():] if m is not None else ""
        if closed:  # the text before </tool_call>, less the "}" that closes the call object
            args = args.rstrip()
            args = args[:-1].rstrip() if args.endswith("}") else args
            st["done"] = True
        elif final:  # cut off (length): everything written is what there is
            st["done"] = True
        else:  # hold back what may still turn out to be the call's end
            args = args[: len(args) - _partial_suffix(args, CALL_CLOSE)].rstrip()
            args = args[:-1] if args.endswith("}") else args
        return out + self._args(st, args)

    def _head(self, st: dict, name: str) -> tuple[str, int, dict]:
        st["call"] = len(self.calls)
        self.calls.append({"id": call_id(), "type": "function", "function": {"name": name, "arguments": ""}})
        return ("call", st["call"], self.calls[-1])

    def _args(self, st: dict, args: str) -> list[tuple[str, int, Any]]:
        fn = self.calls[st["call"]]["function"]
        sent = fn["arguments"]
        if not args.startswith(sent) or len(args) == len(sent):
            return []  # nothing new (or a rewrite that cannot be sent: the pieces already out stay the arguments)
        fn["arguments"] = args
        return [("args", st["call"], args[len(sent):])]


class ReplyAssembler:
    """Steps -> [("text", str) | ("call", index, call dict) | ("args", index, piece)], through the output filter.

    `forced` is the call opening the reply was started with (tool_choice); `parse_tools` is on when tools were
    listed; `out_filter` is the guard's output filter or None: a stop verdict ends the reply ("content_filter").
    """

    def __init__(self, forced: str = "", parse_tools: bool = False, out_filter: Any = None):
        self.parser = ToolStreamParser() if parse_tools else None
        self.tracker = CallTracker() if parse_tools else None
        self.filter = out_filter
        self.raw = forced
        self.text: list[str] = []
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self.verdict = None
        if self.parser is not None:
            self.parser.feed(forced)  # the forced opening is inside a call: it shows nothing

    @property
    def calls(self) -> list[dict]:
        return self.tracker.calls if self.tracker is not None else []

    def feed(self, step: Any) -> list[tuple]:
        """One Step -> the pieces it released; sets finish_reason on the last one."""
        out: list[tuple] = []
        self.completion_tokens += 1
        self.raw += step.text
        last = step.finish_reason is not None
        visible = step.text
        if self.parser is not None:
            visible = self.parser.feed(step.text).text + (self.parser.flush().text if last else "")
        if self.filter is not None:
            visible, verdict = self.filter.feed(visible)
            if last and (verdict is None or verdict.allowed):
                tail, v2 = self.filter.flush()
                visible, verdict = visible + tail, verdict or v2
            if verdict is not None and not verdict.allowed:
                self.verdict, self.finish_reason = verdict, "content_filter"
        if visible:
            self.text.append(visible)
            out.append(("text", visible))
        if self.tracker is not None and self.finish_reason is None:
            out += self.tracker.update(self.raw, final=last)
        if last and self.finish_reason is None:
            if step.finish_reason == "length" and self.calls:
                self.finish_reason = "length"  # cut off inside or after a call: say so, as OpenAI does
            else:
                self.finish_reason = "tool_calls" if self.calls else (step.finish_reason or "stop")
        return out

    @property
    def content(self) -> str | None:
        text = "".join(self.text)
        return (text or None) if self.calls else text


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens}}


def completion(cid: str, model: str, created: int, reply: ReplyAssembler, use: dict) -> dict:
    """The non-streaming `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.calls:
        message["tool_calls"] = [dict(c, function=dict(c["function"])) for c in reply.calls]
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
            "usage": use}
