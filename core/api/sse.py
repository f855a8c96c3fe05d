"""Server-sent events: encoding the gateway's own events and parsing a provider's stream incrementally."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def encode_data(payload: Any) -> bytes:
    """One ``data:`` event carrying a JSON payload."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_event(event: str, payload: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


@dataclass(slots=True)
class SseEvent:
    event: str | None
    data: str


class SseParser:
    """Feeds on arbitrary byte chunks and yields complete events (``\\n``, ``\\r\\n`` and ``\\r`` line ends)."""

    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> Iterator[SseEvent]:
        self._buffer += chunk
        while True:
            line, sep, rest = _split_line(self._buffer)
            if not sep:
                return
            self._buffer = rest
            event = self._line(line.decode("utf-8", "replace"))
            if event is not None:
                yield event

    def close(self) -> Iterator[SseEvent]:
        if self._buffer:
            event = self._line(self._buffer.decode("utf-8", "replace"))
            self._buffer = b""
            if event is not None:
                yield event
        event = self._line("")
        if event is not None:
            yield event

    def _line(self, line: str) -> SseEvent | None:
        if line == "":
            if not self._data and self._event is None:
                return None
            event = SseEvent(self._event, "\n".join(self._data))
            self._event, self._data = None, []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


def _split_line(buffer: bytes) -> tuple[bytes, bytes, bytes]:
    n = buffer.find(b"\n")
    r = buffer.find(b"\r")
    if r != -1 and (n == -1 or r < n):
        if r + 1 == len(buffer):
            return buffer, b"", b""  # a lone \r may be the first half of \r\n: wait for more
        if buffer[r + 1 : r + 2] == b"\n":
            return buffer[:r], b"\r\n", buffer[r + 2 :]
        return buffer[:r], b"\r", buffer[r + 1 :]
    if n == -1:
        return buffer, b"", b""
    return buffer[:n], b"\n", buffer[n + 1 :]


async def translate_events(chunks: AsyncIterator[bytes], translate: Callable[[str], list[bytes]],
                           finish: Callable[[], list[bytes]]) -> AsyncIterator[bytes]:
    """Parse an upstream SSE byte stream and yield each event's translation as soon as the event is complete.

    The one loop behind every translated stream (Anthropic Messages, Gemini, the /v1/messages ingress): ``translate``
    maps one event's data to the bytes to send, ``finish`` adds what ends the stream (``[DONE]``, message_stop).
    """
    parser = SseParser()
    async for raw in chunks:
        for event in parser.feed(raw):
            for out in translate(event.data):
                yield out
    for event in parser.close():
        for out in translate(event.data):
            yield out
    for out in finish():
        yield out
