"""What an MCP call gives back: a `ToolResult`, or one of the `MCPError`s, each saying which server and what to do.

    MCPConnectionError   the server could not start, or its process exited (or was closed)
    MCPTimeout           no answer in time (the request is cancelled; the connection stays usable)
    MCPProtocolError     something on stdout that is not JSON-RPC (the connection is closed: it can't be trusted)
    MCPRemoteError       a JSON-RPC error object, with its code (-32602: unknown tool or invalid arguments)
    MCPToolError         the tool ran and failed (`isError: true`); the text is meant for the model

`result_text` turns a result's content blocks into text a language model can read.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from minichat.errors import MinichatError


class MCPError(MinichatError):
    """Something went wrong talking to an MCP server; the message names the server and what to do."""


class MCPConnectionError(MCPError):
    """The server could not be started, or its process exited (or was closed)."""


class MCPTimeout(MCPError, TimeoutError):
    """The server did not answer within the time limit."""


class MCPProtocolError(MCPError):
    """The server broke the protocol: a line that is not JSON-RPC, a malformed result, an unknown `resultType`."""


class MCPRemoteError(MCPError):
    """The server answered with a JSON-RPC error object."""

    def __init__(self, message: str, code: int, data: Any = None):
        super().__init__(message)
        self.code, self.data = code, data


class MCPToolError(MCPError):
    """The tool ran and failed (`isError: true`); the message is the server's text, meant for the model."""


@dataclass(frozen=True)
class ToolResult:
    text: str  # the content blocks as text, what the model reads
    is_error: bool
    content: tuple[Mapping[str, Any], ...]  # the raw content blocks
    structured: Any = None  # `structuredContent`, if the tool declared an output schema


def result_text(result: Mapping[str, Any]) -> str:
    """A `tools/call` result's content blocks as the text a language model can read."""
    parts = []
    for block in result.get("content") or ():
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind in ("image", "audio"):  # base64 data: the model cannot read it, say what it was
            size = len(str(block.get("data", ""))) * 3 // 4
            parts.append(f"[{kind} {block.get('mimeType', '?')}, {size} bytes, not shown]")
        elif kind == "resource_link":
            parts.append(f"[resource link {block.get('uri', '?')} {block.get('name', '')}]".replace(" ]", "]"))
        elif kind == "resource":
            res = block.get("resource") if isinstance(block.get("resource"), Mapping) else {}
            parts.append(str(res["text"]) if "text" in res else f"[resource {res.get('uri', '?')}, binary, not shown]")
        else:
            parts.append(f"[content of unknown type {kind!r}]")
    if not parts and result.get("structuredContent") is not None:
        parts.append(json.dumps(result["structuredContent"], ensure_ascii=False))
    return "\n".join(parts)
