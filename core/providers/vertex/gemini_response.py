"""Gemini ``GenerateContentResponse`` → OpenAI ``chat.completion``; the pieces the stream translator shares.

Usage follows OpenAI's meaning rather than Portkey's copy of the raw counters: ``completion_tokens`` includes the
model's thinking tokens (``thoughtsTokenCount``, also reported as ``reasoning_tokens``) and ``prompt_tokens`` the
tool-use prompt, so ``prompt_tokens + completion_tokens == total_tokens`` as OpenAI clients assume. A candidate that
called functions and stopped normally finishes with ``tool_calls``, which is what OpenAI agent loops wait for.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

import orjson

PROVIDER = "vertex-ai"

#: Gemini finishReason → OpenAI finish_reason; anything not listed (OTHER, LANGUAGE, new values) is "stop".
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MODEL_ARMOR": "content_filter",
}


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def finish_reason(reason: Any, called_functions: bool) -> str:
    mapped = FINISH_REASONS.get(str(reason), "stop")
    return "tool_calls" if called_functions and mapped == "stop" else mapped


def usage(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    meta = meta or {}
    prompt = int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(meta.get("totalTokenCount") or prompt + completion),
        "prompt_tokens_details": {"cached_tokens": int(meta.get("cachedContentTokenCount") or 0)},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def tool_call(part: Mapping[str, Any], call_id: str) -> dict[str, Any]:
    """An OpenAI tool call for a ``functionCall`` part; Gemini's thought signature rides along for the next turn."""
    call = part["functionCall"]
    arguments = orjson.dumps(call.get("args") or {}).decode()
    function: dict[str, Any] = {"name": call.get("name", ""), "arguments": arguments}
    if isinstance(part.get("thoughtSignature"), str):
        function["thought_signature"] = part["thoughtSignature"]
    return {"id": call_id, "type": "function", "function": function}


def visible_parts(candidate: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The candidate's parts minus thoughts (OpenAI's chat format has no place for them)."""
    parts = (candidate.get("content") or {}).get("parts") or []
    return [p for p in parts if isinstance(p, Mapping) and not p.get("thought")]


def gemini_to_chat(
    response: Mapping[str, Any],
    *,
    model: str,
    created: int,
    response_id: str | None = None,
    new_id: Callable[[], str] = new_call_id,
) -> dict[str, Any]:
    choices = []
    for position, candidate in enumerate(response.get("candidates") or []):
        text: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in visible_parts(candidate):
            if isinstance(part.get("text"), str):
                text.append(part["text"])
            elif isinstance(part.get("functionCall"), Mapping):
                calls.append(tool_call(part, new_id()))
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
        if calls:
            message["tool_calls"] = calls
        choices.append({
            "index": int(candidate.get("index") or position),
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)),
        })
    if not choices:  # the prompt itself was blocked (promptFeedback.blockReason)
        choices.append({"index": 0, "message": {"role": "assistant", "content": ""}, "logprobs": None,
                        "finish_reason": "content_filter"})
    return {
        "id": response_id or str(response.get("responseId") or f"chatcmpl-{uuid.uuid4().hex}"),
        "object": "chat.completion",
        "created": created,
        "model": str(response.get("modelVersion") or model),
        "provider": PROVIDER,
        "choices": choices,
        "usage": usage(response.get("usageMetadata")),
    }
