"""The gateway of one serverless process: built once, started on first use, flushed before every invocation ends.

Serverless platforms freeze (Lambda) or throttle (Cloud Run functions, Azure Functions) a process as soon as its
invocation is over, so the log pipeline's background writer cannot be trusted to run later. Every entry therefore
awaits ``telemetry.flush(deadline)`` before the platform considers the invocation finished:

* buffered entries (Mangum, AsgiFunctionApp) and the ASGI servers of Cloud Run functions go through
  :class:`FlushingApp`, which sends the last body bytes, flushes, and only then sends the message that completes
  the response — a client holds every byte before the flush starts, and the platform still counts the request
  as running while it lasts;
* the Lambda streaming runtime flushes between its last chunk and its next ``GET /invocation/next`` (the Invoke
  phase lasts until then).

The deadline is the smaller of ``SKYRELAY_INVOCATION_FLUSH_TIMEOUT_S`` and what the runtime says is left of the
invocation (minus a reserve to deliver the response). Records that miss it wait in the disk spill under ``/tmp``
and are replayed by a later invocation of the same instance.

Lifespan is never relied on (Mangum may run it per invocation, functions-framework not at all): the gateway
starts on the first request, once per process.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from core.gateway import Gateway

logger = logging.getLogger("skyrelay.handlers")

#: Longest wait, per invocation, for its log records to reach the sink.
FLUSH_TIMEOUT_ENV = "SKYRELAY_INVOCATION_FLUSH_TIMEOUT_S"
DEFAULT_FLUSH_TIMEOUT_S = 5.0
#: Kept back from the runtime's deadline so the response itself is still delivered in time.
DEADLINE_RESERVE_S = 0.5

RemainingTime = Callable[[Scope], "float | None"]


def no_deadline(scope: Scope) -> float | None:
    """For platforms that do not tell a request how long it has left."""
    return None


def flush_budget(remaining_s: float | None, cap_s: float) -> float:
    """Seconds the flush may take: the cap, shortened by the invocation's remaining time less the reserve."""
    if remaining_s is None:
        return cap_s
    return max(0.0, min(cap_s, remaining_s - DEADLINE_RESERVE_S))


def flush_cap_from(environ: Mapping[str, str]) -> float:
    raw = environ.get(FLUSH_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_FLUSH_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{FLUSH_TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{FLUSH_TIMEOUT_ENV} must not be negative")
    return value


class ServerlessGateway:
    """Owns the process's one gateway and app; entries call :meth:`ensure_started` and :meth:`flush`."""

    def __init__(self, gateway: Gateway, app: ASGIApp, *, flush_cap_s: float = DEFAULT_FLUSH_TIMEOUT_S) -> None:
        self.gateway = gateway
        self.app = app
        self.flush_cap_s = flush_cap_s
        self._started = False
        self._lock = asyncio.Lock()

    @classmethod
    def from_environment(cls) -> ServerlessGateway:
        """Settings from ``SKYRELAY_*`` (after the cloud's defaults were applied): the composition root."""
        from core.asgi_app import create_lazy_app
        from core.gateway import build_gateway
        from core.settings import Settings

        gateway = build_gateway(Settings())
        return cls(gateway, create_lazy_app(gateway), flush_cap_s=flush_cap_from(os.environ))

    async def ensure_started(self) -> None:
        if self._started:
            return
        async with self._lock:
            if self._started:
                return
            await self.gateway.startup()
            self._started = True
        if not self.gateway.store.snapshot.keys.enabled:
            logger.warning("no gateway API keys configured: every caller that can reach this function is accepted "
                           "(protect it with the platform's own auth, or configure keys)")

    async def flush(self, remaining_s: float | None) -> bool:
        """Wait until this invocation's records are in the sink (or the budget is spent); True when drained."""
        budget = flush_budget(remaining_s, self.flush_cap_s)
        drained = await self.gateway.telemetry.flush(budget)
        if not drained:
            logger.warning("log records not in the sink %s after %.2f s: %d wait in the spill folder for a later "
                           "invocation", self.gateway.pipeline.describe_sink(), budget, self.gateway.pipeline.pending)
        return drained

    async def shutdown(self) -> None:
        if self._started:
            self._started = False
            await self.gateway.shutdown()

    def asgi(self, remaining: RemainingTime = no_deadline) -> FlushingApp:
        return FlushingApp(self, remaining)


class FlushingApp:
    """The gateway's ASGI app, started on first use and flushed before each response completes (module docstring)."""

    def __init__(self, serverless: ServerlessGateway, remaining: RemainingTime) -> None:
        self.serverless = serverless
        self.remaining = remaining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.serverless.app(scope, receive, send)
            return
        await self.serverless.ensure_started()
        flushed = False

        async def send_then_flush(message: Message) -> None:
            nonlocal flushed
            if message["type"] != "http.response.body" or message.get("more_body", False) or flushed:
                await send(message)
                return
            body = message.get("body", b"")
            if body:
                await send({"type": "http.response.body", "body": body, "more_body": True})
            flushed = True
            await self.serverless.flush(self.remaining(scope))
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        try:
            await self.serverless.app(scope, receive, send_then_flush)
        finally:
            if not flushed:  # the app failed or the client left before the end: its record still gets flushed
                await self.serverless.flush(self.remaining(scope))


def scope_without_routing(scope: Scope) -> dict[str, Any]:
    """A copy of a host framework's route scope that the gateway's own app can route afresh."""
    inner = dict(scope)
    for key in ("path_params", "endpoint", "route", "router", "app"):
        inner.pop(key, None)
    return inner
