"""A deliberately cheap OpenAI upstream for the benchmark: raw asyncio Protocol + httptools + uvloop.

It must cost far less CPU per request than anything it is compared with, otherwise the benchmark measures
the mock instead of the proxy in front of it. So there is no framework, responses are prebuilt bytes, and
the only per-request work is parsing the request and checking whether the body asks for a stream.

    python bench/mock_upstream.py --port 0     # prints "PORT <n>" on stdout once it listens
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys

import httptools
import uvloop

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench0000000000000000000000000",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
        "system_fingerprint": "fp_bench",
    },
    separators=(",", ":"),
).encode()

STREAM_WORDS = ["Hello", "!", " How", " can", " I", " help", " you", " today?"]


def _chunk(delta: dict[str, str], finish: str | None) -> bytes:
    """One chat.completion.chunk event, shaped like OpenAI's so the gateway does its production work."""
    body = {
        "id": "chatcmpl-bench0000000000000000000000000",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _chunked(payload: bytes) -> bytes:
    """Frame bytes as one HTTP/1.1 chunk (streams use chunked transfer encoding, as OpenAI's do)."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _build_responses() -> tuple[bytes, bytes]:
    """Prebuild both complete responses once; serving one is then a single transport.write()."""
    plain = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: keep-alive\r\n\r\n%s" % (len(COMPLETION), COMPLETION)
    )
    events = [_chunk({"role": "assistant", "content": ""}, None)]
    events += [_chunk({"content": word}, None) for word in STREAM_WORDS[:-1]]
    events += [_chunk({"content": STREAM_WORDS[-1]}, "stop"), b"data: [DONE]\n\n"]
    stream = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n" \
             b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
    stream += b"".join(_chunked(event) for event in events) + b"0\r\n\r\n"
    return plain, stream


PLAIN_RESPONSE, STREAM_RESPONSE = _build_responses()
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


def _wants_stream(body: bytes) -> bool:
    """True when the JSON body has "stream": true; a byte test first so plain requests skip json.loads."""
    if b'"stream"' not in body:
        return False
    try:
        return json.loads(body).get("stream") is True
    except ValueError:
        return False


class MockProtocol(asyncio.Protocol):
    """One connection: httptools parses (keep-alive, pipelining); each complete request is answered."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:  # uvloop and asyncio already set TCP_NODELAY: belt and braces
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    # httptools callbacks -------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.transport is None:
            return
        if self.parser.get_method() != b"POST" or self.url.split(b"?", 1)[0] != b"/v1/chat/completions":
            self.transport.write(NOT_FOUND)
        elif _wants_stream(b"".join(self.body)):
            self.transport.write(STREAM_RESPONSE)
        else:
            self.transport.write(PLAIN_RESPONSE)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve(host: str, port: int) -> None:
    """Listen and report the bound port on stdout, so the parent can use port 0 without a race."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(MockProtocol, host, port, backlog=1024, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        uvloop.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
