"""The HTTP/1.1 upstream client against scripted servers that write exact bytes: framing, pooling, failures.

Each server is a real asyncio TCP server on a random loopback port; its handler reads one request head (and body by
Content-Length) at a time and answers with the bytes the test scripts, so every framing and failure case is on the
wire exactly as a provider (or a broken one) would put it there.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.security.ssrf import SsrfGuard
from core.transport.base import TransportConnectError, TransportError, TransportTimeout
from core.transport.http1_client import Http1UpstreamClient, split_url
from tests.fakes.azure_identity import write_tls_files

Reply = Callable[["Exchange", asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class Exchange:
    """One request as the server read it."""

    head: str
    body: bytes
    connection: int

    @property
    def request_line(self) -> str:
        return self.head.split("\r\n", 1)[0]

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name:
                return value.strip()
        return None


@dataclass
class ScriptedServer:
    """Answers each request with ``reply`` (which returns False to close the connection afterwards)."""

    reply: Reply
    tls: ssl.SSLContext | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    def url(self, path: str = "/v1/chat/completions", scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                exchange = Exchange(head, b"", number)
                length = exchange.header("content-length")
                exchange.body = await reader.readexactly(int(length)) if length else b""
                self.exchanges.append(exchange)
                if not await self.reply(exchange, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


def ok_json(body: bytes = b'{"ok":true}', extra: str = "") -> Reply:
    async def reply(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     f"{extra}\r\n".encode() + body)
        await writer.drain()
        return True

    return reply


@pytest.fixture
async def client() -> AsyncIterator[Http1UpstreamClient]:
    upstream = Http1UpstreamClient(max_connections=10, connect_timeout_s=2, read_timeout_s=2)
    yield upstream
    await upstream.aclose()


async def test_sends_the_request_as_given_and_reuses_the_connection(client: Http1UpstreamClient) -> None:
    async with ScriptedServer(ok_json()) as server:
        for _ in range(5):
            response = await client.send("POST", server.url(), headers={"authorization": "Bearer sk-1",
                                                                         "content-type": "application/json"},
                                         body=b'{"model":"m"}')
            assert response.status == 200
            assert response.header("CONTENT-TYPE") == "application/json"
            assert await response.read() == b'{"ok":true}'
    assert server.connections == 1
    first = server.exchanges[0]
    assert first.request_line == "POST /v1/chat/completions HTTP/1.1"
    assert first.header("host") == f"127.0.0.1:{server.port}"
    assert first.header("authorization") == "Bearer sk-1"
    assert first.header("content-length") == "13"
    assert first.body == b'{"model":"m"}'


async def test_get_without_body_sends_no_content_length(client: Http1UpstreamClient) -> None:
    async with ScriptedServer(ok_json()) as server:
        response = await client.send("GET", server.url("/v1/models?limit=2"), headers={})
        await response.read()
    assert server.exchanges[0].request_line == "GET /v1/models?limit=2 HTTP/1.1"
    assert server.exchanges[0].header("content-length") is None


async def test_chunked_and_close_delimited_and_empty_bodies(client: Http1UpstreamClient) -> None:
    replies = iter([
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    ])

    async def reply(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        data = next(replies)
        writer.write(data)
        await writer.drain()
        return not data.startswith(b"HTTP/1.0")

    async with ScriptedServer(reply) as server:
        assert await (await client.send("POST", server.url(), headers={}, body=b"{}")).read() == b"hello world"
        empty = await client.send("POST", server.url(), headers={}, body=b"{}")
        assert (empty.status, await empty.read()) == (204, b"")
        assert await (await client.send("POST", server.url(), headers={}, body=b"{}")).read() == b"until the end"
    assert server.connections == 1
    assert client.open_connections == 0  # the HTTP/1.0 answer ended its connection


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_bodies_are_decoded(client: Http1UpstreamClient, encoding: str) -> None:
    plain = b'{"text":"' + b"compressible " * 500 + b'"}'
    if encoding == "gzip":
        packed = gzip.compress(plain)
    elif encoding == "deflate":
        packed = zlib.compress(plain)
    else:
        squeezer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        packed = squeezer.compress(plain) + squeezer.flush()
    name = "gzip" if encoding == "gzip" else "deflate"
    async with ScriptedServer(ok_json(packed, f"Content-Encoding: {name}\r\n")) as server:
        response = await client.send("POST", server.url(), headers={}, body=b"{}")
        assert await response.read() == plain
    assert server.exchanges[0].header("accept-encoding") == "gzip, deflate"


async def test_a_stream_is_relayed_chunk_by_chunk_as_it_arrives(client: Http1UpstreamClient) -> None:
    release = asyncio.Event()

    async def reply(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"d\r\ndata: first\n\n\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"e\r\ndata: second\n\n\r\n0\r\n\r\n")
        await writer.drain()
        return True

    async with ScriptedServer(reply) as server:
        response = await client.send("POST", server.url(), headers={}, body=b"{}")
        chunks = response.iter_chunks()
        assert await asyncio.wait_for(anext(chunks), 1) == b"data: first\n\n"  # before the second was sent
        release.set()
        assert [chunk async for chunk in chunks] == [b"data: second\n\n"]
        again = await client.send("POST", server.url(), headers={}, body=b"{}")
        release.set()
        assert b"".join([chunk async for chunk in again.iter_chunks()]) == b"data: first\n\ndata: second\n\n"
    assert server.connections == 1  # a stream read to its end leaves the connection reusable


async def test_a_large_stream_read_slowly_arrives_whole(client: Http1UpstreamClient) -> None:
    piece = b"x" * 65536
    count = 64  # 4 MiB: past the client's high-water mark, so reading pauses and resumes

    async def reply(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(piece) * count}\r\n\r\n".encode())
        for _ in range(count):
            writer.write(piece)
            await writer.drain()
        return True

    async with ScriptedServer(reply) as server:
        response = await client.send("POST", server.url(), headers={}, body=b"{}")
        received = 0
        async for chunk in response.iter_chunks():
            received += len(chunk)
            await asyncio.sleep(0.001)
        assert received == len(piece) * count


async def test_an_abandoned_stream_closes_its_connection(client: Http1UpstreamClient) -> None:
    async def reply(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await asyncio.sleep(5)
        return False

    async with ScriptedServer(reply) as server:
        response = await client.send("POST", server.url(), headers={}, body=b"{}")
        chunks = response.iter_chunks()
        assert await anext(chunks) == b"first"
        await chunks.aclose()
        await response.aclose()
        assert client.open_connections == 0
        await (await asyncio.wait_for(client.send("POST", server.url(), headers={}, body=b"{}"), 1)).aclose()
    assert server.connections == 2


async def test_an_idle_connection_closed_by_the_server_is_replaced_transparently(
        client: Http1UpstreamClient) -> None:
    """The server drops the keep-alive connection after each answer without saying so (as idle timeouts do)."""

    async def reply(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return False

    async with ScriptedServer(reply) as server:
        for _ in range(3):
            response = await client.send("POST", server.url(), headers={}, body=b"{}")
            assert await response.read() == b"ok"
            await asyncio.sleep(0.05)  # the close reaches the client before the next request
        assert server.connections == 3
        assert len(server.exchanges) == 3  # every request was seen exactly once


async def test_a_fresh_connection_closed_without_an_answer_is_an_error(client: Http1UpstreamClient) -> None:
    async def reply(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        return False

    async with ScriptedServer(reply) as server:
        with pytest.raises(TransportError, match="closed the connection"):
            await client.send("POST", server.url(), headers={}, body=b"{}")
        assert len(server.exchanges) == 1  # not retried: the request may have been acted on


async def test_a_body_cut_short_is_an_error(client: Http1UpstreamClient) -> None:
    async def reply(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        return False

    async with ScriptedServer(reply) as server:
        response = await client.send("POST", server.url(), headers={}, body=b"{}")
        with pytest.raises(TransportError, match="before the response was complete"):
            await response.read()


async def test_silence_past_the_read_timeout_fails(client: Http1UpstreamClient) -> None:
    quick = Http1UpstreamClient(max_connections=2, connect_timeout_s=1, read_timeout_s=0.3)

    async def slow_headers(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(2)
        return False

    async def slow_body(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):  # bytes every 0.2 s keep the call alive past the 0.3 s timeout ...
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # ... then silence does not
        return False

    try:
        async with ScriptedServer(slow_headers) as server:
            with pytest.raises(TransportTimeout, match="response headers"):
                await quick.send("POST", server.url(), headers={}, body=b"{}")
        async with ScriptedServer(slow_body) as server:
            response = await quick.send("POST", server.url(), headers={}, body=b"{}")
            received = []
            with pytest.raises(TransportTimeout, match="next chunk"):
                async for chunk in response.iter_chunks():
                    received.append(chunk)
            assert b"".join(received) == b"xxx"
        assert quick.open_connections == 0
    finally:
        await quick.aclose()


async def test_connections_are_capped_and_waiters_served(client: Http1UpstreamClient) -> None:
    capped = Http1UpstreamClient(max_connections=2, connect_timeout_s=1, read_timeout_s=5)

    async def slow(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return True

    async def one(url: str) -> bytes:
        return await (await capped.send("POST", url, headers={}, body=b"{}")).read()

    try:
        async with ScriptedServer(slow) as first, ScriptedServer(slow) as second:
            urls = [first.url(), second.url()] * 5
            assert await asyncio.gather(*(one(url) for url in urls)) == [b"ok"] * 10
            assert first.most_open + second.most_open <= 3  # an idle one is closed to open the other origin's
            assert capped.open_connections <= 2
    finally:
        await capped.aclose()


async def test_refused_connections_and_bad_urls(client: Http1UpstreamClient) -> None:
    async with ScriptedServer(ok_json()) as server:
        port = server.port
    with pytest.raises(TransportConnectError, match="could not connect"):
        await client.send("POST", f"http://127.0.0.1:{port}/v1", headers={}, body=b"{}")
    with pytest.raises(TransportError, match="only absolute http"):
        await client.send("POST", "ftp://example.com/v1", headers={}, body=b"{}")


async def test_line_breaks_in_headers_are_refused(client: Http1UpstreamClient) -> None:
    async with ScriptedServer(ok_json()) as server:
        with pytest.raises(TransportError, match="line break"):
            await client.send("POST", server.url(), headers={"x-note": "a\r\nx-injected: 1"}, body=b"{}")
    assert server.exchanges == []


async def test_malformed_responses_are_errors(client: Http1UpstreamClient) -> None:
    async def reply(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        return True

    async with ScriptedServer(reply) as server:
        with pytest.raises(TransportError, match="malformed"):
            await client.send("POST", server.url(), headers={}, body=b"{}")


async def test_interim_responses_are_skipped(client: Http1UpstreamClient) -> None:
    async def reply(exchange: Exchange, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
        await writer.drain()
        return True

    async with ScriptedServer(reply) as server:
        response = await client.send("POST", server.url(), headers={}, body=b"{}")
        assert (response.status, await response.read()) == (200, b"done")


def test_urls_are_split_once_and_unsafe_characters_encoded() -> None:
    origin, target, host = split_url("https://bedrock-runtime.us-east-1.amazonaws.com/model/a.b-v1:0/converse")
    assert (origin.scheme, origin.host, origin.port) == ("https", "bedrock-runtime.us-east-1.amazonaws.com", 443)
    assert target == "/model/a.b-v1:0/converse"  # ':' stays literal: SigV4 signed this exact path
    assert host == "bedrock-runtime.us-east-1.amazonaws.com"
    assert split_url("http://[::1]:8080/a b?q=1%202")[1:] == ("/a%20b?q=1%202", "[::1]:8080")
    assert split_url("http://example.com")[1] == "/"


async def test_tls_with_a_trusted_certificate(tmp_path: Path) -> None:
    ca_file, key_file = write_tls_files(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(ca_file, key_file)
    trusting = Http1UpstreamClient(max_connections=2, connect_timeout_s=2, read_timeout_s=2,
                                   ssl_context=ssl.create_default_context(cafile=str(ca_file)))
    untrusting = Http1UpstreamClient(max_connections=2, connect_timeout_s=2, read_timeout_s=2)
    try:
        async with ScriptedServer(ok_json(), tls=server_tls) as server:
            for _ in range(2):
                response = await trusting.send("POST", server.url(scheme="https", host="localhost"), headers={},
                                               body=b"{}")
                assert await response.read() == b'{"ok":true}'
            assert server.connections == 1
            with pytest.raises(TransportConnectError, match="TLS"):
                await untrusting.send("POST", server.url(scheme="https", host="localhost"), headers={}, body=b"{}")
    finally:
        await trusting.aclose()
        await untrusting.aclose()


async def test_the_ssrf_guard_rechecks_the_addresses_of_custom_hosts() -> None:
    """DNS rebinding: a custom host approved by name that now resolves to loopback is refused at connect time."""
    guard = SsrfGuard([])
    guard._guarded_hosts["localhost"] = None  # as if check_url had approved it as a public name
    guarded = Http1UpstreamClient(max_connections=2, connect_timeout_s=1, read_timeout_s=1, guard=guard)
    try:
        async with ScriptedServer(ok_json()) as server:
            with pytest.raises(TransportConnectError, match="non-public"):
                await guarded.send("POST", server.url(host="localhost"), headers={}, body=b"{}")
            response = await guarded.send("POST", server.url(), headers={}, body=b"{}")  # not a custom host
            assert await response.read() == b'{"ok":true}'
        assert len(server.exchanges) == 1
    finally:
        await guarded.aclose()
