"""Parsing and validating OpenAI request bodies at the edge, before any routing.

Only the fields the gateway itself relies on are type-checked (so a wrong type is a clear 400 naming the field,
not an upstream surprise); every other field is left as the client sent it and passed through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from core.errors import InvalidRequestError
from core.providers.base import Operation

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _is_int(v: Any) -> bool:
    """JSON has one number type: ``2.0`` is an integer to JSON Schema (and to OpenAI's own API), so it is one here."""
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()
                                                                and -(2**63) <= v < 2**63)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_str_or_str_list(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and all(isinstance(i, str) for i in v))


Check = tuple[Callable[[Any], bool], str]

_COMMON: dict[str, Check] = {
    "model": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "stream": (lambda v: isinstance(v, bool), "a boolean"),
    "user": (lambda v: isinstance(v, str), "a string"),
}
_SAMPLING: dict[str, Check] = {
    "n": (_is_int, "an integer"),
    "max_tokens": (_is_int, "an integer"),
    "temperature": (_is_number, "a number"),
    "top_p": (_is_number, "a number"),
    "presence_penalty": (_is_number, "a number"),
    "frequency_penalty": (_is_number, "a number"),
    "seed": (_is_int, "an integer"),
    "stop": (lambda v: v is None or _is_str_or_str_list(v), "a string or a list of strings"),
    "stream_options": (lambda v: v is None or isinstance(v, dict), "an object"),
    "logit_bias": (lambda v: v is None or isinstance(v, dict), "an object"),
}
_CHAT: dict[str, Check] = {
    **_COMMON,
    **_SAMPLING,
    "max_completion_tokens": (_is_int, "an integer"),
    "tools": (lambda v: isinstance(v, list) and all(isinstance(t, dict) for t in v), "a list of objects"),
    "tool_choice": (lambda v: isinstance(v, str | dict), "a string or an object"),
    "response_format": (lambda v: isinstance(v, dict), "an object"),
    "metadata": (lambda v: v is None or isinstance(v, dict), "an object"),
}
_COMPLETION: dict[str, Check] = {**_COMMON, **_SAMPLING}
_EMBEDDING: dict[str, Check] = {
    **_COMMON,
    "dimensions": (_is_int, "an integer"),
    "encoding_format": (lambda v: v in ("float", "base64"), "'float' or 'base64'"),
}


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("'messages' must be a non-empty list of messages", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequestError(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidRequestError(
                f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}", param=f"messages[{i}].role"
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidRequestError(
                f"messages[{i}].content must be a string or a list of content parts", param=f"messages[{i}].content"
            )


def _require_text_input(field: str) -> Callable[[dict[str, Any]], None]:
    def check(body: dict[str, Any]) -> None:
        if field not in body:
            raise InvalidRequestError(f"'{field}' is required", param=field)
        value = body[field]
        if not isinstance(value, str | list) or (isinstance(value, list) and not value):
            raise InvalidRequestError(f"'{field}' must be a string or a non-empty list", param=field)

    return check


def _require_messages(body: dict[str, Any]) -> None:
    if "messages" not in body:
        raise InvalidRequestError("'messages' is required", param="messages")
    _check_messages(body["messages"])


_RULES: dict[Operation, tuple[dict[str, Check], Callable[[dict[str, Any]], None]]] = {
    Operation.CHAT: (_CHAT, _require_messages),
    Operation.COUNT_TOKENS: (_CHAT, _require_messages),
    Operation.COMPLETION: (_COMPLETION, _require_text_input("prompt")),
    Operation.EMBEDDING: (_EMBEDDING, _require_text_input("input")),
}


def decode_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying what is wrong with it."""
    if not raw.strip():
        raise InvalidRequestError("The request body is empty; a JSON object is required", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object", code="invalid_json")
    return body


def parse_request_body(operation: Operation, raw: bytes) -> dict[str, Any]:
    """Decode and validate the body of an OpenAI-API call."""
    body = decode_json_object(raw)
    checks, require = _RULES[operation]
    require(body)
    for field, (ok, expected) in checks.items():
        if field in body and not ok(body[field]):
            raise InvalidRequestError(f"'{field}' must be {expected}", param=field)
    return body


def require_model(body: dict[str, Any]) -> str:
    """Called once override params are merged: a request must name its model by then."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("'model' is required", param="model")
    return model


def tool_call_arguments(raw: Any, where: str) -> dict[str, Any]:
    """An assistant tool call's ``function.arguments`` (a JSON string, or already an object) as an object.

    Every provider that is not OpenAI needs the arguments as a structure (Bedrock ``toolUse.input``, Gemini
    ``functionCall.args``, Anthropic ``tool_use.input``); anything else is the caller's 400, named by ``where``.
    """
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        raise InvalidRequestError(f"{where} must be a JSON object", param=where) from None
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{where} must be a JSON object", param=where)
    return value

