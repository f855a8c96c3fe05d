"""The response cache through real HTTP, on Redis (shared) — HIT after MISS, stream replay, TTL, tenants."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from core.auth.gateway_keys import hash_key
from tests.fakes.openai_upstream import FakeOpenAI, Scripted
from tests.support.inprocess import InProcessGateway
from tests.support.redis_server import RedisServer

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
KEY_A, KEY_B = "sk-sr-tenant-a", "sk-sr-tenant-b"


@pytest.fixture
def gateway(tmp_path: Path, redis: RedisServer) -> Iterator[InProcessGateway]:
    store = tmp_path / "store.yaml"
    store.write_text(f"gateway_keys:\n  - {{id: tenant-a, sha256: {hash_key(KEY_A)}}}\n"
                     f"  - {{id: tenant-b, sha256: {hash_key(KEY_B)}}}\n")
    gw = InProcessGateway(tmp_path / "logs", redis_url=redis.url, config=str(store), redis_timeout_ms=200).start()
    yield gw
    gw.stop()


def client(gateway: InProcessGateway, fake: FakeOpenAI, key: str = KEY_A, cache: dict[str, Any] | None = None,
           **headers: str) -> openai.OpenAI:
    config = {"provider": "openai", "api_key": "sk-x", "custom_host": fake.url,
              "cache": cache or {"mode": "simple", "max_age": 60}}
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, default_headers={
        "x-portkey-config": json.dumps(config), "x-portkey-api-key": key, **headers})


def wait_for_store() -> None:
    time.sleep(0.15)  # stores are background tasks: give the write to Redis a moment


def test_hit_after_miss_with_identical_body(gateway: InProcessGateway, upstream: FakeOpenAI) -> None:
    c = client(gateway, upstream)
    first = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    wait_for_store()
    second = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)

    assert first.headers["x-portkey-cache-status"] == "MISS"
    assert second.headers["x-portkey-cache-status"] == "HIT"
    assert json.loads(second.http_response.content) == json.loads(first.http_response.content)
    assert len(upstream.received) == 1

    other = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.5)
    assert other.headers["x-portkey-cache-status"] == "MISS"


def test_streams_are_stored_assembled_and_replayed(gateway: InProcessGateway, upstream: FakeOpenAI) -> None:
    c = client(gateway, upstream)
    live = list(c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                          stream_options={"include_usage": True}))
    wait_for_store()
    replayed = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                           stream_options={"include_usage": True})
    assert replayed.headers["x-portkey-cache-status"] == "HIT"
    chunks = list(replayed.parse())
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)

    assert text == "".join(ch.choices[0].delta.content or "" for ch in live if ch.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == live[-1].usage.total_tokens
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    sent = {k: v for k, v in c.default_headers.items() if isinstance(v, str)}
    raw = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES,
                                                                 "stream": True}, headers=sent)
    assert raw.text.rstrip().endswith("data: [DONE]")

    whole = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert whole.headers["x-portkey-cache-status"] == "HIT"
    assert whole.parse().choices[0].message.content == "Hello from the fake stream."
    assert len(upstream.received) == 1


def test_entries_expire_after_max_age(gateway: InProcessGateway, upstream: FakeOpenAI) -> None:
    c = client(gateway, upstream, cache={"mode": "simple", "max_age": 1})
    c.chat.completions.create(model="m", messages=MESSAGES)
    wait_for_store()
    assert c.chat.completions.with_raw_response.create(model="m", messages=MESSAGES).headers[
        "x-portkey-cache-status"] == "HIT"
    time.sleep(1.1)
    assert c.chat.completions.with_raw_response.create(model="m", messages=MESSAGES).headers[
        "x-portkey-cache-status"] == "MISS"


def test_tenants_never_share_entries(gateway: InProcessGateway, upstream: FakeOpenAI) -> None:
    client(gateway, upstream, KEY_A).chat.completions.create(model="m", messages=MESSAGES)
    wait_for_store()
    other = client(gateway, upstream, KEY_B).chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert other.headers["x-portkey-cache-status"] == "MISS"
    assert len(upstream.received) == 2


def test_force_refresh_and_errors_are_not_cached(gateway: InProcessGateway, upstream: FakeOpenAI) -> None:
    upstream.enqueue(Scripted(status=500, body={"error": {"message": "boom"}}))
    c = client(gateway, upstream)
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="m", messages=MESSAGES)
    wait_for_store()
    assert c.chat.completions.with_raw_response.create(model="m", messages=MESSAGES).headers[
        "x-portkey-cache-status"] == "MISS"
    wait_for_store()
    refreshed = client(gateway, upstream, **{"x-portkey-cache-force-refresh": "true"}).chat.completions \
        .with_raw_response.create(model="m", messages=MESSAGES)
    assert refreshed.headers["x-portkey-cache-status"] == "REFRESH"
    assert len(upstream.received) == 3


def test_no_cache_config_is_disabled_and_semantic_is_refused(gateway: InProcessGateway, upstream: FakeOpenAI
                                                              ) -> None:
    headers = {"x-portkey-api-key": KEY_A, "x-portkey-provider": "openai", "x-portkey-custom-host": upstream.url}
    plain = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES},
                       headers=headers)
    assert plain.headers["x-portkey-cache-status"] == "DISABLED"

    semantic = client(gateway, upstream, cache={"mode": "semantic"})
    with pytest.raises(openai.BadRequestError) as caught:
        semantic.chat.completions.create(model="m", messages=MESSAGES)
    assert "semantic" in caught.value.body["message"]


def test_memory_cache_without_redis(tmp_path: Path, upstream: FakeOpenAI) -> None:
    gw = InProcessGateway(tmp_path / "logs").start()
    try:
        config = {"provider": "openai", "custom_host": upstream.url, "cache": {"mode": "simple"}}
        headers = {"x-portkey-config": json.dumps(config)}
        body = {"model": "m", "messages": MESSAGES}
        assert httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers).headers[
            "x-portkey-cache-status"] == "MISS"
        wait_for_store()
        assert httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers).headers[
            "x-portkey-cache-status"] == "HIT"
    finally:
        gw.stop()
