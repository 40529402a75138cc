"""A real MCP server built with the official `mcp` SDK (2.x, `MCPServer`), run over stdio by tests/test_mcp.py.

The SDK's server is dual-era: the client's first request decides between the 2026-07-28 envelope and the
2025-11-25 `initialize` handshake. Its tools cover what the client must handle: a plain result, text that needs
escaping, a failing tool (`isError`), a slow tool (timeouts, killing the server mid-call) and a tool whose name
clashes with a local one.
"""
import asyncio
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

app = MCPServer("sdk-demo", instructions="Arithmetic and echo tools for minichat's tests.")


@app.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@app.tool()
def divide(a: float, b: float) -> float:
    """Divide a by b."""
    if b == 0:
        raise ToolError("cannot divide by zero: give a non-zero b")
    return a / b


@app.tool()
async def sleep(seconds: float) -> str:
    """Wait, then say so."""
    print(f"sleeping {seconds} s", file=sys.stderr, flush=True)
    await asyncio.sleep(seconds)
    return f"slept {seconds} s"


@app.tool()
def calculator(expression: str) -> str:
    """A remote tool whose name clashes with minichat's built-in calculator."""
    return f"remote calculator got {expression!r}"


if __name__ == "__main__":
    app.run()
