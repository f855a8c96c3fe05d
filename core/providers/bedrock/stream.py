"""ConverseStream: ``application/vnd.amazon.eventstream`` frames → OpenAI ``chat.completion.chunk`` SSE events.

Frames are decoded with botocore's :class:`~botocore.eventstream.EventStreamBuffer`, which checks both CRCs of every
frame; a corrupt frame, a frame cut off at the end of the body, or a body that ends before ``messageStop`` raises
:class:`~core.providers.bedrock.errors.BedrockUpstreamError` — the client sees an error event, never a truncated answer
that looks complete (Portkey 1.15.2's bug B11). Exception frames (``:message-type: exception``, e.g.
``throttlingException``) are mapped by :mod:`core.providers.bedrock.errors` and raised the same way.

Events become chunks as they arrive: ``messageStart`` → the role chunk; text deltas → ``content``; a tool use's
``contentBlockStart`` → a ``tool_calls`` delta with index, id, name and empty arguments, then its input deltas →
``arguments`` pieces; ``messageStop`` → the finish chunk; ``metadata`` → the usage chunk (``choices: []``) when the
client asked for ``stream_options.include_usage``; the end of the body → ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError

from core.api.sse import DONE, encode_data
from core.providers.bedrock.converse_response import finish_reason, openai_usage
from core.providers.bedrock.errors import BedrockUpstreamError, raised_error, stream_exception


class ConverseStreamTranslator:
    """Converse stream events → OpenAI chunk objects. Pure: ids and timestamps are given, nothing is read."""

    def __init__(self, *, model: str, response_id: str, created: int, include_usage: bool) -> None:
        self._base = {"id": response_id, "object": "chat.completion.chunk", "created": created, "model": model,
                      "provider": "bedrock"}
        self._include_usage = include_usage
        self._tool_index: dict[int, int] = {}
        self._last_text_block: int | None = None
        self._started = False
        self.stopped = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**self._base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def _start(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def event(self, event_type: str | None, payload: dict[str, Any]) -> list[dict[str, Any]]:
        if event_type == "messageStart":
            return self._start()
        if event_type == "contentBlockStart":
            return self._block_start(payload)
        if event_type == "contentBlockDelta":
            return self._block_delta(payload)
        if event_type == "messageStop":
            self.stopped = True
            return [*self._start(), self._chunk({}, finish_reason(payload.get("stopReason")))]
        if event_type == "metadata" and self._include_usage:
            return [{**self._base, "choices": [], "usage": openai_usage(payload.get("usage"))}]
        return []  # contentBlockStop, metadata without include_usage, events added to Converse later

    def _tool_call_index(self, block: int) -> int:
        index = self._tool_index.get(block)
        if index is None:
            index = self._tool_index[block] = len(self._tool_index)
        return index

    def _block_start(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        use = (payload.get("start") or {}).get("toolUse")
        if not isinstance(use, dict):
            return []
        index = self._tool_call_index(int(payload.get("contentBlockIndex") or 0))
        call = {"index": index, "id": use.get("toolUseId"), "type": "function",
                "function": {"name": use.get("name"), "arguments": ""}}
        return [*self._start(), self._chunk({"tool_calls": [call]})]

    def _block_delta(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        block = int(payload.get("contentBlockIndex") or 0)
        delta = payload.get("delta") or {}
        text = delta.get("text")
        if isinstance(text, str) and text:
            if self._last_text_block is not None and self._last_text_block != block:
                text = "\n" + text
            self._last_text_block = block
            return [*self._start(), self._chunk({"content": text})]
        use = delta.get("toolUse")
        if isinstance(use, dict) and isinstance(use.get("input"), str) and use["input"]:
            call = {"index": self._tool_call_index(block), "function": {"arguments": use["input"]}}
            return [*self._start(), self._chunk({"tool_calls": [call]})]
        return []  # reasoning and citation deltas: not part of OpenAI's chat format

    def end(self) -> None:
        """The body ended: it must have carried the whole message."""
        if not self.stopped:
            raise BedrockUpstreamError("the stream ended before the message was complete (no messageStop event)",
                                       code="incomplete_event_stream")


def _malformed(message: str) -> BedrockUpstreamError:
    return BedrockUpstreamError(message, code="malformed_event_stream")


def _frames(buffer: EventStreamBuffer) -> Iterator[EventStreamMessage]:
    try:
        yield from buffer
    except ParserError as exc:
        raise _malformed(f"malformed event stream frame: {exc}") from None


def _events(message: EventStreamMessage) -> tuple[str | None, dict[str, Any]]:
    """An event frame's type and JSON payload; exception and error frames are raised."""
    headers = message.headers
    kind = headers.get(":message-type")
    if kind == "exception":
        raise stream_exception(str(headers.get(":exception-type") or "InternalServerException"), message.payload)
    if kind == "error":
        raise raised_error(str(headers.get(":error-code") or "InternalServerException"),
                           str(headers.get(":error-message") or "stream error"))
    if kind != "event":
        raise _malformed(f"unexpected event stream message type {kind!r}")
    try:
        payload = orjson.loads(message.payload) if message.payload else {}
    except orjson.JSONDecodeError:
        raise _malformed("an event stream frame's payload is not JSON") from None
    if not isinstance(payload, dict):
        raise _malformed("an event stream frame's payload is not a JSON object")
    event_type = headers.get(":event-type")
    return (str(event_type) if event_type is not None else None), payload


async def openai_sse(raw: AsyncIterator[bytes], translator: ConverseStreamTranslator) -> AsyncIterator[bytes]:
    """Decode frames as bytes arrive and yield each translated chunk at once; ``[DONE]`` after a complete message."""
    buffer = EventStreamBuffer()
    received = consumed = 0
    async for data in raw:
        received += len(data)
        buffer.add_data(data)
        for message in _frames(buffer):
            consumed += message.prelude.total_length
            event_type, payload = _events(message)
            for chunk in translator.event(event_type, payload):
                yield encode_data(chunk)
    if received != consumed:
        raise BedrockUpstreamError("the stream ended in the middle of an event frame", code="truncated_event_stream")
    translator.end()
    yield DONE
