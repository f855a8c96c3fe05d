"""JSON Schema (what OpenAI clients send in tools and response_format) → the OpenAPI subset Gemini accepts.

Gemini's ``Schema`` is "a select subset of an OpenAPI 3.0 schema object": upper-case type names, ``nullable``
instead of ``"null"`` types, ``anyOf`` but no ``oneOf``/``allOf``/``not``, string-only ``enum``, and none of
``additionalProperties``, ``$ref``, ``const``, ``strict``, ``$schema`` on every model version. Sending a key outside
the subset is a 400 from Vertex, so everything is reduced here to what every Gemini version takes: references are
inlined (cycles cut at a fixed depth), unions folded into ``anyOf`` + ``nullable``, unsupported keywords dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_TYPES = {"string": "STRING", "number": "NUMBER", "integer": "INTEGER", "boolean": "BOOLEAN", "array": "ARRAY",
          "object": "OBJECT"}
#: Keywords copied unchanged (their JSON Schema and Gemini spellings agree).
_COPIED = ("title", "description", "default", "example", "pattern", "minimum", "maximum", "minLength", "maxLength",
           "minItems", "maxItems", "minProperties", "maxProperties", "propertyOrdering")
#: ``format`` values every Gemini version accepts per type (others, e.g. ``uri`` or ``email``, are dropped).
_FORMATS = {"STRING": {"date-time", "enum"}, "NUMBER": {"float", "double"}, "INTEGER": {"int32", "int64"}}
#: Deeper than this, a (recursive) reference is cut to an untyped schema instead of expanding forever.
MAX_DEPTH = 24


def to_gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The Gemini schema for a JSON Schema document (``$defs``/``definitions`` at its root are inlined)."""
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), Mapping):
            defs.update({f"#/{key}/{name}": value for name, value in schema[key].items()})
    return _reduce(schema, defs, 0)


def _reduce(schema: Any, defs: Mapping[str, Any], depth: int) -> dict[str, Any]:
    if not isinstance(schema, Mapping) or depth > MAX_DEPTH:
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref)
        merged = {**(target if isinstance(target, Mapping) else {}), **{k: v for k, v in schema.items() if k != "$ref"}}
        return _reduce(merged, defs, depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        merged_all: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in all_of:
            merged_all = _merge(merged_all, _resolve(part, defs, depth))
        return _reduce(merged_all, defs, depth + 1)

    out: dict[str, Any] = {}
    nullable = schema.get("nullable") is True
    types = schema.get("type")
    type_list = _type_names(types)
    if "null" in type_list:
        nullable = True
        type_list = [t for t in type_list if t != "null"]
    if len(type_list) == 1 and type_list[0] in _TYPES:
        out["type"] = _TYPES[type_list[0]]
    elif len(type_list) > 1:
        shared = _without(schema, "type", "anyOf", "oneOf", "title", "description", "default", "example", "examples",
                          "nullable", "enum", "const")
        out["anyOf"] = [_reduce({**shared, "type": t}, defs, depth + 1) for t in type_list if t in _TYPES]

    union = schema.get("anyOf") if isinstance(schema.get("anyOf"), list) else schema.get("oneOf")
    if isinstance(union, list) and union:
        members = []
        for member in union:
            if isinstance(member, Mapping) and member.get("type") == "null" and len(member) == 1:
                nullable = True
                continue
            members.append(_reduce(member, defs, depth + 1))
        if len(members) == 1:
            out = {**members[0], **out}
        elif members:
            out["anyOf"] = members

    for key in _COPIED:
        if schema.get(key) is not None:
            out[key] = schema[key]
    if "example" not in out and isinstance(schema.get("examples"), list) and schema["examples"]:
        out["example"] = schema["examples"][0]
    _copy_enum(schema, out)
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = fmt

    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        out["properties"] = {str(name): _reduce(sub, defs, depth + 1) for name, sub in properties.items()}
        required = schema.get("required")
        if isinstance(required, list):
            kept = [name for name in required if name in out["properties"]]
            if kept:
                out["required"] = kept
    items = schema.get("items")
    if isinstance(items, Mapping):
        out["items"] = _reduce(items, defs, depth + 1)
    elif isinstance(schema.get("prefixItems"), list) and schema["prefixItems"]:
        out["items"] = _reduce(schema["prefixItems"][0], defs, depth + 1)
    if nullable:
        out["nullable"] = True
    return out


def _copy_enum(schema: Mapping[str, Any], out: dict[str, Any]) -> None:
    """Gemini enums are strings of a STRING schema; ``const`` is a one-value enum. Other enums are dropped."""
    values = schema.get("enum")
    if "const" in schema:
        values = [schema["const"]]
    if not isinstance(values, list):
        return
    strings = [v for v in values if v is not None]
    if strings and all(isinstance(v, str) for v in strings):
        out["type"] = "STRING"
        out["enum"] = strings
        if None in values:
            out["nullable"] = True


def _type_names(types: Any) -> list[str]:
    if isinstance(types, str):
        return [types]
    if isinstance(types, list):
        return [t for t in types if isinstance(t, str)]
    return []


def _without(schema: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in keys}


def _resolve(schema: Any, defs: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
    """A schema with a top-level ``$ref`` replaced by its target (one level), for merging ``allOf`` parts."""
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and depth <= MAX_DEPTH:
        target = defs.get(schema["$ref"])
        schema = {**(target if isinstance(target, Mapping) else {}), **_without(schema, "$ref")}
        depth += 1
    return schema if isinstance(schema, Mapping) else {}


def _merge(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    """``allOf`` as one schema: properties and required lists united; other keys keep their first value."""
    out = dict(left)
    for key, value in right.items():
        if key == "properties" and isinstance(value, Mapping):
            out["properties"] = {**(out.get("properties") or {}), **value}
        elif key == "required" and isinstance(value, list):
            out["required"] = list(dict.fromkeys([*(out.get("required") or []), *value]))
        else:
            out.setdefault(key, value)
    return out
