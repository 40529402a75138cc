"""The chat template: a conversation (a list of messages) <-> one sequence of token ids, and model output -> a message.

A language model only continues token sequences, so a chat is written as one, with control tokens marking who speaks.
minichat uses ChatML (OpenAI's Chat Markup Language, used by Qwen, SmolLM2 and many others):

    <|im_start|>system
    You are a helpful assistant.<|im_end|>
    <|im_start|>user
    What is 2+2?<|im_end|>
    <|im_start|>assistant
                                        <- generation starts here and ends when the model emits <|im_end|>

`<|im_start|>` and `<|im_end|>` are special tokens: single ids that text can never produce. Everything a user, a tool
or memory wrote is encoded with `encode_ordinary`, so "<|im_end|>" typed by a user stays seven harmless text tokens
and cannot close its own message and open a fake system one (prompt injection by control token).

Tool calls follow the Hermes/Qwen convention: the tools' JSON schemas are listed in the system prompt inside
<tools></tools>, the assistant answers with `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` in its text,
and the result comes back as a message with role "tool". `parse_assistant` turns generated text back into a message;
a malformed call is reported in `errors`, never raised, so the loop can tell the model what went wrong.

Training reads the same rendering: `render_with_mask` also says which ids the assistant wrote (its loss mask).

What it leaves out: other template families (Llama 3 headers, Mistral [INST]); a GGUF's Jinja template is recognised
as ChatML or not (`template_kind`), not executed.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from minichat.tokenizer import Tokenizer

Role = Literal["system", "user", "assistant", "tool"]
ROLES = ("system", "user", "assistant", "tool")
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"


@dataclass(frozen=True)
class ToolCall:
    """One call the assistant asked for: a tool name and its JSON arguments (an id pairs it with its result)."""

    name: str
    arguments: Mapping[str, Any]
    id: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "arguments": dict(self.arguments), "id": self.id}


@dataclass(frozen=True)
class Message:
    """One message of a conversation. `tool_calls` only on assistant messages, `tool_call_id` only on tool ones."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""  # which call a tool message answers
    name: str = ""  # the tool's name, on tool messages
    errors: tuple[str, ...] = field(default=(), compare=False)  # problems found while parsing model output

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {self.role!r}")
        if not isinstance(self.content, str):
            raise TypeError(f"message content must be str, not {type(self.content).__name__}")

    def to_json(self) -> dict:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_json() for c in self.tool_calls]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Message":
        calls = tuple(ToolCall(c["name"], c.get("arguments", {}), c.get("id", "")) for c in d.get("tool_calls", ()))
        return cls(d["role"], d.get("content", ""), calls, d.get("tool_call_id", ""), d.get("name", ""))


def system(content: str) -> Message:
    return Message("system", content)


def user(content: str) -> Message:
    return Message("user", content)


def assistant(content: str, tool_calls: Sequence[ToolCall] = ()) -> Message:
    return Message("assistant", content, tuple(tool_calls))


def tool_result(call: ToolCall, content: str) -> Message:
    return Message("tool", content, tool_call_id=call.id, name=call.name)


# -- text form ---------------------------------------------------------------------------------------------------------

def tools_prompt(schemas: Sequence[Mapping[str, Any]]) -> str:
    """The paragraph that presents tools to the model, appended to the system prompt (Hermes/Qwen wording, ours)."""
    listed = "\n".join(json.dumps(s, ensure_ascii=False, sort_keys=True) for s in schemas)
    return ("# Tools\n\nYou can call these tools. Their JSON schemas are inside <tools></tools>:\n"
            f"<tools>\n{listed}\n</tools>\n\nTo call one, answer with a JSON object inside <tool_call></tool_call> tags:"
            '\n<tool_call>{"name": <tool name>, "arguments": <arguments object>}</tool_call>')


def message_body(m: Message) -> str:
    """The text between `<|im_start|>role\\n` and `<|im_end|>`: content, then one line per tool call."""
    calls = [CALL_OPEN + json.dumps({"name": c.name, "arguments": dict(c.arguments)}, ensure_ascii=False) + CALL_CLOSE
             for c in m.tool_calls]
    return "\n".join(([m.content] if m.content or not calls else []) + calls)


def render_text(messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
    """The conversation as ChatML text (what `render` encodes, for reading and for comparing with HF)."""
    text = "".join(f"{IM_START}{m.role}\n{message_body(m)}{IM_END}\n" for m in messages)
    return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")


# -- ids ---------------------------------------------------------------------------------------------------------------

class ChatTemplate:
    """Renders messages to ids with a tokenizer that has `<|im_start|>` and `<|im_end|>` as special tokens."""

    def __init__(self, tokenizer: Tokenizer):
        missing = [s for s in (IM_START, IM_END) if s not in tokenizer.special_tokens]
        if missing:
            raise ValueError(f"the tokenizer {tokenizer.name!r} lacks the ChatML special tokens {missing}; train or "
                             f"load one with special_tokens including {IM_START!r} and {IM_END!r}")
        self.tokenizer = tokenizer
        self.im_start = tokenizer.special_tokens[IM_START]
        self.im_end = tokenizer.special_tokens[IM_END]
        self._newline = tokenizer.encode_ordinary("\n")
        self._role_ids = {r: tokenizer.encode_ordinary(r + "\n") for r in ROLES}

    def render_message(self, m: Message) -> list[int]:
        """One message's ids: <|im_start|> role \\n body <|im_end|> \\n. Body text can never yield a control id."""
        head, text, end = self._parts(m)
        return [*head, *text, *end]

    def _parts(self, m: Message) -> tuple[list[int], list[int], list[int]]:
        """A message's ids as (head, text, end): the end is <|im_end|> \\n, the head <|im_start|> and, for an
        assistant, its role line.

        An assistant's body is encoded on its own: those are the ids a model writes after the generation prompt
        <|im_start|>assistant\\n, so a past reply renders as it was generated and training targets exactly them.
        Other roles are encoded as one text with their role line, as HF's apply_chat_template tokenizes the whole
        rendered string (the tests compare). The two ways differ only when a body starts with a line break, which
        can merge with the header's "\\n" into one token."""
        end = [self.im_end, *self._newline]
        if m.role == "assistant":
            return self.generation_prompt(), self.tokenizer.encode_ordinary(message_body(m)), end
        return [self.im_start], self.tokenizer.encode_ordinary(f"{m.role}\n{message_body(m)}"), end

    def generation_prompt(self) -> list[int]:
        return [self.im_start, *self._role_ids["assistant"]]

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> list[int]:
        """All messages, then (by default) the opening of the assistant's reply."""
        ids = [i for m in messages for i in self.render_message(m)]
        return ids + (self.generation_prompt() if add_generation_prompt else [])

    def render_with_mask(self, messages: Sequence[Message], read: int = 0) -> tuple[list[int], list[int]]:
        """`render(messages, add_generation_prompt=False)`, and beside each id a 1 if the assistant wrote it: the
        loss mask of chat training (the model learns to write the assistant's part and only to read the rest).

            <|im_start|>assistant\\n<tool_call>{"name": ...}</tool_call><|im_end|>\\n
            0            0         1 ..............................1  1          0

        The assistant wrote its body (text and tool calls) and the <|im_end|> that closes it (so the model learns to
        stop); not its header, which the chat session writes as the generation prompt, nor the "\\n" after
        <|im_end|>, nor anything of the system, user and tool messages. `read` (default 0) is the value given to the
        text of the user and tool messages instead (role line, body and <|im_end|>, not <|im_start|>): a recipe
        that also trains a little on predicting them (chat_batches' prompt_weight) tells them from the assistant's 1s
        by it."""
        ids: list[int] = []
        mask: list[int] = []
        for m in messages:
            head, text, end = self._parts(m)
            wrote = 1 if m.role == "assistant" else read if m.role in ("user", "tool") else 0
            ids += [*head, *text, *end]
            mask += [0] * len(head) + [wrote] * (len(text) + 1) + [0] * (len(end) - 1)  # + 1: <|im_end|>
        return ids, mask

    def count(self, m: Message) -> int:
        """Tokens one message costs in the context (ChatML costs add up message by message)."""
        return len(self.render_message(m))

    @property
    def stop_ids(self) -> list[int]:
        """Ids that end an assistant reply."""
        return [self.im_end] + [i for s, i in self.tokenizer.special_tokens.items() if s == "<|endoftext|>"]


_CALL_RE = re.compile(re.escape(CALL_OPEN) + r"(.*?)(?:" + re.escape(CALL_CLOSE) + r"|\Z)", re.S)


def parse_assistant(text: str, call_ids: Sequence[str] = ()) -> Message:
    """Generated text -> an assistant message: plain content plus the tool calls found in it.

    Each `<tool_call>...</tool_call>` must hold a JSON object with a string "name" and an object "arguments"
    (a JSON-encoded object string is accepted too). Anything else becomes an entry in `errors` and is dropped from
    the calls; the text outside the tags is the content. `call_ids` names the calls in order (default call_0, ...).
    """
    calls, errors = [], []
    for n, m in enumerate(_CALL_RE.finditer(text)):
        raw = m.group(1).strip()
        if not m.group(0).endswith(CALL_CLOSE):
            errors.append(f"tool call {n} is not closed with {CALL_CLOSE}: {raw[:80]!r}")
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            errors.append(f"tool call {n} is not valid JSON ({e.msg} at column {e.colno}): {raw[:80]!r}")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
            errors.append(f"tool call {n} needs a JSON object with a string 'name': {raw[:80]!r}")
            continue
        args = obj.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                pass
        if not isinstance(args, dict):
            errors.append(f"tool call {n} ({obj['name']}): 'arguments' must be a JSON object, got {args!r:.80}")
            continue
        calls.append(ToolCall(obj["name"], args, call_ids[len(calls)] if len(calls) < len(call_ids)
                              else f"call_{len(calls)}"))
    content = _CALL_RE.sub("", text).strip() if calls or errors else text
    return Message("assistant", content, tuple(calls), errors=tuple(errors))


def template_kind(jinja_template: str | None) -> str:
    """Classify a chat template found in a model file: "chatml" when it writes <|im_start|>role\\n...<|im_end|>
    turns (minichat renders those itself), "none" when there is no template, else "other"."""
    if not jinja_template:
        return "none"
    return "chatml" if IM_START in jinja_template and IM_END in jinja_template else "other"
