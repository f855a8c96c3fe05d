"""Rate limits per gateway key and per virtual key — exact across two gateway processes sharing one Redis."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import httpx
import pytest

from core.auth.gateway_keys import hash_key
from core.ratelimit.base import Limits
from core.ratelimit.limiters import MemoryRateLimiter
from core.ratelimit.tokens import estimate_tokens, usage_tokens
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer

KEY = "sk-sr-limited-team"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def store_file(path: Path, upstream: FakeOpenAI) -> Path:
    path.write_text(f"""
gateway_keys:
  - id: limited
    sha256: {hash_key(KEY)}
    rate_limits: {{rpm: 20}}
  - id: vk-user
    sha256: {hash_key(KEY + "-vk")}
virtual_keys:
  slow-vk:
    provider: openai
    custom_host: {upstream.url}
    api_key: {{env: HOME}}
    rate_limits: {{rpm: 3}}
""")
    return path


@pytest.mark.slow
def test_requests_per_minute_exact_across_two_processes(tmp_path: Path, redis: RedisServer,
                                                        upstream: FakeOpenAI) -> None:
    config = store_file(tmp_path / "store.yaml", upstream)
    env = {"SKYRELAY_REDIS_URL": redis.url, "SKYRELAY_CONFIG": str(config), "SKYRELAY_REDIS_TIMEOUT_MS": "500"}
    gateways = [GatewayProcess(tmp_path / f"logs{i}", env=env).start() for i in range(2)]
    try:
        headers = {"x-portkey-api-key": KEY, "x-portkey-provider": "openai", "x-portkey-custom-host": upstream.url}

        def one(i: int) -> httpx.Response:
            return httpx.post(f"{gateways[i % 2].url}/v1/chat/completions", json=BODY, headers=headers, timeout=30)

        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            responses = list(pool.map(one, range(50)))
    finally:
        for gateway in gateways:
            gateway.stop()

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 20 + [429] * 30
    limited = next(r for r in responses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["x-ratelimit-limit-requests"] == "20"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert len(upstream.received) == 20


def test_virtual_key_limit_applies_where_the_key_is_used(tmp_path: Path, redis: RedisServer,
                                                         upstream: FakeOpenAI) -> None:
    config = store_file(tmp_path / "store.yaml", upstream)
    gateway = GatewayProcess(tmp_path / "logs", env={"SKYRELAY_REDIS_URL": redis.url,
                                                     "SKYRELAY_CONFIG": str(config)}).start()
    try:
        headers = {"x-portkey-api-key": KEY + "-vk"}
        fallback = {"strategy": {"mode": "fallback"}, "targets": [
            {"virtual_key": "slow-vk"}, {"provider": "openai", "custom_host": upstream.url}]}
        codes = [httpx.post(f"{gateway.url}/v1/chat/completions", json=BODY, timeout=30,
                            headers={**headers, "x-portkey-virtual-key": "slow-vk"}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        routed = httpx.post(f"{gateway.url}/v1/chat/completions", json=BODY, timeout=30,
                            headers={**headers, "x-portkey-config": json.dumps(fallback)})
        assert routed.status_code == 200  # the limited virtual key falls back to the next target
        assert routed.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    finally:
        gateway.stop()


async def test_token_budget_reserves_then_settles() -> None:
    limiter = MemoryRateLimiter()
    limits = Limits(tpm=1000)
    decision, reservation = await limiter.acquire("key:a", limits, 600)
    assert decision.allowed and reservation is not None
    refused, _ = await limiter.acquire("key:a", limits, 600)
    assert not refused.allowed
    await limiter.settle(reservation, 100)  # the answer used far less than reserved
    allowed, _ = await limiter.acquire("key:a", limits, 600)
    assert allowed.allowed


def test_token_estimates_and_usage() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 50}
    assert 140 <= estimate_tokens(body) <= 170
    assert estimate_tokens({"input": "abcd" * 10}) == 10
    assert usage_tokens({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}) == 7
    assert usage_tokens({"usage": {"total_tokens": 9}}) == 9
    assert usage_tokens({"choices": []}) is None
