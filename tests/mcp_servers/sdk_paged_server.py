"""An MCP server on the official SDK's low-level `Server`: tools/list in pages of two (cursor pagination), and an
unknown tool answered with the JSON-RPC error -32602, as the specification's tools page shows it.
"""
import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

NAMES = ["alpha", "bravo", "charlie", "delta", "echo"]
PAGE = 2


async def list_tools(ctx, params):
    start = int(params.cursor) if params is not None and params.cursor else 0
    tools = [types.Tool(name=n, description=f"tool {n}",
                        input_schema={"type": "object", "properties": {"x": {"type": "integer"}}})
             for n in NAMES[start:start + PAGE]]
    more = start + PAGE < len(NAMES)
    return types.ListToolsResult(tools=tools, next_cursor=str(start + PAGE) if more else None)


async def call_tool(ctx, params):
    if params.name not in NAMES:
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
    x = (params.arguments or {}).get("x", 0)
    return types.CallToolResult(content=[types.TextContent(type="text", text=f"{params.name}({x})")])


server = Server("paged", on_list_tools=list_tools, on_call_tool=call_tool)


async def main():
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
