"""What the protocol hands its transport, write by write: a socket test cannot tell one write from two."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from core.server import GatewayHttpProtocol


@dataclass
class RecordingTransport:
    """The parts of ``asyncio.Transport`` the protocol uses; keeps every write."""

    writes: list[bytes] = field(default_factory=list)
    closed: bool = False
    reading: bool = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8787)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


@dataclass
class Config:
    app: Any
    loaded: bool = True
    root_path: str = ""
    limit_concurrency: int | None = None
    timeout_keep_alive: float = 5.0

    @property
    def loaded_app(self) -> Any:
        return self.app


@dataclass
class ServerState:
    connections: set[Any] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    default_headers: list[tuple[bytes, bytes]] = field(
        default_factory=lambda: [(b"date", b"Fri, 27 Nov 2026 12:00:00 GMT")])
    total_requests: int = 0


async def exchange(app: Any, request: bytes) -> tuple[RecordingTransport, ServerState]:
    state = ServerState()
    protocol = GatewayHttpProtocol(Config(app), state, {})
    transport = RecordingTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(request)
    while state.tasks:
        await asyncio.gather(*state.tasks)
    protocol.connection_lost(None)
    return transport, state


async def test_a_buffered_response_is_one_write_of_head_and_body() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["body"] == b"{}"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"11")]})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})

    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    transport, state = await exchange(app, request)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ndate: Fri, 27 Nov 2026 12:00:00 GMT\r\n"
                                b"content-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}"]
    assert state.total_requests == 1 and not transport.closed


async def test_a_stream_writes_its_head_with_the_first_chunk_then_one_write_per_chunk() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for part in (b"data: 1\n\n", b"data: 2\n\n"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    transport, _ = await exchange(app, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.writes == [
        b"HTTP/1.1 200 OK\r\ndate: Fri, 27 Nov 2026 12:00:00 GMT\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n",
        b"9\r\ndata: 2\n\n\r\n",
        b"0\r\n\r\n",
    ]


async def test_a_connection_close_from_the_app_ends_the_connection_after_the_response() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": [(b"Connection", b"close")]})
        await send({"type": "http.response.body", "body": b""})

    transport, _ = await exchange(app, b"DELETE /x HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 204 No Content\r\ndate: Fri, 27 Nov 2026 12:00:00 GMT\r\n"
                                b"connection: close\r\n\r\n"]
    assert transport.closed
