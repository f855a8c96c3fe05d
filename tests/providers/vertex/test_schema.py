"""JSON Schema → Gemini's OpenAPI subset: each reduction rule on its own (the goldens show them together)."""

from __future__ import annotations

from typing import Any

import pytest

from core.providers.vertex.schema import MAX_DEPTH, to_gemini_schema
from tests.fakes.vertex_wire import validate_gemini_request


def _valid_as_parameters(schema: dict[str, Any]) -> None:
    validate_gemini_request({
        "contents": [{"role": "user", "parts": [{"text": "x"}]}],
        "tools": [{"functionDeclarations": [{"name": "f", "parameters": schema}]}],
    })


@pytest.mark.parametrize(("source", "expected"), [
    ({"type": "string"}, {"type": "STRING"}),
    ({"type": ["string", "null"]}, {"type": "STRING", "nullable": True}),
    ({"type": ["string", "integer"]}, {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}),
    ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, {"type": "INTEGER", "nullable": True}),
    ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, {"anyOf": [{"type": "INTEGER"}, {"type": "STRING"}]}),
    ({"const": "fixed"}, {"type": "STRING", "enum": ["fixed"]}),
    ({"enum": ["a", None]}, {"type": "STRING", "enum": ["a"], "nullable": True}),
    ({"type": "integer", "enum": [1, 2]}, {"type": "INTEGER"}),
    ({"type": "string", "format": "email"}, {"type": "STRING"}),
    ({"type": "string", "format": "date-time"}, {"type": "STRING", "format": "date-time"}),
    ({"type": "number", "format": "double", "exclusiveMinimum": 0}, {"type": "NUMBER", "format": "double"}),
    ({"type": "array", "prefixItems": [{"type": "string"}]}, {"type": "ARRAY", "items": {"type": "STRING"}}),
    ({"type": "string", "examples": ["x", "y"], "default": None}, {"type": "STRING", "example": "x"}),
])
def test_single_rules(source: dict[str, Any], expected: dict[str, Any]) -> None:
    assert to_gemini_schema(source) == expected


def test_all_of_parts_are_merged() -> None:
    schema = {"$defs": {"Base": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}},
              "allOf": [{"$ref": "#/$defs/Base"},
                        {"properties": {"name": {"type": "string"}}, "required": ["name"]}]}

    reduced = to_gemini_schema(schema)

    assert reduced == {"type": "OBJECT", "properties": {"id": {"type": "STRING"}, "name": {"type": "STRING"}},
                       "required": ["id", "name"]}
    _valid_as_parameters(reduced)


def test_recursive_references_are_cut_at_a_fixed_depth() -> None:
    tree = {"$ref": "#/definitions/Node", "definitions": {"Node": {
        "type": "object", "properties": {"value": {"type": "integer"}, "children": {
            "type": "array", "items": {"$ref": "#/definitions/Node"}}}}}}

    reduced = to_gemini_schema(tree)
    depth, node = 0, reduced
    while node.get("properties"):
        node = node["properties"]["children"]["items"]
        depth += 1

    assert 1 < depth <= MAX_DEPTH
    _valid_as_parameters(reduced)


def test_unknown_keywords_never_reach_gemini() -> None:
    schema = {"type": "object", "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "x", "strict": True,
              "additionalProperties": {"type": "string"}, "patternProperties": {"^x": {}}, "not": {"type": "null"},
              "if": {}, "then": {}, "else": {}, "dependentRequired": {}, "unevaluatedProperties": False,
              "properties": {"a": {"type": "string", "readOnly": True, "deprecated": True, "contentEncoding": "base64",
                                   "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$"}},
              "required": ["a", "b"]}

    reduced = to_gemini_schema(schema)

    assert reduced == {"type": "OBJECT", "required": ["a"], "properties": {
        "a": {"type": "STRING", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$"}}}
    _valid_as_parameters(reduced)
