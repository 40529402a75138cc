"""Tools inside the chat loop: per-request enable lists and tool_choice, calls held back from the stream, unreadable
calls retried, MCP tools beside local ones, and the built-in model answering arithmetic through the real CLI."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO, require_peer
from minichat.chat import events as ev
from minichat.chat.session import Chat, chat_events_text
from minichat.tools import Toolbox, builtin_tools, calculate
from test_chat_session import TOK, ScriptedModel


def cli(*args: str, stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minichat", *args], input=stdin, capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def test_tool_call_text_never_reaches_the_user_and_the_result_comes_back():
    def script(prompt):
        if "<|im_start|>tool" in prompt:
            return "It is 111563."
        return 'Let me compute.<tool_call>{"name": "calculator", "arguments": {"expression": "3847 * 29"}}</tool_call>'

    events = list(Chat(ScriptedModel(script), TOK, tools=Toolbox(builtin_tools())).send("What is 3847 * 29?"))
    shown = [e.text for e in events if isinstance(e, ev.Token)]
    assert not any("<tool" in s or "tool_call" in s for s in shown)
    assert chat_events_text(events) == "Let me compute.It is 111563."
    call = next(e for e in events if isinstance(e, ev.ToolCalled))
    result = next(e for e in events if isinstance(e, ev.ToolResult))
    assert (call.name, call.arguments, result.content, result.ok) == (
        "calculator", {"expression": "3847 * 29"}, str(3847 * 29), True)
    assert [e.type for e in events].index("tool_call") < [e.type for e in events].index("tool_result")


def test_named_tool_choice_starts_the_reply_with_the_call_and_enable_lists_narrow_the_listing():
    prompts = []

    def script(prompt):
        prompts.append(prompt)
        if "<|im_start|>tool" in prompt:
            return "Done."
        # the model writes only what follows the forced opening; the script returns the whole reply
        return '<tool_call>{"name": "calculator", "arguments": {"expression": "2 + 3"}}</tool_call>'

    chat = Chat(ScriptedModel(script), TOK, tools=Toolbox(builtin_tools()))
    events = list(chat.send("hello", tools=["calculator", "get_time"]))
    assert next(e for e in events if isinstance(e, ev.ContextBuilt)).tools == 2
    assert '"name": "get_time"' in prompts[0] and "search_notes" not in prompts[0]
    chat.reset()
    prompts.clear()
    events = list(chat.send("hello", tool_choice="calculator"))  # a named tool: only it is listed, and it is forced
    assert next(e for e in events if isinstance(e, ev.ContextBuilt)).tools == 1
    model = chat.model
    model.script = lambda prompt: "Done."  # the model is asked to continue after the forced opening...
    rendered = TOK.decode(chat._cached_ids)  # ...which the prompt (and so the KV cache) holds after the header
    assert '<|im_start|>assistant\n<tool_call>{"name": "calculator", "arguments": {"expression"' in rendered
    assert next(e for e in events if isinstance(e, ev.ToolResult)).content == "5"
    # the forced opening is part of the prompt, so the KV cache and the history hold the whole call
    assert chat.history[1].tool_calls[0].name == "calculator"
    with pytest.raises(ValueError, match="neither"):
        list(chat.send("again", tools=["get_time"], tool_choice="calculator"))
    with pytest.raises(LookupError, match="no such tools"):
        list(chat.send("again", tools=["frobnicate"]))


def test_an_unreadable_call_is_answered_with_the_error_and_the_model_tries_again():
    def script(prompt):
        if "<|im_start|>tool\n2<|im_end|>" in prompt:
            return "It is 2."
        if "ToolCallError" in prompt:
            return '<tool_call>{"name": "calculator", "arguments": {"expression": "1+1"}}</tool_call>'
        return "<tool_call>{not json</tool_call>"

    events = list(Chat(ScriptedModel(script), TOK, tools=Toolbox(builtin_tools())).send("1+1?"))
    results = [e for e in events if isinstance(e, ev.ToolResult)]
    assert not results[0].ok and "ToolCallError" in results[0].content
    assert results[1].ok and results[1].content == "2"
    assert (events[-1].finish_reason, events[-1].text) == ("stop", "It is 2.")


def test_mcp_tools_sit_in_the_toolbox_beside_local_ones(tmp_path):
    """A real `mcp` SDK server's `add` tool, called by the chat; the raw JSON-RPC of the call is kept for --trace."""
    require_peer("mcp")
    from minichat.tools.mcp_tools import MCPTools, tool_specs
    from minichat.tools.schema import Tool

    box = Toolbox(builtin_tools())
    with MCPTools.launch([sys.executable, str(REPO / "tests" / "mcp_servers" / "sdk_server.py")]) as server:
        for spec in tool_specs(server, taken=box.names()):
            box.add(Tool(**spec))

        def script(prompt):
            if "<|im_start|>tool" in prompt:
                return "The sum is 5."
            return '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>'

        events = list(Chat(ScriptedModel(script), TOK, tools=box).send("add 2 and 3"))
        result = next(e for e in events if isinstance(e, ev.ToolResult))
        assert result.ok and result.content == "5"
        assert '"method":"tools/call"' in server.last_exchange and '"name":"add"' in server.last_exchange
    out = cli("tools", "list", "--mcp", f"{sys.executable} {REPO / 'tests' / 'mcp_servers' / 'sdk_server.py'}",
              stdin="")
    assert out.returncode == 0, out.stderr
    assert re.search(r"^add\s+\(MCP: ", out.stdout, re.M) and "calculator" in out.stdout
    out = cli("tools", "list", "--mcp", "/no/such/server", stdin="")
    assert out.returncode == 0 and "not used" in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("question", ["What is 4821 * 37?", "What is 90210 - 4477?", "What is 3512 + 8809?"])
def test_the_builtin_model_answers_arithmetic_with_the_calculators_exact_result(question):
    """Through the real CLI, piped, with the built-in model and its default tools (numbers of 3-5 digits): the model
    calls the calculator, the tool really runs what the model wrote, and the reply carries the tool's exact result.
    Whether the model copied the operands right is a rate, not a per-question promise: the next test measures it
    (the builtin-v2x model wrote "9477 * 4477" for the second question here; builtin-v2w had all three right)."""
    import json

    out = cli("chat", "--trace", stdin=question + "\n")
    assert out.returncode == 0, out.stderr
    call = re.search(r"^\[tool call\] calculator\((.*)\)$", out.stdout, re.M)
    assert call, out.stdout
    expected = calculate(json.loads(call.group(1))["expression"])
    assert f"[tool result] calculator -> {expected}" in out.stdout
    reply = out.stdout.split("[tokens]")[-1].split("\n", 1)[1].split("[done]")[0]
    assert str(expected) in reply.replace(",", "")


def test_the_builtin_model_gets_most_plain_arithmetic_right():
    """'What is A op B?' with random operands of 3-5 digits (a fixed seed), through Chat with the built-in tools, as
    `minichat chat` runs it: at least 85 % answered with the exact result (measured on 90 such questions: builtin-v2w
    96.7 %, builtin-v2x 92.2 %; its seed 1 91.1 %)."""
    import numpy as np

    from minichat.builtin.probes import parse_probe, run_probe
    from minichat.model import load_model

    model, tok = load_model(None)
    rng = np.random.default_rng(2026)
    right = 0
    for i in range(30):
        a, b, op = int(10 ** rng.uniform(2, 5)), int(10 ** rng.uniform(2, 5)), "+-*"[i % 3]
        value = calculate(f"{a} {op} {b}")
        probe = parse_probe({"id": f"plain-{i}", "prompt": f"What is {a} {op} {b}?",
                             "expect": {"tool": "calculator", "value": value, "answer_any": [str(value)]}}, "calculator")
        right += run_probe(model, tok, probe).ok
    assert right >= 26, f"{right} of 30 plain arithmetic questions answered exactly"
