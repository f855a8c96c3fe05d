"""Streaming time to first byte and to first SSE event, measured on a raw socket so no client library's cost is
in the number.

Requests are sequential, one new connection each, so the number is latency, not queueing; every body is new, so
a stream's first byte comes from upstream, not a cache replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import statistics
import time
from typing import Any

from processes import HOST
from targets import PATH, STREAM_REQUEST, Target, tagged_body

STREAM_WARMUP = 10


def stream_request_bytes(port: int, headers: dict[str, str], tag: str) -> bytes:
    """A complete HTTP/1.1 request; Connection: close lets the reader take EOF as the end of the stream.

    `tag` makes the body one no cache has seen, so a stream's first byte comes from upstream, not a replay.
    """
    body = tagged_body(STREAM_REQUEST, tag)
    lines = [f"POST {PATH} HTTP/1.1", f"Host: {HOST}:{port}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Connection: close", "Accept: text/event-stream"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _one_stream(port: int, request: bytes) -> tuple[float, float, bool]:
    """Seconds to the first response byte and to the first SSE event, on a raw socket (no client cost).

    The stream ends at EOF or at the chunked terminator after [DONE]: Portkey's node server keeps the socket
    open despite Connection: close, until its 5 s keep-alive timeout.
    """
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        start = time.perf_counter()
        writer.write(request)
        received = b""
        first_byte = first_event = 0.0
        while chunk := await reader.read(65536):
            now = time.perf_counter()
            first_byte = first_byte or now - start
            received += chunk
            if not first_event:
                head_end = received.find(b"\r\n\r\n")
                if head_end >= 0 and b"data:" in received[head_end:]:
                    first_event = now - start
            if received.endswith(b"\r\n0\r\n\r\n") and b"data: [DONE]" in received:
                break
        ok = received.startswith(b"HTTP/1.1 200") and b"data: [DONE]" in received
        return first_byte, first_event, ok
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _measure_streams(port: int, headers: dict[str, str], count: int, warmup: int) -> dict[str, Any]:
    ttfb: list[float] = []
    first_event: list[float] = []
    failures = 0
    nonce = secrets.token_hex(4)
    for index in range(warmup + count):
        request = stream_request_bytes(port, headers, f"{nonce}-{index}")
        try:
            byte_s, event_s, ok = await asyncio.wait_for(_one_stream(port, request), timeout=10)
        except (OSError, TimeoutError):
            failures += 1
            continue
        if not ok:
            failures += 1
        elif index >= warmup:
            ttfb.append(byte_s * 1e6)
            first_event.append(event_s * 1e6)
    return {"requests": len(ttfb), "failures": failures,
            **_pcts("ttfb", ttfb), **_pcts("first_event", first_event)}


def _pcts(prefix: str, values_us: list[float]) -> dict[str, float | None]:
    if not values_us:
        return {f"{prefix}_p50_us": None, f"{prefix}_p99_us": None}
    values = sorted(values_us)
    return {f"{prefix}_p50_us": statistics.median(values),
            f"{prefix}_p99_us": values[min(len(values) - 1, round(0.99 * len(values)) - 1)]}


def measure_streaming(target: Target, count: int) -> dict[str, Any]:
    """N sequential stream requests; sequential so the number is latency, not queueing."""
    streams = _measure_streams(target.port, target.headers, count, warmup=STREAM_WARMUP)
    try:
        import uvloop

        return uvloop.run(streams)
    except ImportError:
        return asyncio.run(streams)
