"""The MCP client against real servers in subprocesses: the official `mcp` SDK (2.x) in both eras, a stdlib legacy
server, and servers that crash, hang or write garbage on stdout. Listings and tool results are checked against the
SDK's own client; the MCP tools then go through the Toolbox and the chat loop."""
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import require_peer
from hypothesis import given, settings, strategies as st

from minichat.tools.mcp import (MCPClient, MCPConnectionError, MCPError, MCPProtocolError, MCPRemoteError,
                                MCPTimeout, MCPToolError, result_text)
from minichat.tools.mcp_tools import MCPTools, compact_schema, merge_tools, tool_specs

SERVERS = Path(__file__).parent / "mcp_servers"
PY = sys.executable


def sdk(name="sdk_server.py"):
    require_peer("mcp")
    return [PY, str(SERVERS / name)]


def stdlib(*flags):
    return [PY, str(SERVERS / "stdlib_server.py"), *flags]


def sent(client, method):
    """The messages the client sent with this method, parsed from the transcript."""
    return [json.loads(text) for _, _, d, text in client.transcript if d == "->" and f'"method":"{method}"' in text]


SURE = 120.0  # a probe timeout for tests that need the probe's answer, however loaded the machine


@pytest.fixture(scope="module")
def demo():
    with MCPClient(sdk(), probe_timeout=SURE) as client:
        yield client


# -- the modern era against the official SDK ---------------------------------------------------------------------------

def test_sdk_server_is_found_modern_by_discover(demo):
    assert (demo.era, demo.protocol_version) == ("modern", "2026-07-28")
    assert demo.name == "sdk-demo" and demo.instructions.startswith("Arithmetic")
    first = sent(demo, "server/discover")[0]
    meta = first["params"]["_meta"]
    assert meta["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
    assert meta["io.modelcontextprotocol/clientCapabilities"] == {}
    assert not sent(demo, "initialize")  # no handshake in this era


def test_every_modern_request_carries_the_envelope(demo):
    demo.call_tool("add", {"a": 1, "b": 1})
    calls = sent(demo, "tools/call")
    assert calls and all(c["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
                         for c in calls)


CALLS = [("add", {"a": 2, "b": 40}), ("divide", {"a": 1, "b": 0}), ("echo", {"text": "é\n\u2028\"x\""}),
         ("divide", {"a": 1, "b": "x"})]


@pytest.mark.slow
@pytest.mark.peer
def test_listing_and_results_match_the_sdk_client():
    """Our listing (all pages) and tool results equal what the official SDK client gets from the same servers."""
    mcp = require_peer("mcp")
    import anyio
    from mcp.client.stdio import StdioServerParameters

    async def reference(path, calls):
        tools, cursor = [], None
        async with mcp.Client(StdioServerParameters(command=PY, args=[str(path)])) as c:
            while True:
                page = await c.list_tools(cursor=cursor)
                tools += [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in page.tools]
                if (cursor := page.next_cursor) is None:
                    break
            results = [(await c.call_tool(name, args)).model_dump(by_alias=True, exclude_none=True, mode="json")
                       for name, args in calls]
        return tools, results

    for name, calls in (("sdk_server.py", CALLS), ("sdk_paged_server.py", [("echo", {"x": 3})])):
        with MCPClient(sdk(name)) as client:
            ours = client.list_tools()
            our_results = [client.call_tool(*call) for call in calls]
        theirs, their_results = anyio.run(reference, SERVERS / name, calls)
        assert [t["name"] for t in ours] == [t["name"] for t in theirs]
        assert [t["inputSchema"] for t in ours] == [t["inputSchema"] for t in theirs]
        for mine, ref in zip(our_results, their_results):
            assert list(mine.content) == ref["content"] and mine.is_error == ref.get("isError", False)
            assert mine.structured == ref.get("structuredContent")


def test_pagination_follows_next_cursor():
    with MCPClient(sdk("sdk_paged_server.py")) as client:
        tools = client.list_tools()
        cursors = [m["params"].get("cursor") for m in sent(client, "tools/list")]
    assert [t["name"] for t in tools] == ["alpha", "bravo", "charlie", "delta", "echo"]
    assert cursors == [None, "2", "4"]


def test_call_tool_result(demo):
    result = demo.call_tool("add", {"a": 38, "b": 4})
    assert (result.text, result.is_error, result.structured) == ("42", False, {"result": 42})


@settings(max_examples=25, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=200))
def test_any_text_survives_the_line_framing(demo, text):
    """Newlines, U+2028, quotes and NULs inside a message must not break the one-message-per-line framing."""
    assert demo.call_tool("echo", {"text": text}).text == text


def test_unencodable_arguments_are_refused_and_the_connection_lives_on(demo):
    with pytest.raises(ValueError, match="not JSON"):
        demo.call_tool("echo", {"text": "\ud800"})
    with pytest.raises(ValueError, match="not JSON"):
        demo.call_tool("divide", {"a": float("nan"), "b": 1.0})
    assert demo.call_tool("add", {"a": 1, "b": 2}).text == "3"


def test_tool_error_is_a_result_with_is_error(demo):
    result = demo.call_tool("divide", {"a": 1, "b": 0})
    assert result.is_error and "cannot divide by zero" in result.text
    tools, seen = MCPTools(demo), []
    tools.on_exchange = lambda name, lines: seen.append((name, lines))
    with pytest.raises(MCPToolError, match="cannot divide by zero"):
        tools.run("divide", {"a": 1, "b": 0})
    (name, lines), = seen
    sent_line, received = lines.split("\n")
    assert name == "divide" and sent_line.startswith("-> ") and received.startswith("<- ")
    assert json.loads(sent_line[3:])["params"]["arguments"] == {"a": 1, "b": 0}
    assert json.loads(received[3:])["result"]["isError"] is True
    with pytest.raises(ValueError, match="must be a JSON object, not str"):
        demo.call_tool("add", '{"a": 1}')


def test_unknown_tool_is_a_jsonrpc_error():
    with MCPClient(sdk("sdk_paged_server.py")) as client:
        with pytest.raises(MCPRemoteError, match=r"-32602, invalid params\): Unknown tool: nope") as e:
            client.call_tool("nope", {})
        assert e.value.code == -32602
        assert client.call_tool("alpha", {"x": 7}).text == "alpha(7)"  # and the connection goes on


def test_sdk_mcpserver_reports_unknown_tool_as_is_error(demo):
    """MCPServer (unlike the low-level Server above) answers an unknown tool with an isError result."""
    result = demo.call_tool("nope", {})
    assert result.is_error and result.text == "Unknown tool: nope"


def test_timeout_cancels_and_the_connection_stays_usable(demo):
    t = time.monotonic()
    with pytest.raises(MCPTimeout, match="did not answer tools/call within 0.5 s"):
        demo.call_tool("sleep", {"seconds": 20}, timeout=0.5)
    assert time.monotonic() - t < 5
    cancelled = sent(demo, "notifications/cancelled")[-1]
    assert cancelled["params"]["requestId"] == sent(demo, "tools/call")[-1]["id"]
    assert demo.call_tool("add", {"a": 2, "b": 2}).text == "4"


# -- the legacy era: `initialize` --------------------------------------------------------------------------------------

def test_sdk_server_in_the_legacy_era():
    with MCPClient(sdk(), era="legacy") as client:
        assert (client.era, client.protocol_version) == ("legacy", "2025-11-25")
        assert client.call_tool("add", {"a": 2, "b": 3}).text == "5"
        init = sent(client, "initialize")[0]["params"]
        assert init["protocolVersion"] == "2025-11-25" and init["clientInfo"]["name"] == "minichat"
        assert sent(client, "notifications/initialized")
        assert all("_meta" not in m["params"] for m in sent(client, "tools/call"))


def test_a_probe_that_answers_late_leads_back_to_the_modern_era():
    """The probe times out but reaches the server, which locks the modern era and refuses initialize with -32022
    naming 2026-07-28: the client re-probes instead of failing."""
    with MCPClient(sdk(), probe_timeout=0.001) as client:
        assert client.era == "modern"
        assert sent(client, "initialize") and len(sent(client, "server/discover")) == 2
        assert client.call_tool("add", {"a": 1, "b": 1}).text == "2"


def test_stdlib_legacy_server_falls_back_on_an_error():
    with MCPClient(stdlib("--ping"), probe_timeout=SURE) as client:
        assert (client.era, client.protocol_version, client.name) == ("legacy", "2025-11-25", "stdlib_legacy")
        assert "-- server/discover failed (-32601): a legacy server, falling back to initialize" in client.trace()
        assert client.call_tool("add", {"a": 20, "b": 22}).text == "42"  # with a ping and a log message in between
        answers = [json.loads(t) for _, _, d, t in client.transcript if d == "->" and '"srv-ping"' in t]
        assert answers == [{"jsonrpc": "2.0", "id": "srv-ping", "result": {}}]


def test_silent_legacy_server_falls_back_after_the_probe_timeout():
    t = time.monotonic()
    with MCPClient(stdlib("--silent-discover"), probe_timeout=0.5) as client:
        assert client.era == "legacy"
        assert client.call_tool("shout", {"text": "hi"}).text == "HI"
    assert time.monotonic() - t >= 0.5


def test_unsupported_protocol_version_retries_with_a_listed_version():
    with MCPClient(stdlib("--advertise", "--versions", "2025-06-18"), probe_timeout=SURE) as client:
        assert (client.era, client.protocol_version) == ("legacy", "2025-06-18")
        assert sent(client, "initialize")[0]["params"]["protocolVersion"] == "2025-06-18"


@pytest.mark.parametrize("code", [-32601, -32602, -32600, -32603, -32000])
def test_any_other_probe_error_means_legacy(code):
    """The fallback is not keyed to one error code (the specification: legacy servers answer with anything)."""
    with MCPClient(stdlib("--discover-error", str(code)), probe_timeout=SURE) as client:
        assert client.era == "legacy" and client.call_tool("add", {"a": 1, "b": 1}).text == "2"


def test_a_modern_error_from_the_probe_is_not_a_reason_to_fall_back():
    with pytest.raises(MCPRemoteError, match="-32021, missing client capability") as e:
        MCPClient(stdlib("--discover-error", "-32021"), probe_timeout=SURE).start()
    assert e.value.code == -32021


def test_a_discover_result_with_only_handshake_versions_means_legacy():
    with MCPClient(stdlib("--discover-result", "--versions", "2025-06-18"), probe_timeout=SURE) as client:
        assert (client.era, client.protocol_version) == ("legacy", "2025-06-18")


def test_no_common_version_is_a_clear_error():
    client = MCPClient(stdlib("--advertise", "--versions", "1999-01-01"), probe_timeout=SURE)
    with pytest.raises(MCPError, match="speaks protocol versions 1999-01-01; minichat speaks 2026-07-28"):
        client.start()
    assert not client.alive


def test_modern_only_client_does_not_fall_back():
    with pytest.raises(MCPRemoteError, match="-32601"):
        MCPClient(stdlib(), era="modern").start()


def test_list_changed_notification_refreshes_the_schemas():
    with MCPTools.launch(stdlib()) as tools:
        assert [s["name"] for s in tools.schemas()] == ["add", "shout"]
        assert tools.run("grow", {}) == "grown"
        assert [s["name"] for s in tools.schemas()] == ["add", "shout", "tool2"]
        assert tools.client.tools_changed is False


def test_unsupported_result_types():
    with MCPClient(stdlib()) as client:
        with pytest.raises(MCPError, match="input_required"):
            client.call_tool("ask", {})
        with pytest.raises(MCPProtocolError, match="unknown resultType 'partial'"):
            client.call_tool("weird", {})


# -- servers that misbehave --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag, complaint", [
    ("--banner", "a line that is not JSON: 'Starting the weather server on stdio...'"),
    ("--json-log", "JSON that is not a JSON-RPC 2.0 message: '{\"level\": \"info\""),
])
def test_garbage_before_the_first_message(flag, complaint):
    client = MCPClient(stdlib(flag), probe_timeout=SURE)
    t = time.monotonic()
    with pytest.raises(MCPProtocolError) as e:
        client.start()
    assert complaint in str(e.value) and "logs belong on stderr" in str(e.value)
    assert time.monotonic() - t < SURE / 2  # found at once, not after the probe's timeout
    assert not client.alive and client.pid is None


def test_garbage_in_a_call_closes_the_connection_and_a_restart_recovers():
    tools = MCPTools.launch(stdlib("--garbage-on-call"))
    try:
        assert tools.run("add", {"a": 1, "b": 2}) == "3"
        with pytest.raises(MCPProtocolError, match="stdout, which carries protocol messages only"):
            tools.run("shout", {"text": "hello"})
        assert "!! SHOUTING: HELLO" in tools.last_exchange
        with pytest.raises(MCPConnectionError, match="is not running"):
            tools.client.call_tool("add", {"a": 1, "b": 2})
        assert tools.run("add", {"a": 1, "b": 2}) == "3" and tools.restarts == 1
    finally:
        tools.close()


def test_server_killed_mid_call():
    tools = MCPTools.launch(sdk())
    try:
        caught = []

        def call():
            try:
                tools.run("sleep", {"seconds": 60})
            except MCPError as e:
                caught.append(e)

        worker = threading.Thread(target=call)
        worker.start()
        deadline = time.monotonic() + 20
        while not any("sleeping" in line for line in tools.client.stderr_tail) and time.monotonic() < deadline:
            time.sleep(0.02)  # the tool is running inside the server
        os.kill(tools.client.pid, signal.SIGKILL)
        worker.join(10)
        assert not worker.is_alive()
        assert isinstance(caught[0], MCPConnectionError) and "was killed by signal 9" in str(caught[0])
        assert tools.run("add", {"a": 5, "b": 6}) == "11" and tools.restarts == 1  # the chat goes on
        os.kill(tools.client.pid, signal.SIGKILL)  # again: the one restart allowed is used up
        with pytest.raises(MCPConnectionError, match="was killed by signal 9|is not running"):
            tools.run("add", {"a": 5, "b": 6})
        with pytest.raises(MCPConnectionError, match="is not running"):
            tools.run("add", {"a": 5, "b": 6})
    finally:
        tools.close()


def test_a_line_too_long_is_refused(monkeypatch):
    import minichat.tools.mcp_stdio as stdio
    monkeypatch.setattr(stdio, "MAX_LINE", 4096)  # 16 MiB in earnest; the reader thread reads the module's value
    with MCPClient(sdk(), probe_timeout=SURE) as client:
        assert client.call_tool("echo", {"text": "x" * 1000}).text == "x" * 1000
        with pytest.raises(MCPProtocolError, match="a line longer than 4096 bytes"):
            client.call_tool("echo", {"text": "x" * 5000})
        assert not client.alive


def test_server_that_crashes_at_start_shows_its_log():
    crash = [PY, "-c", "import sys; sys.stderr.write('fatal: WEATHER_API_KEY is not set\\n'); sys.exit(3)"]
    with pytest.raises(MCPConnectionError, match="exited with code 3.*WEATHER_API_KEY is not set"):
        MCPClient(crash).start()


def test_hanging_server_times_out_and_is_killed():
    client = MCPClient(stdlib("--hang"), probe_timeout=0.3, timeout=0.5)
    t = time.monotonic()
    with pytest.raises(MCPTimeout, match="did not answer initialize within 0.5 s"):
        client.start()
    assert time.monotonic() - t < 10
    assert client.stopped_by == "kill"  # it ignored stdin closing and SIGTERM


def test_a_server_that_stops_reading_cannot_block_the_caller():
    """A megabyte of arguments fills the pipe of a server that no longer reads stdin: the write blocks (in the
    writer thread), and the caller still gets its timeout."""
    client = MCPClient(stdlib(), probe_timeout=SURE, timeout=1.0).start()
    assert client.call_tool("deafen", {}).text == "deaf"
    t = time.monotonic()
    with pytest.raises(MCPTimeout, match="did not answer tools/call within 1 s"):
        client.call_tool("shout", {"text": "x" * 2**20})
    assert time.monotonic() - t < 10
    client.close(grace=0.5)
    assert client.stopped_by == "terminate"  # stdin could not even be closed: the writer is stuck behind the data


def test_shutdown_closes_stdin_first():
    client = MCPClient(sdk()).start()
    pid = client.pid
    client.close()
    assert client.stopped_by == "stdin" and not client.alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_missing_program():
    with pytest.raises(MCPConnectionError, match="cannot start MCP server 'x'.*No such file"):
        MCPClient(["/nonexistent/mcp-server"], name="x").start()


def test_server_does_not_inherit_secrets(monkeypatch):
    monkeypatch.setenv("MINICHAT_TEST_SECRET", "hunter2")
    peek = [PY, "-c", "import os, sys; sys.stderr.write(f\"secret={os.environ.get('MINICHAT_TEST_SECRET')} "
                      "path={bool(os.environ.get('PATH'))}\\n\")"]
    with pytest.raises(MCPConnectionError, match="secret=None path=True"):
        MCPClient(peek).start()
    with pytest.raises(MCPConnectionError, match="secret=given"):
        MCPClient(peek, env={"MINICHAT_TEST_SECRET": "given"}).start()


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty MCP server command"):
        MCPClient("")
    with pytest.raises(ValueError, match="era must be"):
        MCPClient("x", era="2026")


# -- the chat's view: the Tools socket ---------------------------------------------------------------------------------

def test_adapter_schemas_are_compact(demo):
    schemas = {s["name"]: s for s in MCPTools(demo).schemas()}
    assert schemas["add"] == {"name": "add", "description": "Add two integers.",
                              "parameters": {"type": "object", "properties": {"a": {"type": "integer"},
                                                                              "b": {"type": "integer"}},
                                             "required": ["a", "b"]}}


def test_compact_schema_changes_no_validation():
    jsonschema = require_peer("jsonschema")
    schema = {"title": "T", "type": "object", "required": ["title"],
              "properties": {"title": {"title": "Title", "type": "string", "enum": ["title", "x"]},
                             "n": {"title": "N", "type": "integer", "default": {"title": 1}}}}
    small = compact_schema(schema)
    assert small == {"type": "object", "required": ["title"],
                     "properties": {"title": {"type": "string", "enum": ["title", "x"]},
                                    "n": {"type": "integer", "default": {"title": 1}}}}
    for instance in ({"title": "x"}, {"title": "y"}, {}, {"title": "title", "n": 1.5}, {"title": "x", "n": 3}):
        assert jsonschema.Draft202012Validator(schema).is_valid(instance) == \
            jsonschema.Draft202012Validator(small).is_valid(instance)


def test_result_text_for_each_content_type():
    result = {"content": [{"type": "text", "text": "a"}, {"type": "image", "mimeType": "image/png", "data": "AAAA"},
                          {"type": "resource_link", "uri": "file:///x.txt", "name": "x"},
                          {"type": "resource", "resource": {"uri": "file:///y", "text": "inside"}},
                          {"type": "resource", "resource": {"uri": "file:///z", "blob": "AA=="}},
                          {"type": "hologram"}]}
    assert result_text(result).split("\n") == ["a", "[image image/png, 3 bytes, not shown]",
                                               "[resource link file:///x.txt x]", "inside",
                                               "[resource file:///z, binary, not shown]",
                                               "[content of unknown type 'hologram']"]
    assert result_text({"content": [], "structuredContent": {"t": 21.5}}) == '{"t": 21.5}'
    odd = {"content": ["text", {"type": "resource", "resource": "text"}, {"type": "image", "data": 7}]}
    assert result_text(odd).split("\n") == ["[content of unknown type None]", "[resource ?, binary, not shown]",
                                             "[image ?, 0 bytes, not shown]"]


class Local:
    """A stand-in for the local Toolbox: any object with schemas() and run()."""

    def __init__(self, *names):
        self.names = names

    def schemas(self):
        return [{"name": n, "description": "", "parameters": {"type": "object"}} for n in self.names]

    def run(self, name, arguments):
        return f"local {name}"


def test_merge_prefixes_clashing_mcp_tools(demo):
    merged = merge_tools(Local("calculator", "get_time"), MCPTools(demo))
    names = [s["name"] for s in merged.schemas()]
    assert names == ["calculator", "get_time", "add", "echo", "divide", "sleep", "sdk-demo__calculator"]
    assert merged.run("calculator", {"expression": "1+1"}) == "local calculator"
    assert merged.run("sdk-demo__calculator", {"expression": "1+1"}) == "remote calculator got '1+1'"
    assert merged.run("add", {"a": 1, "b": 2}) == "3"
    with pytest.raises(LookupError, match="no tool named 'nope'"):
        merged.run("nope", {})


class Remote(Local):
    def __init__(self, server_name, *names):
        super().__init__(*names)
        self.server_name = server_name

    def run(self, name, arguments):
        return f"{self.server_name} {name}"


@given(st.lists(st.sampled_from("abcde"), unique=True), st.lists(st.lists(st.sampled_from("abcde"), unique=True),
                                                                 max_size=3))
def test_merge_names_are_unique_and_route_home(local, remotes):
    sources = [Local(*local)] + [Remote(f"s{i}", *names) for i, names in enumerate(remotes)]
    merged = merge_tools(*sources)
    names = [s["name"] for s in merged.schemas()]
    assert len(names) == len(set(names)) == len(local) + sum(map(len, remotes))
    everywhere = [n for s in sources for n in s.names]
    for name in local:
        assert merged.run(name, {}) == f"local {name}"
    for i, tools in enumerate(remotes):
        for name in tools:
            public = name if everywhere.count(name) == 1 else f"s{i}__{name}"
            assert merged.run(public, {}) == f"s{i} {name}"


def test_merge_refuses_clashes_it_cannot_resolve():
    with pytest.raises(ValueError, match="both named 'x'"):
        merge_tools(Local("x"), Local("x")).schemas()
    with pytest.raises(ValueError, match="both named 's__x'"):
        merge_tools(Remote("s", "x"), Remote("s", "x")).schemas()


def test_mcp_tools_join_the_toolbox_like_local_ones(demo):
    """tool_specs feeds the tools registry: the Toolbox checks the arguments against the MCP inputSchema, runs the
    call, and reports a tool error as an error result; clashing names get the server's prefix."""
    from minichat.tools import Tool, Toolbox

    def calculator(expression: str) -> str:
        """A local calculator."""
        return "local " + expression

    box = Toolbox([calculator])
    for spec in tool_specs(MCPTools(demo), taken=box.names()):
        box.add(Tool(**spec))
    assert box.names() == ["calculator", "add", "echo", "divide", "sleep", "sdk-demo__calculator"]
    assert box.run("add", {"a": 40, "b": 2}) == "42"
    assert box.run("echo", {"text": "x"}) == "x"
    assert box.run("sdk-demo__calculator", {"expression": "1+1"}) == "remote calculator got '1+1'"
    assert box.run("calculator", {"expression": "1+1"}) == "local 1+1"
    failed = box.call("divide", {"a": 1, "b": 0})
    assert not failed.ok and "cannot divide by zero" in failed.content
    assert not box.call("add", {"a": "two", "b": 2}).ok  # refused by the registry before it reaches the server


def test_tool_specs_pass_arguments_named_like_parameters():
    from minichat.tools import Tool, Toolbox

    class Named(Remote):
        def run(self, name, arguments):
            return json.dumps(arguments, sort_keys=True)

    source = Named("srv", "t")
    source.client = type("C", (), {"timeout": 1.0})()
    (spec,) = tool_specs(source)
    assert spec["fn"](server=1, tool=2) == '{"server": 1, "tool": 2}'
    Toolbox([Tool(**spec)])  # the registry accepts it


# -- through the chat loop ---------------------------------------------------------------------------------------------

def chat_with(tools, prompts):
    """A Chat whose scripted model calls `add` once, then answers with the tool's result."""
    from minichat.chat import events as ev
    from minichat.chat.session import Chat
    from test_chat_session import TOK, ScriptedModel

    def script(prompt):
        prompts.append(prompt)
        last_turn = prompt.rsplit("<|im_start|>user", 1)[-1]
        if "<|im_start|>tool\n" in last_turn:
            return "Result: " + last_turn.rsplit("<|im_start|>tool\n", 1)[1].split("<|im_end|>")[0]
        return '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>'

    events = list(Chat(ScriptedModel(script), TOK, tools=tools).send("What is 2+3?"))
    return next(e for e in events if isinstance(e, ev.ToolResult)), events[-1]


def test_the_chat_calls_an_mcp_tool(demo):
    prompts = []
    result, done = chat_with(merge_tools(Local("get_time"), MCPTools(demo)), prompts)
    assert (result.name, result.content, result.ok) == ("add", "5", True)
    assert done.type == "done" and done.text == "Result: 5"
    listed = json.dumps({"description": "Add two integers.", "name": "add", "parameters": {
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"],
        "type": "object"}}, sort_keys=True)
    assert listed in prompts[0]  # the MCP tool is listed to the model like a local one


def test_the_chat_goes_on_when_the_server_died():
    tools = MCPTools.launch(sdk(), max_restarts=0)
    try:
        os.kill(tools.client.pid, signal.SIGKILL)
        result, done = chat_with(tools, [])
        assert not result.ok and "MCPConnectionError" in result.content and "killed by signal 9" in result.content
        assert done.type == "done" and "MCPConnectionError" in done.text  # the model saw the error and answered
    finally:
        tools.close()
