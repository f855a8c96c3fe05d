"""A small asyncio client for the Lambda Runtime API (``AWS_LAMBDA_RUNTIME_API``), including response streaming.

Why our own: awslambdaric (the Python runtime client) has no streaming API, and a streamed response needs what
no common Python HTTP client sends — a chunked request body written chunk by chunk as the app produces it, ended
by HTTP trailers when the function fails mid-stream. The protocol (runtime API 2018-06-01):

    GET  /2018-06-01/runtime/invocation/next             → event JSON; Lambda-Runtime-Aws-Request-Id,
                                                           Lambda-Runtime-Deadline-Ms, ...-Invoked-Function-Arn,
                                                           ...-Trace-Id headers
    POST /2018-06-01/runtime/invocation/{id}/response    buffered: the result JSON
                                                           streamed: Lambda-Runtime-Function-Response-Mode:
                                                           streaming, Transfer-Encoding: chunked, and on failure
                                                           the Lambda-Runtime-Function-Error-Type / -Body trailers
    POST /2018-06-01/runtime/invocation/{id}/error       an error before any response byte
    POST /2018-06-01/runtime/init/error                  the function could not start

One connection per call: the API is on the local host, and a connection held across a freeze is not worth
reviving.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

import orjson

API_VERSION = "2018-06-01"
ERROR_TYPE_TRAILER = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"


class RuntimeApiError(ConnectionError):
    """The Runtime API refused a call or went away (Lambda then ends the execution environment)."""


@dataclass(frozen=True, slots=True)
class Invocation:
    request_id: str
    deadline_ms: int
    function_arn: str
    trace_id: str | None
    event: bytes


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes


def error_document(error_type: str, message: str) -> bytes:
    return orjson.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": []})


class RuntimeApiClient:
    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"AWS_LAMBDA_RUNTIME_API must be host:port, got {address!r}")
        self.host, self.port, self.address = host, int(port), address

    async def next_invocation(self) -> Invocation:
        """Blocks (no timeout: the environment may be frozen in here) until Lambda hands over an event."""
        response = await self._call("GET", f"/{API_VERSION}/runtime/invocation/next")
        if response.status != 200:
            raise RuntimeApiError(f"GET invocation/next answered {response.status}")
        headers = response.headers
        return Invocation(
            request_id=headers["lambda-runtime-aws-request-id"],
            deadline_ms=int(headers.get("lambda-runtime-deadline-ms", "0") or 0),
            function_arn=headers.get("lambda-runtime-invoked-function-arn", ""),
            trace_id=headers.get("lambda-runtime-trace-id"),
            event=response.body,
        )

    async def post_response(self, request_id: str, result: bytes) -> None:
        await self._post(f"/{API_VERSION}/runtime/invocation/{request_id}/response", result)

    async def post_error(self, request_id: str, error_type: str, message: str) -> None:
        await self._post(f"/{API_VERSION}/runtime/invocation/{request_id}/error", error_document(error_type, message),
                         {"Lambda-Runtime-Function-Error-Type": error_type})

    async def post_init_error(self, error_type: str, message: str) -> None:
        await self._post(f"/{API_VERSION}/runtime/init/error", error_document(error_type, message),
                         {"Lambda-Runtime-Function-Error-Type": error_type})

    async def open_stream(self, request_id: str, content_type: str) -> ResponseStream:
        """Start a streamed response; write chunks with :meth:`ResponseStream.write`, end with ``finish``."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        head = (f"POST /{API_VERSION}/runtime/invocation/{request_id}/response HTTP/1.1\r\n"
                f"Host: {self.address}\r\n"
                "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
                "Transfer-Encoding: chunked\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Trailer: {ERROR_TYPE_TRAILER}, {ERROR_BODY_TRAILER}\r\n"
                "Connection: close\r\n\r\n")
        writer.write(head.encode("latin-1"))
        await writer.drain()
        return ResponseStream(reader, writer)

    async def _post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        response = await self._call("POST", path, body, headers)
        if response.status >= 300:
            raise RuntimeApiError(f"POST {path.rsplit('/', 1)[-1]} answered {response.status}")

    async def _call(self, method: str, path: str, body: bytes = b"",
                    headers: dict[str, str] | None = None) -> _Response:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise RuntimeApiError(f"cannot reach the runtime API at {self.address}: {exc.strerror}") from None
        try:
            lines = [f"{method} {path} HTTP/1.1", f"Host: {self.address}", "Connection: close"]
            lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
            if method != "GET":
                lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            return await read_response(reader)
        finally:
            writer.close()


class ResponseStream:
    """One streamed response: each :meth:`write` is one HTTP chunk on the wire, sent at once."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self.finished = False

    async def write(self, data: bytes) -> None:
        if not data:
            return  # an empty chunk would end the body
        self._writer.write(b"%x\r\n%b\r\n" % (len(data), data))
        await self._writer.drain()

    async def finish(self, error: tuple[str, str] | None = None) -> int:
        """End the body — with the error trailers when the function failed mid-stream; returns the API's status."""
        self.finished = True
        trailers = b""
        if error is not None:
            error_type, message = error
            encoded = base64.b64encode(error_document(error_type, message)).decode("ascii")
            trailers = f"{ERROR_TYPE_TRAILER}: {error_type}\r\n{ERROR_BODY_TRAILER}: {encoded}\r\n".encode("latin-1")
        try:
            self._writer.write(b"0\r\n" + trailers + b"\r\n")
            await self._writer.drain()
            response = await read_response(self._reader)
        finally:
            self._writer.close()
        return response.status

    def abort(self) -> None:
        self.finished = True
        self._writer.close()


async def read_response(reader: asyncio.StreamReader) -> _Response:
    """An HTTP/1.1 response: Content-Length or chunked body, else everything until the server closes."""
    status_line = await reader.readline()
    if not status_line:
        raise RuntimeApiError("the runtime API closed the connection without answering")
    try:
        status = int(status_line.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise RuntimeApiError(f"unexpected status line {status_line[:60]!r}") from None
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while (size := int((await reader.readline()).split(b";")[0].strip() or b"0", 16)) > 0:
            parts.append(await reader.readexactly(size))
            await reader.readline()
        while await reader.readline() not in (b"\r\n", b"\n", b""):
            pass
        body = b"".join(parts)
    else:
        body = await reader.read()
    return _Response(status, headers, body)
