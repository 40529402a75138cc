"""The events a chat turn emits, one kind per stage of the pipeline (docs/design.md §1).

`Chat.send` is a generator of these. Every consumer — the terminal, a notebook, the server's SSE stream — reads the
same events, so every stage can be seen. Each event is a small frozen dataclass with a `type` string and fields that
are plain JSON values (str, int, float, bool, None, lists and dicts of them): `event.to_json()` gives a dict the
server can send as is, and `event_from_json` rebuilds the event.

    safety_verdict   a guardrail's decision on the input or the output stream
    memory_hits      the memory snippets retrieved for this message
    context_built    what the context kept and dropped, and why, with token counts
    tokenized        prompt size and how much of it came from the KV cache
    token            one piece of the reply's text (UTF-8 safe) and the token that produced it
    tool_call        the model asked for a tool
    tool_result      what the tool returned (or why it failed)
    done             finish_reason, usage (prompt, cached, completion tokens), seconds per stage
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **{f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}}


def _plain(x: Any) -> Any:
    if isinstance(x, tuple):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


@dataclass(frozen=True)
class SafetyVerdict(Event):
    type: ClassVar[str] = "safety_verdict"
    stage: str  # "input", "output", "tool_result" or "memory": where in the turn the check ran
    allowed: bool
    action: str = "allow"  # allow | warn | redact | refuse | stop | quarantine
    policy: str = ""  # which rule decided; never the blocked text itself
    reason: str = ""
    layer: str = ""  # the guard's layer: input, output or injection ("" when the guard does not say)
    category: str = ""  # what was flagged ("" when nothing)
    score: float = 0.0  # 1.0 for a rule; the classifier's probability otherwise
    threshold: float = 0.0  # what the score was compared with


@dataclass(frozen=True)
class MemoryHits(Event):
    type: ClassVar[str] = "memory_hits"
    query: str
    snippets: tuple[str, ...] = ()
    configured: bool = True  # False: the chat has no memory store (nothing could have been retrieved)
    scores: tuple[float, ...] = ()  # each snippet's relevance score, when the memory reports them (BM25)
    reason: str = ""  # why these snippets, when the memory says ("bm25: 2 of 40 memories matched ...")


@dataclass(frozen=True)
class MemoryUpdated(Event):
    type: ClassVar[str] = "memory_updated"
    action: str  # "remember" (the model's remember tool call was saved)
    text: str  # the fact as saved (or the tool's answer when it was not saved)
    ok: bool = True


@dataclass(frozen=True)
class ContextBuilt(Event):
    type: ClassVar[str] = "context_built"
    budget: int  # tokens the prompt may use (context window - max_new_tokens)
    used: int  # tokens it uses
    system_tokens: int
    summary_tokens: int
    kept: tuple[dict, ...] = ()  # {"index", "role", "tokens"} per history message kept
    dropped: tuple[dict, ...] = ()  # {"index", "role", "tokens", "reason"} per history message dropped
    window: int = 0  # the model's context window; window - budget tokens are kept free for the reply
    tools: int = 0  # tool schemas listed in the system message
    reply_room: int = 0  # tokens the reply may take this round (at most max_new_tokens)


@dataclass(frozen=True)
class Tokenized(Event):
    type: ClassVar[str] = "tokenized"
    prompt_tokens: int
    cached_tokens: int  # tokens whose keys/values were already in the KV cache (not prefilled again)
    prefill_tokens: int  # tokens run through the model now
    template: str = "chatml"


@dataclass(frozen=True)
class Token(Event):
    type: ClassVar[str] = "token"
    text: str  # the text this token releases ("" while a character or a possible stop string is incomplete)
    token_id: int
    index: int  # position in the reply
    logprob: float | None = None


@dataclass(frozen=True)
class ToolCalled(Event):
    type: ClassVar[str] = "tool_call"
    id: str
    name: str
    arguments: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ToolResult(Event):
    type: ClassVar[str] = "tool_result"
    id: str
    name: str
    content: str
    ok: bool = True


@dataclass(frozen=True)
class Done(Event):
    type: ClassVar[str] = "done"
    finish_reason: str  # stop | length | tool_limit | context_full | refused | safety
    usage: dict = field(default_factory=dict)  # prompt_tokens, cached_tokens, completion_tokens
    timings: dict = field(default_factory=dict)  # stage -> seconds
    text: str = ""  # the whole reply as shown to the user


EVENT_TYPES: dict[str, type[Event]] = {c.type: c for c in (SafetyVerdict, MemoryHits, ContextBuilt, Tokenized, Token,
                                                           ToolCalled, ToolResult, Done)}


def event_from_json(d: dict[str, Any]) -> Event:
    """Rebuild an event from `to_json()` output (lists become tuples where the field is a tuple)."""
    try:
        cls = EVENT_TYPES[d["type"]]
    except KeyError:
        raise ValueError(f"unknown event type {d.get('type')!r}; known: {sorted(EVENT_TYPES)}") from None
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in d:
            v = d[f.name]
            kwargs[f.name] = tuple(v) if isinstance(v, list) and "tuple" in str(f.type) else v
    return cls(**kwargs)
