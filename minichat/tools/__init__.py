"""Tools: Python functions the model can call, checked, run safely, and listed in the system prompt.

    schema.py      @tool: a function -> name, description, JSON Schema (from the signature and docstring)
    validate.py    the JSON Schema subset tool arguments are checked against (compared with `jsonschema` in tests)
    toolbox.py     Toolbox: the chat's Tools socket; enable lists, tool_choice, time limits, capped results
    calculator.py  safe arithmetic over a parsed syntax tree (never eval)
    notes.py       BM25 search over a folder of text notes
    builtin.py     the four tools the built-in model was trained on: calculator, get_time, search_notes, remember
    listing.py     how the tools are listed to the model (the trained listing, and a compact one)
    mcp.py         an MCP client over stdio (JSON-RPC 2.0, both protocol eras), standard library only
    mcp_errors.py  what an MCP call returns or raises;  mcp_stdio.py  the server process and its pipes
    mcp_tools.py   an MCP server's tools for the chat: the Tools socket, Toolbox entries, merged sources

Like safety and memory, this package knows only strings and config (docs/design.md §2): it never imports the model
or the chat; the chat finds a Toolbox through its `Tools` socket.
"""
from minichat.tools.builtin import BUILTIN_TOOL_SCHEMAS, TOOL_NAMES, builtin_tools
from minichat.tools.calculator import CalculatorError, calculate
from minichat.tools.schema import Tool, ToolDefinitionError, tool
from minichat.tools.toolbox import (ToolCallError, ToolOutcome, Toolbox, ToolTimeoutError, UnknownToolError,
                                    forced_prefix, parse_error_result)
from minichat.tools.validate import ArgumentsError, SchemaError, validate

__all__ = ["ArgumentsError", "BUILTIN_TOOL_SCHEMAS", "CalculatorError", "SchemaError", "TOOL_NAMES", "Tool",
           "ToolCallError", "ToolDefinitionError", "ToolOutcome", "ToolTimeoutError", "Toolbox", "UnknownToolError",
           "builtin_tools", "calculate", "forced_prefix", "parse_error_result", "tool", "validate"]
