"""Request headers (+ the config store) → a :class:`Plan`: the tree of targets one request may use.

Precedence follows Portkey 1.15.2: a config with ``provider``/``targets``/``virtual_key`` is used as is (provider
header groups and ``Authorization`` are ignored); a config without them (only retry, cache ...) wraps the target
built from the provider headers; without a config the headers alone make one target. ``x-portkey-custom-host``,
``-forward-headers`` and ``-request-timeout`` beat the config's values.

Inheritance down the tree: ``override_params`` merged (child wins); ``retry`` and ``cache`` replaced by a child's
own; ``request_timeout``, ``custom_host`` and ``forward_headers`` inherited unless the child sets them; provider and
credentials never inherited.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.auth.gateway_keys import GatewayKey
from core.config import headers as h
from core.config.schema import CacheConfig, RetryConfig, TargetConfig, parse_config, parse_config_header
from core.config.store import ConfigStore, VirtualKey
from core.config.target import Target
from core.errors import InvalidRequestError, PermissionDeniedError
from core.providers.registry import ProviderRegistry, UnknownProviderError
from core.ratelimit.base import Limits
from core.routing.retry import MAX_ATTEMPTS, NO_RETRY, RetryPolicy
from core.security.ssrf import SsrfGuard


@dataclass(frozen=True, slots=True)
class PlanNode:
    """A leaf (``target``) or a strategy (``mode``) over ``children``. ``path`` is Portkey's JSON path."""

    path: str
    target: Target | None = None
    mode: str | None = None
    children: tuple[PlanNode, ...] = ()
    weight: float = 1.0
    name: str | None = None
    on_status_codes: frozenset[int] | None = None
    conditions: tuple[tuple[Any, str], ...] = ()
    default: str | None = None
    retry: RetryPolicy = NO_RETRY
    cache: CacheConfig | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    root: PlanNode
    config_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Inherited:
    override_params: Mapping[str, Any] = field(default_factory=dict)
    retry: RetryConfig | None = None
    cache: CacheConfig | None = None
    request_timeout: int | None = None
    custom_host: str | None = None
    forward_headers: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class _HeaderOverrides:
    custom_host: str | None
    forward_headers: tuple[str, ...] | None
    request_timeout: int | None


_PLAN_CACHE_SIZE = 2048
#: Headers that vary per request without changing the route; left out of the plan cache key.
_NOT_ROUTING = frozenset({"x-portkey-trace-id", "x-portkey-metadata", "x-portkey-api-key",
                          "x-portkey-cache-force-refresh", "x-portkey-cache-namespace"})


@functools.lru_cache(maxsize=512)
def _parse_inline_config(value: str) -> TargetConfig:
    return parse_config(parse_config_header(value))


class Planner:
    def __init__(self, registry: ProviderRegistry, guard: SsrfGuard, store: ConfigStore,
                 affinity: Mapping[str, str] | None = None) -> None:
        self._registry = registry
        self._guard = guard
        self._store = store
        self._affinity = dict(affinity or {})
        self._plans: OrderedDict[tuple[Any, ...], Plan] = OrderedDict()

    def plan(self, headers: Mapping[str, str], body: Mapping[str, Any], key: GatewayKey | None) -> Plan:
        """The plan for these headers; identical routing headers reuse a cached plan (plans are immutable)."""
        cache_key = self._cache_key(headers, body, key)
        plan = self._plans.get(cache_key)
        if plan is None:
            plan = self._build(headers, body, key)
            self._plans[cache_key] = plan
            if len(self._plans) > _PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        return plan

    def _cache_key(self, headers: Mapping[str, str], body: Mapping[str, Any], key: GatewayKey | None
                   ) -> tuple[Any, ...]:
        routing = tuple(sorted((name, value) for name, value in headers.items()
                               if (name.startswith("x-portkey-") and name not in _NOT_ROUTING)
                               or name == "authorization"))
        model = body.get("model")
        addressed = model if isinstance(model, str) and model.startswith("@") else None
        return (self._store.generation, key.id if key else None, addressed, routing)

    def _build(self, headers: Mapping[str, str], body: Mapping[str, Any], key: GatewayKey | None) -> Plan:
        config, config_id = self._config(headers.get("x-portkey-config"), key)
        overrides = _HeaderOverrides(
            custom_host=self._checked_host(headers.get("x-portkey-custom-host")),
            forward_headers=h.forward_header_names(headers.get("x-portkey-forward-headers")) or None,
            request_timeout=h.request_timeout_ms(headers.get("x-portkey-request-timeout")),
        )
        if config is not None and (config.provider or config.targets or config.virtual_key):
            return Plan(self._node(config, "config", _Inherited(), overrides, key), config_id)
        leaf = self._header_target(headers, body, key, has_config=config is not None)
        inherited = self._inherit(config, _Inherited()) if config is not None else _Inherited()
        return Plan(self._leaf_from(leaf, "config", inherited, overrides, key), config_id)

    # --- configs -------------------------------------------------------------------------------------------
    def _config(self, value: str | None, key: GatewayKey | None) -> tuple[TargetConfig | None, str | None]:
        if not value:
            return None, None
        text = value.strip()
        if text.startswith("{"):
            return _parse_inline_config(text), None
        config = self._store.snapshot.configs.get(text)
        if config is None:
            raise InvalidRequestError(f"Config {text!r} not found in the config store", code="config_not_found",
                                      param="x-portkey-config")
        if key is not None and key.allowed_configs is not None and text not in key.allowed_configs:
            raise PermissionDeniedError(f"Gateway key {key.id!r} may not use config {text!r}")
        return config, text

    # --- the no-config path -------------------------------------------------------------------------------
    def _header_target(self, headers: Mapping[str, str], body: Mapping[str, Any], key: GatewayKey | None,
                       *, has_config: bool) -> TargetConfig:
        provider = headers.get("x-portkey-provider")
        vk_name = headers.get("x-portkey-virtual-key")
        model = body.get("model")
        override: dict[str, Any] = {}
        if not provider and not vk_name and isinstance(model, str) and model.startswith("@") and "/" in model:
            vk_name, _, bare_model = model[1:].partition("/")
            override["model"] = bare_model
        if vk_name:
            return TargetConfig(virtual_key=vk_name, provider=provider or None, override_params=override or None)
        if not provider:
            if has_config:
                raise InvalidRequestError(
                    "Either x-portkey-provider needs to be passed. Or the x-portkey-config header should have a "
                    "valid config with provider details in it.", code="missing_provider")
            raise InvalidRequestError("Either x-portkey-config or x-portkey-provider header is required",
                                      code="missing_provider")
        options = {k: v for k, v in h.provider_options(headers).items() if k not in TargetConfig.model_fields}
        return TargetConfig.model_construct(provider=provider, api_key=h.bearer_token(headers), **options)

    # --- the tree ------------------------------------------------------------------------------------------
    def _inherit(self, node: TargetConfig, parent: _Inherited) -> _Inherited:
        return _Inherited(
            override_params={**parent.override_params, **(node.override_params or {})},
            retry=node.retry or parent.retry,
            cache=node.cache or parent.cache,
            request_timeout=node.request_timeout or parent.request_timeout,
            custom_host=node.custom_host or parent.custom_host,
            forward_headers=tuple(node.forward_headers) if node.forward_headers else parent.forward_headers,
        )

    def _node(self, node: TargetConfig, path: str, parent: _Inherited, overrides: _HeaderOverrides,
              key: GatewayKey | None) -> PlanNode:
        if node.is_leaf:
            return self._leaf_from(node, path, parent, overrides, key)
        inherited = self._inherit(node, parent)
        strategy = node.strategy
        assert strategy is not None and node.targets is not None
        children = tuple(self._node(child, f"{path}.targets[{i}]", inherited, overrides, key)
                         for i, child in enumerate(node.targets))
        return PlanNode(
            path=path,
            mode=strategy.mode,
            children=children,
            weight=1.0 if node.weight is None else node.weight,
            name=node.name,
            on_status_codes=frozenset(strategy.on_status_codes) if strategy.on_status_codes else None,
            conditions=tuple((c["query"], c["then"]) for c in strategy.conditions or ()),
            default=strategy.default,
            cache=inherited.cache,
        )

    def _leaf_from(self, node: TargetConfig, path: str, parent: _Inherited, overrides: _HeaderOverrides,
                   key: GatewayKey | None) -> PlanNode:
        gateway = self._remote_gateway(node, key)
        if gateway is not None:
            return self._remote_leaf(node, path, self._inherit(node, parent), overrides, gateway)
        inherited = self._inherit(node, parent)
        vk = self._virtual_key(node.virtual_key, key) if node.virtual_key else None
        provider = vk.provider if vk is not None else node.provider
        if not provider:
            raise InvalidRequestError(f"{path} names no provider or virtual_key", code="invalid_config")
        if not self._registry.known(provider):
            raise UnknownProviderError(provider)
        options = {**(vk.options if vk else {}), **node.extras()}
        vk_host = vk.custom_host if vk is not None else None
        custom_host = overrides.custom_host or self._checked_host(inherited.custom_host or vk_host)
        target = Target(
            provider=provider,
            api_key=node.api_key or (vk.api_key if vk else None),
            custom_host=custom_host,
            forward_headers=overrides.forward_headers or inherited.forward_headers or (),
            request_timeout_ms=overrides.request_timeout or inherited.request_timeout,
            override_params=inherited.override_params,
            options=options,
            virtual_key=vk.name if vk else None,
            path=path,
            rate_limits=vk.limits if vk else Limits(),
        )
        return PlanNode(path=path, target=target, weight=1.0 if node.weight is None else node.weight,
                        name=node.name, retry=_retry_policy(inherited.retry), cache=inherited.cache)

    def _remote_gateway(self, node: TargetConfig, key: GatewayKey | None) -> str | None:
        """The remote gateway serving this leaf: named in the config, or by provider affinity; None = here."""
        gateway = node.gateway
        if gateway is None:
            known = self._store.snapshot.virtual_keys.get(node.virtual_key or "")
            provider = node.provider or (known.provider if known else None)
            gateway = self._affinity.get(provider) if provider else None
        if gateway is None:
            return None
        if gateway not in self._store.snapshot.remote_gateways:
            raise InvalidRequestError(f"Remote gateway {gateway!r} is not in the config store",
                                      code="gateway_not_found", param="gateway")
        if node.virtual_key:
            self._check_virtual_key_allowed(node.virtual_key, key)
        return gateway

    def _remote_leaf(self, node: TargetConfig, path: str, inherited: _Inherited, overrides: _HeaderOverrides,
                     gateway: str) -> PlanNode:
        """A leaf served by another gateway: nothing is resolved here (no secrets), only described."""
        known = self._store.snapshot.virtual_keys.get(node.virtual_key or "")
        provider = node.provider or (known.provider if known else "")
        if provider and not self._registry.known(provider):
            raise UnknownProviderError(provider)
        target = Target(
            provider=provider,
            api_key=node.api_key,
            custom_host=overrides.custom_host or inherited.custom_host,
            forward_headers=overrides.forward_headers or inherited.forward_headers or (),
            request_timeout_ms=overrides.request_timeout or inherited.request_timeout,
            override_params=inherited.override_params,
            options=node.extras(),
            virtual_key=node.virtual_key,
            path=path,
            gateway=gateway,
        )
        return PlanNode(path=path, target=target, weight=1.0 if node.weight is None else node.weight,
                        name=node.name, retry=_retry_policy(inherited.retry), cache=inherited.cache)

    def _check_virtual_key_allowed(self, name: str, key: GatewayKey | None) -> None:
        if key is not None and key.allowed_virtual_keys is not None and name not in key.allowed_virtual_keys:
            raise PermissionDeniedError(f"Gateway key {key.id!r} may not use virtual key {name!r}")

    def _virtual_key(self, name: str, key: GatewayKey | None) -> VirtualKey:
        vk = self._store.snapshot.virtual_keys.get(name)
        if vk is None:
            raise InvalidRequestError(f"Virtual key {name!r} not found in the config store",
                                      code="virtual_key_not_found", param="x-portkey-virtual-key")
        self._check_virtual_key_allowed(name, key)
        return vk

    def _checked_host(self, url: str | None) -> str | None:
        return self._guard.check_url(url) if url else None


def _retry_policy(config: RetryConfig | None) -> RetryPolicy:
    if config is None:
        return NO_RETRY
    codes = frozenset(config.on_status_codes) if config.on_status_codes else NO_RETRY.on_status_codes
    return RetryPolicy(attempts=min(config.attempts, MAX_ATTEMPTS), on_status_codes=codes,
                       use_retry_after_header=config.use_retry_after_header)
