"""One HTTP/1.1 connection of :mod:`core.transport.http1_client`'s pool and the response it is reading.

The connection is an asyncio protocol that httptools (llhttp) parses into; :class:`Http1Response` is what the caller
holds: status and headers once they are in, then the body whole (``read``) or as it arrives (``iter_chunks``), with
the read timeout measured as silence from the provider. Releasing the response hands the connection back to the
pool when it can carry another exchange, and closes it otherwise.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import httptools

from core.transport.base import TransportError, TransportTimeout
from core.transport.http1_wire import BodyDecoder, Origin

if TYPE_CHECKING:
    from core.transport.http1_client import Http1UpstreamClient

#: Unread streamed body bytes above which the socket stops being read (back-pressure on a slow client).
HIGH_WATER = 1024 * 1024


class StaleConnectionError(TransportError):
    """A reused connection closed before any response byte: the request can be sent again on a new one."""


class Connection(asyncio.Protocol):
    """One persistent connection; serves one exchange at a time and feeds its response as httptools parses it."""

    def __init__(self, pool: Http1UpstreamClient, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self.response: Http1Response | None = None
        self._got_bytes = False
        self._header_names: list[str] = []
        self._raw_headers: list[tuple[str, str]] = []

    # --- asyncio.Protocol --------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # bytes nobody asked for: the connection cannot be trusted any more
            self.close()
            return
        self._got_bytes = True
        response.last_activity = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            response.fail(TransportError("the provider switched protocols, which the gateway does not support"))
            self.close()
        except httptools.HttpParserError as exc:
            response.fail(TransportError(f"malformed HTTP response from the provider ({exc})"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        response = self.response
        if response is None or response.complete:
            return
        if response.headers_in and response.close_delimited:
            response.finish(keep_alive=False)  # the end of a close-delimited body is the connection's end
        elif not self._got_bytes and self.reused:
            response.fail(StaleConnectionError("the provider closed an idle connection"))
        elif not response.headers_in:
            response.fail(TransportError("the provider closed the connection before responding"))
        else:
            response.fail(TransportError("the connection broke before the response was complete"))

    def pause_writing(self) -> None:  # bodies are written whole; the transport buffers them
        pass

    def resume_writing(self) -> None:
        pass

    # --- httptools callbacks -----------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        response = self.response
        assert response is not None
        status = self.parser.get_status_code()
        headers, self._raw_headers = self._raw_headers, []
        if 100 <= status < 200:  # an interim response (100 Continue, 103 Early Hints): the real one follows
            return
        response.headers_arrived(status, headers, self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        response = self.response
        assert response is not None
        response.body_arrived(body)
        if response.streaming and response.buffered > HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            response.paused = True

    def on_message_complete(self) -> None:
        response = self.response
        if response is not None and response.headers_in:
            response.finish(keep_alive=self.parser.should_keep_alive())

    # --- exchanges ---------------------------------------------------------------------------------------
    def start(self, response: Http1Response, request: bytes) -> None:
        self.response = response
        self._got_bytes = False
        assert self.transport is not None
        self.transport.write(request)

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def release(self, reusable: bool) -> None:
        """The exchange is over: back to the pool when the response was read to its end on a keep-alive
        connection, closed otherwise (an unread body would arrive as the next response's bytes)."""
        self.response = None
        if reusable and not self.closed:
            self.reused = True
            self.pool.put_back(self)
        else:
            self.close()
            self.pool.forget(self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()


class Http1Response:
    """A response whose status line and headers have arrived (``status``/``headers``), body still to come."""

    __slots__ = ("_body", "_conn", "_decoder", "_error", "_keep_alive", "_lower", "_read_timeout", "_waiter",
                 "buffered", "close_delimited", "complete", "headers", "headers_in", "last_activity", "paused",
                 "released", "status", "streaming")

    def __init__(self, conn: Connection, read_timeout: float) -> None:
        self._conn = conn
        self._read_timeout = read_timeout
        self._waiter: asyncio.Future[None] | None = None
        self._body: list[bytes] = []
        self._decoder: BodyDecoder | None = None
        self._error: TransportError | None = None
        self._keep_alive = False
        self._lower: dict[str, str] | None = None
        self.status = 0
        self.headers: Sequence[tuple[str, str]] = ()
        self.headers_in = False
        self.close_delimited = False
        self.complete = False
        self.released = False
        self.buffered = 0
        self.paused = False
        self.streaming = False  # only a streamed body is read at the caller's pace (back-pressure)
        self.last_activity = time.monotonic()

    # --- fed by the connection ---------------------------------------------------------------------------
    def headers_arrived(self, status: int, headers: list[tuple[str, str]], keep_alive: bool) -> None:
        self.status, self.headers, self.headers_in = status, headers, True
        self._keep_alive = keep_alive
        length = chunked = False
        for name, value in headers:
            lower = name.lower()
            if lower == "content-length":
                length = True
            elif lower == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif lower == "content-encoding":
                encoding = value.strip().lower()
                if encoding in ("gzip", "x-gzip", "deflate"):
                    self._decoder = BodyDecoder("deflate" if encoding == "deflate" else "gzip")
        no_body = status in (204, 304)
        self.close_delimited = not (length or chunked or no_body)
        self._wake()

    def body_arrived(self, data: bytes) -> None:
        if self._decoder is not None:
            try:
                data = self._decoder.feed(data)
            except zlib.error:
                self.fail(TransportError("the provider sent a body that does not decode as its Content-Encoding"))
                self._conn.close()
                return
        if data:
            self._body.append(data)
            self.buffered += len(data)
            self._wake()

    def finish(self, keep_alive: bool) -> None:
        if self.complete:
            return
        if self._decoder is not None:
            try:
                tail = self._decoder.flush()
            except zlib.error:
                tail = b""
            if tail:
                self._body.append(tail)
                self.buffered += len(tail)
        self.complete = True
        self._keep_alive = self._keep_alive and keep_alive
        self._wake()

    def fail(self, error: TransportError) -> None:
        if self.complete:
            return
        self._error = error
        self.complete = True
        self._keep_alive = False
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- awaited by the caller ---------------------------------------------------------------------------
    async def _wait(self, what: str) -> None:
        """Wait for the next event; fails after ``read_timeout`` seconds without a byte from the provider."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_at(loop.time() + self._read_timeout, self._check_silence, waiter, what)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _check_silence(self, waiter: asyncio.Future[None], what: str) -> None:
        if waiter.done():
            return
        silent = time.monotonic() - self.last_activity
        if silent >= self._read_timeout:
            waiter.set_exception(TransportTimeout(f"timed out waiting for {what}"))
        else:  # bytes came in meanwhile (not for this waiter): keep watching from the last one
            loop = asyncio.get_running_loop()
            handle = loop.call_at(loop.time() + self._read_timeout - silent, self._check_silence, waiter, what)
            waiter.add_done_callback(lambda _: handle.cancel())

    async def wait_headers(self) -> None:
        while not self.headers_in:
            if self._error is not None:
                raise self._error
            await self._wait("the response headers")

    def header(self, name: str) -> str | None:
        lower = self._lower
        if lower is None:
            lower = self._lower = {}
            for key, value in self.headers:
                lower.setdefault(key.lower(), value)
        return lower.get(name.lower())

    async def read(self) -> bytes:
        try:
            while not self.complete:
                await self._wait("the response body")
            if self._error is not None:
                raise self._error
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            self._body = []
            return body
        finally:
            self._release()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        self.streaming = True
        try:
            while True:
                if self._body:
                    chunk = self._body[0] if len(self._body) == 1 else b"".join(self._body)
                    self._body = []
                    self.buffered = 0
                    self._take_paused()
                    yield chunk
                elif self._error is not None:
                    raise self._error
                elif self.complete:
                    return
                else:
                    await self._wait("the next chunk")
        finally:
            self._release()

    def _take_paused(self) -> None:
        if self.paused:
            self.paused = False
            self.buffered = 0
            self._conn.resume_reading()

    async def aclose(self) -> None:
        self._release()

    def _release(self) -> None:
        if not self.released:
            self.released = True
            self._conn.release(self.complete and self._error is None and self._keep_alive)
