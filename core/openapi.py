"""OpenAPI descriptions of the request bodies and errors the routes accept and return.

The routes read raw bytes (see :mod:`core.app`), so the schemas are declared here rather than derived from body
models. They describe what :mod:`core.api.openai` enforces; other fields pass through to the provider.
"""

from __future__ import annotations

from typing import Any

_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool", "function"]},
        "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}, {"type": "null"}]},
        "name": {"type": "string"},
        "tool_calls": {"type": "array", "items": {"type": "object"}},
        "tool_call_id": {"type": "string"},
    },
}
_STOP = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}]}
_SAMPLING = {
    "model": {"type": "string", "minLength": 1},
    "stream": {"type": "boolean"},
    "n": {"type": "integer"},
    "max_tokens": {"type": "integer"},
    "temperature": {"type": "number"},
    "top_p": {"type": "number"},
    "presence_penalty": {"type": "number"},
    "frequency_penalty": {"type": "number"},
    "seed": {"type": "integer"},
    "stop": _STOP,
    "user": {"type": "string"},
    "stream_options": {"oneOf": [{"type": "object"}, {"type": "null"}]},
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "ChatCompletionRequest": {
        "type": "object",
        "required": ["messages"],
        "additionalProperties": True,
        "properties": {
            **_SAMPLING,
            "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
            "max_completion_tokens": {"type": "integer"},
            "tools": {"type": "array", "items": {"type": "object"}},
            "tool_choice": {"oneOf": [{"type": "string"}, {"type": "object"}]},
            "response_format": {"type": "object"},
        },
    },
    "CompletionRequest": {
        "type": "object",
        "required": ["prompt"],
        "additionalProperties": True,
        "properties": {**_SAMPLING, "prompt": {"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1}]}},
    },
    "EmbeddingRequest": {
        "type": "object",
        "required": ["input"],
        "additionalProperties": True,
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "input": {"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1}]},
            "dimensions": {"type": "integer"},
            "encoding_format": {"type": "string", "enum": ["float", "base64"]},
            "user": {"type": "string"},
        },
    },
}

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": ["string", "null"]},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "integer", "null"]},
            },
        },
        "provider": {"type": "string"},
        "status": {"type": "string"},
        "message": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "string"}},
    },
}

_ERROR_CONTENT = {"application/json": {"schema": ERROR_SCHEMA}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The provider's answer (JSON, or text/event-stream when streaming)",
          "content": {"application/json": {"schema": {"type": "object"}},
                      "text/event-stream": {"schema": {"type": "string"}}}},
    **{code: {"description": text, "content": _ERROR_CONTENT} for code, text in (
        (400, "Invalid request, config, provider or custom host"),
        (401, "Missing or invalid gateway API key"),
        (403, "The gateway key may not use this config or virtual key"),
        (404, "Unknown config id or virtual key"),
        (408, "A provider attempt exceeded request_timeout"),
        (413, "Request body over the size limit"),
        (429, "Rate limited by the gateway or the provider"),
        ("5XX", "Provider error (status kept) or provider unreachable"),
    )},
}


def body(name: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": SCHEMAS[name]}}}}
