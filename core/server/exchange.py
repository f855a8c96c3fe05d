"""One request and its response on a connection: the ASGI ``receive`` and ``send`` of that exchange.

What it does differently from uvicorn's cycle, and why (each item showed in the worker's profile under load):

* The status line and headers are held until the first body message and written with it, so a buffered response
  leaves in one ``write`` (one syscall, one TCP segment) instead of two.
* ``receive`` returns at once when the body has already arrived (the usual case: a chat request fits in one read);
  a future is created only when it really has to wait.
* Response headers are validated once over their joined bytes, not with two regex searches per header.
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.server.protocol import GatewayHttpProtocol

logger = logging.getLogger("uvicorn.error")

#: A request body buffered past this (the app not reading it yet) pauses reading from the socket.
BODY_HIGH_WATER = 64 * 1024

_STATUS_LINES: dict[int, bytes] = {int(code): b"HTTP/1.1 %d %s\r\n" % (code, code.phrase.encode())
                                   for code in http.HTTPStatus}
#: Header names must be RFC 9110 tokens; checked over all names joined (a join of tokens is a token).
_NOT_TOKEN = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
#: Values may hold tab and obs-text, never other control characters (CR/LF would split the response).
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_NO_BODY_STATUS = frozenset({204, 304})
_INTERNAL_ERROR = (b'{"error":{"message":"The gateway failed while handling the request.","type":"api_error",'
                   b'"param":null,"code":"internal_error"}}')


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise RuntimeError(f"Invalid HTTP status code {status!r} in the response.")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


class HttpExchange:
    """The state of one request/response pair; the protocol feeds the request in and gets told of completion."""

    __slots__ = (
        "_chunked",
        "_close_sent",
        "_head",
        "_remaining",
        "_waiter",
        "body",
        "buffered",
        "complete",
        "delivered",
        "disconnected",
        "expect_continue",
        "head_request",
        "keep_alive",
        "more_body",
        "protocol",
        "scope",
        "started",
    )

    def __init__(self, protocol: GatewayHttpProtocol, scope: dict[str, Any], keep_alive: bool,
                 expect_continue: bool) -> None:
        self.protocol = protocol
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.head_request = scope["method"] == "HEAD"
        # request side
        self.body: list[bytes] = []
        self.buffered = 0
        self.more_body = True  # until the parser has seen the whole request
        self.delivered = False  # the app has been given the last part of the body
        self.disconnected = False
        self._waiter: asyncio.Future[None] | None = None
        # response side
        self.started = False
        self.complete = False
        self._head: bytes | None = None  # status line + headers, written with the first body part
        self._chunked = False
        self._close_sent = False  # the app's own headers say "connection: close"
        self._remaining: int | None = None  # bytes still owed under Content-Length

    # --- fed by the protocol --------------------------------------------------------------------------------
    def add_body(self, data: bytes) -> None:
        self.body.append(data)
        self.buffered += len(data)
        if self.buffered > BODY_HIGH_WATER:
            self.protocol.pause_reading()
        self.wake()

    def end_body(self) -> None:
        self.more_body = False
        self.wake()

    def lose_connection(self) -> None:
        self.disconnected = True
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the application's side -----------------------------------------------------------------------------
    async def run(self, app: Any) -> None:
        """Runs the app for this exchange; a failure before the response started becomes a JSON 500."""
        try:
            result = await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            self.protocol.close()
            raise
        except Exception as exc:
            logger.error("Exception in ASGI application", exc_info=exc)
            if self.started and self._head is None:
                self.protocol.close()  # part of the response is on the wire: only closing can tell the client
            else:
                self._send_internal_error()
            return
        if result is not None:
            logger.error("ASGI callable should return None, but returned %r.", result)
            self.protocol.close()
        elif not self.started and not self.disconnected:
            logger.error("ASGI callable returned without starting response.")
            self._send_internal_error()
        elif not self.complete and not self.disconnected:
            logger.error("ASGI callable returned without completing response.")
            self.protocol.close()

    async def receive(self) -> dict[str, Any]:
        if self.expect_continue:
            self.expect_continue = False
            self.protocol.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while True:
            if self.body or (not self.more_body and not self.delivered):
                body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
                self.body = []
                self.buffered = 0
                self.delivered = not self.more_body
                self.protocol.resume_reading()
                return {"type": "http.request", "body": body, "more_body": self.more_body}
            if self.disconnected or self.complete:
                return {"type": "http.disconnect"}
            self.protocol.resume_reading()
            self._waiter = self.protocol.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got {kind!r}.")
            if self.expect_continue and self.more_body:
                # Answered without asking for the body: the client may or may not send it now, so the bytes that
                # follow cannot be trusted to be the next request (RFC 9110 section 10.1.1).
                self.keep_alive = False
            self._head = self._prepare_head(message["status"], message.get("headers", ()))
            self.started = True  # after the head is accepted: a refused one still leaves room for the 500
            self.expect_continue = False
            return
        if self.complete:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} sent, after response already completed.")
        if kind != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got {kind!r}.")
        if self.disconnected:
            return
        protocol = self.protocol
        if protocol.write_paused:
            await protocol.drain()
            if self.disconnected:
                return
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        head = self._head
        if head is not None:
            self._head = None
            head = self._finish_head(head, body, more)
        protocol.write(self._frame(head, body, more))
        if not more:
            if self._remaining:
                raise RuntimeError("Response content shorter than Content-Length")
            self.complete = True
            self.wake()
            protocol.exchange_complete(self)

    # --- response framing -----------------------------------------------------------------------------------
    def _prepare_head(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """Status line and headers; the framing header is decided in :meth:`_finish_head` once the body is seen."""
        parts = [status_line(status)]
        for name, value in self.protocol.default_headers:
            parts += (name, b": ", value, b"\r\n")
        names: list[bytes] = []
        values: list[bytes] = []
        length: int | None = None
        chunked = False
        for raw_name, value in headers:
            name = raw_name.lower()
            if not name:
                raise RuntimeError("Invalid HTTP header name.")
            names.append(name)
            values.append(value)
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.lower() == b"chunked"
            elif name == b"connection" and b"close" in [t.strip() for t in value.lower().split(b",")]:
                self.keep_alive = False
                self._close_sent = True
            parts += (name, b": ", value, b"\r\n")
        if _NOT_TOKEN.search(b"".join(names)):
            raise RuntimeError("Invalid HTTP header name.")
        if _BAD_VALUE.search(b"".join(values)):
            raise RuntimeError("Invalid HTTP header value.")
        if status in _NO_BODY_STATUS or status < 200 or self.head_request:
            self._remaining = None
        elif length is not None:
            self._remaining = length
        else:
            self._chunked = chunked
            self._remaining = -1 if not chunked else None  # -1: neither header, decided with the first body part
        return b"".join(parts)

    def _finish_head(self, head: bytes, body: bytes, more: bool) -> bytes:
        """Adds what could only be known at the first body part: the framing, and whether the connection ends
        (a graceful shutdown may have begun since the app started its response)."""
        if not self.keep_alive and not self._close_sent:
            head += b"connection: close\r\n"
        if self._remaining == -1:
            if more:  # a stream of unknown length
                self._chunked = True
                self._remaining = None
                return head + b"transfer-encoding: chunked\r\n\r\n"
            self._remaining = len(body)  # the whole body in one message: its length is known
            return head + b"content-length: %d\r\n\r\n" % len(body)
        return head + b"\r\n"

    def _frame(self, head: bytes | None, body: bytes, more: bool) -> bytes:
        if self.head_request or (self._remaining is None and not self._chunked):
            return head or b""  # HEAD, 1xx/204/304: headers only
        if self._chunked:
            if body:
                framed = b"%x\r\n%b\r\n" % (len(body), body)
                if not more:
                    framed += b"0\r\n\r\n"
            else:
                framed = b"" if more else b"0\r\n\r\n"
        else:
            assert self._remaining is not None
            if len(body) > self._remaining:
                raise RuntimeError("Response content longer than Content-Length")
            self._remaining -= len(body)
            framed = body
        return head + framed if head else framed

    def _send_internal_error(self) -> None:
        if self.complete or self.disconnected:
            return
        self.keep_alive = False
        self.started = True
        self.complete = True
        head = status_line(500) + b"".join(n + b": " + v + b"\r\n" for n, v in self.protocol.default_headers)
        self.protocol.write(head + b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
                            % len(_INTERNAL_ERROR) + _INTERNAL_ERROR)
        self.protocol.exchange_complete(self)
