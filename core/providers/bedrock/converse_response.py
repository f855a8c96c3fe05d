"""Converse response → OpenAI ``chat.completion``; the finish-reason and usage mappings streams share.

- Text blocks are joined with a newline (as Portkey does; the stream inserts the same newline between blocks), tool
  uses become ``tool_calls`` with ``arguments`` as a JSON string, and ``content`` is null when the answer is only
  tool calls. Reasoning blocks are left out, as in Portkey's default strict OpenAI compliance.
- Finish reasons: ``end_turn`` / ``stop_sequence`` → ``stop``, ``tool_use`` → ``tool_calls``, ``max_tokens`` and
  ``model_context_window_exceeded`` → ``length``, ``guardrail_intervened`` / ``content_filtered`` →
  ``content_filter``; anything else → ``stop``.
- Usage: Bedrock's ``inputTokens`` excludes cached prompt tokens, so ``prompt_tokens`` = input + cache read + cache
  write, ``prompt_tokens_details.cached_tokens`` = cache read, and Portkey's ``cache_read_input_tokens`` /
  ``cache_creation_input_tokens`` appear when non-zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from core.providers.usage import usage_with_cache

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(str(stop_reason), "stop")


def openai_usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    return usage_with_cache(usage.get("inputTokens"), usage.get("outputTokens"), usage.get("cacheReadInputTokens"),
                            usage.get("cacheWriteInputTokens"))


def tool_arguments(value: Any) -> str:
    """A tool use's ``input`` as OpenAI's JSON-string ``arguments``."""
    return orjson.dumps(value if value is not None else {}).decode()


def chat_completion(converse: Mapping[str, Any], *, model: str, response_id: str, created: int) -> dict[str, Any]:
    message = (converse.get("output") or {}).get("message") or {}
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            tool_calls.append({
                "id": use.get("toolUseId"),
                "type": "function",
                "function": {"name": use.get("name"), "arguments": tool_arguments(use.get("input"))},
            })
    reply: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts or not tool_calls else None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    reply["refusal"] = None
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "provider": "bedrock",
        "choices": [{
            "index": 0,
            "message": reply,
            "logprobs": None,
            "finish_reason": finish_reason(converse.get("stopReason")),
        }],
        "usage": openai_usage(converse.get("usage")),
    }
