"""The gateway's HTTP/1.1 server protocol under uvicorn's real server loop, driven with raw sockets and http.client.

Each test serves a small ASGI app through ``uvicorn.Server(http=GatewayHttpProtocol)`` on a free loopback port, in
a background thread, on both event loops the gateway runs on (uvloop in ``skyrelay serve``, asyncio elsewhere), and
checks the bytes on the wire: framing, keep-alive, pipelining, flow control, errors, timeouts and shutdown.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn

from core.server import GatewayHttpProtocol
from core.server.protocol import MAX_HEAD_BYTES
from tests.support.gateway_process import free_port

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@contextmanager
def serving(app: App, loop: str, **config: Any) -> Iterator[tuple[int, uvicorn.Server]]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, loop=loop, http=GatewayHttpProtocol,
                                           lifespan="off", log_level="critical", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    try:
        yield port, server
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(params=["uvloop", "asyncio"])
def loop_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One response off the socket (Content-Length or chunked), leaving what follows in ``buffer``."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed mid-head: {bytes(buffer)!r}")
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(b": ") for line in lines)}
    buffer[:] = rest
    if b"content-length" in headers:
        size = int(headers[b"content-length"])
        while len(buffer) < size:
            buffer += sock.recv(65536)
        body = bytes(buffer[:size])
        buffer[:] = buffer[size:]
        return status_line, headers, body
    if headers.get(b"transfer-encoding") == b"chunked":
        body = b""
        while True:
            while b"\r\n" not in buffer:
                buffer += sock.recv(65536)
            size_line, _, _ = bytes(buffer).partition(b"\r\n")
            size = int(size_line, 16)
            while len(buffer) < len(size_line) + 2 + size + 2:
                buffer += sock.recv(65536)
            body += bytes(buffer[len(size_line) + 2:len(size_line) + 2 + size])
            buffer[:] = buffer[len(size_line) + 2 + size + 2:]
            if size == 0:
                return status_line, headers, body
    return status_line, headers, b""


def read_to_close(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with what it was asked: method, path, raw path, query, headers and body, as JSON."""
    body = await read_body(receive)
    if scope["path"] == "/slow":
        await asyncio.sleep(0.2)
    answer = json.dumps({"method": scope["method"], "path": scope["path"], "raw_path": scope["raw_path"].decode(),
                         "query": scope["query_string"].decode(), "http_version": scope["http_version"],
                         "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
                         "body": body.decode()}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


def test_keep_alive_serves_requests_in_turn_on_one_connection(loop_name: str) -> None:
    with serving(echo, loop_name) as (port, _):
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for i in range(3):
            client.request("POST", f"/v1/x%20y?n={i}", body=f"body {i}", headers={"X-Custom": "Value"})
            response = client.getresponse()
            seen = json.loads(response.read())
            assert response.status == 200
            assert response.getheader("date")
            assert seen == {"method": "POST", "path": "/v1/x y", "raw_path": "/v1/x%20y", "query": f"n={i}",
                            "http_version": "1.1", "body": f"body {i}",
                            "headers": {**seen["headers"], "x-custom": "Value"}}
        first_socket = client.sock
        client.request("GET", "/again")
        client.getresponse().read()
        assert client.sock is first_socket


def test_pipelined_requests_are_answered_in_order(loop_name: str) -> None:
    with serving(echo, loop_name) as (port, _), connect(port) as sock:
        sock.sendall(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
                     b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"POST /last HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nend\r\n0\r\n\r\n")
        buffer = bytearray()
        answers = [json.loads(read_response(sock, buffer)[2]) for _ in range(3)]
        assert [(a["path"], a["body"]) for a in answers] == [("/slow", "one"), ("/fast", ""), ("/last", "end")]


def test_a_chunked_request_body_reaches_the_app_whole(loop_name: str) -> None:
    with serving(echo, loop_name) as (port, _), connect(port) as sock:
        sock.sendall(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        time.sleep(0.05)
        sock.sendall(b"6\r\n world\r\n0\r\n\r\n")
        assert json.loads(read_response(sock, bytearray())[2])["body"] == "hello world"


def test_expect_100_continue_is_answered_when_the_app_reads_the_body(loop_name: str) -> None:
    with serving(echo, loop_name) as (port, _), connect(port) as sock:
        sock.sendall(b"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        status, _, body = read_response(sock, bytearray())
        assert status == b"HTTP/1.1 200 OK" and json.loads(body)["body"] == "data"


def test_a_large_body_is_read_under_flow_control(loop_name: str) -> None:
    payload = b"x" * (3 * 1024 * 1024)
    with serving(echo, loop_name) as (port, _), connect(port) as sock:
        sock.sendall(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
        assert len(json.loads(read_response(sock, bytearray())[2])["body"]) == len(payload)


def test_malformed_request_gets_an_openai_style_400_and_the_connection_closes(loop_name: str) -> None:
    with serving(echo, loop_name) as (port, _), connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        data = read_to_close(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"connection: close" in head
    assert json.loads(body)["error"]["code"] == "invalid_http_request"


def test_an_endless_request_head_is_refused_with_431(loop_name: str) -> None:
    with serving(echo, loop_name) as (port, _), connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ")
        sent, received = 0, b""
        try:
            while sent <= MAX_HEAD_BYTES + 65536:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except OSError:  # the server answered and closed while we were still sending
            pass
        received = read_to_close(sock)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert json.loads(body)["error"]["code"] == "request_headers_too_large"


def test_a_body_sent_whole_without_a_length_gets_one(loop_name: str) -> None:
    """(That it leaves in one write is checked on a recording transport: test_protocol_writes.py.)"""

    async def unsized(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": [(b"X-Made", b"here")]})
        await send({"type": "http.response.body", "body": b"whole body"})

    with serving(unsized, loop_name) as (port, _), connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock, bytearray())
    assert status == b"HTTP/1.1 201 Created"
    assert headers[b"x-made"] == b"here" and headers[b"content-length"] == b"10" and body == b"whole body"


def test_a_stream_of_unknown_length_is_chunked_and_each_chunk_leaves_at_once(loop_name: str) -> None:
    release = threading.Event()

    async def stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: one\n\n", "more_body": True})
        assert await asyncio.to_thread(release.wait, 5)
        await send({"type": "http.response.body", "body": b"data: two\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    with serving(stream, loop_name) as (port, _), connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"data: one" not in first:
            first += sock.recv(65536)  # arrives while the app still holds the rest back
        assert b"transfer-encoding: chunked" in first
        release.set()
        rest = b""
        while not rest.endswith(b"0\r\n\r\n"):
            rest += sock.recv(65536)
        assert rest == b"b\r\ndata: two\n\n\r\n0\r\n\r\n"


def test_a_client_that_goes_away_mid_stream_is_seen_by_the_app(loop_name: str) -> None:
    seen: list[str] = []

    async def watcher(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        seen.append((await receive())["type"])

    with serving(watcher, loop_name) as (port, _):
        with connect(port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            while b"first" not in sock.recv(65536):
                pass
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    assert seen == ["http.disconnect"]


def test_head_requests_get_headers_only(loop_name: str) -> None:
    with serving(echo, loop_name) as (port, _), connect(port) as sock:
        sock.sendall(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b'"/after"' not in data:
            data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 0" not in head
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")  # no body bytes between the HEAD answer and the next one


def test_an_app_failure_before_the_response_is_a_json_500_and_the_server_carries_on(loop_name: str) -> None:
    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/fail":
            raise ValueError("bug")
        await echo(scope, receive, send)

    with serving(broken, loop_name) as (port, _):
        with connect(port) as sock:
            sock.sendall(b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
            data = read_to_close(sock)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 500 Internal Server Error\r\n") and b"connection: close" in head
        assert json.loads(body)["error"] == {"message": "The gateway failed while handling the request.",
                                             "type": "api_error", "param": None, "code": "internal_error"}
        assert b"bug" not in data and b"Traceback" not in data
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        client.request("GET", "/ok")
        assert client.getresponse().status == 200


def test_a_header_value_that_would_split_the_response_is_never_written(loop_name: str) -> None:
    async def injecting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-echo", b"a\r\nset-cookie: evil=1"), (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    with serving(injecting, loop_name) as (port, _), connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_to_close(sock)
    assert data.startswith(b"HTTP/1.1 500 ") and b"evil" not in data


def test_http_1_0_closes_after_the_response(loop_name: str) -> None:
    with serving(echo, loop_name) as (port, _), connect(port) as sock:
        sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
        data = read_to_close(sock)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"connection: close" in data


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(loop_name: str) -> None:
    with serving(echo, loop_name, timeout_keep_alive=1) as (port, _), connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(sock, bytearray())
        started = time.monotonic()
        sock.settimeout(5)
        assert sock.recv(10) == b""
        assert 0.8 < time.monotonic() - started < 3


def test_shutdown_lets_the_request_in_flight_finish_and_closes_idle_connections(loop_name: str) -> None:
    entered = threading.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        entered.set()
        await asyncio.sleep(0.5)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"done"})

    with serving(slow, loop_name) as (port, server), connect(port) as busy, connect(port) as idle:
        busy.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert entered.wait(5)
        server.should_exit = True
        data = read_to_close(busy)
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"done")
        assert b"connection: close" in data
        assert read_to_close(idle) == b""


def test_a_response_given_without_reading_an_expected_body_closes_the_connection(loop_name: str) -> None:
    async def refuse(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    with serving(refuse, loop_name) as (port, _), connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n")
        data = read_to_close(sock)
    assert data.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in data and b"connection: close" in data


def test_a_path_that_is_not_ascii_is_a_400(loop_name: str) -> None:
    with serving(echo, loop_name) as (port, _), connect(port) as sock:
        sock.sendall("GET /café HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = read_to_close(sock)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_an_upgrade_request_is_answered_as_plain_http_then_the_connection_ends(loop_name: str) -> None:
    with serving(echo, loop_name) as (port, _), connect(port) as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        data = read_to_close(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"connection: close" in head
    assert json.loads(body)["path"] == "/ws"


@pytest.mark.parametrize("head", [
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nTransfer-Encoding: identity\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
], ids=["content-length-and-chunked", "two-lengths", "chunked-not-last", "obs-fold", "space-in-name"])
def test_ambiguous_framing_is_refused_rather_than_guessed(loop_name: str, head: bytes) -> None:
    """Requests a proxy in front could frame differently from us (request smuggling) never reach the app."""
    seen: list[str] = []

    async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await echo(scope, receive, send)

    with serving(recording, loop_name) as (port, _), connect(port) as sock:
        sock.sendall(head)
        data = read_to_close(sock)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and seen == []


def test_past_limit_concurrency_a_request_gets_a_json_503(loop_name: str) -> None:
    entered = threading.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        entered.set()
        await asyncio.sleep(0.5)
        await echo(scope, receive, send)

    with serving(slow, loop_name, limit_concurrency=2) as (port, _), connect(port) as busy:
        busy.sendall(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        assert entered.wait(5)
        with connect(port) as second:
            second.sendall(b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
            refused = read_to_close(second)
        assert json.loads(read_response(busy, bytearray())[2])["path"] == "/first"
    head, _, body = refused.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and b"connection: close" in head
    assert json.loads(body)["error"]["code"] == "concurrency_limit"
