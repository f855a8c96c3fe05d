"""Token counts for rate limiting: a cheap estimate up front, the provider's usage at the end."""

from __future__ import annotations

from typing import Any

import orjson

DEFAULT_COMPLETION_RESERVE = 256
_CHARS_PER_TOKEN = 4


def estimate_tokens(body: dict[str, Any]) -> int:
    """Prompt characters / 4 plus the completion budget the request allows (``max_tokens``), or a default."""
    prompt = body.get("messages") or body.get("prompt") or body.get("input") or ""
    text = prompt if isinstance(prompt, str) else orjson.dumps(prompt).decode("utf-8", "replace")
    budget = body.get("max_completion_tokens") or body.get("max_tokens")
    if "input" in body and "messages" not in body:
        budget = 0  # embeddings produce no completion tokens
    elif not isinstance(budget, int):
        budget = DEFAULT_COMPLETION_RESERVE
    return max(1, len(text) // _CHARS_PER_TOKEN + budget)


def usage_tokens(response: Any) -> int | None:
    """``usage.total_tokens`` (or prompt + completion) of a parsed OpenAI response, if present."""
    if not isinstance(response, dict):
        return None
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    parts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
    return sum(p for p in parts if isinstance(p, int)) or None
