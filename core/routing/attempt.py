"""One attempt at one target: SSRF check, body preparation, the provider call under the per-attempt timeout, and
the mapping of transport failures into the error tree. Everything above (retries, strategies) composes attempts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.api.openai import require_model
from core.config.target import Target
from core.errors import GatewayInternalError, RequestTimeoutError, UpstreamConnectionError
from core.providers.base import Operation, Provider, ProviderRequest, ProviderResult
from core.providers.registry import ProviderRegistry
from core.ratelimit.base import Reservation
from core.security.ssrf import SsrfGuard
from core.transport.base import TransportConnectError, TransportError, TransportTimeout

if TYPE_CHECKING:
    from core.routing.remote import RemoteGateways


@dataclass(slots=True)
class CallContext:
    """The parts of the incoming request every attempt needs."""

    operation: Operation
    body: dict[str, Any]
    raw_body: bytes | None
    client_headers: Mapping[str, str]
    trace_id: str
    query: str = ""
    metadata: dict[str, Any] | None = None
    path: str = ""
    cache_namespace: str = "public"
    cache_force_refresh: bool = False
    reservations: list[Reservation] = field(default_factory=list)


def prepare_body(ctx: CallContext, target: Target) -> tuple[dict[str, Any], bytes | None]:
    """The body for this target: ``override_params`` merged over the client's (override wins)."""
    if not target.override_params:
        return ctx.body, ctx.raw_body
    return {**ctx.body, **target.override_params}, None


class AttemptRunner:
    def __init__(self, registry: ProviderRegistry, guard: SsrfGuard, remotes: RemoteGateways | None = None) -> None:
        self._registry = registry
        self._guard = guard
        self._remotes = remotes

    def _provider(self, target: Target) -> Provider:
        if target.gateway is None:
            return self._registry.get(target.provider)
        if self._remotes is None:
            raise GatewayInternalError("remote gateway targets need the edge routing layer")
        return self._remotes.forwarder(target.gateway)

    async def attempt(self, target: Target, ctx: CallContext) -> ProviderResult:
        provider = self._provider(target)
        if target.custom_host and target.gateway is None:
            self._guard.check_url(target.custom_host)
            await self._guard.check_resolution(target.custom_host)
        body, raw = prepare_body(ctx, target)
        if ctx.operation is not Operation.MODELS:
            require_model(body)
        request = ProviderRequest(
            operation=ctx.operation,
            body=body,
            target=target,
            client_headers=ctx.client_headers,
            trace_id=ctx.trace_id,
            raw_body=raw,
            query=ctx.query,
        )
        call = getattr(provider, ctx.operation.method)
        try:
            if target.request_timeout_ms is None:
                return await call(request)
            async with asyncio.timeout(target.request_timeout_ms / 1000):
                return await call(request)
        except TimeoutError:
            raise RequestTimeoutError(target.request_timeout_ms or 0) from None
        except TransportTimeout as exc:
            raise UpstreamConnectionError(str(exc), provider=provider.id, status=504, code="upstream_timeout") from None
        except TransportConnectError as exc:
            raise UpstreamConnectionError(str(exc), provider=provider.id, status=502) from None
        except TransportError as exc:
            raise UpstreamConnectionError(str(exc), provider=provider.id, status=502) from None
