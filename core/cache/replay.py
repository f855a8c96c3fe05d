"""Turns a stored completion back into what the client asked for: the JSON body, or an SSE stream of chunks.

Entries are stored assembled (see :mod:`core.api.stream_assembly`), so one entry serves streaming and
non-streaming requests alike. A replayed stream has the shape OpenAI clients expect: a role chunk, the content,
tool-call deltas, the finish chunk, a usage chunk when ``stream_options.include_usage`` is set, then ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from core.api.sse import DONE, encode_data

_TEXT_CHUNK = 64


def _chunk(base: dict[str, Any], index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
    return encode_data({**base, "choices": [{"index": index, "delta": delta, "logprobs": None,
                                             "finish_reason": finish}]})


def completion_chunks(completion: dict[str, Any], include_usage: bool) -> list[bytes]:
    legacy = completion.get("object") == "text_completion"
    base = {"id": completion.get("id"), "object": "text_completion" if legacy else "chat.completion.chunk",
            "created": completion.get("created"), "model": completion.get("model")}
    chunks: list[bytes] = []
    for choice in completion.get("choices") or []:
        if legacy:
            chunks.append(encode_data({**base, "choices": [{"index": choice.get("index", 0), "text": choice.get(
                "text") or "", "logprobs": None, "finish_reason": choice.get("finish_reason") or "stop"}]}))
            continue
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        chunks.append(_chunk(base, index, {"role": message.get("role", "assistant"), "content": ""}))
        text = message.get("content") or ""
        for start in range(0, len(text), _TEXT_CHUNK):
            chunks.append(_chunk(base, index, {"content": text[start:start + _TEXT_CHUNK]}))
        for i, call in enumerate(message.get("tool_calls") or []):
            chunks.append(_chunk(base, index, {"tool_calls": [{"index": i, **call}]}))
        chunks.append(_chunk(base, index, {}, choice.get("finish_reason") or "stop"))
    if include_usage and completion.get("usage"):
        chunks.append(encode_data({**base, "choices": [], "usage": completion["usage"]}))
    chunks.append(DONE)
    return chunks


async def replay(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
