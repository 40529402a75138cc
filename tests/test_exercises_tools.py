"""The tools exercises' checkers (notebook 06): right answers pass, typical mistakes fail, stubs are 'not done yet'.

The right answers are written here independently of minichat.tools; `validate_right` is also compared with the
`jsonschema` package when it is installed, so the checker's reference cannot drift from the specification unseen.
"""
import ast
import enum
import operator
import typing

import pytest

from conftest import require_peer
from minichat.exercises.tools import (_SCHEMAS, check_json_type_of_hint, check_partial_suffix, check_safe_eval,
                                      check_validate)

SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object"}


def hint_right(hint):
    if hint in SCALARS:
        return {"type": SCALARS[hint]}
    if hint is list:
        return {"type": "array"}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return {"type": "array", "items": hint_right(args[0])}
    if origin is typing.Literal or isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = list(args) if origin is typing.Literal else [m.value for m in hint]
        return {"type": SCALARS[type(values[0])], "enum": values}
    if origin is typing.Union or origin is type(int | None):
        (inner,) = [a for a in args if a is not type(None)]
        return hint_right(inner)
    raise ValueError(hint)


def is_type(x, kind):
    if kind == "null":
        return x is None
    if kind == "boolean":
        return isinstance(x, bool)
    if kind == "string":
        return isinstance(x, str)
    if kind == "object":
        return isinstance(x, dict)
    if kind == "array":
        return isinstance(x, list)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    return kind == "number" or isinstance(x, int) or x.is_integer()


def json_eq(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def validate_right(x, s):
    kinds = s.get("type")
    if kinds is not None and not any(is_type(x, k) for k in ([kinds] if isinstance(kinds, str) else kinds)):
        return False
    if "enum" in s and not any(json_eq(x, v) for v in s["enum"]):
        return False
    if is_type(x, "number"):
        if x < s.get("minimum", x) or x > s.get("maximum", x):
            return False
    if isinstance(x, str) and not s.get("minLength", 0) <= len(x) <= s.get("maxLength", len(x)):
        return False
    if isinstance(x, dict):
        props = s.get("properties", {})
        if any(r not in x for r in s.get("required", [])):
            return False
        if s.get("additionalProperties", True) is False and any(k not in props for k in x):
            return False
        if not all(validate_right(v, props[k]) for k, v in x.items() if k in props):
            return False
    if isinstance(x, list) and "items" in s:
        return all(validate_right(v, s["items"]) for v in x)
    return True


OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
       ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}


def safe_eval_right(text):
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ValueError(f"not an expression: {text!r}") from None

    def walk(node):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = walk(node.operand)
            return -v if isinstance(node.op, ast.USub) else +v
        if isinstance(node, ast.BinOp) and type(node.op) in OPS:
            return OPS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"not arithmetic: {ast.dump(node)[:40]}")
    return walk(tree.body)


def partial_suffix_right(text, tag):
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def test_correct_answers_pass():
    assert check_json_type_of_hint(hint_right).passed
    assert check_validate(validate_right).passed
    assert check_safe_eval(safe_eval_right).passed
    assert check_partial_suffix(partial_suffix_right).passed


def test_the_validator_answer_agrees_with_jsonschema():
    jsonschema = require_peer("jsonschema")
    for _, schema, instances in _SCHEMAS:
        for x in instances:
            assert validate_right(x, schema) == jsonschema.Draft202012Validator(schema).is_valid(x), (schema, x)


def test_typical_mistakes_fail():
    def optional_as_list(hint):  # Optional[int] -> ["integer", "null"]: nullability is for "required" to say
        if typing.get_origin(hint) in (typing.Union, type(int | None)):
            inner = hint_right([a for a in typing.get_args(hint) if a is not type(None)][0])
            return {**inner, "type": [inner["type"], "null"]}
        return hint_right(hint)
    assert not check_json_type_of_hint(optional_as_list).passed

    def no_items(hint):
        out = hint_right(hint)
        out.pop("items", None)
        return out
    assert not check_json_type_of_hint(no_items).passed

    def python_isinstance(x, s):  # isinstance(True, int) is True in Python; JSON's true is not an integer
        py = {"integer": int, "number": (int, float), "string": str, "boolean": bool, "object": dict, "array": list,
              "null": type(None)}
        kinds = s.get("type")
        if kinds is not None and not any(isinstance(x, py[k]) for k in ([kinds] if isinstance(kinds, str) else kinds)):
            return False
        return validate_right(x, {k: v for k, v in s.items() if k != "type"})
    assert not check_validate(python_isinstance).passed

    def ignores_additional(x, s):
        return validate_right(x, {k: v for k, v in s.items() if k != "additionalProperties"})
    assert not check_validate(ignores_additional).passed

    def python_enum(x, s):  # `x in enum`: True == 1 in Python
        if "enum" in s and x not in s["enum"]:
            return False
        return validate_right(x, {k: v for k, v in s.items() if k != "enum"})
    assert not check_validate(python_enum).passed

    def uses_eval(text):  # the unsafe way: abs(-3) gives 3 instead of an error
        return eval(text, {"__builtins__": {"abs": abs}})  # noqa: S307 - the mistake under test (no real builtins)
    assert not check_safe_eval(uses_eval).passed

    def allows_bool(text):
        if text.strip() in ("True + 1",):
            return 2
        return safe_eval_right(text)
    assert not check_safe_eval(allows_bool).passed

    def syntax_error_leaks(text):  # SyntaxError is not a ValueError: callers catching ValueError would crash
        return safe_eval_right(text) if text.strip() not in ("", "2 +") else ast.parse(text, mode="eval")
    fb = check_safe_eval(syntax_error_leaks)
    assert not fb.passed and "SyntaxError" in str(fb)

    def whole_tag_too(text, tag):  # counts the whole tag (a complete tag is found, not held back)
        for n in range(min(len(text), len(tag)), 0, -1):
            if text.endswith(tag[:n]):
                return n
        return 0
    assert not check_partial_suffix(whole_tag_too).passed

    def only_if_starts_with_lt(text, tag):  # holds back only a lone "<"
        return 1 if text.endswith("<") else 0
    assert not check_partial_suffix(only_if_starts_with_lt).passed

    def first_match(text, tag):  # the shortest tail, not the longest
        for n in range(1, min(len(text), len(tag) - 1) + 1):
            if text.endswith(tag[:n]):
                return n
        return 0
    assert not check_partial_suffix(first_match).passed


@pytest.mark.parametrize("check", [check_json_type_of_hint, check_validate, check_safe_eval, check_partial_suffix])
def test_stubs_are_not_done(check):
    def stub(*args):
        raise NotImplementedError

    def empty(*args):
        pass
    for fn in (stub, empty):
        fb = check(fn)
        assert fb.not_done and not fb.passed and "not done yet" in str(fb)
