"""The performance floor: the cheapest pass-through proxy Python can reasonably be, on the gateway's stack.

Same server (uvicorn, uvloop, httptools, one process, no access log) and same upstream client (one shared
aiohttp session) as the gateway, but no framework, routing, auth, provider translation or logging. Whatever
the gateway costs beyond this is the price of its features, and is what the benchmark reports.

    python bench/floor_proxy.py --port P --upstream http://127.0.0.1:M
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

NOT_FOUND = json.dumps({"error": "not found"}).encode()


class FloorProxy:
    """Raw ASGI app: forwards POST /v1/chat/completions to the upstream and relays status, type and body."""

    def __init__(self, upstream: str) -> None:
        self.url = upstream.rstrip("/") + "/v1/chat/completions"
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            if scope["method"] == "POST" and scope["path"] == "/v1/chat/completions":
                await self._forward(receive, send)
            else:
                await _respond(send, 404, b"application/json", NOT_FOUND)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The session lives as long as the process, as the gateway's does: a keep-alive upstream pool."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=1000, limit_per_host=0)
                self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        assert self.session is not None
        headers = {"content-type": "application/json"}
        async with self.session.post(self.url, data=body, headers=headers) as upstream:
            content_type = upstream.headers.get("content-type", "application/json").encode()
            if content_type.startswith(b"text/event-stream"):
                # Relay each chunk as it arrives, so streaming TTFB is comparable with the gateway's.
                await send({"type": "http.response.start", "status": upstream.status,
                            "headers": [(b"content-type", content_type), (b"cache-control", b"no-cache")]})
                async for chunk in upstream.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await _respond(send, upstream.status, content_type, await upstream.read())


async def _read_body(receive: Receive) -> bytes:
    """The whole request body (ASGI may deliver it in several messages)."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def _respond(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description="minimal pass-through proxy (the benchmark's floor)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL of the mock, e.g. http://127.0.0.1:9000")
    args = parser.parse_args()
    uvicorn.run(FloorProxy(args.upstream), host=args.host, port=args.port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning", workers=None, server_header=False, lifespan="on")


if __name__ == "__main__":
    main()
