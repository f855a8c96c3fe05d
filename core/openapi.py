"""OpenAPI descriptions of the request bodies and errors the routes accept and return.

The routes read raw bytes (see :mod:`core.app`), so the schemas are declared here rather than derived from body
models. They describe what :mod:`core.api.openai` enforces; other fields pass through to the provider. ``model`` is
documented as required: the one exception, a config whose ``override_params`` names the model, is a header-level
extension the document cannot express.
"""

from __future__ import annotations

from typing import Any

#: Integers are signed 64-bit on the wire, as providers read them.
_INT = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
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
    "n": _INT,
    "max_tokens": _INT,
    "temperature": {"type": "number"},
    "top_p": {"type": "number"},
    "presence_penalty": {"type": "number"},
    "frequency_penalty": {"type": "number"},
    "seed": _INT,
    "stop": _STOP,
    "user": {"type": "string"},
    "stream_options": {"oneOf": [{"type": "object"}, {"type": "null"}]},
    "logit_bias": {"oneOf": [{"type": "object"}, {"type": "null"}]},
}

# Anthropic content blocks, as core.api.anthropic_request accepts them per role (thinking and document blocks are
# accepted and dropped, so they are left out here). Empty text blocks are refused upstream by Anthropic as well.
_TEXT_BLOCK = {"type": "object", "required": ["type", "text"],
               "properties": {"type": {"const": "text"}, "text": {"type": "string", "minLength": 1}}}
_SYSTEM_BLOCK = {"type": "object", "required": ["type", "text"],
                 "properties": {"type": {"const": "text"}, "text": {"type": "string"}}}
_IMAGE_BLOCK = {"type": "object", "required": ["type", "source"], "properties": {
    "type": {"const": "image"},
    "source": {"oneOf": [
        {"type": "object", "required": ["type", "data"], "properties": {
            "type": {"const": "base64"}, "media_type": {"type": "string"}, "data": {"type": "string"}}},
        {"type": "object", "required": ["type", "url"], "properties": {
            "type": {"const": "url"}, "url": {"type": "string"}}},
    ]}}}
_TOOL_USE_BLOCK = {"type": "object", "required": ["type", "id", "name"], "properties": {
    "type": {"const": "tool_use"}, "id": {"type": "string"}, "name": {"type": "string"}, "input": {"type": "object"}}}
_TOOL_RESULT_BLOCK = {"type": "object", "required": ["type", "tool_use_id"], "properties": {
    "type": {"const": "tool_result"}, "tool_use_id": {"type": "string"},
    "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}}}


def _anthropic_message(role: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "object", "required": ["role", "content"], "properties": {
        "role": {"const": role},
        "content": {"oneOf": [{"type": "string"},
                              {"type": "array", "minItems": 1, "items": {"oneOf": blocks}}]}}}


SCHEMAS: dict[str, dict[str, Any]] = {
    "ChatCompletionRequest": {
        "type": "object",
        "required": ["model", "messages"],
        "additionalProperties": True,
        "properties": {
            **_SAMPLING,
            "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
            "max_completion_tokens": _INT,
            "tools": {"type": "array", "items": {"type": "object"}},
            "tool_choice": {"oneOf": [{"type": "string"}, {"type": "object"}]},
            "response_format": {"type": "object"},
            "metadata": {"oneOf": [{"type": "object"}, {"type": "null"}]},
        },
    },
    "CompletionRequest": {
        "type": "object",
        "required": ["model", "prompt"],
        "additionalProperties": True,
        "properties": {**_SAMPLING, "prompt": {"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1}]}},
    },
    "MessagesRequest": {
        "type": "object",
        "required": ["model", "messages", "max_tokens"],
        "additionalProperties": True,
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "max_tokens": _INT,
            "messages": {"type": "array", "minItems": 1, "items": {"oneOf": [
                _anthropic_message("user", [_TEXT_BLOCK, _IMAGE_BLOCK, _TOOL_RESULT_BLOCK]),
                _anthropic_message("assistant", [_TEXT_BLOCK, _TOOL_USE_BLOCK]),
            ]}},
            "system": {"oneOf": [{"type": "string"}, {"type": "array", "items": _SYSTEM_BLOCK}]},
            "stream": {"type": "boolean"},
            "tools": {"type": "array", "items": {"type": "object", "required": ["name"],
                                                 "properties": {"name": {"type": "string"},
                                                                "description": {"type": "string"},
                                                                "input_schema": {"type": "object"}}}},
            "tool_choice": {"type": "object", "required": ["type"], "properties": {
                "type": {"type": "string", "enum": ["auto", "any", "none", "tool"]}, "name": {"type": "string"},
                "disable_parallel_tool_use": {"type": "boolean"}}},
            "metadata": {"type": "object", "properties": {"user_id": {"type": "string"}}},
            "stop_sequences": {"type": "array", "items": {"type": "string"}},
            "temperature": {"type": "number"},
            "top_p": {"type": "number"},
            "top_k": _INT,
        },
    },
    "EmbeddingRequest": {
        "type": "object",
        "required": ["model", "input"],
        "additionalProperties": True,
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "input": {"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1}]},
            "dimensions": _INT,
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
#: One server-sent event (OpenAI sends ``data:`` lines only; the Anthropic Messages stream names each ``event:``).
_SSE_EVENT = {"type": "object", "required": ["data"], "properties": {
    "event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}, "retry": _INT}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The provider's answer (JSON, or text/event-stream when streaming)",
          "content": {"application/json": {"schema": {"type": "object"}},
                      "text/event-stream": {"schema": _SSE_EVENT}}},
    **{code: {"description": text, "content": _ERROR_CONTENT} for code, text in (
        (400, "Invalid request, config, provider or custom host"),
        (401, "Missing or invalid gateway API key"),
        (403, "The gateway key may not use this config or virtual key"),
        (404, "Unknown config id or virtual key"),
        (408, "A provider attempt exceeded request_timeout"),
        (413, "Request body over the size limit"),
        (429, "Rate limited by the gateway or the provider"),
        (431, "Request headers over the size or count limit"),
        ("5XX", "Provider error (status kept) or provider unreachable"),
    )},
}


def body(name: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": SCHEMAS[name]}}}}
