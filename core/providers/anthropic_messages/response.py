"""Anthropic Messages response → OpenAI ``chat.completion``.

Usage is reported with OpenAI's meaning: Anthropic's ``input_tokens`` excludes prompt-cache reads and writes, OpenAI's
``prompt_tokens`` includes them (``prompt_tokens_details.cached_tokens`` = cache reads), so
``prompt_tokens = input + cache_read + cache_creation``; the raw cache counters are kept as extra fields when non-zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from core.providers.usage import usage_with_cache

#: Messages stop_reason → OpenAI finish_reason; unknown or missing values are "stop".
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    return STOP_REASONS.get(str(stop_reason), "stop")


def usage(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    raw = raw or {}
    return usage_with_cache(raw.get("input_tokens"), raw.get("output_tokens"), raw.get("cache_read_input_tokens"),
                            raw.get("cache_creation_input_tokens"))


def content_block(block: Mapping[str, Any]) -> dict[str, Any] | None:
    """A text or reasoning block as Portkey's non-strict ``content_blocks`` entry (tool use has its own field)."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "thinking":
        return {"type": "thinking", "thinking": block.get("thinking", ""), "signature": block.get("signature", "")}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.get("data", "")}
    return None


def messages_to_chat(
    message: Mapping[str, Any], *, provider: str, model: str, created: int, strict: bool = True
) -> dict[str, Any]:
    """``strict=False`` (``x-portkey-strict-open-ai-compliance: false``) adds ``content_blocks`` with thinking."""
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    blocks: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if block.get("type") == "text":
            text.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append({"id": block.get("id"), "type": "function", "function": {
                "name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()}})
        extra = content_block(block)
        if extra is not None:
            blocks.append(extra)
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    if not strict and blocks:
        reply["content_blocks"] = blocks
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": created,
        "model": message.get("model") or model,
        "provider": provider,
        "choices": [{"index": 0, "message": reply, "logprobs": None,
                     "finish_reason": finish_reason(message.get("stop_reason"))}],
        "usage": usage(message.get("usage")),
    }
