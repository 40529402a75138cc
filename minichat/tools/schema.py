"""The tool registry's first half: a Python function -> a tool the model can call (name, description, JSON Schema).

    @tool
    def convert(amount: float, unit: Literal["km", "mi"] = "km") -> str:
        '''Convert a distance.

        Args:
            amount: how far
            unit: the unit `amount` is in
        '''

    convert.schema() == {"name": "convert", "description": "Convert a distance.",
                         "parameters": {"type": "object",
                                        "properties": {"amount": {"type": "number", "description": "how far"},
                                                       "unit": {"type": "string", "enum": ["km", "mi"],
                                                                "description": "the unit `amount` is in",
                                                                "default": "km"}},
                                        "required": ["amount"]}}

The schema is the shape of the Hermes/Qwen tool listing the chat template shows the model (name, description,
parameters), whose `parameters` is a JSON Schema object (https://json-schema.org, draft 2020-12) — the same shape
OpenAI's `function` objects and MCP's `inputSchema` use. Type hints map as:

    str string | int integer | float number | bool boolean | None null | dict object | list[T] array of T
    Literal["a", "b"] / an Enum class -> enum of the values | Optional[T], T | None -> T, or [T, "null"] when required

A parameter with a default is optional (not in "required"). The description is the docstring's first paragraph;
parameter descriptions come from a Google-style "Args:" section or reST ":param name:" lines. Everything can be
overridden: `@tool(name=..., description=..., parameters=...)`, or `descriptions={"param": "..."}`.

What it leaves out: unions of several non-null types, TypedDict/dataclass parameters (write `parameters` by hand),
`*args`/`**kwargs` (refused), `$ref`s.
"""
from __future__ import annotations

import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from minichat.errors import MinichatError

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")  # OpenAI's and MCP's names: letters, digits, _ - . (<= 64)


class ToolDefinitionError(MinichatError, TypeError):
    """A function cannot become a tool as written (unsupported type hint, bad name, *args)."""


_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null", dict: "object"}


def _json_type(value: Any) -> str:
    """The JSON type of a Python value (for enums from Literal and Enum values)."""
    for py, js in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (type(None), "null")):
        if isinstance(value, py):
            return js
    raise ToolDefinitionError(f"enum value {value!r} is not a JSON scalar (str, int, float, bool or None)")


def type_schema(hint: Any) -> tuple[dict, bool]:
    """A type hint -> (its JSON Schema, whether None is allowed).

    >>> type_schema(list[int])
    ({'type': 'array', 'items': {'type': 'integer'}}, False)
    >>> type_schema(typing.Optional[str])
    ({'type': 'string'}, True)
    """
    if hint is inspect.Parameter.empty or hint is Any:
        return {}, False  # no constraint: any JSON value
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}, hint is type(None)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:  # Annotated[T, "a description"]
        schema, nullable = type_schema(args[0])
        notes = [a for a in args[1:] if isinstance(a, str)]
        return ({**schema, "description": notes[0]} if notes else schema), nullable
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise ToolDefinitionError(f"unions of several types ({hint}) are not supported; use one type, "
                                      f"Optional[T], or write the parameter's schema by hand")
        schema, _ = type_schema(rest[0])
        return schema, len(rest) < len(args)
    if origin is Literal:
        kinds = sorted({_json_type(a) for a in args})
        values = [a.value if isinstance(a, enum.Enum) else a for a in args]
        return ({"type": kinds[0]} if len(kinds) == 1 else {"type": kinds}) | {"enum": values}, None in values
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [m.value for m in hint]
        kinds = sorted({_json_type(v) for v in values})
        return ({"type": kinds[0]} if len(kinds) == 1 else {"type": kinds}) | {"enum": values}, False
    if hint is list or origin is list or origin is tuple and args and args[-1] is Ellipsis:
        if not args:
            return {"type": "array"}, False
        return {"type": "array", "items": type_schema(args[0])[0]}, False
    if origin is dict:
        return {"type": "object"}, False
    raise ToolDefinitionError(f"the type hint {hint!r} has no JSON Schema here; supported: str, int, float, bool, "
                              f"None, dict, list[T], Literal[...], Enum, Optional[T], Annotated[T, 'description']")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """A docstring -> (its first paragraph, {parameter: description}) from Google "Args:" or reST ":param x:"."""
    text = inspect.cleandoc(doc or "")
    if not text:
        return "", {}
    summary = " ".join(text.split("\n\n", 1)[0].split())
    params: dict[str, str] = {}
    for m in re.finditer(r"^\s*:param\s+(?:\w+\s+)?(\w+):\s*(.+)$", text, re.M):
        params[m.group(1)] = m.group(2).strip()
    section = re.search(r"^(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.*\n?|\s*\n)+)", text, re.M)
    if section:
        current = None
        for line in section.group(1).splitlines():
            m = re.match(r"^\s{0,8}(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
            if m and (current is None or len(line) - len(line.lstrip()) <= indent):
                current, indent = m.group(1), len(line) - len(line.lstrip())
                params[current] = m.group(2).strip()
            elif current and line.strip():  # a continuation line
                params[current] = (params[current] + " " + line.strip()).strip()
    if summary.startswith((":param", "Args:")):
        summary = ""
    return summary, params


def derive_parameters(fn: Callable, descriptions: Mapping[str, str] | None = None) -> dict:
    """The JSON Schema object of `fn`'s parameters (see the module docstring for the mapping)."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as e:  # a forward reference that does not resolve, for instance
        raise ToolDefinitionError(f"cannot read the type hints of {getattr(fn, '__name__', fn)!r}: {e}") from None
    _, documented = parse_docstring(fn.__doc__)
    documented.update(descriptions or {})
    properties: dict[str, dict] = {}
    required: list[str] = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ToolDefinitionError(f"{fn.__name__}(*{p.name}) / (**{p.name}): a tool's arguments are a JSON "
                                      f"object with named properties; list every parameter by name")
        if p.kind is p.POSITIONAL_ONLY:
            raise ToolDefinitionError(f"{fn.__name__}: parameter {p.name!r} is positional-only; tools are called "
                                      f"with keyword arguments")
        schema, nullable = type_schema(hints.get(p.name, inspect.Parameter.empty))
        schema = dict(schema)
        if p.name in documented and "description" not in schema:
            schema["description"] = documented[p.name]
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
            if nullable and "type" in schema and "enum" not in schema:  # required but may be null
                schema["type"] = sorted({*([schema["type"]] if isinstance(schema["type"], str) else schema["type"]),
                                         "null"})
        elif p.default is not None:
            default = p.default.value if isinstance(p.default, enum.Enum) else p.default
            try:
                json.dumps(default)
                schema["default"] = default
            except TypeError:
                pass  # a default JSON cannot carry is left out of the schema (the function still applies it)
        properties[p.name] = schema
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


@dataclass(frozen=True)
class Tool:
    """A callable tool: the function, and what the model is shown about it."""

    name: str
    description: str
    parameters: Mapping[str, Any]  # a JSON Schema of type "object"
    fn: Callable[..., Any] = field(compare=False)
    timeout: float | None = None  # seconds; None: the toolbox's default

    def __post_init__(self):
        if not isinstance(self.name, str) or not NAME_RE.match(self.name):
            raise ToolDefinitionError(f"tool name {self.name!r} must be 1-64 letters, digits, '_', '-' or '.', "
                                      f"starting with a letter or '_'")
        if not isinstance(self.parameters, Mapping) or self.parameters.get("type") != "object":
            raise ToolDefinitionError(f"tool {self.name!r}: parameters must be a JSON Schema with type 'object', "
                                      f"got {self.parameters!r:.80}")

    def schema(self) -> dict:
        """What the tool listing shows: {"name", "description", "parameters"}."""
        return {"name": self.name, "description": self.description, "parameters": json.loads(json.dumps(
            self.parameters))}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # a decorated function stays callable as before
        return self.fn(*args, **kwargs)


def tool(fn: Callable | None = None, *, name: str | None = None, description: str | None = None,
         parameters: Mapping[str, Any] | None = None, descriptions: Mapping[str, str] | None = None,
         timeout: float | None = None) -> Any:
    """Decorator: `@tool` or `@tool(name=..., description=..., parameters=..., descriptions=..., timeout=...)`."""

    def make(f: Callable) -> Tool:
        if not callable(f):
            raise ToolDefinitionError(f"@tool needs a function, got {type(f).__name__}")
        summary, _ = parse_docstring(f.__doc__)
        params = dict(parameters) if parameters is not None else derive_parameters(f, descriptions)
        return Tool(name or f.__name__, description if description is not None else summary, params, f, timeout)

    return make(fn) if fn is not None else make
