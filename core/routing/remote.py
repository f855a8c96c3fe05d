"""Remote Skyrelay gateways as targets: the edge of the multi-gateway regional pattern.

An edge gateway forwards a request to the gateway that owns its provider (provider affinity in settings, or a
config target's ``"gateway": "<name>"``), so each request is signed, served and logged inside the cloud of its
provider. The edge adds no provider credentials: the remote gateway uses its own native identity or its own
virtual keys; the edge presents only the remote's *gateway* key (from a secret reference).

What is forwarded: the body (after the edge's ``override_params``), the caller's trace id and metadata, the
``openai-*`` / ``anthropic-*`` client headers, and the target itself as a one-target ``x-portkey-config`` (provider,
virtual key name, non-secret options, custom host, timeout). Loops are impossible: every forwarded request carries
``x-skyrelay-hops``; a gateway refuses to forward past ``max_hops`` (508). Remote health (``GET /v1/health``) is
polled; a gateway that failed ``unhealthy_after`` polls in a row is out of rotation until one poll succeeds.

This module holds the remotes and their health; the forwarding itself (:mod:`core.routing.remote_forwarder`) is
imported by the first request sent to a remote.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import UpstreamConnectionError
from core.transport.base import TransportError, UpstreamClient

if TYPE_CHECKING:
    from core.routing.remote_forwarder import RemoteGatewayForwarder

logger = logging.getLogger("skyrelay.remote")


@dataclass(frozen=True, slots=True)
class RemoteGateway:
    name: str
    url: str
    api_key: str | None = None
    health_url: str | None = None
    providers: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()

    @property
    def health(self) -> str:
        return self.health_url or f"{self.url}/v1/health"


@dataclass(slots=True)
class _Health:
    healthy: bool = True
    failures: int = 0
    last_error: str | None = None


class RemoteGateways:
    """The remote gateways of the current config store snapshot, their health, and one forwarder each."""

    def __init__(self, upstream: UpstreamClient, snapshot: Callable[[], Mapping[str, RemoteGateway]], *,
                 max_hops: int, poll_interval_s: float, unhealthy_after: int) -> None:
        self._upstream = upstream
        self._snapshot = snapshot
        self._max_hops = max_hops
        self._poll_interval_s = poll_interval_s
        self._unhealthy_after = unhealthy_after
        self._health: dict[str, _Health] = {}
        self._task: asyncio.Task[None] | None = None

    def names(self) -> set[str]:
        return set(self._snapshot())

    def is_healthy(self, name: str) -> bool:
        state = self._health.get(name)
        return state is None or state.healthy

    def status(self) -> dict[str, Any]:
        return {name: {"healthy": self.is_healthy(name), "url": gw.url,
                       "last_error": self._health.get(name, _Health()).last_error}
                for name, gw in self._snapshot().items()}

    def forwarder(self, name: str) -> RemoteGatewayForwarder:
        gateway = self._snapshot().get(name)
        if gateway is None:
            raise UpstreamConnectionError(f"Remote gateway {name!r} is not in the config store",
                                          provider=f"gateway:{name}", status=502, code="gateway_unknown")
        if not self.is_healthy(name):
            raise UpstreamConnectionError(f"Remote gateway {name!r} is unhealthy (health checks failing)",
                                          provider=f"gateway:{name}", status=503, code="gateway_unhealthy")
        from core.routing.remote_forwarder import RemoteGatewayForwarder  # only deployments with remotes need it

        return RemoteGatewayForwarder(gateway, self._upstream, self._max_hops)

    # --- health polling ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None and self._poll_interval_s > 0:
            self._task = asyncio.get_running_loop().create_task(self._poll_forever(), name="skyrelay-remote-health")

    async def _poll_forever(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self._poll_interval_s)

    async def poll_once(self) -> None:
        gateways = self._snapshot()
        await asyncio.gather(*(self._check(gw) for gw in gateways.values()))
        for name in set(self._health) - set(gateways):
            del self._health[name]

    async def _check(self, gateway: RemoteGateway) -> None:
        state = self._health.setdefault(gateway.name, _Health())
        error: str | None = None
        try:
            async with asyncio.timeout(max(1.0, self._poll_interval_s / 2)):
                response = await self._upstream.send("GET", gateway.health, headers={})
                await response.read()
            if response.status != 200:
                error = f"HTTP {response.status}"
        except (TransportError, TimeoutError) as exc:
            error = type(exc).__name__
        if error is None:
            if not state.healthy:
                logger.warning("remote gateway %s is healthy again", gateway.name)
            state.healthy, state.failures, state.last_error = True, 0, None
            return
        state.failures += 1
        state.last_error = error
        if state.healthy and state.failures >= self._unhealthy_after:
            state.healthy = False
            logger.warning("remote gateway %s is out of rotation after %d failed health checks (%s)",
                           gateway.name, state.failures, error)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
