"""Finding tool calls in a reply while it streams, so the call's text is never shown to the user as reply text.

The model writes a call inline: `Let me check.<tool_call>{"name": "get_time", "arguments": {}}</tool_call>`. Text
arrives a token at a time, and `<tool_call>` itself spans several tokens (`<tool`, `_call`, `>{"`), so when `<tool`
arrives nobody knows yet whether a call begins. The parser does what stop strings do: it holds back any tail of the
text that could still become `<tool_call>` and releases it as soon as it cannot (`<tooth` is shown, `<tool_call>`
is not). Inside a call everything is held until `</tool_call>`; then the call is parsed and handed out.

    p = ToolStreamParser()
    p.feed("Let me check.<to")  -> Parsed(text="Let me check.", calls=[])          "<to" held back
    p.feed('ol_call>{"name": ')  -> Parsed(text="", calls=[])                       inside a call
    p.feed('"get_time"}</tool_call>') -> Parsed(text="", calls=[ToolCall("get_time", {}, "call_0")])
    p.flush()                    -> Parsed(text="", calls=[], errors=[])            end of the reply

Contract (a hypothesis test checks it for every way of cutting a reply into chunks): the text shown, joined, equals
`parse_assistant(reply).content`, and the calls and errors equal its `tool_calls` and `errors` (same ids, same
messages). To match that parse, which strips the content of a reply that has calls, whitespace at the end of the
shown text is held back until more text follows, and whitespace before the first visible text is dropped once a
call has been seen. One case cannot be matched while streaming: a reply that *starts* with whitespace, shows text,
and only later makes a call — the leading whitespace was shown before the call could be known (the parse strips it).

In the chat loop: one parser per generated reply; each token's text goes through `feed` before the safety output
filter (what the parser holds back is not yet reply text), completed calls become `ToolCalled` events, and `flush`
runs when generation stops. When `tool_choice` forces a call, the assistant's turn starts with the toolbox's forced
prefix (`<tool_call>{"name": "calculator", "arguments":`): feed that prefix first, as the start of the reply; it
shows nothing, and the model's tokens complete the call.

A call is parsed with `parse_assistant` itself (one call at a time), so the streaming and the non-streaming rules
cannot drift apart. An unclosed call at the end of the reply is an error, as in the parse, and its text is not shown.

What it leaves out: nested calls (the first `</tool_call>` closes a call, as in the parse), other call syntaxes
(Llama's `<|python_tag|>`, Mistral's `[TOOL_CALLS]`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from minichat.chat.template import CALL_CLOSE, CALL_OPEN, ToolCall, parse_assistant


@dataclass
class Parsed:
    """What one feed released: text safe to show now, calls completed, and calls that could not be read."""

    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest tail of `text` that is a proper prefix of `tag` ("ab<too", "<tool_call>" -> 4)."""
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ToolStreamParser:
    """Feed reply text as it arrives; get back the text to show and the calls found (see the module docstring)."""

    def __init__(self):
        self._buf = ""  # text not yet released: a possible "<tool_call>" start, or a call being read
        self._in_call = False
        self._ws = ""  # whitespace held back at the end of the shown text
        self._shown_any = False  # any non-whitespace text shown yet
        self._matches = 0  # calls seen, good or bad (the parse's numbering of errors)
        self.calls: list[ToolCall] = []
        self.errors: list[str] = []
        self.shown: list[str] = []

    def _show(self, text: str, out: Parsed) -> None:
        """Release plain text, holding back trailing whitespace (see the module docstring for why)."""
        if not text:
            return
        text = self._ws + text
        body = text.rstrip()
        self._ws = text[len(body):]
        if not body:
            return
        if not self._shown_any and (self.calls or self.errors):
            body = body.lstrip()  # the parse strips the content of a reply with calls
        self._shown_any = True
        out.text += body
        self.shown.append(body)

    def _close_call(self, raw: str, closed: bool, out: Parsed) -> None:
        """One call's inner text -> a call or an error, numbered as the whole-reply parse numbers them."""
        n, self._matches = self._matches, self._matches + 1
        m = parse_assistant(CALL_OPEN + raw + (CALL_CLOSE if closed else ""))
        if m.tool_calls:
            call = dataclasses.replace(m.tool_calls[0], id=f"call_{len(self.calls)}")
            self.calls.append(call)
            out.calls.append(call)
        else:
            error = f"tool call {n}" + m.errors[0][len("tool call 0"):]
            self.errors.append(error)
            out.errors.append(error)

    def feed(self, text: str) -> Parsed:
        out = Parsed()
        self._buf += text
        while self._buf:
            if self._in_call:
                end = self._buf.find(CALL_CLOSE)
                if end < 0:
                    break  # keep reading the call
                self._close_call(self._buf[:end], True, out)
                self._buf, self._in_call = self._buf[end + len(CALL_CLOSE):], False
                continue
            start = self._buf.find(CALL_OPEN)
            if start >= 0:
                self._show(self._buf[:start], out)
                self._buf, self._in_call = self._buf[start + len(CALL_OPEN):], True
                continue
            keep = _partial_suffix(self._buf, CALL_OPEN)  # a tail that may still become "<tool_call>"
            self._show(self._buf[: len(self._buf) - keep], out)
            self._buf = self._buf[len(self._buf) - keep:]
            break
        return out

    def flush(self) -> Parsed:
        """The reply ended: release held text, report an unclosed call as an error."""
        out = Parsed()
        if self._in_call:
            self._close_call(self._buf, False, out)
        else:
            self._show(self._buf, out)
        self._buf, self._in_call = "", False
        if self._ws and not (self.calls or self.errors):
            ws, self._ws = self._ws, ""
            out.text += ws  # no call: the parse keeps the text as it was, trailing whitespace included
            self.shown.append(ws)
        self._ws = ""
        return out

    @property
    def text(self) -> str:
        """All text shown so far."""
        return "".join(self.shown)
