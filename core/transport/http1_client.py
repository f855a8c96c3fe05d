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
import socket
import ssl
import time
from collections import deque
from collections.abc import Mapping

from core.errors import InvalidRequestError
from core.security.ssrf import SsrfGuard
from core.transport.base import TransportConnectError, TransportError, TransportTimeout
from core.transport.http1_connection import Connection, Http1Response, StaleConnectionError
from core.transport.http1_wire import Origin, describe_origin, encode_request, origin_text, split_url

#: How long an idle pooled connection is trusted (aiohttp's keepalive_timeout; providers close theirs later).
KEEPALIVE_S = 15.0
#: Resolved addresses are reused this long (aiohttp's ttl_dns_cache in the previous client).
DNS_TTL_S = 10.0

__all__ = ["Http1Response", "Http1UpstreamClient", "split_url"]


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
        self._idle: dict[Origin, list[Connection]] = {}
        self._open = 0
        self._all: set[Connection] = set()
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
        request = encode_request(method, target, host_header, headers, body)
        for _ in range(2):
            conn = await self._acquire(origin)
            response = Http1Response(conn, self._read_timeout)
            try:
                conn.start(response, request)
                await response.wait_headers()
            except StaleConnectionError:
                response.released = True
                conn.release(False)
                continue
            except BaseException:
                response.released = True
                conn.release(False)
                raise
            return response
        raise TransportError(f"the provider at {origin_text(url)} closed the connection twice without responding")

    # --- the pool ----------------------------------------------------------------------------------------
    async def _acquire(self, origin: Origin) -> Connection:
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

    async def _connect(self, origin: Origin) -> Connection:
        addresses = await self._resolve(origin)
        loop = asyncio.get_running_loop()
        tls = self._ssl_context() if origin.tls else None
        last: BaseException | None = None
        for family, address in addresses:
            conn = Connection(self, origin)
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await loop.create_connection(
                        lambda conn=conn: conn, address, origin.port, family=family, ssl=tls,
                        server_hostname=origin.host if tls is not None else None,
                    )
            except TimeoutError:
                raise TransportTimeout(f"timed out connecting to {describe_origin(origin)}") from None
            except ssl.SSLError as exc:
                message = f"could not connect to {describe_origin(origin)}: TLS failed ({exc.reason or exc})"
                raise TransportConnectError(message) from None
            except OSError as exc:
                last = exc
                continue
            self._all.add(conn)
            return conn
        reason = getattr(last, "strerror", None) or str(last) or type(last).__name__
        raise TransportConnectError(f"could not connect to {describe_origin(origin)}: {reason}")

    async def _resolve(self, origin: Origin) -> list[tuple[int, str]]:
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
                raise TransportConnectError(f"could not connect to {describe_origin(origin)}: "
                                            f"{exc.strerror or 'name resolution failed'}") from None
            addresses = list(dict.fromkeys((info[0], str(info[4][0])) for info in infos))
            if len(self._dns) > 1024:
                self._dns.clear()
            self._dns[key] = (now, addresses)
        if self._guard is not None and self._guard.is_guarded(origin.host):
            try:
                self._guard.check_addresses(origin.host, [address for _, address in addresses])
            except InvalidRequestError as exc:
                raise TransportConnectError(f"could not connect to {describe_origin(origin)}: {exc.message}") from None
        return addresses

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def put_back(self, conn: Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.origin, []).append(conn)
        if self._waiters:  # someone waits for a slot: this one is reusable, or evictable for another origin
            self._wake_one()

    def forget(self, conn: Connection) -> None:
        """A connection closed (by us or the provider): it no longer counts against the limit."""
        if conn in self._all:
            self._all.discard(conn)
            self._open -= 1
            idle = self._idle.get(conn.origin)
            if idle and conn in idle:
                idle.remove(conn)
            self._wake_one()

    def _discard(self, conn: Connection) -> None:
        conn.close()
        self.forget(conn)

    def _evict_idle(self) -> bool:
        """At the limit: close the longest-idle connection to make room, if any is idle."""
        oldest: Connection | None = None
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
