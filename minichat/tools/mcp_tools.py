"""MCP servers' tools as the chat sees them: one server through the `Tools` socket, several sources merged, or each
tool as an entry of the local registry (`Toolbox`), so MCP tools sit beside local ones.

    MCPTools(client) / MCPTools.launch(command)    one server: schemas() (listed once, again when the server says its
                                                   list changed) and run(name, arguments) -> str; a dead server is
                                                   restarted on the next call (at most `max_restarts` times)
    tool_specs(*servers, taken=box.names())        Tool(**spec) entries for a Toolbox (argument checks, time limits)
    merge_tools(*sources)                          several sources as one socket

Names: a tool offered by one source only keeps its name; where names clash, a server's tool becomes
`<server>__<tool>` and a local one keeps the plain name. `compact_schema` drops the `title` annotations servers add
(they cost context window and change no validation). The client itself, both protocol eras and the errors are in
minichat/tools/mcp.py.
"""
from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from minichat.tools.mcp import MCPClient
from minichat.tools.mcp_errors import MCPError, MCPToolError


def compact_schema(node: Any) -> Any:
    """A JSON Schema without its `title` annotations (pydantic adds one to every property; they cost context window
    and change no validation). Property names are kept even when a property is called "title"."""
    if isinstance(node, list):
        return [compact_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "patternProperties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: compact_schema(sub) for name, sub in value.items()}
        elif key in ("const", "default", "enum", "examples"):  # instance values, not schemas: keep verbatim
            out[key] = value
        else:
            out[key] = compact_schema(value)
    return out


def _input_schema(tool: Mapping[str, Any]) -> dict:
    schema = tool.get("inputSchema")
    return schema if isinstance(schema, dict) and schema.get("type") == "object" else {"type": "object"}


class MCPTools:
    """One MCP server's tools as the chat sees them: `schemas()` and `run(name, arguments) -> str`.

    A failed tool (`isError`) raises `MCPToolError` with the server's text, a JSON-RPC error raises `MCPRemoteError`:
    the chat loop turns an exception into an error result the model reads, and goes on. A server that died is restarted
    on the next call, at most `max_restarts` times (the failed call itself is not repeated: tools may not be
    idempotent). `last_exchange` holds the raw JSON-RPC lines of the latest call, and `on_exchange(tool, lines)`,
    if set, is called with them after every call (for `--trace`).
    """

    def __init__(self, client: MCPClient, *, max_restarts: int = 1, max_result_chars: int = 16_000):
        self.client, self.max_restarts, self.max_result_chars = client, max_restarts, max_result_chars
        self.restarts = 0
        self.last_exchange = ""
        self.on_exchange: Callable[[str, str], None] | None = None
        self._schemas: list[dict] | None = None

    @classmethod
    def launch(cls, command: str | Sequence[str], **options: Any) -> MCPTools:
        """Start a server and list its tools; raises MCPError if it cannot (the caller decides to go on without)."""
        adapter_options = {k: options.pop(k) for k in ("max_restarts", "max_result_chars") if k in options}
        tools = cls(MCPClient(command, **options).start(), **adapter_options)
        try:
            tools.schemas(strict=True)
        except BaseException:
            tools.close()
            raise
        return tools

    @property
    def server_name(self) -> str:
        return self.client.name

    def schemas(self, strict: bool = False) -> list[dict]:
        """The tools as {"name", "description", "parameters"}: listed once, and again when the server says its list
        changed. A failed listing keeps the last list (a call will say what is wrong) unless `strict`."""
        if self._schemas is None or (self.client.tools_changed and self.client.alive):
            try:
                tools = self.client.list_tools()
            except MCPError:
                if strict:
                    raise
                self.client.tools_changed, tools = False, None  # don't retry (and wait) on every message
            if tools is not None:
                self._schemas = [{"name": t["name"], "description": str(t.get("description") or ""),
                                  "parameters": compact_schema(_input_schema(t))} for t in tools]
        return list(self._schemas or ())

    def run(self, name: str, arguments: Mapping[str, Any]) -> str:
        if not self.client.alive and self.restarts < self.max_restarts:
            self.restarts += 1
            self.client.restart()
        mark = self.client.mark
        try:
            result = self.client.call_tool(name, arguments)
        finally:
            self.last_exchange = self.client.trace(since=mark)
            if self.on_exchange is not None:
                self.on_exchange(name, self.last_exchange)
        text = result.text
        if len(text) > self.max_result_chars:
            text = text[:self.max_result_chars] + f"\n[... truncated: {len(result.text)} characters in all]"
        if result.is_error:
            raise MCPToolError(text or f"tool {name!r} failed without saying why")
        return text

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> MCPTools:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _public_names(listed: Sequence[tuple[str | None, Sequence[str]]]) -> list[list[str]]:
    """The name each source's tools go by: kept where only one source offers it; where names clash, a server's tool
    becomes `<server>__<tool>` and a local one (prefix None) keeps its name. ValueError if a clash remains."""
    counts = collections.Counter(name for _, names in listed for name in names)
    seen: set[str] = set()
    out = []
    for prefix, names in listed:
        row = [f"{prefix}__{name}" if prefix and counts[name] > 1 else name for name in names]
        for public in row:
            if public in seen:
                raise ValueError(f"two tools are both named {public!r}; give the MCP servers distinct names "
                                 "(MCPClient(name=...)) or leave one of the sources out")
            seen.add(public)
        out.append(row)
    return out


def tool_specs(*servers: MCPTools, taken: Sequence[str] = ()) -> list[dict]:
    """The servers' tools as keyword arguments for the registry's `Tool(name, description, parameters, fn, timeout)`,
    so MCP tools sit in a `Toolbox` like local ones (enable lists, tool_choice, argument checks, capped results).
    Names are resolved as in `merge_tools`, against each other and against `taken` (the local tools' names). The
    timeout is the MCP client's own plus a second, so the client's timeout (which cancels the request) fires first."""
    listed = [(s.server_name, s.schemas()) for s in servers]
    names = _public_names([(None, list(taken))] + [(prefix, [t["name"] for t in ts]) for prefix, ts in listed])[1:]
    specs = []
    for server, (_, schemas), publics in zip(servers, listed, names):
        for schema, public in zip(schemas, publics):
            fn = functools.partial(_run_on, server, schema["name"])
            specs.append({**schema, "name": public, "fn": fn, "timeout": server.client.timeout + 1.0})
    return specs


def _run_on(server: MCPTools, tool: str, /, **arguments: Any) -> str:
    return server.run(tool, arguments)  # positional-only: an argument may itself be called "server" or "tool"


class MergedTools:
    """Several tool sources (a local toolbox, MCP servers) as one `Tools` socket.

    A name offered by one source only is kept. Where names clash, a source with a `server_name` (an MCP server) has
    its tool renamed `<server>__<tool>`, and a local source keeps the plain name; clashes that renaming cannot
    resolve raise ValueError (give the servers distinct names).
    """

    def __init__(self, sources: Sequence[Any]):
        self.sources = list(sources)
        self._routes: dict[str, tuple[Any, str]] = {}

    def schemas(self) -> list[dict]:
        listed = [(source, list(source.schemas())) for source in self.sources]
        names = _public_names([(getattr(source, "server_name", None), [s["name"] for s in schemas])
                               for source, schemas in listed])
        pairs = [(source, schema, public) for (source, schemas), publics in zip(listed, names)
                 for schema, public in zip(schemas, publics)]
        self._routes = {public: (source, schema["name"]) for source, schema, public in pairs}
        return [{**schema, "name": public} for _, schema, public in pairs]

    def run(self, name: str, arguments: Mapping[str, Any]) -> str:
        if name not in self._routes:
            self.schemas()
        if name not in self._routes:
            raise LookupError(f"no tool named {name!r} is available (tools: {', '.join(sorted(self._routes))})")
        source, original = self._routes[name]
        return source.run(original, arguments)

    def close(self) -> None:
        for source in self.sources:
            if hasattr(source, "close"):
                source.close()


def merge_tools(*sources: Any) -> MergedTools:
    """Join tool sources into one `Tools` socket; see MergedTools for how clashing names are resolved."""
    return MergedTools(sources)
