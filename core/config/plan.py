"""Request headers → a :class:`Plan`: the tree of targets one request may use.

Without ``x-portkey-config`` the plan is one target built from the provider headers (Portkey's
``constructConfigFromRequestHeaders``): provider from ``x-portkey-provider``, key from ``Authorization``,
the provider header group as options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.auth.gateway_keys import GatewayKey
from core.config import headers as h
from core.config.target import Target
from core.errors import InvalidRequestError
from core.providers.registry import ProviderRegistry, UnknownProviderError
from core.security.ssrf import SsrfGuard


@dataclass(frozen=True, slots=True)
class Plan:
    """What the router executes. A single target until the routing config arrives (strategy trees)."""

    target: Target


class Planner:
    def __init__(self, registry: ProviderRegistry, guard: SsrfGuard) -> None:
        self._registry = registry
        self._guard = guard

    def plan(self, headers: Mapping[str, str], key: GatewayKey | None) -> Plan:
        del key
        provider = headers.get("x-portkey-provider")
        if headers.get("x-portkey-config"):
            raise InvalidRequestError("x-portkey-config is not supported yet", param="x-portkey-config")
        if not provider:
            raise InvalidRequestError(
                "Either x-portkey-config or x-portkey-provider header is required", code="missing_provider"
            )
        if not self._registry.known(provider):
            raise UnknownProviderError(provider)
        custom_host = headers.get("x-portkey-custom-host")
        if custom_host:
            custom_host = self._guard.check_url(custom_host)
        return Plan(
            Target(
                provider=provider,
                api_key=h.bearer_token(headers),
                custom_host=custom_host,
                forward_headers=h.forward_header_names(headers.get("x-portkey-forward-headers")),
                request_timeout_ms=h.request_timeout_ms(headers.get("x-portkey-request-timeout")),
                options=h.provider_options(headers),
            )
        )
