"""Checkers for notebook 06 (tools and MCP): rebuild the tool layer's small core pieces, then compare with minichat.

    check_json_type_of_hint(fn)  fn(hint) -> JSON Schema:  list[int] -> {"type": "array", "items": {"type": "integer"}}
    check_validate(fn)           fn(instance, schema) -> True when valid (the subset below)
    check_safe_eval(fn)          fn("(3 + 4) * 12") -> 84; non-arithmetic input raises ValueError
    check_partial_suffix(fn)     fn("ab<too", "<tool_call>") -> 4 (characters the stream parser holds back)

The rules yours must follow, as the library's do:
  * hints: str string, int integer, float number, bool boolean, dict object, list[T] array with items T, bare list an
    array without items, Literal[...] and Enum classes an enum (with the values' type), Optional[T] the schema of T
    (whether None is allowed is said by "required", not by the type);
  * validate: type (an integer is a number, 1.0 is an integer, True is neither), enum (True is not 1), minimum /
    maximum, minLength / maxLength, properties, required, additionalProperties false, items; a keyword says nothing
    about values of another kind ("minimum" ignores strings);
  * safe_eval: int and float literals, + - * / // % ** and unary + -, parentheses; anything else (a name, a call, an
    attribute, a string, True, a list, a lambda, ...) raises ValueError; dividing by zero raises ZeroDivisionError;
  * partial_suffix: the longest tail of the text that is a beginning — but not the whole — of the tag.

References: `minichat.tools.schema.type_schema`, `minichat.tools.validate.errors`, `minichat.tools.calculator.calculate`
and the stream parser's `_partial_suffix` (minichat/chat/toolstream.py). The safe_eval checker never feeds your
function anything that would harm the machine if it used eval(): it uses `abs(-3)` and `__import__('os').getcwd()`
to catch an eval, and leaves out huge powers (a naive evaluator would hang on 9**9**9; the library refuses it).
"""
from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any, Literal, Optional

import numpy as np

from minichat.chat.toolstream import _partial_suffix
from minichat.exercises import Feedback, _short, run_cases
from minichat.tools.calculator import calculate
from minichat.tools.schema import type_schema
from minichat.tools.validate import errors


class Unit(enum.Enum):  # an Enum parameter: its values become the schema's enum
    KM = "km"
    MILE = "mi"


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


def check_json_type_of_hint(fn: Callable[[Any], dict], seed: int = 0) -> Feedback:
    """Map a Python type hint to the JSON Schema a tool's parameter gets."""
    hints: list[tuple[str, Any]] = [
        ("str", str), ("int", int), ("float", float), ("bool", bool), ("dict", dict), ("list", list),
        ("list[int]", list[int]), ("list[str]", list[str]), ("list[list[float]]", list[list[float]]),
        ('Literal["c", "f"]', Literal["c", "f"]), ("Literal[1, 2, 3]", Literal[1, 2, 3]),
        ("Unit (an Enum of strings)", Unit), ("Level (an Enum of ints)", Level),
        ("Optional[int]", Optional[int]), ("str | None", str | None), ("list[bool]", list[bool]),
        ("Optional[list[str]]", Optional[list[str]]),
    ]
    rng = np.random.default_rng(seed)  # random nestings of lists around a scalar
    for _ in range(4):
        hint: Any = [str, int, float, bool][int(rng.integers(0, 4))]
        for _ in range(int(rng.integers(1, 4))):
            hint = list[hint]
        hints.append((repr(hint).replace("typing.", ""), hint))
    return run_cases("json_type_of_hint", fn, [(name, (h,), type_schema(h)[0]) for name, h in hints],
                     same=_same_schema)


def _same_schema(got: Any, expected: dict) -> bool:
    """Equal as JSON, except that the order of enum values and of a type list does not matter."""
    if not isinstance(got, dict) or set(got) != set(expected):
        return False
    for key, value in expected.items():
        g = got[key]
        if key in ("enum", "type") and isinstance(value, list):
            if not isinstance(g, list) or sorted(map(repr, g)) != sorted(map(repr, value)):
                return False
        elif key == "items":
            if not _same_schema(g, value):
                return False
        elif g != value or type(g) is not type(value):
            return False
    return True


# (schema, instances): hand-made, each instance chosen for a trap
_SCHEMAS: list[tuple[str, dict, list]] = [
    ("integer", {"type": "integer"}, [3, -7, 1.0, 2.5, True, "3", None]),
    ("number", {"type": "number", "minimum": 0, "maximum": 10}, [0, 10, 10.5, -1, 5.5, False, "5"]),
    ("string lengths", {"type": "string", "minLength": 2, "maxLength": 4}, ["ab", "abcd", "a", "abcde", "", 12]),
    ("boolean", {"type": "boolean"}, [True, False, 0, 1, "true"]),
    ("enum", {"enum": ["c", "f", 1]}, ["c", "k", 1, 1.0, True, None]),
    ("minimum ignores strings", {"minimum": 5}, ["abc", 4, 6, None]),
    ("type list", {"type": ["string", "null"]}, ["x", None, 0]),
    ("object", {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer",
                                                                                      "minimum": 1}},
                "required": ["city"], "additionalProperties": False},
     [{"city": "Lisbon"}, {"city": "Lisbon", "days": 3}, {"days": 3}, {"city": "Lisbon", "days": 0},
      {"city": "Lisbon", "unit": "c"}, {"city": 5}, ["city"], {}]),
    ("extra properties allowed", {"type": "object", "properties": {"a": {"type": "integer"}}},
     [{"a": 1, "b": "x"}, {"a": "1"}, {}]),
    ("array items", {"type": "array", "items": {"type": "integer", "maximum": 9}},
     [[], [1, 2, 9], [1, 10], [1, "2"], "12", {"0": 1}]),
    ("nested", {"type": "object", "properties": {"trip": {"type": "object", "properties": {
        "stops": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}}, "required": ["stops"]}},
                "required": ["trip"]},
     [{"trip": {"stops": ["a", "b"]}}, {"trip": {"stops": ["a", "c"]}}, {"trip": {}}, {"trip": []}]),
]


def _random_instance(rng: np.random.Generator, depth: int = 0) -> Any:
    kind = int(rng.integers(0, 9 if depth < 2 else 7))
    if kind == 0:
        return int(rng.integers(-3, 12))
    if kind == 1:
        return float(rng.choice([0.5, 1.0, 3.0, -2.5, 9.75]))
    if kind == 2:
        return str(rng.choice(["", "a", "ab", "abcde", "c", "f", "city"]))
    if kind == 3:
        return bool(rng.integers(0, 2))
    if kind in (4, 5, 6):
        return None if kind == 4 else int(rng.integers(0, 3))
    if kind == 7:
        return [_random_instance(rng, depth + 1) for _ in range(int(rng.integers(0, 4)))]
    keys = rng.choice(["city", "days", "a", "b", "unit"], size=int(rng.integers(0, 4)), replace=False)
    return {str(k): _random_instance(rng, depth + 1) for k in keys}


def check_validate(fn: Callable[[Any, dict], bool], seed: int = 0) -> Feedback:
    """Is `instance` valid against `schema` (the subset in the module docstring)? Compared with the library."""
    rng = np.random.default_rng(seed)
    cases = []
    for name, schema, instances in _SCHEMAS:
        for inst in instances:
            cases.append((f"{name}: {_short(inst, 50)}", (inst, schema), not errors(inst, schema)))
    for i in range(12):
        name, schema, _ = _SCHEMAS[int(rng.integers(0, len(_SCHEMAS)))]
        inst = _random_instance(rng)
        cases.append((f"random {i} ({name}): {_short(inst, 50)}", (inst, schema), not errors(inst, schema)))
    return run_cases("validate", fn, cases, same=lambda got, want: isinstance(got, bool) and got == want)


_HOSTILE = ["abs(-3)", "__import__('os').getcwd()", "(1).real", "x + 1", "'a' * 3", "[1, 2]", "True + 1",
            "lambda: 1", "1 if 2 else 3", "1 < 2", "2 & 3", "(1, 2)", "", "2 +", "None"]
_GOOD = ["(3 + 4) * 12", "7 / 2", "7 // 2", "-7 // 2", "7 % 3", "-7 % 3", "2 ** 10", "2 ** -1", "-2 ** 2",
         "(-2) ** 2", "+5 - -3", "1.5 * 4", "0.1 + 0.2", "((1 + 2) * (3 + 4)) - 5", "3847 * 29", "10 / 4 * 2"]
_ZERO = ["1 / 0", "5 // 0", "5 % 0", "0 ** -1"]


def _random_expression(rng: np.random.Generator, depth: int = 0) -> str:
    if depth >= 3 or rng.random() < 0.3:
        n = int(rng.integers(0, 50))
        return str(n) if rng.random() < 0.8 else f"{n}.{int(rng.integers(0, 10))}"
    op = str(rng.choice(["+", "-", "*", "/", "//", "%", "**"]))
    left = _random_expression(rng, depth + 1)
    right = str(int(rng.integers(0, 4))) if op == "**" else _random_expression(rng, depth + 1)  # no huge powers
    text = f"{left} {op} {right}"
    return f"({text})" if rng.random() < 0.5 else text


def _expected(expression: str) -> tuple[str, Any]:
    try:
        return "value", calculate(expression)
    except ZeroDivisionError:
        return "error", ZeroDivisionError
    except ValueError:
        return "error", ValueError


def check_safe_eval(fn: Callable[[str], float], seed: int = 0) -> Feedback:
    """Arithmetic over a parsed syntax tree: values must equal the calculator's; anything else must raise."""
    rng = np.random.default_rng(seed)
    expressions = _GOOD + _ZERO + _HOSTILE + [_random_expression(rng) for _ in range(12)]
    fb = Feedback("safe_eval")
    for text in expressions:
        kind, want = _expected(text)
        try:
            got = fn(text)
        except NotImplementedError:
            fb.not_done = True
            return fb
        except Exception as e:  # noqa: BLE001 - the student's exception is compared, not propagated
            if kind == "error" and isinstance(e, want):
                fb.cases.append((repr(text), True, ""))
            elif kind == "error":
                fb.cases.append((repr(text), False, f"expected {want.__name__}, got {type(e).__name__}: {e}"))
            else:
                fb.cases.append((repr(text), False, f"expected {want!r}, raised {type(e).__name__}: {e}"))
            continue
        if got is None and kind == "value":
            fb.not_done = True
            return fb
        if kind == "error":
            fb.cases.append((repr(text), False, f"expected {want.__name__} (not plain arithmetic), got {got!r}"))
        else:
            ok = (type(got) in (int, float) and type(got) is type(want)
                  and (got == want or math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12)))
            fb.cases.append((repr(text), ok, "" if ok else f"expected {want!r} ({type(want).__name__}), "
                                                           f"got {_short(got)} ({type(got).__name__})"))
    return fb


def check_partial_suffix(fn: Callable[[str, str], int], seed: int = 0) -> Feedback:
    """How many trailing characters of the text may still become the tag (and so must not be shown yet)."""
    tag = "<tool_call>"
    texts = ["ab<too", "<tool_call", "<tool_call>", "hello", "", "<", "a<", "<<", "<t<to", "a<tooth", "x <tool_",
             "<tool_call>x<", "_call>", "tool"]
    rng = np.random.default_rng(seed)
    for _ in range(10):  # random text over the tag's own characters, often ending in a piece of the tag
        text = "".join(rng.choice(list("<tool_ca>x "), size=int(rng.integers(0, 8))))
        texts.append(text + (tag[: int(rng.integers(1, len(tag) + 1))] if rng.random() < 0.7 else ""))
    cases = [(f"{t!r}", (t, tag), _partial_suffix(t, tag)) for t in texts]
    # other tags, and tags whose start repeats (several tails match; the longest one counts)
    others = [("ab</too", "</tool_call>"), ("x[TOOL", "[TOOL_CALLS]"), ("Hi\n\n", "\n\nUser:"), ("x===", "===END===")]
    cases += [(f"{t!r} with {g!r}", (t, g), _partial_suffix(t, g)) for t, g in others]
    return run_cases("partial_suffix", fn, cases,
                     same=lambda got, want: isinstance(got, int) and not isinstance(got, bool) and got == want)
