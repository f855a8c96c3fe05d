"""OpenAI ``usage`` from the token counts vendors report, prompt-cache reads and writes included.

Anthropic (``input_tokens``, ``cache_read_input_tokens``, ``cache_creation_input_tokens``) and Bedrock Converse
(``inputTokens``, ``cacheReadInputTokens``, ``cacheWriteInputTokens``) count the same things under different names;
OpenAI clients expect cached tokens inside ``prompt_tokens`` and reported in ``prompt_tokens_details``.
"""

from __future__ import annotations

from typing import Any


def usage_with_cache(input_tokens: Any, output_tokens: Any, cache_read: Any, cache_write: Any) -> dict[str, Any]:
    read, write = int(cache_read or 0), int(cache_write or 0)
    prompt = int(input_tokens or 0) + read + write
    completion = int(output_tokens or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read},
    }
    if read:
        out["cache_read_input_tokens"] = read
    if write:
        out["cache_creation_input_tokens"] = write
    return out
