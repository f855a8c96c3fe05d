"""Forwarding one request to a remote Skyrelay (see :mod:`core.routing.remote`): the forwarded headers, the
one-target config the remote plans from, the hop count that prevents loops, and the answer relayed unchanged.

Imported by the first request routed to a remote gateway, so gateways without remotes never load it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from core.config.target import Target
from core.errors import LoopDetectedError
from core.providers.base import Operation, ProviderRequest, ProviderResult, RelayingProvider, provider_error_body
from core.providers.http import error_result, streamed_result

if TYPE_CHECKING:
    from core.routing.remote import RemoteGateway
    from core.transport.base import UpstreamClient

HOPS_HEADER = "x-skyrelay-hops"
#: Caller headers a remote gateway still needs; everything else is rebuilt from the target.
_FORWARDED_HEADERS = ("x-portkey-trace-id", "x-portkey-metadata", "x-portkey-cache-force-refresh",
                      "x-portkey-strict-open-ai-compliance", "x-portkey-forward-headers")
_FORWARDED_PREFIXES = ("openai-", "anthropic-", "x-portkey-openai-", "x-portkey-anthropic-")


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


class RemoteGatewayForwarder(RelayingProvider):
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


def _keep_remote_error(body: bytes) -> bytes:
    """A remote gateway's errors are already in OpenAI's shape with their provider: relay them as they are."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return body
    return provider_error_body("gateway", body.decode("utf-8", "replace")[:2000] or "empty response")
