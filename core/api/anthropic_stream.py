"""OpenAI chat chunks → Anthropic Messages stream events, one event as soon as its chunk arrives.

Event order follows Anthropic's protocol: ``message_start``; per content block ``content_block_start``, its
``content_block_delta``s (``text_delta`` or ``input_json_delta``) and ``content_block_stop``; ``message_delta`` with
the stop reason and output tokens; ``message_stop``. An error chunk becomes an ``error`` event and ends the stream.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

from core.api.anthropic_response import messages_usage, stop_reason
from core.api.sse import encode_event, translate_events


class ChatToMessagesEvents:
    def __init__(self, requested_model: str) -> None:
        self._model = requested_model
        self._started = False
        self._block: tuple[str, int] | None = None  # ("text", -1) or ("tool", openai tool index)
        self._index = -1
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self.failed = False

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        self._started = True
        message: dict[str, Any] = {
            "id": chunk.get("id") or f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
            "model": chunk.get("model") or self._model, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}
        return [encode_event("message_start", {"type": "message_start", "message": message})]

    def _close_block(self) -> list[bytes]:
        if self._block is None:
            return []
        self._block = None
        return [encode_event("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _open(self, kind: tuple[str, int], content_block: dict[str, Any]) -> list[bytes]:
        events = self._close_block()
        self._index += 1
        self._block = kind
        events.append(encode_event("content_block_start", {"type": "content_block_start", "index": self._index,
                                                           "content_block": content_block}))
        return events

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        if "error" in chunk:
            self.failed = True
            error = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
            return [encode_event("error", {"type": "error", "error": {
                "type": "api_error", "message": str(error.get("message") or "stream failed")}})]
        events = [] if self._started else self._start(chunk)
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._block != ("text", -1):
                    events += self._open(("text", -1), {"type": "text", "text": ""})
                events.append(encode_event("content_block_delta", {"type": "content_block_delta", "index": self._index,
                                                                   "delta": {"type": "text_delta", "text": text}}))
            for call in delta.get("tool_calls") or []:
                position = int(call.get("index", 0))
                function = call.get("function") or {}
                if self._block != ("tool", position):
                    events += self._open(("tool", position), {
                        "type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                        "name": function.get("name"), "input": {}})
                if function.get("arguments"):
                    events.append(encode_event("content_block_delta", {
                        "type": "content_block_delta", "index": self._index,
                        "delta": {"type": "input_json_delta", "partial_json": function["arguments"]}}))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return events

    def finish(self) -> list[bytes]:
        if self.failed:
            return []
        events = [] if self._started else self._start({})
        events += self._close_block()
        usage = messages_usage(self._usage)
        events.append(encode_event("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": stop_reason(self._finish), "stop_sequence": None},
            "usage": usage}))
        events.append(encode_event("message_stop", {"type": "message_stop"}))
        return events


async def chat_stream_to_messages(chunks: AsyncIterator[bytes], requested_model: str) -> AsyncIterator[bytes]:
    translator = ChatToMessagesEvents(requested_model)
    async for out in translate_events(chunks, lambda data: _events(data, translator), translator.finish):
        yield out


def _events(data: str, translator: ChatToMessagesEvents) -> list[bytes]:
    if not data or data == "[DONE]" or translator.failed:
        return []
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return []
    return translator.feed(chunk) if isinstance(chunk, dict) else []
