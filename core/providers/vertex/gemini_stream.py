"""Gemini ``streamGenerateContent?alt=sse`` → OpenAI ``chat.completion.chunk`` events, one upstream event at a time.

Every upstream event is translated and forwarded as soon as it is parsed. The stream ends with ``data: [DONE]`` for
OpenAI clients (Portkey 1.15.2 omits it; the SDKs cope, but other clients wait for it). An ``error`` payload, or a
stream that ends before any candidate finished, raises :class:`VertexStreamError` so the client sees an error event,
never a quietly truncated completion.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.api.sse import DONE, encode_data, translate_events
from core.providers.vertex.errors import VertexStreamError
from core.providers.vertex.gemini_response import PROVIDER, finish_reason, new_call_id, tool_call, usage, visible_parts


@dataclass(slots=True)
class _Candidate:
    started: bool = False
    tool_calls: int = 0
    finished: bool = False


@dataclass(slots=True)
class GeminiStreamTranslator:
    """State of one stream: chunk id, per-candidate role/tool-call bookkeeping, whether it finished."""

    model: str
    created: int
    chunk_id: str | None = None
    new_id: Callable[[], str] = new_call_id
    _candidates: dict[int, _Candidate] = field(default_factory=dict)
    _usage: Mapping[str, Any] | None = None

    def feed(self, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The OpenAI chunks for one upstream event (zero, one, or a content chunk plus a finish chunk)."""
        if "error" in payload:
            raise VertexStreamError.from_payload(payload["error"])
        if self.chunk_id is None:
            self.chunk_id = str(payload.get("responseId") or f"chatcmpl-{uuid.uuid4().hex}")
        if payload.get("modelVersion"):
            self.model = str(payload["modelVersion"])
        if isinstance(payload.get("usageMetadata"), Mapping):
            self._usage = payload["usageMetadata"]
        deltas: list[dict[str, Any]] = []
        finishes: list[dict[str, Any]] = []
        candidates = payload.get("candidates") or []
        if not candidates and (payload.get("promptFeedback") or {}).get("blockReason"):
            candidates = [{"index": 0, "finishReason": "PROHIBITED_CONTENT"}]
        for position, candidate in enumerate(candidates):
            index = int(candidate.get("index") or position)
            state = self._candidates.setdefault(index, _Candidate())
            delta = self._delta(candidate, state)
            if delta is not None:
                deltas.append({"index": index, "delta": delta, "logprobs": None, "finish_reason": None})
            if candidate.get("finishReason") and not state.finished:
                state.finished = True
                finishes.append({"index": index, "delta": {}, "logprobs": None,
                                 "finish_reason": finish_reason(candidate["finishReason"], state.tool_calls > 0)})
        chunks = [self._chunk(deltas)] if deltas else []
        if finishes:
            chunks.append({**self._chunk(finishes), "usage": usage(self._usage)})
        return chunks

    def _delta(self, candidate: Mapping[str, Any], state: _Candidate) -> dict[str, Any] | None:
        text = []
        calls = []
        for part in visible_parts(candidate):
            if isinstance(part.get("text"), str) and part["text"]:
                text.append(part["text"])
            elif isinstance(part.get("functionCall"), Mapping):
                calls.append({"index": state.tool_calls, **tool_call(part, self.new_id())})
                state.tool_calls += 1
        if not text and not calls and state.started:
            return None
        delta: dict[str, Any] = {}
        if not state.started:
            delta["role"] = "assistant"
            state.started = True
        if text or not calls:
            delta["content"] = "".join(text)
        if calls:
            delta["tool_calls"] = calls
        return delta

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.chunk_id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "provider": PROVIDER, "choices": choices}

    def finish(self) -> None:
        """Called when the upstream stream ended: it must have finished every candidate it started."""
        if not self._candidates or not all(c.finished for c in self._candidates.values()):
            raise VertexStreamError("the stream ended before the model finished its answer",
                                    status_name="UNAVAILABLE", code="stream_truncated")


async def translate_gemini_stream(chunks: AsyncIterator[bytes], translator: GeminiStreamTranslator
                                  ) -> AsyncIterator[bytes]:
    """Upstream SSE bytes in, OpenAI SSE bytes out, ending with ``[DONE]``."""

    def finish() -> list[bytes]:
        translator.finish()
        return [DONE]

    async for chunk in translate_events(chunks, lambda data: _translate(data, translator), finish):
        yield chunk


def _translate(data: str, translator: GeminiStreamTranslator) -> list[bytes]:
    if not data.strip():
        return []
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise VertexStreamError(f"unreadable stream event: {data[:200]!r}", status_name="INTERNAL") from None
    if isinstance(payload, list):  # an error in the array form of a stream error
        payload = payload[0] if payload and isinstance(payload[0], dict) else {"error": payload}
    if not isinstance(payload, dict):
        raise VertexStreamError(f"unexpected stream event: {data[:200]!r}", status_name="INTERNAL")
    return [encode_data(chunk) for chunk in translator.feed(payload)]
