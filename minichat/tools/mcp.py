"""An MCP client over stdio: JSON-RPC 2.0 with a server subprocess, in both protocol eras.

The Model Context Protocol lets a chat use tools that live in another program. The client starts the server as a
subprocess and writes one JSON-RPC message per line to its stdin; the server answers one message per line on its
stdout (stdout carries protocol only; the server logs to stderr). Two eras are in use:

    modern  (2026-07-28)  no handshake: every request carries `_meta` with `io.modelcontextprotocol/protocolVersion`
                          and `io.modelcontextprotocol/clientCapabilities`; results carry `resultType`. A client that
                          also speaks the old era probes with `server/discover` first.
    legacy  (2025-11-25 and earlier)  `initialize` -> result with the agreed `protocolVersion`, then the client
                          sends the notification `notifications/initialized`; later requests carry no envelope.

`MCPClient.start()` follows the stdio backward-compatibility rules of the 2026-07-28 specification
(basic/transports/stdio.mdx): probe with `server/discover`; a DiscoverResult means modern; the error -32022
UnsupportedProtocolVersion names the versions the server speaks, and the client uses one of them; any other error or
no answer within `probe_timeout` means legacy, so fall back to `initialize`. A slow server that answered the probe
after we gave up has locked itself to the modern era and refuses `initialize` with -32022: re-probe once.

Failures are `MCPError`s that say which server, what happened and what to do: the server cannot start or exits
(`MCPConnectionError`), does not answer in time (`MCPTimeout`, the request is cancelled and the connection stays
usable), writes something that is not JSON-RPC on stdout (`MCPProtocolError`, the connection is closed: the stream
can no longer be trusted), answers with a JSON-RPC error (`MCPRemoteError`, e.g. -32602 for an unknown tool), or
reports a failed tool with `isError: true` (`MCPToolError`, whose text is meant for the model). Every raw line sent
and received is kept in `transcript` (for `--trace`).

minichat/tools/mcp_tools.py presents a server's tools to the chat (`MCPTools`, `tool_specs`, `merge_tools`); the
errors and results are in mcp_errors.py, the process and its pipes in mcp_stdio.py.

Left out: HTTP transports, resources, prompts, completion, subscriptions, sampling/elicitation and the multi
round-trip `input_required` results (reported as unsupported), progress, and validating arguments on the client
side (the server validates them).
"""
from __future__ import annotations

import collections
import itertools
import json
import os
import queue
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from minichat.tools.mcp_errors import (MCPConnectionError, MCPError, MCPProtocolError, MCPRemoteError, MCPTimeout,
                                       MCPToolError, ToolResult, result_text)
from minichat.tools.mcp_stdio import SAFE_ENV, exit_reason, kill, pump_stderr, pump_stdin, pump_stdout, terminate

__all__ = ["MCPClient", "MCPConnectionError", "MCPError", "MCPProtocolError", "MCPRemoteError", "MCPTimeout",
           "MCPToolError", "ToolResult", "result_text"]  # the errors and results are mcp_errors.py's, re-exported

MODERN_VERSIONS = ("2026-07-28",)  # newest first; spoken with the per-request `_meta` envelope
LEGACY_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")  # spoken after `initialize`
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
CLIENT_INFO = {"name": "minichat", "version": "0.1.0"}
UNSUPPORTED_PROTOCOL_VERSION, MISSING_CAPABILITY, HEADER_MISMATCH = -32022, -32021, -32020
MODERN_ERRORS = (UNSUPPORTED_PROTOCOL_VERSION, MISSING_CAPABILITY, HEADER_MISMATCH)  # only a modern server sends these
ERROR_NAMES = {-32700: "parse error", -32600: "invalid request", -32601: "method not found", -32602: "invalid params",
               -32603: "internal error", -32022: "unsupported protocol version", -32021: "missing client capability"}
MAX_PAGES = 100  # tools/list pages followed before we call the pagination broken


def _short(text: str, n: int = 200) -> str:
    return text if len(text) <= n else text[:n] + f"... ({len(text)} characters)"


class MCPClient:
    """One MCP server subprocess and the JSON-RPC conversation with it (one request at a time).

        with MCPClient("python server.py") as server:     # starts it and runs the handshake
            server.era, server.protocol_version            # "modern", "2026-07-28"  (or "legacy", "2025-11-25")
            tools = server.list_tools()                    # every page
            server.call_tool("add", {"a": 2, "b": 3}).text # "5"
    """

    def __init__(self, command: str | Sequence[str], *, name: str | None = None, timeout: float = 30.0,
                 probe_timeout: float = 5.0, era: str = "auto", env: Mapping[str, str] | None = None,
                 cwd: str | None = None, transcript_size: int = 2000):
        self.argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        if not self.argv:
            raise ValueError("empty MCP server command; give the program and its arguments, e.g. 'python server.py'")
        if era not in ("auto", "modern", "legacy"):
            raise ValueError(f"era must be 'auto', 'modern' or 'legacy', not {era!r}")
        if timeout <= 0 or probe_timeout <= 0:
            raise ValueError(f"timeouts must be positive seconds, got timeout={timeout}, probe_timeout={probe_timeout}")
        self.timeout, self.probe_timeout, self.era_wanted, self.env, self.cwd = timeout, probe_timeout, era, env, cwd
        self._fixed_name = name
        self.name = _slug(name or os.path.splitext(os.path.basename(self.argv[-1]))[0])
        self.era: str | None = None  # "modern" or "legacy" once the handshake is done
        self.protocol_version: str | None = None
        self.server_info: Mapping[str, Any] = {}
        self.capabilities: Mapping[str, Any] = {}
        self.instructions: str | None = None
        self.tools_changed = False  # set by notifications/tools/list_changed
        self.transcript: collections.deque = collections.deque(maxlen=transcript_size)  # (seq, time, dir, text)
        self.stderr_tail: collections.deque = collections.deque(maxlen=50)
        self.stopped_by: str | None = None  # how close() ended the process: "stdin", "terminate" or "kill"
        self._seq, self._ids = itertools.count(1), itertools.count(1)
        self._lock, self._close_lock = threading.RLock(), threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._down: str | None = "not started"  # why the server is not usable, or None

    # -- lifecycle -----------------------------------------------------------------------------------------------------

    def start(self) -> MCPClient:
        """Start the subprocess and run the handshake; on failure the process is stopped and the error raised."""
        with self._lock:
            if self.alive:
                return self
            self._spawn()
            try:
                self._handshake(self.era or self.era_wanted)
            except BaseException:
                self.close(grace=0.5)
                raise
        return self

    def restart(self) -> MCPClient:
        """A fresh process (the specification's advice after a crash), in the era found before (no fallback again)."""
        self.close(grace=0.5)
        return self.start()

    @property
    def alive(self) -> bool:
        return self._down is None and self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def close(self, grace: float = 2.0) -> None:
        """Shut down as the stdio transport says: close stdin, wait; then terminate, wait; then kill."""
        with self._close_lock:  # not self._lock: close() must work while another thread waits for an answer
            proc, self._proc = self._proc, None
            if proc is None:
                return
            self._down = self._down or "closed by the client"
            self.stopped_by = None
            for step, send in (("stdin", self._end_input), ("terminate", terminate), ("kill", kill)):
                if proc.poll() is not None:
                    break
                send(proc)
                self.stopped_by = step
                try:
                    proc.wait(grace if step != "kill" else max(grace, 5.0))
                except subprocess.TimeoutExpired:
                    continue
            self._end_input(proc)  # each pipe is closed by the thread that uses it (another could block on its lock)
            self._log("--", f"server stopped ({exit_reason(proc.returncode)}; {self.stopped_by or 'already gone'})")

    def _end_input(self, proc: subprocess.Popen) -> None:
        self._outbox.put(None)  # the writer thread closes stdin once the lines queued before are written

    def __enter__(self) -> MCPClient:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def _spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if k in SAFE_ENV and not v.startswith("()")}  # "()": shell funcs
        env.update(self.env or {})
        try:
            # A session of its own: Ctrl-C in the chat's terminal must not also kill the server, and shutdown can
            # signal the server's whole process group (a launcher such as npx starts the real server as a child).
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=env, cwd=self.cwd, start_new_session=os.name == "posix")
        except OSError as e:
            raise MCPConnectionError(f"cannot start MCP server {self.name!r} ({shlex.join(self.argv)}): "
                                     f"{e.strerror or e}; check the command and that the program is installed") from e
        self._proc, self._down, self._inbox, self._outbox = proc, None, queue.Queue(), queue.Queue()
        self.stderr_tail.clear()
        self._stderr_thread = threading.Thread(target=pump_stderr, args=(proc.stderr, self.stderr_tail), daemon=True)
        threading.Thread(target=pump_stdout, args=(proc.stdout, self._inbox), daemon=True).start()
        threading.Thread(target=pump_stdin, args=(proc.stdin, self._outbox), daemon=True).start()
        self._stderr_thread.start()
        self._log("--", f"started {shlex.join(self.argv)} (pid {proc.pid})")

    # -- the handshake, in either era ----------------------------------------------------------------------------------

    def _handshake(self, era: str) -> None:
        if era == "legacy":
            return self._initialize(LEGACY_VERSIONS[0])
        version = MODERN_VERSIONS[0]
        wait = self.probe_timeout if era == "auto" else self.timeout  # short only while silence means "legacy"
        for attempt in range(2):
            try:
                found = self._call("server/discover", {}, wait, version=version, cancel=False)
            except MCPRemoteError as e:
                supported = _supported(e.data)
                if e.code == UNSUPPORTED_PROTOCOL_VERSION and supported is not None:
                    mutual = [v for v in MODERN_VERSIONS if v in supported]
                    if mutual and attempt == 0:
                        version = mutual[0]
                        continue
                    legacy = [v for v in LEGACY_VERSIONS if v in supported]
                    if legacy and era == "auto":
                        return self._initialize(legacy[0])
                    raise MCPError(f"MCP server {self.name!r} speaks protocol versions {', '.join(supported)}; "
                                   f"minichat speaks {', '.join(MODERN_VERSIONS + LEGACY_VERSIONS)}") from e
                if e.code in MODERN_ERRORS or era == "modern":
                    raise
                self._log("--", f"server/discover failed ({e.code}): a legacy server, falling back to initialize")
                return self._initialize(LEGACY_VERSIONS[0])
            except MCPTimeout:
                if era == "modern":
                    raise
                self._log("--", "no answer to server/discover: a legacy server, falling back to initialize")
                return self._initialize(LEGACY_VERSIONS[0])
            listed = found.get("supportedVersions")
            listed = listed if isinstance(listed, list) else []
            mutual = [v for v in MODERN_VERSIONS if v in listed]
            if not mutual:  # answers discover but advertises only handshake versions: that is a legacy server
                legacy = [v for v in LEGACY_VERSIONS if v in listed]
                return self._initialize(legacy[0] if legacy else LEGACY_VERSIONS[0])
            self.era, self.protocol_version = "modern", mutual[0]
            meta = found.get("_meta") if isinstance(found.get("_meta"), Mapping) else {}
            self._adopt(meta.get(SERVER_INFO_KEY), found.get("capabilities"), found.get("instructions"))
            return

    def _initialize(self, version: str) -> None:
        params = {"protocolVersion": version, "capabilities": {}, "clientInfo": dict(CLIENT_INFO)}
        try:
            result = self._call("initialize", params, self.timeout)
        except MCPRemoteError as e:
            supported = _supported(e.data) or []
            if e.code == UNSUPPORTED_PROTOCOL_VERSION and any(v in supported for v in MODERN_VERSIONS):
                # Our probe timed out but reached a slow server, which then locked the connection to the modern era
                # (its answer came after we gave up, and was dropped). Probe again: the era is settled now.
                return self._handshake("modern")
            raise
        agreed = result.get("protocolVersion")
        if agreed not in LEGACY_VERSIONS:  # the specification: a client that cannot speak it MUST disconnect
            raise MCPProtocolError(f"MCP server {self.name!r} answered initialize with protocol version {agreed!r}; "
                                   f"minichat speaks {', '.join(LEGACY_VERSIONS)} in the handshake era")
        self.era, self.protocol_version = "legacy", agreed
        self._adopt(result.get("serverInfo"), result.get("capabilities"), result.get("instructions"))
        self.notify("notifications/initialized")

    def _adopt(self, info: Any, capabilities: Any, instructions: Any) -> None:
        self.server_info = info if isinstance(info, Mapping) else {}
        self.capabilities = capabilities if isinstance(capabilities, Mapping) else {}
        self.instructions = instructions if isinstance(instructions, str) else None
        if not self._fixed_name and isinstance(self.server_info.get("name"), str) and self.server_info["name"]:
            self.name = _slug(self.server_info["name"])  # display only (never trusted for anything else)

    # -- requests ------------------------------------------------------------------------------------------------------

    def request(self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None) -> dict:
        """Send a request in the era agreed and return its result; errors are raised as MCPError subclasses."""
        with self._lock:
            version = self.protocol_version if self.era == "modern" else None
            return self._call(method, params or {}, timeout or self.timeout, version=version)

    def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        self._send({"jsonrpc": "2.0", "method": method, **({"params": dict(params)} if params else {})})

    def list_tools(self) -> list[dict]:
        """Every tool the server offers, following `nextCursor` from page to page."""
        tools, cursor, seen = [], None, set()
        for _ in range(MAX_PAGES):
            result = self.request("tools/list", {"cursor": cursor} if cursor is not None else None)
            page = result.get("tools")
            if not isinstance(page, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str)
                                                      for t in page):
                raise MCPProtocolError(f"MCP server {self.name!r} sent a tools/list result without a list of named "
                                       f"tools: {_short(json.dumps(result))}")
            tools += page
            cursor = result.get("nextCursor")
            if cursor is None:
                self.tools_changed = False
                return tools
            if not isinstance(cursor, str) or cursor in seen:
                raise MCPProtocolError(f"MCP server {self.name!r} repeated the tools/list cursor {cursor!r}")
            seen.add(cursor)
        raise MCPProtocolError(f"MCP server {self.name!r} sent more than {MAX_PAGES} pages of tools")

    def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None, *,
                  timeout: float | None = None) -> ToolResult:
        """Call a tool; a failed tool comes back as `is_error=True` (not raised), a protocol error is raised."""
        if not isinstance(arguments, Mapping | None):
            raise ValueError(f"the arguments of {name!r} must be a JSON object, not {type(arguments).__name__}")
        result = self.request("tools/call", {"name": name, "arguments": dict(arguments or {})}, timeout=timeout)
        content = result.get("content")
        if not isinstance(content, list):
            raise MCPProtocolError(f"MCP server {self.name!r} sent a tools/call result without a content list: "
                                   f"{_short(json.dumps(result))}")
        return ToolResult(result_text(result), result.get("isError") is True, tuple(content),
                          result.get("structuredContent"))

    def trace(self, since: int = 0) -> str:
        """The raw exchange as text, one line per message (`->` sent, `<-` received, `!!` not protocol, `--` event)."""
        return "\n".join(f"{d} {text}" for seq, _, d, text in self.transcript if seq > since)

    @property
    def mark(self) -> int:
        """The sequence number of the latest transcript line; `trace(since=mark)` later shows what came after it."""
        return self.transcript[-1][0] if self.transcript else 0

    # -- the wire ------------------------------------------------------------------------------------------------------

    def _log(self, direction: str, text: str) -> None:
        self.transcript.append((next(self._seq), time.time(), direction, text))

    def _send(self, message: Mapping[str, Any]) -> None:
        try:  # one line per message: json.dumps escapes newlines inside strings, so the line cannot break
            line = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            data = line.encode("utf-8") + b"\n"  # a lone surrogate cannot be encoded: bad input, not a dead server
        except (TypeError, ValueError) as e:
            raise ValueError(f"cannot send {message.get('method', 'a message')} to MCP server {self.name!r}: "
                             f"its parameters are not JSON ({e})") from e
        self._ensure_up()
        self._log("->", line)
        self._outbox.put(data)

    def _call(self, method: str, params: Mapping[str, Any], timeout: float, *, version: str | None = None,
              cancel: bool = True) -> dict:
        rid = next(self._ids)
        body = dict(params)
        if version is not None:  # the modern era's per-request envelope
            body["_meta"] = {**body.get("_meta", {}), VERSION_KEY: version, CAPABILITIES_KEY: {},
                             CLIENT_INFO_KEY: dict(CLIENT_INFO)}
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": body})
        reply = self._await(rid, method, timeout, cancel)
        if "error" in reply:
            err = reply["error"]
            if not isinstance(err, Mapping) or not isinstance(err.get("code"), int):
                raise self._broken(f"an error without an integer code: {_short(json.dumps(reply))}")
            code, what = err["code"], ERROR_NAMES.get(err["code"], "error")
            raise MCPRemoteError(f"MCP server {self.name!r} refused {method} (JSON-RPC error {code}, {what}): "
                                 f"{err.get('message', '')}", code, err.get("data"))
        result = reply.get("result")
        if not isinstance(result, dict):
            raise self._broken(f"a response whose result is not an object: {_short(json.dumps(reply))}")
        kind = result.get("resultType", "complete")  # absent means complete (servers of earlier versions)
        if kind == "input_required":
            raise MCPError(f"MCP server {self.name!r} needs input from the user for {method} (input_required); "
                           "minichat's MCP client does not support multi round-trip requests")
        if kind != "complete":
            raise MCPProtocolError(f"MCP server {self.name!r} answered {method} with unknown resultType {kind!r}")
        return result

    def _await(self, rid: int, method: str, timeout: float, cancel: bool) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._log("--", f"no answer to request {rid} ({method}) within {timeout:g} s")
                if cancel:  # tell the server to stop working on it; a late answer is dropped below
                    self.notify("notifications/cancelled", {"requestId": rid, "reason": f"timed out ({timeout:g} s)"})
                cancelled = "; the request was cancelled (a slow tool? raise the timeout)" if cancel else ""
                raise MCPTimeout(f"MCP server {self.name!r} did not answer {method} within {timeout:g} s{cancelled}") \
                    from None
            if item[0] == "eof":
                raise self._gone()
            if item[0] == "garbage":
                self._log("!!", item[1])
                raise self._broken(f"a line that is not JSON: {_short(item[1])!r}")
            msg = item[1]
            self._log("<-", item[2])
            if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
                raise self._broken(f"JSON that is not a JSON-RPC 2.0 message: {_short(item[2])!r}")
            if "method" in msg:
                self._from_server(msg)
            elif msg.get("id") == rid:
                return msg
            # else: the answer to a request we gave up on; dropped

    def _from_server(self, msg: dict) -> None:
        """A request or notification from the server while we wait for our answer."""
        method = msg["method"]
        if "id" in msg:  # a request: only the legacy era allows them; answer ping, decline the rest
            reply = ({"result": {}} if method == "ping" else
                     {"error": {"code": -32601, "message": f"minichat's MCP client does not offer {method}"}})
            self._send({"jsonrpc": "2.0", "id": msg["id"], **reply})
        elif method == "notifications/tools/list_changed":
            self.tools_changed = True

    def _ensure_up(self) -> None:
        if self._down is not None or self._proc is None:
            raise MCPConnectionError(f"MCP server {self.name!r} is not running ({self._down}){self._stderr_hint()}")

    def _gone(self) -> MCPConnectionError:
        """The server's stdout closed: it exited. Collect the reason and clean up."""
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                pass
            self._stderr_thread.join(0.5)  # let the last log lines (a traceback, say) arrive
            self._down = exit_reason(proc.returncode) if proc.returncode is not None else "closed its stdout"
            self._log("--", f"server {self._down}")
            self.close(grace=0.5)
        return MCPConnectionError(f"MCP server {self.name!r} {self._down}{self._stderr_hint()}; "
                                  "it can be restarted")

    def _broken(self, what: str) -> MCPProtocolError:
        """The server broke the protocol: after that nothing on its stdout can be trusted, so close the connection."""
        self._down = f"closed after it sent {_short(what, 80)}"
        self.close(grace=0.5)
        return MCPProtocolError(f"MCP server {self.name!r} sent {what} on stdout, which carries protocol messages "
                                "only (logs belong on stderr); the connection was closed")

    def _stderr_hint(self) -> str:
        lines = [line for line in self.stderr_tail if line.strip()][-3:]
        return "; its last log lines: " + " | ".join(_short(line, 160) for line in lines) if lines else ""


def _supported(data: Any) -> list[str] | None:
    """The `supported` list of an UnsupportedProtocolVersion error's data, if it has one."""
    listed = data.get("supported") if isinstance(data, Mapping) else None
    return [v for v in listed if isinstance(v, str)] if isinstance(listed, list) else None


def _slug(name: str) -> str:
    """A server name usable as a tool-name prefix (MCP tool names allow letters, digits, `_`, `-`, `.`)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "mcp"


# -- the chat's view: an MCP server's tools through the `Tools` socket -------------------------------------------------
