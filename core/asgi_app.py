"""The gateway's ASGI front: hot and operations routes served directly, FastAPI built only when a request needs it.

Importing FastAPI and building its app costs 0.25-0.4 s and about 7 MiB per process, while a gateway almost only
ever serves the hot routes and its probes. :class:`LazyGatewayApp` serves those itself — the API routes through
:class:`~core.fast_routes.FastPath`, plus ``GET /v1/health``, ``/v1/ready`` and ``/metrics`` — runs the gateway's
lifespan, and builds the full FastAPI app (the OpenAPI document, 404/405 bodies, anything else) on first use. Every
entry uses it: ``skyrelay serve`` and the serverless handlers.

CORS, when configured, wraps the whole front, so the hot routes get their headers too (FastAPI's middleware never
sees them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from core.fast_routes import FastPath, route_path
from core.responses import BufferedResponse

if TYPE_CHECKING:
    from core.gateway import Gateway

_HEALTH = BufferedResponse(200, [], b'{"status":"ok"}', "application/json")


class LazyGatewayApp:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._fast = FastPath(gateway.service, gateway.settings.max_body_bytes)
        self._metrics = gateway.telemetry.metrics is not None
        self._full: Any = None

    def full_app(self) -> Any:
        if self._full is None:
            from core.app import create_app

            self._full = create_app(self.gateway, cors=False)  # CORS is applied around this front instead
        return self._full

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http":
            if await self._fast.handle(scope, receive, send):
                return
            if scope["method"] == "GET":
                path = route_path(scope)
                if path.endswith("/v1/health"):  # any prefix: a probe may come through a stage or mount path
                    await _HEALTH(scope, receive, send)
                    return
                if path == "/v1/ready":
                    await (await ready_response(self.gateway))(scope, receive, send)
                    return
                if path == "/metrics" and self._metrics:
                    await (await metrics_response(self.gateway))(scope, receive, send)
                    return
        await self.full_app()(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.gateway.startup()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which refuses to start
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def ready_response(gateway: Gateway) -> BufferedResponse:
    """Readiness: each configured dependency answers (log sink; Redis and config store when configured)."""
    report = await gateway.readiness()
    return BufferedResponse(200 if report["status"] == "ready" else 503, [], orjson.dumps(report), "application/json")


async def metrics_response(gateway: Gateway) -> BufferedResponse:
    """Prometheus text format; no authentication, like /v1/health (scrapers run inside the network)."""
    from core.telemetry.metrics import METRICS_CONTENT_TYPE

    return BufferedResponse(200, [], await gateway.telemetry.render_metrics(), METRICS_CONTENT_TYPE)


def with_cors(app: ASGIApp, origins: list[str]) -> ASGIApp:
    """Starlette's CORS middleware around ``app`` when origins are configured; ``app`` itself otherwise."""
    if not origins:
        return app
    from starlette.middleware.cors import CORSMiddleware

    return CORSMiddleware(app, allow_origins=origins, allow_methods=["*"], allow_headers=["*"], expose_headers=["*"])


def create_lazy_app(gateway: Gateway) -> ASGIApp:
    """The front every entry serves: :class:`LazyGatewayApp`, inside CORS when ``cors_origins`` is set."""
    return with_cors(LazyGatewayApp(gateway), gateway.settings.cors_origins)
