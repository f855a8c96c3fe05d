"""The hot-path upstream client: HTTP/1.1 keep-alive on asyncio protocols, parsed by httptools (llhttp).

Why our own: bench/ measured aiohttp's client at about 200 µs of CPU per request on one core, 60 % of the whole
pass-through floor, and a protocol-level client with the same parser at about 20-35 µs. The gateway makes exactly
one kind of call — a request with a body in memory to a provider origin, answered by a buffered or streamed
response — so the client needs little: a per-origin pool of persistent connections, response framing
(Content-Length, chunked, close-delimited), gzip/deflate decoding, connect and read timeouts, TLS, and the SSRF
re-check on the addresses it connects to (what :class:`core.security.guarded_resolver.GuardedResolver` does for
aiohttp). Proxies (``HTTPS_PROXY``) are not used, as with the aiohttp client; HEAD requests are not supported (no
provider call uses them).

A request that fails on a *reused* connection before any byte of the response arrived is sent once more on a new
connection: the provider closed an idle keep-alive connection as the request went out, so it never saw it. This is
the rule Go's and curl's clients follow; any other failure is reported, never retried here (retries belong to the
routing layer, which knows the budget).
"""

from __future__ import annotations

import asyncio
import functools
import re
import socket
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httptools

from core.errors import InvalidRequestError
from core.security.ssrf import SsrfGuard
from core.transport.base import TransportConnectError, TransportError, TransportTimeout

#: How long an idle pooled connection is trusted (aiohttp's keepalive_timeout; providers close theirs later).
KEEPALIVE_S = 15.0
#: Resolved addresses are reused this long (aiohttp's ttl_dns_cache in the previous client).
DNS_TTL_S = 10.0
#: Unread streamed body bytes above which the socket stops being read (back-pressure on a slow client).
HIGH_WATER = 1024 * 1024

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Characters that may appear in a request target as sent; anything else is percent-encoded.
_UNSAFE_TARGET = re.compile(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")
#: Headers the client writes itself; a caller's value would duplicate or contradict them.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


@functools.lru_cache(maxsize=4096)
def split_url(url: str) -> tuple[_Origin, str, str]:
    """(origin, request target, Host header) of an absolute http(s) URL; memoised — providers reuse few URLs."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise TransportError(f"unsupported upstream URL {_origin_text(url)!r}: only absolute http(s) URLs")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise TransportError(f"invalid port in upstream URL {_origin_text(url)!r}") from None
    host = parts.hostname
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    if _UNSAFE_TARGET.search(target):
        target = quote(target, safe="-._~:/?#[]@!$&'()*+,;=%")
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    return _Origin(scheme, host, port), target, host_header


def _origin_text(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}"


class _StaleConnection(TransportError):
    """A reused connection closed before any response byte: the request can be sent again on a new one."""


class _Decoder:
    """Incremental Content-Encoding decoding (gzip, deflate with or without the zlib wrapper)."""

    def __init__(self, encoding: str) -> None:
        self._raw_deflate = False
        self._inner = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        self._deflate = encoding == "deflate"
        self._started = False

    def feed(self, data: bytes) -> bytes:
        try:
            out = self._inner.decompress(data)
        except zlib.error:
            if not (self._deflate and not self._started):
                raise
            # "deflate" without the zlib header, as some servers send it.
            self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._inner.decompress(data)
        self._started = True
        return out

    def flush(self) -> bytes:
        return self._inner.flush()


class _Connection(asyncio.Protocol):
    """One persistent connection; serves one exchange at a time and feeds its response as httptools parses it."""

    def __init__(self, pool: Http1UpstreamClient, origin: _Origin) -> None:
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
            response.fail(_StaleConnection("the provider closed an idle connection"))
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

    def __init__(self, conn: _Connection, read_timeout: float) -> None:
        self._conn = conn
        self._read_timeout = read_timeout
        self._waiter: asyncio.Future[None] | None = None
        self._body: list[bytes] = []
        self._decoder: _Decoder | None = None
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
                    self._decoder = _Decoder("deflate" if encoding == "deflate" else "gzip")
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


class Http1UpstreamClient:
    """A pool of keep-alive HTTP/1.1 connections per origin, at most ``max_connections`` open at once."""

    def __init__(
        self,
        *,
        max_connections: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        guard: SsrfGuard | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max = max_connections
        self._connect_timeout = connect_timeout_s
        self._read_timeout = read_timeout_s
        self._guard = guard
        self._ssl = ssl_context
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._open = 0
        self._all: set[_Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._dns: dict[tuple[str, int], tuple[float, list[tuple[int, str]]]] = {}

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> Http1Response:
        origin, target, host_header = split_url(url)
        request = _encode_request(method, target, host_header, headers, body)
        for _ in range(2):
            conn = await self._acquire(origin)
            response = Http1Response(conn, self._read_timeout)
            try:
                conn.start(response, request)
                await response.wait_headers()
            except _StaleConnection:
                response.released = True
                conn.release(False)
                continue
            except BaseException:
                response.released = True
                conn.release(False)
                raise
            return response
        raise TransportError(f"the provider at {_origin_text(url)} closed the connection twice without responding")

    # --- the pool ----------------------------------------------------------------------------------------
    async def _acquire(self, origin: _Origin) -> _Connection:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_S:
                return conn
            self._discard(conn)
        while self._open >= self._max:
            if self._evict_idle():
                break
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            idle = self._idle.get(origin)
            if idle:
                return await self._acquire(origin)
        self._open += 1
        try:
            return await self._connect(origin)
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise

    async def _connect(self, origin: _Origin) -> _Connection:
        addresses = await self._resolve(origin)
        loop = asyncio.get_running_loop()
        tls = self._ssl_context() if origin.tls else None
        last: BaseException | None = None
        for family, address in addresses:
            conn = _Connection(self, origin)
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await loop.create_connection(
                        lambda conn=conn: conn, address, origin.port, family=family, ssl=tls,
                        server_hostname=origin.host if tls is not None else None,
                    )
            except TimeoutError:
                raise TransportTimeout(f"timed out connecting to {_describe(origin)}") from None
            except ssl.SSLError as exc:
                message = f"could not connect to {_describe(origin)}: TLS failed ({exc.reason or exc})"
                raise TransportConnectError(message) from None
            except OSError as exc:
                last = exc
                continue
            self._all.add(conn)
            return conn
        reason = getattr(last, "strerror", None) or str(last) or type(last).__name__
        raise TransportConnectError(f"could not connect to {_describe(origin)}: {reason}")

    async def _resolve(self, origin: _Origin) -> list[tuple[int, str]]:
        """Addresses to try, from a short-lived cache; the SSRF guard re-checks what a guarded host resolved to."""
        key = (origin.host, origin.port)
        cached = self._dns.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < DNS_TTL_S:
            addresses = cached[1]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(origin.host, origin.port,
                                                                     type=socket.SOCK_STREAM)
            except OSError as exc:
                raise TransportConnectError(f"could not connect to {_describe(origin)}: "
                                            f"{exc.strerror or 'name resolution failed'}") from None
            addresses = list(dict.fromkeys((info[0], str(info[4][0])) for info in infos))
            if len(self._dns) > 1024:
                self._dns.clear()
            self._dns[key] = (now, addresses)
        if self._guard is not None and self._guard.is_guarded(origin.host):
            try:
                self._guard.check_addresses(origin.host, [address for _, address in addresses])
            except InvalidRequestError as exc:
                raise TransportConnectError(f"could not connect to {_describe(origin)}: {exc.message}") from None
        return addresses

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def put_back(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.origin, []).append(conn)
        if self._waiters:  # someone waits for a slot: this one is reusable, or evictable for another origin
            self._wake_one()

    def forget(self, conn: _Connection) -> None:
        """A connection closed (by us or the provider): it no longer counts against the limit."""
        if conn in self._all:
            self._all.discard(conn)
            self._open -= 1
            idle = self._idle.get(conn.origin)
            if idle and conn in idle:
                idle.remove(conn)
            self._wake_one()

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self.forget(conn)

    def _evict_idle(self) -> bool:
        """At the limit: close the longest-idle connection to make room, if any is idle."""
        oldest: _Connection | None = None
        for conns in self._idle.values():
            for conn in conns:
                if oldest is None or conn.idle_since < oldest.idle_since:
                    oldest = conn
        if oldest is None:
            return False
        self._discard(oldest)
        return True

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    @property
    def open_connections(self) -> int:
        return self._open

    async def aclose(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
        self._open = 0
        await asyncio.sleep(0)  # let the transports run their close callbacks


def _encode_request(method: str, target: str, host_header: str, headers: Mapping[str, str],
                    body: bytes | None) -> bytes:
    if method == "HEAD":
        raise TransportError("HEAD requests are not supported by the upstream client")
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {host_header}\r\n"]
    has_encoding = False
    for name, value in headers.items():
        lower = name.lower()
        if lower in _OWN_HEADERS:
            continue
        if lower == "accept-encoding":
            has_encoding = True
        lines.append(f"{name}: {value}\r\n")
    if not has_encoding:
        lines.append("accept-encoding: gzip, deflate\r\n")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {len(body) if body else 0}\r\n")
    head = "".join(lines)
    expected = len(lines) + 1  # the first entry holds the request line and Host
    if head.count("\n") != expected or head.count("\r") != expected:
        raise TransportError("a request header contains a line break")  # header injection, refused
    encoded = head.encode("utf-8") + b"\r\n"
    return encoded + body if body else encoded


def _describe(origin: _Origin) -> str:
    host = f"[{origin.host}]" if ":" in origin.host else origin.host
    return f"{origin.scheme}://{host}:{origin.port}"

