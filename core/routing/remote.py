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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.config.target import Target
from core.errors import LoopDetectedError, UpstreamConnectionError
from core.providers.base import Operation, ProviderBase, ProviderRequest, ProviderResult, provider_error_body
from core.providers.http import error_result, streamed_result
from core.transport.base import TransportError, UpstreamClient

logger = logging.getLogger("skyrelay.remote")

HOPS_HEADER = "x-skyrelay-hops"
#: Caller headers a remote gateway still needs; everything else is rebuilt from the target.
_FORWARDED_HEADERS = ("x-portkey-trace-id", "x-portkey-metadata", "x-portkey-cache-force-refresh",
                      "x-portkey-strict-open-ai-compliance", "x-portkey-forward-headers")
_FORWARDED_PREFIXES = ("openai-", "anthropic-", "x-portkey-openai-", "x-portkey-anthropic-")


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


def hops_of(headers: Mapping[str, str]) -> int:
    try:
        return max(0, int(headers.get(HOPS_HEADER, "0")))
    except ValueError:
        return 0


def target_config(target: Target) -> dict[str, Any]:
    """The one-target config the remote gateway plans from (no credentials beyond what the caller itself sent)."""
    config: dict[str, Any] = dict(target.options)
    if target.provider:
        config["provider"] = target.provider
    if target.virtual_key:
        config["virtual_key"] = target.virtual_key
    if target.api_key:
        config["api_key"] = target.api_key
    if target.custom_host:
        config["custom_host"] = target.custom_host
    if target.request_timeout_ms:
        config["request_timeout"] = target.request_timeout_ms
    if target.forward_headers:
        config["forward_headers"] = list(target.forward_headers)
    return config


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


class RemoteGatewayForwarder(ProviderBase):
    """Speaks to another Skyrelay the way a client would; the answer is relayed unchanged."""

    def __init__(self, gateway: RemoteGateway, upstream: UpstreamClient, max_hops: int) -> None:
        self.id = f"gateway:{gateway.name}"
        self._gateway = gateway
        self._upstream = upstream
        self._max_hops = max_hops

    def _headers(self, request: ProviderRequest, hops: int) -> dict[str, str]:
        headers = {name: value for name, value in request.client_headers.items()
                   if name in _FORWARDED_HEADERS or name.startswith(_FORWARDED_PREFIXES)}
        headers["x-portkey-config"] = orjson.dumps(target_config(request.target)).decode()
        headers[HOPS_HEADER] = str(hops + 1)
        headers["x-portkey-trace-id"] = request.trace_id
        if request.operation is not Operation.MODELS:
            headers["content-type"] = "application/json"
        if self._gateway.api_key:
            headers["x-portkey-api-key"] = self._gateway.api_key
        return headers

    async def _call(self, request: ProviderRequest) -> ProviderResult:
        hops = hops_of(request.client_headers)
        if hops >= self._max_hops:
            raise LoopDetectedError(f"Not forwarding to remote gateway {self._gateway.name!r}: the request has "
                                    f"already crossed {hops} gateway hop(s) (limit {self._max_hops})")
        url = f"{self._gateway.url}/v1/{request.operation.path}"
        if request.query:
            url = f"{url}?{request.query}"
        has_body = request.operation is not Operation.MODELS
        response = await self._upstream.send("POST" if has_body else "GET", url,
                                             headers=self._headers(request, hops),
                                             body=request.encoded_body() if has_body else None)
        served_by = response.header("x-portkey-provider") or request.target.provider
        annotations = {"remote_gateway": self._gateway.name,
                       "remote_trace_id": response.header("x-portkey-trace-id"),
                       "remote_target_path": response.header("x-portkey-last-used-option-index")}
        if not 200 <= response.status < 300:
            result = await error_result(self.id, response, mapper=_keep_remote_error)
        elif (response.header("content-type") or "").startswith("text/event-stream"):
            result = streamed_result(self.id, response, response.iter_chunks())
        else:
            result = ProviderResult(status=response.status, headers=[], provider=served_by,
                                    body=await response.read(),
                                    media_type=response.header("content-type") or "application/json")
        result.provider = served_by
        result.headers = [(k, v) for k, v in result.headers if not k.lower().startswith("x-portkey-")]
        result.headers.append(("x-skyrelay-remote-gateway", self._gateway.name))
        result.annotations.update(annotations)
        return result

    async def chat(self, request: ProviderRequest) -> ProviderResult:
        return await self._call(request)

    async def completion(self, request: ProviderRequest) -> ProviderResult:
        return await self._call(request)

    async def embed(self, request: ProviderRequest) -> ProviderResult:
        return await self._call(request)

    async def list_models(self, request: ProviderRequest) -> ProviderResult:
        return await self._call(request)


def _keep_remote_error(body: bytes) -> bytes:
    """A remote gateway's errors are already in OpenAI's shape with their provider: relay them as they are."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return body
    return provider_error_body("gateway", body.decode("utf-8", "replace")[:2000] or "empty response")


@dataclass(frozen=True, slots=True)
class AffinityMap:
    """Provider id → the remote gateway that owns it (``SKYRELAY_PROVIDER_AFFINITY``)."""

    routes: Mapping[str, str] = field(default_factory=dict)

    def gateway_for(self, provider: str) -> str | None:
        return self.routes.get(provider)
