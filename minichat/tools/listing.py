"""How tools are listed to the model, and a compact listing for small context windows.

The chat template lists each tool's full JSON schema, one per line, between <tools></tools> (Hermes/Qwen style,
`minichat.chat.template.tools_prompt`); the built-in model was trained on exactly that text. It is explicit but
costly: measured with the built-in tokenizer (docs/tools.md; bench/tools.py prints it again),

    the four built-in tools, full listing    234 tokens  (253 for the whole system message with the instructions)
    the same, compact_listing                108 tokens

out of a 512-token window, so with the full listing and a 256-token reply budget not even a one-line question fits.
`compact_listing` writes each tool as a signature line, the way a programmer would document it:

    - calculator(expression: string): Evaluate an arithmetic expression (+ - * / ** and parentheses).
    - get_time(): The current local date and time.

Types come from the schema (`string`, `integer`, `"a"|"b"` for an enum, `string[]` for an array, `?` after an
optional name, `=value` for a default); property descriptions follow the signature after " — " only when
`details=True`. Nested objects are written as `object`, so a tool with deep parameters loses detail here: list it in
full instead.

Which form a model sees is the form it was trained on: a minichat checkpoint's config.json metadata `tool_listing`
("full", the default, or "compact"; `minichat train` writes its recipe's) reaches `ChatProfile.tool_listing`, and
the chat session, the OpenAI route and the evaluation pass it to `chat.context.system_text`. Other models get the
full listing. Measured on a model trained only on the full form (docs/tools.md): 200 calculator questions through
Chat, 94.5 % right with the full listing, 93.0 % with the compact one.

What it leaves out: any attempt to teach the format (that is the corpus's job).
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

CALL_FORMAT = '<tool_call>{"name": <tool name>, "arguments": <arguments object>}</tool_call>'


def type_text(schema: Mapping[str, Any]) -> str:
    """A parameter schema as a short type: {"type": "array", "items": {"type": "integer"}} -> "integer[]"."""
    if "enum" in schema:
        return "|".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return "|".join(kind)
    if kind == "array":
        return type_text(schema.get("items", {})) + "[]"
    return str(kind)


def signature(schema: Mapping[str, Any], details: bool = False) -> str:
    """One tool's listing line: `name(arg: type, opt?: type=default): description`."""
    params = schema.get("parameters", {}) or {}
    required = set(params.get("required", ()))
    args, notes = [], []
    for name, prop in (params.get("properties") or {}).items():
        text = f"{name}{'' if name in required else '?'}: {type_text(prop)}"
        if "default" in prop:
            text += "=" + json.dumps(prop["default"], ensure_ascii=False)
        args.append(text)
        if details and prop.get("description"):
            notes.append(f"{name}: {prop['description']}")
    line = f"- {schema['name']}({', '.join(args)})"
    if schema.get("description"):
        line += f": {schema['description']}"
    return line + (" — " + "; ".join(notes) if notes else "")


def compact_listing(schemas: Sequence[Mapping[str, Any]], details: bool = False) -> str:
    """The tools paragraph of the system prompt, one signature line per tool (see the module docstring)."""
    lines = "\n".join(signature(s, details) for s in schemas)
    return f"# Tools\n\nYou can call these tools:\n{lines}\n\nTo call one, answer with:\n{CALL_FORMAT}"
