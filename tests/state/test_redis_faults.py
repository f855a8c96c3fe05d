"""Redis killed and restarted under a running gateway: it keeps answering, degrades, and recovers by itself."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from core.auth.gateway_keys import hash_key
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.inprocess import InProcessGateway
from tests.support.redis_server import RedisServer

MESSAGES = [{"role": "user", "content": "hi"}]


def post(gateway: InProcessGateway, upstream: FakeOpenAI, key: str) -> httpx.Response:
    config = {"provider": "openai", "custom_host": upstream.url, "cache": {"mode": "simple", "max_age": 300}}
    return httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES}, timeout=10,
                      headers={"x-portkey-config": json.dumps(config), "x-portkey-api-key": key})


def test_redis_outage_degrades_and_recovers(tmp_path: Path, redis: RedisServer, upstream: FakeOpenAI) -> None:
    key = "sk-sr-fault-team"
    store = tmp_path / "store.yaml"
    store.write_text(f"gateway_keys:\n  - id: t\n    sha256: {hash_key(key)}\n    rate_limits: {{rpm: 1000}}\n")
    gateway = InProcessGateway(tmp_path / "logs", redis_url=redis.url, config=str(store), redis_timeout_ms=50,
                               redis_retry_interval_s=0.3).start()
    try:
        assert post(gateway, upstream, key).headers["x-portkey-cache-status"] == "MISS"
        time.sleep(0.2)
        assert post(gateway, upstream, key).headers["x-portkey-cache-status"] == "HIT"

        redis.kill()
        started = time.monotonic()
        during = [post(gateway, upstream, key) for _ in range(5)]
        assert [r.status_code for r in during] == [200] * 5  # fail open: rate limits and cache degrade
        assert all(r.headers["x-portkey-cache-status"] == "MISS" for r in during)
        assert time.monotonic() - started < 3.0  # a dead Redis does not add its timeout to every request
        ready = httpx.get(f"{gateway.url}/v1/ready").json()
        assert ready["status"] == "ready" and ready["checks"]["redis"]["degraded"] is True
        redis_state = gateway.gateway.redis
        assert redis_state is not None and redis_state.stats.outages >= 1

        redis.start()  # same port, empty
        time.sleep(0.4)
        post(gateway, upstream, key)
        time.sleep(0.2)
        assert post(gateway, upstream, key).headers["x-portkey-cache-status"] == "HIT"
        assert "degraded" not in httpx.get(f"{gateway.url}/v1/ready").json()["checks"]["redis"]
    finally:
        gateway.stop()


def test_fail_closed_refuses_with_503(tmp_path: Path, redis: RedisServer, upstream: FakeOpenAI) -> None:
    key = "sk-sr-closed-team"
    store = tmp_path / "store.yaml"
    store.write_text(f"gateway_keys:\n  - id: t\n    sha256: {hash_key(key)}\n    rate_limits: {{rpm: 1000}}\n")
    gateway = InProcessGateway(tmp_path / "logs", redis_url=redis.url, config=str(store), redis_timeout_ms=50,
                               ratelimit_fail_open=False).start()
    try:
        assert post(gateway, upstream, key).status_code == 200
        redis.kill()
        refused = post(gateway, upstream, key)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "rate_limiter_unavailable"
    finally:
        gateway.stop()
        redis.start()
