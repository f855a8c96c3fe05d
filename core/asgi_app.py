"""A lean ASGI front for cold-start-sensitive entries (Lambda, Cloud Run functions, Azure Functions).

Importing FastAPI and building its app costs 0.25-0.4 s — the largest single part of a Lambda cold start — while a
serverless gateway almost only ever serves the hot routes. :class:`LazyGatewayApp` serves those (and
``GET /v1/health``) itself through :class:`~core.fast_routes.FastPath`, runs the gateway's lifespan, and builds the
full FastAPI app (``/v1/ready``, ``/metrics``, the OpenAPI document, 404/405 bodies) only when a request needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

from core.fast_routes import FastPath
from core.responses import BufferedResponse

if TYPE_CHECKING:
    from core.gateway import Gateway

_HEALTH = BufferedResponse(200, [], b'{"status":"ok"}', "application/json")


class LazyGatewayApp:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._fast = FastPath(gateway.service, gateway.settings.max_body_bytes)
        self._full: Any = None

    def full_app(self) -> Any:
        if self._full is None:
            from core.app import create_app

            self._full = create_app(self.gateway)
        return self._full

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http":
            if await self._fast.handle(scope, receive, send):
                return
            if scope["method"] == "GET" and scope["path"].endswith("/v1/health"):
                await _HEALTH(scope, receive, send)
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


def create_lazy_app(gateway: Gateway) -> LazyGatewayApp:
    return LazyGatewayApp(gateway)
