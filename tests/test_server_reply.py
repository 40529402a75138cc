"""The reply assembler: however a reply is cut into tokens, the streamed pieces join to the same answer, the
arguments are the JSON the model wrote and parse to what `parse_assistant` reads, and pieces arrive as early as
they can (hypothesis over cuts, hand-worked streams)."""
from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from minichat.chat.template import parse_assistant
from minichat.server.reply import ReplyAssembler


@dataclass
class Step:
    text: str
    finish_reason: str | None = None


def run(pieces, forced="", finish="stop"):
    r = ReplyAssembler(forced, parse_tools=True)
    out = []
    for i, p in enumerate(pieces):
        out += r.feed(Step(p, finish if i == len(pieces) - 1 else None))
    return r, out


def assembled(out):
    """Rebuild the answer from the pieces alone, as a client does."""
    text, calls = "", {}
    for piece in out:
        if piece[0] == "text":
            text += piece[1]
        elif piece[0] == "call":
            calls[piece[1]] = [piece[2]["function"]["name"], ""]
        else:
            calls[piece[1]][1] += piece[2]
    return text, [tuple(calls[i]) for i in sorted(calls)]


REPLIES = [
    'Let me check.<tool_call>{"name": "calculator", "arguments": {"expression": "17*23"}}</tool_call>',
    '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>',
    'Two: <tool_call>{"name": "a", "arguments": {"x": {"y": [1, "}"]}}}</tool_call> and '
    '<tool_call> {"name":"b","arguments":{"s":"</tool"}} </tool_call>',
    '<tool_call>{"arguments": {"k": 1}, "name": "late_name"}</tool_call>',
    'plain text, no call at all </tool',
]


@settings(max_examples=300, deadline=None)
@given(reply=st.sampled_from(REPLIES), cuts=st.lists(st.integers(1, 200), max_size=12))
def test_any_cut_gives_the_parse(reply, cuts):
    bounds = sorted({c % len(reply) for c in cuts} - {0})
    pieces = [reply[a:b] for a, b in zip([0, *bounds], [*bounds, len(reply)])]
    r, out = run(pieces)
    expected = parse_assistant(reply)
    text, calls = assembled(out)
    assert text == expected.content == (r.content or "")
    assert [name for name, _ in calls] == [c.name for c in expected.tool_calls]
    assert [json.loads(args) for _, args in calls] == [dict(c.arguments) for c in expected.tool_calls]
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in r.calls] == calls
    assert r.finish_reason == ("tool_calls" if expected.tool_calls else "stop")


def test_arguments_stream_as_they_are_written():
    tokens = ['<tool', '_call', '>{"', 'name', '":', ' "', 'calculator', '",', ' "', 'arguments', '":', ' {"',
              'expression', '":', ' "', '17', '*', '23', '"}', '}</', 'tool', '_call', '>']
    r, out = run(tokens)
    steps = []
    for i, t in enumerate(tokens):  # which token released what
        r2 = ReplyAssembler("", parse_tools=True)
        got = [r2.feed(Step(x)) for x in tokens[: i + 1]][-1]
        steps.append([p[0] if p[0] != "args" else p[2] for p in got])
    assert steps[tokens.index("arguments") + 1] == ["call"]  # the header once '"arguments":' is complete
    args_steps = [s for s in steps if s and s[0] not in ("call", "text")]
    assert "".join(x for s in args_steps for x in s) == '{"expression": "17*23"}'
    assert len(args_steps) >= 4  # in pieces, not one lump at the end
    assert steps[tokens.index('"}')] == ['"']  # the "}" waits: it might close the call object


def test_forced_opening_and_a_cut_off_call():
    forced = '<tool_call>{"name": "calculator", "arguments":'
    r, out = run([' {"expression', '": "1+', '1"}}', '</tool_call>'], forced=forced)
    assert assembled(out) == ("", [("calculator", '{"expression": "1+1"}')]) and r.finish_reason == "tool_calls"
    r, out = run([' {"expression', '": "1+'], forced=forced, finish="length")
    assert assembled(out) == ("", [("calculator", '{"expression": "1+')]) and r.finish_reason == "length"
