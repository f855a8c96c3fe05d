"""``create_app(gateway)`` → the FastAPI app. Routes only read the request, call the service and render.

Request bodies are read as bytes under the size limit and parsed by the service (orjson, once): FastAPI's body
models would parse and validate a second time on the hot path. The OpenAPI document still describes every body
and error through ``openapi_extra`` (see :mod:`core.openapi`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from core import openapi
from core.asgi_app import metrics_response, ready_response, with_cors
from core.errors import InvalidRequestError, NotFoundError, SkyrelayError
from core.fast_routes import FastPath, asgi_response, serve_call
from core.responses import BufferedResponse, StreamedResponse
from core.service import GatewayResponse, error_response

if TYPE_CHECKING:
    from core.gateway import Gateway


class _Rendered(Response):
    """Lets FastAPI hand our raw ASGI responses through untouched (it only checks ``isinstance``)."""

    def __init__(self, inner: BufferedResponse | StreamedResponse) -> None:
        self.inner = inner
        self.background = None
        self.status_code = inner.status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.inner(scope, receive, send)


class SkyrelayApp(FastAPI):
    """FastAPI, with the hot routes served before its middleware stack (see :mod:`core.fast_routes`), and CORS
    (when configured) around both, so the hot routes get its headers too."""

    fast: FastPath | None = None
    front: ASGIApp | None = None  # CORS around :meth:`dispatch`

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is not None:
            await self.front(scope, receive, send)
        else:
            await self.dispatch(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.fast is not None and await self.fast.handle(scope, receive, send):
            return
        await super().__call__(scope, receive, send)


def render(response: GatewayResponse) -> Response:
    return _Rendered(asgi_response(response))


def _json(status: int, payload: Any) -> Response:
    return _Rendered(BufferedResponse(status, [], orjson.dumps(payload), "application/json"))


def create_app(gateway: Gateway, *, cors: bool = True) -> FastAPI:
    """The full app; ``cors=False`` when the caller applies CORS around it (:mod:`core.asgi_app`)."""
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gateway.startup()
        try:
            yield
        finally:
            await gateway.shutdown()

    app = SkyrelayApp(
        title="Skyrelay",
        version=gateway.version,
        summary="OpenAI-compatible, Portkey-compatible LLM gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    service = gateway.service
    limit = gateway.settings.max_body_bytes
    app.fast = FastPath(service, limit)
    routes = app.fast.routes

    async def proxy(request: Request, method: str, path: str) -> Response:
        """Reached only when the fast dispatch did not match (e.g. a mounted sub-path); same behaviour."""
        response = await serve_call(service, routes[(method, path)], request.method, request.url.path,
                                    dict(request.headers), request.url.query, request.stream(), limit)
        return render(response)

    @app.post("/v1/chat/completions", tags=["openai"], openapi_extra=openapi.body("ChatCompletionRequest"),
              responses=openapi.RESPONSES)
    async def chat_completions(request: Request) -> Response:
        return await proxy(request, "POST", "/v1/chat/completions")

    @app.post("/v1/completions", tags=["openai"], openapi_extra=openapi.body("CompletionRequest"),
              responses=openapi.RESPONSES)
    async def completions(request: Request) -> Response:
        return await proxy(request, "POST", "/v1/completions")

    @app.post("/v1/embeddings", tags=["openai"], openapi_extra=openapi.body("EmbeddingRequest"),
              responses=openapi.RESPONSES)
    async def embeddings(request: Request) -> Response:
        return await proxy(request, "POST", "/v1/embeddings")

    @app.get("/v1/models", tags=["openai"], responses=openapi.RESPONSES)
    async def models(request: Request) -> Response:
        return await proxy(request, "GET", "/v1/models")

    @app.post("/v1/messages", tags=["anthropic"], openapi_extra=openapi.body("MessagesRequest"),
              responses=openapi.RESPONSES)
    async def messages(request: Request) -> Response:
        return await proxy(request, "POST", "/v1/messages")

    @app.post("/v1/messages/count_tokens", tags=["anthropic"], openapi_extra=openapi.body("MessagesRequest"),
              responses=openapi.RESPONSES)
    async def count_tokens(request: Request) -> Response:
        return await proxy(request, "POST", "/v1/messages/count_tokens")

    @app.get("/v1/health", tags=["operations"])
    async def health() -> Response:
        """Liveness: no authentication and no I/O, so load balancers and Route53 can poll it cheaply."""
        return _json(200, {"status": "ok"})

    @app.get("/v1/ready", tags=["operations"])
    async def ready() -> Response:
        """Readiness: each configured dependency answers (log sink; Redis and config store when configured)."""
        return _Rendered(await ready_response(gateway))

    if gateway.telemetry.metrics is not None:

        @app.get("/metrics", tags=["operations"], include_in_schema=False)
        async def prometheus_metrics() -> Response:
            """Prometheus text format; no authentication, like /v1/health (scrapers run inside the network)."""
            return _Rendered(await metrics_response(gateway))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            error: SkyrelayError = NotFoundError(f"No route for {request.method} {request.url.path}")
        elif exc.status_code == 405:
            error = InvalidRequestError(f"Method {request.method} is not allowed on {request.url.path}",
                                        code="method_not_allowed", status=405)
        else:
            error = InvalidRequestError(str(exc.detail), status=exc.status_code)
        return render(error_response(error))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return render(error_response(InvalidRequestError(f"Invalid request: {exc.errors()[:3]}")))

    if cors and gateway.settings.cors_origins:
        app.front = with_cors(app.dispatch, gateway.settings.cors_origins)
    return app
