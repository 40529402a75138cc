"""OpenAI's Chat Completions API, minichat's side: a request body in, a checked request and a prompt out; model
output in, OpenAI's response objects out.

    parse_request(body, limits)      JSON value -> ChatRequest, or ApiError(400, param=...) naming the bad field
    build_prompt(req, template, ...) -> Prompt: the token ids (ChatML, tools listed in the system message, the forced
                                     call opening for tool_choice), and max_tokens clamped to the window
    (reply.py turns the model's Steps into the answer: text, tool calls, the `chat.completion` object)

The field rules follow the API reference and the official client's types (openai-python,
`types/chat/completion_create_params.py`): `messages` with roles system/developer/user/assistant/tool, content a
string or a list of text parts; assistant `tool_calls` with JSON-string arguments; `tools` of type "function";
`tool_choice` "none"/"auto"/"required"/{"type": "function", "function": {"name"}}; `max_tokens` or its newer name
`max_completion_tokens`; `stop` a string or up to 4 strings; `n` only 1. Unknown fields are refused as OpenAI does
("Unrecognized request argument"), so a typo is never silently ignored.

Tools follow OpenAI's contract: the model asks, the *client* runs the tool and sends the result back as a "tool"
message. (The minichat events route, by contrast, runs the server's own tools inside the Chat pipeline.)

What it leaves out: images and audio parts, `n` > 1, `logprobs`, `response_format`, the Responses API.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from minichat.chat.template import ChatTemplate, Message, ToolCall
from minichat.config import SamplingConfig
from minichat.tools.toolbox import forced_prefix


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with an HTTP status."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = dict(headers or {})

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad(param: str | None, message: str, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (the server's --max-* flags)."""

    max_body_bytes: int = 1 << 20  # larger bodies are refused with 413 before they are read whole
    max_messages: int = 256
    max_message_chars: int = 32_000  # one message's text
    max_total_chars: int = 200_000  # all messages together
    max_tools: int = 32
    default_max_tokens: int = 256  # when the request gives none (then clamped to the window like any other)


ROLES = ("system", "developer", "user", "assistant", "tool")
KNOWN = {"model", "messages", "tools", "tool_choice", "stream", "stream_options", "temperature", "top_p",
         "max_tokens", "max_completion_tokens", "stop", "seed", "n", "user", "frequency_penalty", "presence_penalty",
         "parallel_tool_calls", "metadata", "store"}


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    tools: tuple[dict, ...] = ()  # {"name", "description", "parameters"} as minichat's template lists them
    tool_choice: str = "auto"  # none | auto | required | a tool's name
    stream: bool = False
    include_usage: bool = False
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()


def _text(value: Any, param: str, limits: Limits, allow_none: bool = False) -> str:
    """Message content: a string, or a list of {"type": "text", "text": ...} parts (joined)."""
    if value is None and allow_none:
        return ""
    if isinstance(value, list):
        parts = []
        for i, p in enumerate(value):
            if not isinstance(p, dict) or p.get("type") != "text" or not isinstance(p.get("text"), str):
                raise bad(f"{param}[{i}]", f"{param}[{i}] must be a text part {{\"type\": \"text\", \"text\": ...}}; "
                                           f"minichat reads text only")
            parts.append(p["text"])
        value = "".join(parts)
    if not isinstance(value, str):
        raise bad(param, f"{param} must be a string or a list of text parts, not {type(value).__name__}")
    if len(value) > limits.max_message_chars:
        raise bad(param, f"{param} has {len(value)} characters; the limit is {limits.max_message_chars}",
                  "string_above_max_length")
    return value


def _number(body: dict, name: str, lo: float, hi: float, lo_open: bool = False) -> float | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < lo or v > hi or (lo_open and v == lo):
        raise bad(name, f"{name} must be a number in {'(' if lo_open else '['}{lo}, {hi}], not {v!r}")
    return float(v)


def _integer(body: dict, name: str, lo: int, hi: int = 2**63 - 1) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise bad(name, f"{name} must be an integer in [{lo}, {hi}], not {v!r}")
    return v


def _tool_calls(value: Any, param: str) -> tuple[ToolCall, ...]:
    if not isinstance(value, list):
        raise bad(param, f"{param} must be a list of tool calls")
    calls = []
    for i, c in enumerate(value):
        p = f"{param}[{i}]"
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(c.get("id"), str):
            raise bad(p, f"{p} must be {{\"id\", \"type\": \"function\", \"function\": {{\"name\", \"arguments\"}}}}")
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except (TypeError, json.JSONDecodeError):
            raise bad(f"{p}.function.arguments", f"{p}.function.arguments must be a JSON object encoded as a "
                                                 f"string") from None
        if not isinstance(args, dict):
            raise bad(f"{p}.function.arguments", f"{p}.function.arguments must encode a JSON object")
        calls.append(ToolCall(fn["name"], args, c["id"]))
    return tuple(calls)


def _messages(value: Any, limits: Limits) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise bad("messages", "messages must be a non-empty list of message objects")
    if len(value) > limits.max_messages:
        raise bad("messages", f"{len(value)} messages; the limit is {limits.max_messages}", "array_above_max_length")
    out, names, total = [], {}, 0  # names: tool_call_id -> the tool's name, for the tool messages answering them
    for i, m in enumerate(value):
        p = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(p, f"{p} must be an object with 'role' and 'content'")
        role = m.get("role")
        if role not in ROLES:
            raise bad(f"{p}.role", f"{p}.role must be one of {list(ROLES)}, not {role!r}")
        calls = _tool_calls(m["tool_calls"], f"{p}.tool_calls") if role == "assistant" and m.get("tool_calls") else ()
        content = _text(m.get("content"), f"{p}.content", limits, allow_none=role == "assistant")
        total += len(content)
        names.update((c.id, c.name) for c in calls)
        if role == "tool":
            cid = m.get("tool_call_id")
            if not isinstance(cid, str) or not cid:
                raise bad(f"{p}.tool_call_id", f"{p} is a tool message: it needs the tool_call_id it answers")
            out.append(Message("tool", content, tool_call_id=cid, name=names.get(cid, "")))
        else:
            out.append(Message("system" if role == "developer" else role, content, calls))
    if total > limits.max_total_chars:
        raise bad("messages", f"the messages hold {total} characters; the limit is {limits.max_total_chars}")
    return tuple(out)


def _tools(value: Any, limits: Limits) -> tuple[dict, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > limits.max_tools:
        raise bad("tools", f"tools must be a list of at most {limits.max_tools} function tools")
    out = []
    for i, t in enumerate(value):
        fn = t.get("function") if isinstance(t, dict) and t.get("type") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise bad(f"tools[{i}]", f"tools[{i}] must be {{\"type\": \"function\", \"function\": {{\"name\", ...}}}}")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            raise bad(f"tools[{i}].function.parameters", "parameters must be a JSON Schema object")
        out.append({"name": fn["name"], "description": str(fn.get("description", "")), "parameters": params})
    return tuple(out)


def _tool_choice(value: Any, tools: Sequence[dict]) -> str:
    if value is None:
        return "auto" if tools else "none"
    if isinstance(value, dict):
        fn = value.get("function")
        if value.get("type") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad("tool_choice", 'tool_choice must be "none", "auto", "required" or {"type": "function", '
                                     '"function": {"name": ...}}')
        value = fn["name"]
        if value not in {t["name"] for t in tools}:
            raise bad("tool_choice", f"tool_choice names {value!r}, which is not among the request's tools")
        return value
    if value not in ("none", "auto", "required"):
        raise bad("tool_choice", f'tool_choice must be "none", "auto", "required" or an object, not {value!r}')
    if value == "required" and not tools:
        raise bad("tool_choice", 'tool_choice "required" needs tools')
    return value


def parse_request(body: Any, limits: Limits = Limits()) -> ChatRequest:
    """Check a decoded JSON body field by field; the first problem raises ApiError(400) naming its field."""
    if not isinstance(body, dict):
        raise bad(None, "the request body must be a JSON object")
    unknown = sorted(set(body) - KNOWN)
    if unknown:
        raise bad(unknown[0], f"Unrecognized request argument supplied: {unknown[0]}")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise bad("model", "model must be a non-empty string (GET /v1/models lists them)")
    messages = _messages(body.get("messages"), limits)
    tools = _tools(body.get("tools"), limits)
    choice = _tool_choice(body.get("tool_choice"), tools)
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise bad("stream", "stream must be true or false")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or not stream or
                                not isinstance(options.get("include_usage", False), bool)):
        raise bad("stream_options", "stream_options is only allowed with stream: true, as {\"include_usage\": bool}")
    if _integer(body, "n", 1, 1) not in (None, 1):
        raise bad("n", "n must be 1")
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop
    if stop is not None and (not isinstance(stop, list) or len(stop) > 4 or
                             not all(isinstance(s, str) and 0 < len(s) <= 256 for s in stop)):
        raise bad("stop", "stop must be a string or a list of up to 4 non-empty strings")
    max_tokens = _integer(body, "max_completion_tokens", 1)
    max_tokens = max_tokens if max_tokens is not None else _integer(body, "max_tokens", 1)
    temperature = _number(body, "temperature", 0.0, 2.0)
    top_p = _number(body, "top_p", 0.0, 1.0, lo_open=True)
    penalties = {k: v for k in ("frequency_penalty", "presence_penalty")
                 if (v := _number(body, k, -2.0, 2.0)) is not None}
    seed = _integer(body, "seed", -(2**63), 2**63 - 1)
    sampling = SamplingConfig(temperature=1.0 if temperature is None else temperature,
                              top_p=1.0 if top_p is None else top_p,
                              seed=None if seed is None else seed % 2**63, **penalties)
    return ChatRequest(body["model"], messages, tools, choice, bool(stream),
                       bool((options or {}).get("include_usage", False)), sampling, max_tokens, tuple(stop or ()))


# -- the prompt --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prompt:
    ids: tuple[int, ...]
    forced: str  # the call opening the reply was started with ("" when tool_choice forces nothing)
    max_tokens: int  # clamped: prompt + reply fit the window
    tools: tuple[str, ...]  # names listed to the model


def build_prompt(req: ChatRequest, template: ChatTemplate, n_ctx: int, default_instructions: str,
                 limits: Limits = Limits(), listing: str = "full") -> Prompt:
    """The request as ChatML ids. System (and developer) messages at the top become one system message followed by
    the tool listing, as minichat's chat does; without any, the model's own instructions stand in (what llama.cpp's
    server and SmolLM2's template do too), so a chat model sees the prompt it was tuned with."""
    from minichat.chat.context import system_text

    messages = list(req.messages)
    head = 0
    while head < len(messages) and messages[head].role == "system":
        head += 1
    instructions = "\n\n".join(m.content for m in messages[:head]) if head else default_instructions
    listed = [] if req.tool_choice == "none" else list(req.tools)
    sys_text = system_text(instructions, tools=listed, listing=listing)  # as the model was trained to see tools
    rendered = ([Message("system", sys_text)] if sys_text else []) + messages[head:]
    forced = forced_prefix(req.tool_choice, [t["name"] for t in listed]) or ""
    ids = template.render(rendered) + template.tokenizer.encode_ordinary(forced)
    if len(ids) >= n_ctx:
        raise bad("messages", f"the prompt is {len(ids)} tokens but this model's context window holds {n_ctx}; send "
                              f"fewer or shorter messages", "context_length_exceeded")
    wanted = req.max_tokens if req.max_tokens is not None else limits.default_max_tokens
    return Prompt(tuple(ids), forced, min(wanted, n_ctx - len(ids)), tuple(t["name"] for t in listed))
