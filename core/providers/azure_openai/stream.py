"""Stream decoding: Azure's SSE chat/completions stream → OpenAI SSE chunks, one event at a time as it arrives.

Each ``data:`` event is parsed, normalized (:class:`~core.providers.azure_openai.response.ChunkNormalizer`) and
re-emitted at once; nothing waits for the next upstream read. A stream that fails is never passed off as a finished
completion: an ``error`` event, an event that is not JSON, or an end without ``data: [DONE]`` raises
:class:`AzureStreamError`, which the service turns into an SSE error event for the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import orjson

from core.api.sse import DONE, SseEvent, SseParser, encode_data
from core.errors import UpstreamConnectionError
from core.providers.azure_openai.response import ChunkNormalizer
from core.providers.base import Operation
from core.providers.http import error_message_from


class AzureStreamError(UpstreamConnectionError):
    """Azure broke off or corrupted a stream after the response had started."""

    default_code = "upstream_stream_error"


class AzureStreamDecoder:
    """Turns one upstream stream into OpenAI SSE bytes; ``done`` tells whether ``[DONE]`` was seen."""

    def __init__(self, provider: str, operation: Operation) -> None:
        self._provider = provider
        self._parser = SseParser()
        self._normalizer = ChunkNormalizer(operation)
        self.done = False

    def feed(self, data: bytes) -> list[bytes]:
        return self._events(self._parser.feed(data))

    def close(self) -> list[bytes]:
        out = self._events(self._parser.close())
        if not self.done:
            raise AzureStreamError(f"{self._provider} error: the stream ended before [DONE]", provider=self._provider,
                                   code="upstream_stream_truncated")
        return out

    def _events(self, events: Iterable[SseEvent]) -> list[bytes]:
        out: list[bytes] = []
        for event in events:
            if self.done:
                continue
            data = event.data.strip()
            if not data:
                continue
            if data == "[DONE]":
                self.done = True
                out.append(DONE)
                continue
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise AzureStreamError(f"{self._provider} error: the stream sent an event that is not JSON",
                                       provider=self._provider, code="upstream_stream_malformed") from None
            if not isinstance(chunk, dict):
                raise AzureStreamError(f"{self._provider} error: the stream sent an event that is not an object",
                                       provider=self._provider, code="upstream_stream_malformed")
            if chunk.get("error") is not None:
                message = error_message_from(data.encode())[0]
                raise AzureStreamError(f"{self._provider} error: {message}", provider=self._provider)
            out.append(encode_data(self._normalizer.normalize(chunk)))
        return out


async def decode_stream(provider: str, operation: Operation, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    decoder = AzureStreamDecoder(provider, operation)
    async for data in chunks:
        for event in decoder.feed(data):
            yield event
        if decoder.done:
            break
    for event in decoder.close():
        yield event
