"""The HTTP/1.1 connection protocol ``skyrelay serve`` gives uvicorn (``http=GatewayHttpProtocol``).

uvicorn's httptools protocol was the largest single item in a gateway worker's profile under load (about a
quarter of its samples, counting the writes it makes). This one keeps its contract with uvicorn's server — it
registers in ``server_state.connections`` and ``.tasks``, counts ``total_requests``, and honours ``shutdown()``,
``timeout_keep_alive``, ``root_path`` and ``limit_concurrency`` — and does less per request: see
:mod:`core.server.exchange` for the response side. Here:

* The keep-alive timeout is one timer per connection, re-armed when it fires, instead of a timer created and
  cancelled around every request.
* A request whose head (request line and headers) grows past :data:`MAX_HEAD_BYTES` is refused with 431 before it
  is parsed further; uvicorn puts no bound on it. The app still applies its own, tighter header limits.
* Malformed requests get an OpenAI-style JSON 400, like every other error the gateway returns.

Not supported, as the gateway has no use for them: WebSocket and other upgrades (an upgrade request is answered as
plain HTTP, then the connection closes), and access logs (``skyrelay serve`` never turns them on).
"""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Any, cast
from urllib.parse import unquote

import httptools

from core.server.exchange import HttpExchange

#: Request line plus headers. Far above what any client sends (the app refuses more than 64 KiB of headers with
#: a 431 of its own); this only stops a client from streaming an endless head into memory.
MAX_HEAD_BYTES = 1024 * 1024
_ASGI = {"version": "3.0", "spec_version": "2.3"}


def _error(status: int, reason: bytes, message: str, code: str) -> bytes:
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                 "code": code}}).encode()
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, reason, len(body)) + body)


_BAD_REQUEST = _error(400, b"Bad Request", "The request is not valid HTTP/1.1.", "invalid_http_request")
_HEAD_TOO_LARGE = _error(431, b"Request Header Fields Too Large",
                         f"The request line and headers are larger than {MAX_HEAD_BYTES} bytes.",
                         "request_headers_too_large")
_UNAVAILABLE_BODY = json.dumps({"error": {
    "message": "The gateway is at its concurrency limit; retry shortly.", "type": "api_error", "param": None,
    "code": "concurrency_limit"}}).encode()


def _address(transport: asyncio.Transport, name: str) -> tuple[str, int] | None:
    info = transport.get_extra_info(name)
    if isinstance(info, (list, tuple)) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None


class GatewayHttpProtocol(asyncio.Protocol):
    """One client connection: parses requests with httptools and runs the ASGI app once per request, in order."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any] | None = None,
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.connections: set[Any] = server_state.connections
        self.tasks: set[asyncio.Task[None]] = server_state.tasks
        self.app_state = app_state if app_state is not None else {}
        self.root_path: str = config.root_path
        self._root_raw = self.root_path.encode("ascii")
        self.limit_concurrency: int | None = config.limit_concurrency
        self.keep_alive_s: float = config.timeout_keep_alive
        self.parser = httptools.HttpRequestParser(self)
        try:
            # answer the first of a pipelined pair even when the client half-closes right after sending
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        except AttributeError:  # httptools < 0.6.3
            pass
        self.transport: asyncio.Transport | None = None
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        # per request being parsed
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._expect_continue = False
        self._head_bytes = -1  # >= 0 while a request's head is being read
        self._parsing: HttpExchange | None = None
        # exchanges: the one answering, and pipelined ones waiting their turn
        self._active: HttpExchange | None = None
        self._queued: collections.deque[HttpExchange] = collections.deque()
        # flow control
        self.read_paused = False
        self.write_paused = False
        self._drained: asyncio.Future[None] | None = None
        # keep-alive
        self._idle_since: float | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._shutting_down = False

    # --- asyncio.Protocol -----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport does not subclass asyncio's
        self.connections.add(self)
        self.transport = transport
        self.server = _address(transport, "sockname")
        self.client = _address(transport, "peername")
        self.scheme = "https" if transport.get_extra_info("sslcontext") else "http"
        self._go_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        for exchange in (self._active, self._parsing, *self._queued):
            if exchange is not None and not exchange.complete:
                exchange.lose_connection()
        self._queued.clear()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self.write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._head_bytes >= 0:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No upgrades here: the request was answered (or is being answered) as plain HTTP; what follows the
            # upgrade request on the wire is not HTTP/1.1 any more, so the connection ends with that answer.
            self._end_after_active()
            return
        except httptools.HttpParserError:
            self._refuse(_BAD_REQUEST)
            return
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(_HEAD_TOO_LARGE)

    def eof_received(self) -> bool | None:
        return None  # close our side too once everything written has gone

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # --- httptools callbacks --------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._expect_continue = False
        self._head_bytes = 0
        self._idle_since = None

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_bytes = -1
        parser = self.parser
        url = httptools.parse_url(self._url)
        raw_path: bytes = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        version = parser.get_http_version()
        scope = {"type": "http", "asgi": dict(_ASGI), "http_version": version, "server": self.server,
                 "client": self.client, "scheme": self.scheme, "method": parser.get_method().decode("ascii"),
                 "root_path": self.root_path, "path": self.root_path + path, "raw_path": self._root_raw + raw_path,
                 "query_string": url.query or b"", "headers": self._headers, "state": self.app_state.copy()}
        keep_alive = version != "1.0" and parser.should_keep_alive() and not self._shutting_down
        exchange = HttpExchange(self, scope, keep_alive, self._expect_continue)
        self._parsing = exchange
        if self._active is None:
            self._start(exchange)
        else:
            self._queued.append(exchange)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self._parsing
        if exchange is not None and not exchange.complete:
            exchange.add_body(body)

    def on_message_complete(self) -> None:
        exchange = self._parsing
        self._parsing = None
        if exchange is not None:
            exchange.end_body()

    # --- exchanges ------------------------------------------------------------------------------------------
    def _start(self, exchange: HttpExchange) -> None:
        self._active = exchange
        app = self.app
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            exchange.keep_alive = False
            app = _unavailable
        task = self.loop.create_task(exchange.run(app))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def exchange_complete(self, exchange: HttpExchange) -> None:
        """Called by the exchange once its response is fully written."""
        self.server_state.total_requests += 1
        if exchange is not self._active:
            return
        self._active = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not exchange.keep_alive:
            transport.close()
            return
        if self._queued:
            self._start(self._queued.popleft())
        else:
            self._go_idle()
        self.resume_reading()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close idle connections now, busy ones once their response is written."""
        self._shutting_down = True
        if self._active is None and self._parsing is None:
            self.close()
        else:
            self._end_after_active()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _end_after_active(self) -> None:
        self._queued.clear()
        self.pause_reading()
        if self._active is None:
            self.close()
        else:
            self._active.keep_alive = False

    def _refuse(self, response: bytes) -> None:
        """A malformed or oversized request: answered at once when nothing is in flight, else the connection ends
        after the answer in progress (writing now would interleave with it)."""
        self._head_bytes = -1
        if self._active is None:
            self.write(response)
            self.close()
        else:
            self._end_after_active()

    # --- keep-alive -----------------------------------------------------------------------------------------
    def _go_idle(self) -> None:
        self._idle_since = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_at(self._idle_since + self.keep_alive_s, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        since = self._idle_since
        if since is None or self._active is not None or self.transport is None:
            return  # busy: _go_idle arms the timer again when it finishes
        due = since + self.keep_alive_s
        if self.loop.time() >= due:
            self.close()
        else:
            self._idle_timer = self.loop.call_at(due, self._idle_check)

    # --- transport helpers used by exchanges ----------------------------------------------------------------
    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """uvicorn's ``date`` (and any configured) headers, which its server refreshes every second."""
        headers: list[tuple[bytes, bytes]] = self.server_state.default_headers
        return headers

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        if self.write_paused and self.transport is not None and not self.transport.is_closing():
            if self._drained is None or self._drained.done():
                self._drained = self.loop.create_future()
            await self._drained

    def pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self.transport is not None and not self._queued and not self._shutting_down:
            self.read_paused = False
            self.transport.resume_reading()


async def _unavailable(scope: Any, receive: Any, send: Any) -> None:
    """The app run in place of the gateway's while ``limit_concurrency`` is reached."""
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": _UNAVAILABLE_BODY})
