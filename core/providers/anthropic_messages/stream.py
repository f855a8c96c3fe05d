"""Anthropic Messages stream events → OpenAI ``chat.completion.chunk`` events.

:class:`MessagesStreamTranslator` works on decoded events, so an SSE stream (direct API, Vertex ``streamRawPredict``)
and Bedrock's event-stream frames share it. ``message_start`` opens the assistant turn, text and tool-input deltas
become content and ``tool_calls`` deltas (OpenAI tool-call indexes count tool calls, not content blocks),
``message_delta`` carries the finish reason and the usage, ``message_stop`` ends the answer (a tool call whose input
stayed empty gets ``{}`` so its arguments always parse). An ``error`` event, or an
upstream that ends before ``message_stop``, raises :class:`MessagesStreamError` — a client always sees a failed
stream fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.api.sse import DONE, encode_data, translate_events
from core.providers.anthropic_messages.errors import MessagesStreamError
from core.providers.anthropic_messages.response import content_block, finish_reason, usage


@dataclass(slots=True)
class MessagesStreamTranslator:
    provider: str
    model: str
    created: int
    strict: bool = True
    message_id: str | None = None
    stopped: bool = False
    _usage: dict[str, Any] = field(default_factory=dict)
    _tool_index: dict[int, int] = field(default_factory=dict)
    _tool_has_arguments: set[int] = field(default_factory=set)

    def feed(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The OpenAI chunks for one Messages event (often none: ping, content_block_stop, message_stop)."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.message_id = message.get("id") or self.message_id
            self.model = message.get("model") or self.model
            self._add_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(int(event.get("index") or 0), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(event.get("index") or 0), event.get("delta") or {})
        if kind == "content_block_stop":
            return self._block_stop(int(event.get("index") or 0))
        if kind == "message_delta":
            self._add_usage(event.get("usage"))
            reason = (event.get("delta") or {}).get("stop_reason")
            return [{**self._chunk({}, finish_reason(reason)), "usage": usage(self._usage)}]
        if kind == "message_stop":
            self.stopped = True
        elif kind == "error":
            error = event.get("error") or {}
            raise MessagesStreamError(str(error.get("message") or "stream error"), provider=self.provider,
                                      anthropic_type=str(error.get("type") or "api_error"))
        return []

    def finish(self) -> None:
        """The upstream ended: it must have sent ``message_stop``."""
        if not self.stopped:
            raise MessagesStreamError("the stream ended before the model finished its answer",
                                      provider=self.provider, code="stream_truncated")

    def _block_start(self, index: int, block: Mapping[str, Any]) -> list[dict[str, Any]]:
        kind = block.get("type")
        if kind == "tool_use":
            position = self._tool_index.setdefault(index, len(self._tool_index))
            arguments = orjson.dumps(block["input"]).decode() if block.get("input") else ""
            if arguments:
                self._tool_has_arguments.add(index)
            return [self._chunk({"tool_calls": [{"index": position, "id": block.get("id"), "type": "function",
                                                 "function": {"name": block.get("name"), "arguments": arguments}}]})]
        if kind == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if not self.strict and kind in ("thinking", "redacted_thinking"):
            return [self._chunk({"content_blocks": [{"index": index, "delta": content_block(block)}]})]
        return []

    def _block_delta(self, index: int, delta: Mapping[str, Any]) -> list[dict[str, Any]]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if kind == "input_json_delta" and index in self._tool_index:
            return self._arguments(index, str(delta.get("partial_json") or ""))
        if not self.strict and kind in ("thinking_delta", "signature_delta"):
            field_name = "thinking" if kind == "thinking_delta" else "signature"
            return [self._chunk({"content_blocks": [{"index": index, "delta": {field_name: delta.get(field_name)}}]})]
        return []

    def _block_stop(self, index: int) -> list[dict[str, Any]]:
        """A tool call whose input stayed empty gets ``{}``: OpenAI clients parse the arguments as JSON."""
        if index in self._tool_index and index not in self._tool_has_arguments:
            return self._arguments(index, "{}")
        return []

    def _arguments(self, index: int, piece: str) -> list[dict[str, Any]]:
        if not piece:
            return []
        self._tool_has_arguments.add(index)
        return [self._chunk({"tool_calls": [{"index": self._tool_index[index], "function": {"arguments": piece}}]})]

    def _add_usage(self, raw: Any) -> None:
        if isinstance(raw, Mapping):
            self._usage.update({k: v for k, v in raw.items() if v is not None})

    def _chunk(self, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.message_id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "provider": self.provider,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}],
        }


async def translate_messages_stream(chunks: AsyncIterator[bytes], translator: MessagesStreamTranslator
                                    ) -> AsyncIterator[bytes]:
    """Messages SSE bytes in, OpenAI SSE bytes out (each event forwarded as soon as it is parsed), then ``[DONE]``."""

    def finish() -> list[bytes]:
        translator.finish()
        return [DONE]

    async for chunk in translate_events(chunks, lambda data: _translate(data, translator), finish):
        yield chunk


def _translate(data: str, translator: MessagesStreamTranslator) -> list[bytes]:
    if not data.strip():
        return []
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise MessagesStreamError(f"unreadable stream event: {data[:200]!r}", provider=translator.provider) from None
    if not isinstance(event, dict):
        raise MessagesStreamError(f"unexpected stream event: {data[:200]!r}", provider=translator.provider)
    return [encode_data(chunk) for chunk in translator.feed(event)]
