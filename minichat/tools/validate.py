"""Checking a tool call's arguments against the tool's JSON Schema, by hand, for the subset tools use.

A model writes arguments as text, so they can be anything: a string where a number belongs, a missing field, a
value outside the allowed set. Checked before the tool runs, each problem becomes a message the model can act on
("$.count: 'three' is not of type 'integer'") instead of an exception deep inside the tool.

The subset (JSON Schema draft 2020-12 semantics, https://json-schema.org/draft/2020-12/json-schema-validation):

    type                  "string" "integer" "number" "boolean" "object" "array" "null", or a list of them;
                          an integer is also a number, 1.0 is an integer, true is never a number
    enum                  the value equals one of these (true != 1, 1 == 1.0, lists and objects compared deeply)
    minimum maximum       inclusive bounds, numbers only        exclusiveMinimum exclusiveMaximum  strict bounds
    minLength maxLength   in code points, strings only
    properties required additionalProperties (true, false or a schema)     objects only
    items (one schema for every element)  minItems maxItems               arrays only

A keyword applies only to values of its kind ("minimum" says nothing about a string), and unknown keywords
(description, default, title, ...) are ignored, as the specification says. The tests compare `errors()` against
the `jsonschema` package on hypothesis-generated schemas and instances.

What it leaves out: $ref, allOf/anyOf/oneOf/not, patterns and formats, prefixItems, const, dependent keywords.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from minichat.errors import MinichatError

TYPES = ("string", "integer", "number", "boolean", "object", "array", "null")


class SchemaError(MinichatError, ValueError):
    """The schema itself is malformed (not the instance being checked)."""


def is_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "object":
        return isinstance(value, Mapping)
    if kind == "array":
        return isinstance(value, (list, tuple))
    if isinstance(value, bool):  # bool is a subclass of int in Python, never a number in JSON
        return False
    if kind == "number":
        return isinstance(value, (int, float))
    if kind == "integer":
        return isinstance(value, int) or isinstance(value, float) and value.is_integer()
    raise SchemaError(f"unknown type {kind!r} in a schema; use one of {TYPES}")


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON means it: true != 1 (Python says equal), 1 == 1.0, containers compared element-wise."""
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple, Mapping)) or isinstance(b, (list, tuple, Mapping)):
        return False
    return a == b


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if _jsonable(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def errors(instance: Any, schema: Mapping[str, Any] | bool, path: str = "$") -> list[str]:
    """Every way `instance` breaks `schema`, as "path: what is wrong" messages (empty: valid)."""
    if schema is True:
        return []
    if schema is False:
        return [f"{path}: no value is allowed here"]
    if not isinstance(schema, Mapping):
        raise SchemaError(f"a schema must be an object or a boolean, not {type(schema).__name__}")
    out: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if not any(is_type(instance, k) for k in kinds):
            want = kinds[0] if len(kinds) == 1 else " or ".join(kinds)
            out.append(f"{path}: {_show(instance)} is not of type {want!r}")
    if "enum" in schema and not any(json_equal(instance, v) for v in schema["enum"]):
        out.append(f"{path}: {_show(instance)} is not one of {_show(list(schema['enum']))}")
    if is_type(instance, "number"):
        out += _number(instance, schema, path)
    elif isinstance(instance, str):
        n = len(instance)  # code points, as the specification counts
        if "minLength" in schema and n < schema["minLength"]:
            out.append(f"{path}: {_show(instance)} is shorter than {schema['minLength']} characters")
        if "maxLength" in schema and n > schema["maxLength"]:
            out.append(f"{path}: {_show(instance)} is longer than {schema['maxLength']} characters")
    elif isinstance(instance, Mapping):
        out += _object(instance, schema, path)
    elif isinstance(instance, (list, tuple)):
        if "minItems" in schema and len(instance) < schema["minItems"]:
            out.append(f"{path}: has {len(instance)} items, fewer than {schema['minItems']}")
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            out.append(f"{path}: has {len(instance)} items, more than {schema['maxItems']}")
        if "items" in schema:
            for i, item in enumerate(instance):
                out += errors(item, schema["items"], _path(path, i))
    return out


def _number(x: float, schema: Mapping[str, Any], path: str) -> list[str]:
    out = []
    if isinstance(x, float) and math.isnan(x):
        return [f"{path}: NaN is not a JSON number"] if any(k in schema for k in (
            "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")) else []
    if "minimum" in schema and x < schema["minimum"]:
        out.append(f"{path}: {_show(x)} is less than the minimum of {schema['minimum']}")
    if "maximum" in schema and x > schema["maximum"]:
        out.append(f"{path}: {_show(x)} is greater than the maximum of {schema['maximum']}")
    if "exclusiveMinimum" in schema and x <= schema["exclusiveMinimum"]:
        out.append(f"{path}: {_show(x)} must be greater than {schema['exclusiveMinimum']}")
    if "exclusiveMaximum" in schema and x >= schema["exclusiveMaximum"]:
        out.append(f"{path}: {_show(x)} must be less than {schema['exclusiveMaximum']}")
    return out


def _object(obj: Mapping[str, Any], schema: Mapping[str, Any], path: str) -> list[str]:
    out = []
    props: Mapping[str, Any] = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in obj:
            out.append(f"{_path(path, name)}: the required property {name!r} is missing")
    for name, value in obj.items():
        if name in props:
            out += errors(value, props[name], _path(path, name))
    extra = schema.get("additionalProperties", True)
    unknown = [k for k in obj if k not in props]
    if extra is False and unknown:
        allowed = ", ".join(props) or "none"
        out.append(f"{path}: unexpected properties {', '.join(map(repr, unknown))} (allowed: {allowed})")
    elif isinstance(extra, Mapping):
        for name in unknown:
            out += errors(obj[name], extra, _path(path, name))
    return out


def validate(instance: Any, schema: Mapping[str, Any] | bool) -> None:
    """Raise ArgumentsError listing every problem, or return None when `instance` is valid."""
    problems = errors(instance, schema)
    if problems:
        raise ArgumentsError("; ".join(problems))


class ArgumentsError(MinichatError, ValueError):
    """A tool call's arguments do not match the tool's schema (the message lists each problem)."""


def check_schema_keywords(schema: Mapping[str, Any], where: str = "$") -> None:
    """Raise SchemaError for the mistakes a hand-written schema makes: unknown types, non-integer lengths."""
    if isinstance(schema, bool):
        return
    kind = schema.get("type")
    for k in ([kind] if isinstance(kind, str) else kind or []):
        if k not in TYPES:
            raise SchemaError(f"{where}: unknown type {k!r}; use one of {TYPES}")
    for key in ("minLength", "maxLength", "minItems", "maxItems"):
        if key in schema and (not isinstance(schema[key], int) or isinstance(schema[key], bool) or schema[key] < 0):
            raise SchemaError(f"{where}: {key} must be a non-negative integer, not {schema[key]!r}")
    for name, sub in schema.get("properties", {}).items():
        check_schema_keywords(sub, _path(where, name))
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), Mapping):
            check_schema_keywords(schema[key], f"{where}.{key}")
    if "required" in schema and not (isinstance(schema["required"], Sequence)
                                     and all(isinstance(r, str) for r in schema["required"])):
        raise SchemaError(f"{where}: required must be a list of property names")
