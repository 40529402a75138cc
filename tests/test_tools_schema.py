"""@tool: schema derivation from signatures, type hints and docstrings, checked against hand-written schemas; every
derived schema is also a valid JSON Schema according to the `jsonschema` package's metaschema."""
from __future__ import annotations

import enum
from typing import Annotated, Any, Literal, Optional

import pytest
from conftest import require_peer

from minichat.tools import Tool, ToolDefinitionError, tool
from minichat.tools.schema import parse_docstring, type_schema


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


def f_plain(a: str, b: int, c: float, d: bool): ...
def f_defaults(a: str, n: int = 3, x: float = 0.5, flag: bool = False, note: str | None = None): ...
def f_literal(mode: Literal["fast", "slow"], n: Literal[1, 2, 3] = 1): ...
def f_enum(colour: Colour, level: Level = Level.LOW): ...
def f_lists(names: list[str], grid: list[list[int]], anything: list = None): ...  # noqa: RUF013
def f_optional_required(a: Optional[int], b: int | None): ...
def f_untyped(a, b=2): ...
def f_dict(options: dict, table: dict[str, int] = None): ...  # noqa: RUF013
def f_annotated(city: Annotated[str, "a city name"]): ...
def f_any(x: Any): ...
def f_tuple(xs: tuple[float, ...]): ...
def f_none(): ...


CASES = [
    (f_plain, {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"},
                                                "c": {"type": "number"}, "d": {"type": "boolean"}},
               "required": ["a", "b", "c", "d"]}),
    (f_defaults, {"type": "object", "properties": {
        "a": {"type": "string"}, "n": {"type": "integer", "default": 3}, "x": {"type": "number", "default": 0.5},
        "flag": {"type": "boolean", "default": False}, "note": {"type": "string"}}, "required": ["a"]}),
    (f_literal, {"type": "object", "properties": {
        "mode": {"type": "string", "enum": ["fast", "slow"]},
        "n": {"type": "integer", "enum": [1, 2, 3], "default": 1}}, "required": ["mode"]}),
    (f_enum, {"type": "object", "properties": {
        "colour": {"type": "string", "enum": ["red", "green"]},
        "level": {"type": "integer", "enum": [1, 2], "default": 1}}, "required": ["colour"]}),
    (f_lists, {"type": "object", "properties": {
        "names": {"type": "array", "items": {"type": "string"}},
        "grid": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
        "anything": {"type": "array"}}, "required": ["names", "grid"]}),
    (f_optional_required, {"type": "object", "properties": {"a": {"type": ["integer", "null"]},
                                                            "b": {"type": ["integer", "null"]}},
                           "required": ["a", "b"]}),
    (f_untyped, {"type": "object", "properties": {"a": {}, "b": {"default": 2}}, "required": ["a"]}),
    (f_dict, {"type": "object", "properties": {"options": {"type": "object"}, "table": {"type": "object"}},
              "required": ["options"]}),
    (f_annotated, {"type": "object", "properties": {"city": {"type": "string", "description": "a city name"}},
                   "required": ["city"]}),
    (f_any, {"type": "object", "properties": {"x": {}}, "required": ["x"]}),
    (f_tuple, {"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "number"}}},
               "required": ["xs"]}),
    (f_none, {"type": "object", "properties": {}}),
]


@pytest.mark.parametrize("fn,expected", CASES, ids=[c[0].__name__ for c in CASES])
def test_derived_parameters(fn, expected):
    t = tool(fn)
    assert isinstance(t, Tool) and t.name == fn.__name__
    assert t.parameters == expected
    jsonschema = require_peer("jsonschema")
    jsonschema.Draft202012Validator.check_schema(t.schema()["parameters"])


def test_docstring_descriptions_google_and_rest():
    @tool
    def convert(amount: float, unit: Literal["km", "mi"] = "km") -> str:
        """Convert a distance
        between units.

        Longer explanation that is not the description.

        Args:
            amount: how far, in the unit
                given next
            unit (str): the unit `amount` is in
        """

    assert convert.description == "Convert a distance between units."
    props = convert.parameters["properties"]
    assert props["amount"] == {"type": "number", "description": "how far, in the unit given next"}
    assert props["unit"] == {"type": "string", "enum": ["km", "mi"], "description": "the unit `amount` is in",
                             "default": "km"}

    @tool
    def greet(name: str):
        """Say hello.

        :param name: who to greet
        """
    assert greet.parameters["properties"]["name"]["description"] == "who to greet"
    assert parse_docstring(None) == ("", {})


def test_overrides_and_the_function_stays_callable():
    @tool(name="add_numbers", description="Add two numbers.", descriptions={"a": "first"}, timeout=1.5)
    def add(a: int, b: int = 1) -> int:
        """Ignored summary."""
        return a + b

    assert add.name == "add_numbers" and add.description == "Add two numbers." and add.timeout == 1.5
    assert add.parameters["properties"]["a"]["description"] == "first"
    assert add(2, b=3) == 5
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    t = tool(lambda q: q, name="echo", description="Echo.", parameters=schema)
    assert t.schema() == {"name": "echo", "description": "Echo.", "parameters": schema}
    assert t.schema()["parameters"] is not schema  # a copy: editing the listing cannot change the tool


@pytest.mark.parametrize("bad", [
    lambda *args: None,
    lambda **kw: None,
])
def test_refused_signatures(bad):
    with pytest.raises(ToolDefinitionError, match="named"):
        tool(bad, name="bad")


def test_refused_hints_and_names():
    def union(x: int | str): ...
    with pytest.raises(ToolDefinitionError, match="unions"):
        tool(union)

    def obj(x: object): ...
    with pytest.raises(ToolDefinitionError, match="no JSON Schema"):
        tool(obj)

    def posonly(x: int, /): ...
    with pytest.raises(ToolDefinitionError, match="positional-only"):
        tool(posonly)
    with pytest.raises(ToolDefinitionError, match="tool name"):
        tool(f_none, name="has space")
    with pytest.raises(ToolDefinitionError, match="type 'object'"):
        tool(f_none, parameters={"type": "string"})


def test_type_schema_examples():
    assert type_schema(list[int]) == ({"type": "array", "items": {"type": "integer"}}, False)
    assert type_schema(Optional[str]) == ({"type": "string"}, True)
    assert type_schema(Literal["a", 1]) == ({"type": ["integer", "string"], "enum": ["a", 1]}, False)
