"""The breaker shared by two gateways through Redis; the cluster client path; the Redis-cached config source."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.cache.backends import RedisCache
from core.config.cached_source import RedisCachedSource
from core.ratelimit.base import Limits
from core.ratelimit.limiters import RedisRateLimiter
from core.routing.breaker import BreakerSettings, MemoryBreaker
from core.routing.clock import SystemClock
from core.routing.redis_breaker import RedisBreaker
from core.state.redis import RedisState
from tests.fakes.openai_upstream import FakeOpenAI, Scripted
from tests.support.inprocess import InProcessGateway
from tests.support.redis_server import RedisCluster, RedisServer

MESSAGES = [{"role": "user", "content": "hi"}]


def test_a_circuit_opened_by_one_replica_is_honoured_by_another(tmp_path: Path, redis: RedisServer,
                                                               upstream_server: FakeOpenAI) -> None:
    failing, healthy = upstream_server, FakeOpenAI().start()
    failing.reset()
    settings = {"redis_url": redis.url, "breaker_failure_threshold": 2, "breaker_cooldown_s": 60,
                "redis_timeout_ms": 200}
    a = InProcessGateway(tmp_path / "a", **settings).start()
    b = InProcessGateway(tmp_path / "b", **settings).start()
    try:
        failing.fail_always(503)
        config = {"strategy": {"mode": "fallback"}, "targets": [
            {"provider": "openai", "custom_host": failing.url}, {"provider": "openai", "custom_host": healthy.url}]}
        headers = {"x-portkey-config": json.dumps(config)}
        body = {"model": "m", "messages": MESSAGES}
        for _ in range(2):
            assert httpx.post(f"{a.url}/v1/chat/completions", json=body, headers=headers).status_code == 200
        assert len(failing.received) == 2
        time.sleep(0.6)  # b's cached "closed" view expires (sync interval 0.5 s)
        for _ in range(3):
            response = httpx.post(f"{b.url}/v1/chat/completions", json=body, headers=headers)
            assert response.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
        assert len(failing.received) == 2, "replica b called a target whose circuit replica a opened"
        assert "open" in httpx.get(f"{b.url}/v1/ready").json()["circuits"].values()
    finally:
        a.stop()
        b.stop()
        healthy.stop()
        failing.reset()


async def test_shared_breaker_probe_and_local_fallback(redis: RedisServer) -> None:
    state = RedisState(redis.url, timeout_ms=200, retry_interval_s=0.2)
    settings = BreakerSettings(failure_threshold=1, cooldown_s=0.3)
    local = MemoryBreaker(settings, SystemClock())
    one, two = RedisBreaker(state, settings, local), RedisBreaker(state, settings, local)
    await one.record("target", 500)
    assert not await two.allow("target")
    await asyncio.sleep(0.35)
    assert await two.allow("target")  # the single probe...
    assert not await one.allow("target")  # ...is the only call let through
    await two.record("target", 200)
    await asyncio.sleep(0.01)
    assert await one.allow("target")

    redis.kill()
    try:
        await one.record("other", 500)  # Redis is down: the local breaker decides
        assert not await one.allow("other")
        assert one.fallbacks >= 1
    finally:
        redis.start()
        await state.aclose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    started = RedisCluster(tmp_path_factory.mktemp("cluster")).start()
    yield started
    started.stop()


@pytest.mark.slow
async def test_cluster_client_serves_cache_rate_limits_and_breaker(cluster: RedisCluster) -> None:
    state = RedisState(cluster.url, cluster=True, timeout_ms=500)
    try:
        cache = RedisCache(state)
        keys = [f"skyrelay:cache:{{tenant-{i}}}:k" for i in range(20)]  # spread over the three masters
        for key in keys:
            await cache.set(key, key.encode(), 30)
        assert [await cache.get(key) for key in keys] == [key.encode() for key in keys]
        assert cache.stats.errors == 0

        limiter = RedisRateLimiter(state)
        decisions = [(await limiter.acquire("key:cluster", Limits(rpm=5), 1))[0].allowed for _ in range(7)]
        assert decisions == [True] * 5 + [False] * 2

        breaker = RedisBreaker(state, BreakerSettings(failure_threshold=2), MemoryBreaker(BreakerSettings(),
                                                                                          SystemClock()))
        await breaker.record("t1", 500)
        await breaker.record("t1", 500)
        assert not await breaker.allow("t1")
        assert breaker.fallbacks == 0
    finally:
        await state.aclose()


class CountingSource:
    def __init__(self) -> None:
        self.fetches = 0

    def describe(self) -> str:
        return "memory://store"

    async def fetch(self, version: str | None) -> tuple[str | None, str | None]:
        self.fetches += 1
        return "configs: {}\n", "v1"


async def test_replicas_share_the_config_document_through_redis(redis: RedisServer) -> None:
    state = RedisState(redis.url, timeout_ms=200)
    try:
        inner = CountingSource()
        replicas = [RedisCachedSource(inner, state, ttl_s=30) for _ in range(5)]
        results = [await replica.fetch(None) for replica in replicas]
        assert results == [("configs: {}\n", "v1")] * 5
        assert inner.fetches == 1
        assert await replicas[0].fetch("v1") == (None, "v1")
    finally:
        await state.aclose()


def test_scripted_fake_still_used(upstream: FakeOpenAI) -> None:
    upstream.enqueue(Scripted(status=200, body={"ok": True}))
    assert httpx.post(f"{upstream.url}/chat/completions", json={"model": "m"}).json() == {"ok": True}
