"""Plans built from configs: inheritance, precedence and schema errors (no HTTP)."""

from __future__ import annotations

from typing import Any

import pytest

from core.config.plan import Planner
from core.config.store import ConfigStore
from core.errors import InvalidConfigError, InvalidRequestError
from core.providers.registry import ProviderDeps, ProviderRegistry
from core.security.ssrf import SsrfGuard
from core.settings import Settings
from core.transport.httpx_client import HttpxUpstreamClient


@pytest.fixture
def planner() -> Planner:
    guard = SsrfGuard(["localhost", "127.0.0.0/8"])
    registry = ProviderRegistry(ProviderDeps(upstream=HttpxUpstreamClient(), guard=guard, settings=Settings()))
    return Planner(registry, guard, ConfigStore(None))


def plan(planner: Planner, config: dict[str, Any], **headers: str) -> Any:
    import json

    return planner.plan({"x-portkey-config": json.dumps(config), **headers}, {"model": "m"}, None)


def test_inheritance_rules(planner: Planner) -> None:
    config = {
        "retry": {"attempts": 2}, "cache": {"mode": "simple", "max_age": 60}, "request_timeout": 500,
        "custom_host": "http://127.0.0.1:9/v1", "forward_headers": ["x-a"], "override_params": {"a": 1, "b": 1},
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "openai", "api_key": "k1", "override_params": {"b": 2}},
            {"provider": "openai", "retry": {"attempts": 5, "on_status_codes": [418]}, "request_timeout": 900,
             "cache": {"mode": "simple", "max_age": 5}, "custom_host": "http://localhost:9/v1"},
        ],
    }
    first, second = plan(planner, config).root.children

    assert first.retry.attempts == 2 and first.cache.max_age == 60
    assert first.target.request_timeout_ms == 500 and first.target.custom_host == "http://127.0.0.1:9/v1"
    assert first.target.forward_headers == ("x-a",) and dict(first.target.override_params) == {"a": 1, "b": 2}
    assert first.target.api_key == "k1"
    assert second.retry.attempts == 5 and second.retry.on_status_codes == frozenset({418})
    assert second.cache.max_age == 5 and second.target.request_timeout_ms == 900
    assert second.target.custom_host == "http://localhost:9/v1"
    assert second.target.api_key is None  # credentials are never inherited


def test_config_with_targets_ignores_provider_headers(planner: Planner) -> None:
    root = plan(planner, {"provider": "openai", "api_key": "from-config"}, **{
        "x-portkey-provider": "groq", "authorization": "Bearer from-header", "x-portkey-aws-region": "eu-west-1"}).root
    assert root.target.provider == "openai" and root.target.api_key == "from-config"
    assert "aws_region" not in root.target.options


def test_headers_beat_config_for_timeout_and_forward_headers(planner: Planner) -> None:
    root = plan(planner, {"provider": "openai", "request_timeout": 100, "forward_headers": ["x-a"]},
                **{"x-portkey-request-timeout": "2000", "x-portkey-forward-headers": "x-b"}).root
    assert root.target.request_timeout_ms == 2000 and root.target.forward_headers == ("x-b",)


def test_provider_options_come_through_as_config_fields(planner: Planner) -> None:
    root = plan(planner, {"provider": "openai", "resource_name": "r", "aws_region": "us-west-2"}).root
    assert root.target.options == {"resource_name": "r", "aws_region": "us-west-2"}


def test_every_schema_error_is_listed_with_its_path(planner: Planner) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        plan(planner, {"strategy": {"mode": "fallback"}, "targets": [
            {"provider": "openai", "weight": -1}, {"provider": "openai", "retry": {"attempts": -2}}]})
    assert caught.value.errors == [
        "path: targets,0,weight, message: Input should be greater than or equal to 0",
        "path: targets,1,retry,attempts, message: Input should be greater than or equal to 0",
    ]


def test_unknown_provider_and_unknown_conditional_target(planner: Planner) -> None:
    with pytest.raises(InvalidRequestError, match="Invalid provider passed"):
        plan(planner, {"provider": "nope"})
    with pytest.raises(InvalidConfigError) as caught:
        plan(planner, {"strategy": {"mode": "conditional", "conditions": [{"query": {"a.b": 1}, "then": "x"}]},
                       "targets": [{"provider": "openai", "name": "y"}]})
    assert "unknown target names: x" in caught.value.errors[0]


def test_retry_attempts_are_capped(planner: Planner) -> None:
    assert plan(planner, {"provider": "openai", "retry": {"attempts": 500}}).root.retry.attempts == 10
