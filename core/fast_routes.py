"""The hot routes served straight from the ASGI scope, ahead of FastAPI's middleware stack.

Profiles of the gateway under load showed about a quarter of each request spent in FastAPI/Starlette layers that
add nothing here (request objects, header mappings, telemetry and body-limit middlewares, an exception middleware
stack) before our handler ran. :class:`FastPath` serves ``POST /v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``, ``/v1/messages`` (Anthropic) and ``GET /v1/models`` directly to :func:`serve_call`; every
other path (health, ready, metrics, the OpenAPI document, errors) goes through FastAPI as usual, and the FastAPI
routes for the hot paths stay declared so the OpenAPI document still describes them.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from core.errors import InvalidRequestError, PayloadTooLargeError, SkyrelayError
from core.providers.base import Operation
from core.responses import BufferedResponse, StreamedResponse
from core.service import GatewayResponse, GatewayService, IncomingCall, error_response

if TYPE_CHECKING:
    from core.api.messages_endpoint import MessagesEndpoint

Handler = Callable[[IncomingCall], Awaitable[GatewayResponse]]
Route = tuple[Operation, Handler]

#: The ASGI server (httptools) puts no bound on request headers, so the app does: nginx allows 4 x 8 KiB by default
#: and Node 16 KiB; 64 KiB in 256 fields leaves room for long inline configs and still refuses header floods.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 256


def hot_routes(service: GatewayService) -> dict[tuple[str, str], Route]:
    """The routes served ahead of FastAPI: OpenAI's API, and Anthropic's Messages API in front of the same engine.

    The Anthropic translation is imported by the first ``/v1/messages`` request, not by every cold start."""

    @functools.cache
    def messages() -> MessagesEndpoint:
        from core.api.messages_endpoint import MessagesEndpoint

        return MessagesEndpoint(service)

    async def create_message(call: IncomingCall) -> GatewayResponse:
        return await messages().handle(call)

    async def count_tokens(call: IncomingCall) -> GatewayResponse:
        return await messages().handle(call, count_tokens=True)

    return {
        ("POST", "/v1/chat/completions"): (Operation.CHAT, service.handle),
        ("POST", "/v1/completions"): (Operation.COMPLETION, service.handle),
        ("POST", "/v1/embeddings"): (Operation.EMBEDDING, service.handle),
        ("GET", "/v1/models"): (Operation.MODELS, service.handle),
        ("POST", "/v1/messages"): (Operation.CHAT, create_message),
        ("POST", "/v1/messages/count_tokens"): (Operation.COUNT_TOKENS, count_tokens),
    }


def header_dict(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI header names are already lower-case; repeated headers are joined as HTTP allows."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def header_limit_error(raw: list[tuple[bytes, bytes]]) -> SkyrelayError | None:
    """A 431 for requests whose headers exceed the limits above, before anything reads them."""
    if len(raw) > MAX_HEADER_FIELDS:
        return InvalidRequestError(f"Too many request headers (the limit is {MAX_HEADER_FIELDS})",
                                   code="request_headers_too_large", status=431)
    if sum(len(name) + len(value) for name, value in raw) > MAX_HEADER_BYTES:
        return InvalidRequestError(f"The request headers are larger than the {MAX_HEADER_BYTES}-byte limit",
                                   code="request_headers_too_large", status=431)
    return None


def route_path(scope: Scope) -> str:
    """The request's path below the app's mount point (``root_path``), as routes are declared."""
    path: str = scope["path"]
    root = scope.get("root_path") or ""
    return path[len(root):] if root and path.startswith(root) else path


def check_content_type(headers: dict[str, str]) -> None:
    content_type = headers.get("content-type")
    if content_type and not content_type.split(";", 1)[0].strip().lower().endswith("json"):
        raise InvalidRequestError("Invalid content type passed: send application/json", code="invalid_content_type")


async def read_limited(headers: dict[str, str], chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The body, refusing anything over ``limit`` — early from Content-Length, else while reading."""
    declared = headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            raise InvalidRequestError("Content-Length is not a number") from None
        if too_big:
            raise PayloadTooLargeError(f"The request body is larger than the {limit}-byte limit")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"The request body is larger than the {limit}-byte limit")
        parts.append(chunk)
    return b"".join(parts)


async def serve_call(service: GatewayService, route: Route, method: str, path: str,
                     headers: dict[str, str], query: str, chunks: AsyncIterator[bytes], limit: int
                     ) -> GatewayResponse:
    operation, handler = route
    try:
        check_content_type(headers)
        body = await read_limited(headers, chunks, limit)
    except SkyrelayError as error:
        return service.reject(method, path, headers, error)
    return await handler(IncomingCall(operation=operation, method=method, path=path, headers=headers, body=body,
                                      query=query))


def asgi_response(response: GatewayResponse) -> BufferedResponse | StreamedResponse:
    if response.chunks is not None:
        return StreamedResponse(response.status, response.headers, response.chunks, response.media_type)
    return BufferedResponse(response.status, response.headers, response.body or b"", response.media_type)


async def _receive_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


class FastPath:
    """The hot routes, plus the header-size limit every request is held to, served straight from the scope."""

    def __init__(self, service: GatewayService, limit: int) -> None:
        self.service = service
        self.routes = hot_routes(service)
        self.limit = limit

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serve the request if it is ours to serve here; False when the caller should hand it on."""
        too_large = header_limit_error(scope["headers"])
        if too_large is not None:
            await asgi_response(error_response(too_large))(scope, receive, send)
            return True
        path = route_path(scope)
        route = self.routes.get((scope["method"], path))
        if route is None:
            return False
        headers = header_dict(scope["headers"])
        query = scope.get("query_string", b"").decode("latin-1")
        response = await serve_call(self.service, route, scope["method"], path, headers, query,
                                    _receive_body(receive), self.limit)
        await asgi_response(response)(scope, receive, send)
        return True
