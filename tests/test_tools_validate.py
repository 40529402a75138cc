"""The hand-written JSON Schema subset against the `jsonschema` package (Draft 2020-12) on hypothesis-generated
schemas and instances, plus hand-worked messages."""
from __future__ import annotations

import pytest
from conftest import require_peer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minichat.tools.validate import ArgumentsError, SchemaError, check_schema_keywords, errors, json_equal, validate

TYPES = ["string", "integer", "number", "boolean", "object", "array", "null"]
KEYS = st.sampled_from(["a", "b", "c", "name", "n"])

scalars = (st.none() | st.booleans() | st.integers(-20, 20) | st.floats(-20, 20, allow_nan=False)
           | st.sampled_from([0.0, 1.0, -3.0, 2.5]) | st.text(max_size=6))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12)


def schemas():
    """Schemas of the subset, nested (objects in arrays in objects)."""
    base = st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(TYPES) | st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True),
        "enum": st.lists(scalars, min_size=1, max_size=4),
        "minimum": st.integers(-10, 10) | st.floats(-10, 10, allow_nan=False),
        "maximum": st.integers(-10, 10),
        "exclusiveMinimum": st.integers(-10, 10),
        "exclusiveMaximum": st.floats(-10, 10, allow_nan=False),
        "minLength": st.integers(0, 4), "maxLength": st.integers(0, 6),
        "minItems": st.integers(0, 3), "maxItems": st.integers(0, 4),
    })

    def extend(inner):
        return st.fixed_dictionaries({}, optional={
            "type": st.sampled_from(TYPES),
            "properties": st.dictionaries(KEYS, inner, max_size=3),
            "required": st.lists(KEYS, max_size=3, unique=True),
            "additionalProperties": st.booleans() | inner,
            "items": inner,
            "enum": st.lists(json_values, min_size=1, max_size=3),
        })

    return st.recursive(base | st.booleans(), extend, max_leaves=8)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=schemas(), instance=json_values)
def test_validity_equals_jsonschema(schema, instance):
    jsonschema = require_peer("jsonschema")
    reference = jsonschema.Draft202012Validator(schema)
    assert (not errors(instance, schema)) == reference.is_valid(instance), (schema, instance,
                                                                           errors(instance, schema))


@st.composite
def schema_and_fitting_instance(draw):
    """An object schema and an instance built to (mostly) satisfy it: the valid side gets tested too."""
    props, inst = {}, {}
    for key in draw(st.lists(KEYS, unique=True, max_size=4)):
        kind = draw(st.sampled_from(["string", "integer", "number", "boolean", "array"]))
        if kind == "string":
            lo = draw(st.integers(0, 3))
            props[key] = {"type": "string", "minLength": lo, "maxLength": lo + draw(st.integers(0, 3))}
            inst[key] = draw(st.text(min_size=0, max_size=7))
        elif kind in ("integer", "number"):
            props[key] = {"type": kind, "minimum": -5, "maximum": 5}
            inst[key] = draw(st.integers(-7, 7) | st.floats(-6, 6, allow_nan=False))
        elif kind == "boolean":
            props[key] = {"type": "boolean", "enum": [True]}
            inst[key] = draw(st.booleans() | st.integers(0, 1))
        else:
            props[key] = {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}},
                                                     "required": ["x"], "additionalProperties": False}}
            inst[key] = draw(st.lists(st.fixed_dictionaries({"x": st.integers(0, 3) | st.text(max_size=1)},
                                                            optional={"y": st.just(1)}), max_size=3))
    schema = {"type": "object", "properties": props, "required": draw(st.lists(KEYS, unique=True, max_size=2)),
              "additionalProperties": draw(st.booleans())}
    if draw(st.booleans()):
        inst[draw(KEYS)] = draw(scalars)
    return schema, inst


@settings(max_examples=600, deadline=None)
@given(pair=schema_and_fitting_instance())
def test_object_schemas_equal_jsonschema(pair):
    jsonschema = require_peer("jsonschema")
    schema, instance = pair
    reference = jsonschema.Draft202012Validator(schema)
    assert (not errors(instance, schema)) == reference.is_valid(instance)
    # one message per problem: as many as jsonschema finds (it reports every failing keyword too)
    assert len(errors(instance, schema)) == len(list(reference.iter_errors(instance)))


def test_messages_name_the_path_and_the_problem():
    schema = {"type": "object", "properties": {
        "count": {"type": "integer", "minimum": 1},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}},
        "mode": {"enum": ["a", "b"]}}, "required": ["count", "mode"], "additionalProperties": False}
    got = errors({"count": "three", "tags": ["ok", "toolong"], "extra": 1}, schema)
    assert got == ["$.mode: the required property 'mode' is missing",
                   "$.count: \"three\" is not of type 'integer'",
                   "$.tags[1]: \"toolong\" is longer than 3 characters",
                   "$: unexpected properties 'extra' (allowed: count, tags, mode)"]
    with pytest.raises(ArgumentsError, match="less than the minimum of 1"):
        validate({"count": 0, "mode": "a"}, schema)
    assert validate({"count": 2, "mode": "b", "tags": []}, schema) is None


def test_json_semantics_of_types_and_equality():
    assert not errors(1.0, {"type": "integer"}) and errors(True, {"type": "integer"})
    assert errors(True, {"type": "number"}) and not errors(3, {"type": "number"})
    assert json_equal(1, 1.0) and not json_equal(True, 1) and not json_equal([1, True], [1, 1])
    assert json_equal({"a": [1]}, {"a": [1.0]}) and not json_equal({"a": 1}, {"b": 1})
    assert not errors("x" * 5, {"minimum": 10})  # a keyword applies to its own kind of value only
    assert errors("é", {"maxLength": 0}) and not errors("é", {"maxLength": 1})  # code points


def test_malformed_schemas_are_reported():
    with pytest.raises(SchemaError, match="unknown type 'str'"):
        check_schema_keywords({"type": "object", "properties": {"a": {"type": "str"}}})
    with pytest.raises(SchemaError, match="maxLength"):
        check_schema_keywords({"maxLength": -1})
    with pytest.raises(SchemaError, match="object or a boolean"):
        errors(1, [1])
