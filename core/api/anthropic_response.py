"""OpenAI chat answers → Anthropic Messages answers (the way back for ``POST /v1/messages``)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


def stop_reason(finish_reason: Any) -> str:
    return STOP_REASONS.get(str(finish_reason), "end_turn")


def messages_usage(usage: Any) -> dict[str, int]:
    usage = usage if isinstance(usage, dict) else {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    out = {"input_tokens": int(usage.get("prompt_tokens") or 0) - int(cached),
           "output_tokens": int(usage.get("completion_tokens") or 0)}
    if cached:
        out["cache_read_input_tokens"] = int(cached)
    return out


def tool_input(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def chat_to_messages_response(completion: dict[str, Any], requested_model: str) -> dict[str, Any]:
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                        "name": function.get("name"), "input": tool_input(function.get("arguments"))})
    return {
        "id": completion.get("id") or f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": completion.get("model") or requested_model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": messages_usage(completion.get("usage")),
    }


def anthropic_error(status: int, openai_body: Any) -> dict[str, Any]:
    """Anthropic's error shape for any gateway or provider error (the message is kept as it was)."""
    error = openai_body.get("error") if isinstance(openai_body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": str(message or f"HTTP {status}")}}
