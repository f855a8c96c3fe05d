"""Transport-level upstream faults through a real ``skyrelay serve``: each has its documented outcome, and every
request leaves exactly one log record.

Covered elsewhere and not repeated: retries with backoff, Retry-After, request_timeout on JSON calls, the breaker
(tests/routing/test_routing_http.py), Redis outages (tests/state/test_redis_faults.py), sink outages
(tests/telemetry/test_gateway_logs_e2e.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.reliability.fault_upstream import FaultUpstream, self_signed_context
from tests.support.gateway_process import GatewayProcess

STREAM = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
StartGateway = Callable[..., GatewayProcess]


@pytest.fixture
def fault() -> Iterator[Callable[..., FaultUpstream]]:
    started: list[FaultUpstream] = []

    def start(mode: str, **kwargs: object) -> FaultUpstream:
        upstream = FaultUpstream(mode, **kwargs).start()  # type: ignore[arg-type]
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        upstream.stop()


def _events(body: str) -> list[str]:
    return [line[len("data: "):] for line in body.splitlines() if line.startswith("data: ")]


def _openai(host: str) -> dict[str, str]:
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": host, "authorization": "Bearer sk-test"}


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_a_reset_mid_stream_ends_in_an_error_event_not_a_clean_end(start_gateway: StartGateway,
                                                                   fault: Callable[..., FaultUpstream],
                                                                   chunked: bool) -> None:
    upstream = fault("reset_mid_stream", chunked=chunked)
    gateway = start_gateway()
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", headers=_openai(upstream.url),
                      content=json.dumps(STREAM), timeout=30) as response:
        assert response.status_code == 200
        body = response.read().decode()

    events = _events(body)
    assert events[:2] == [events[0]] * 2 and "partial" in events[0]  # what arrived was passed on
    assert "[DONE]" not in events
    error = json.loads(events[-1]).get("error")
    assert error and error["message"] and error["type"], events[-1]
    [record] = gateway.wait_for_records(1)
    assert record["outcome"] == "stream_error", record
    # chunked framing shows the reset itself; a close-delimited body only lacks its data: [DONE] terminator
    assert record["error"]["code"] == ("upstream_stream_broken" if chunked else "upstream_stream_truncated")
    assert httpx.get(f"{gateway.url}/v1/health", timeout=5).status_code == 200


def test_a_slow_first_byte_times_out_and_falls_back(start_gateway: StartGateway, fake_openai: FakeOpenAI,
                                                    fault: Callable[..., FaultUpstream]) -> None:
    slow = fault("ok", first_byte_delay_s=3.0)
    gateway = start_gateway()
    config = {"strategy": {"mode": "fallback"}, "request_timeout": 300, "targets": [
        {"provider": "openai", "api_key": "sk-a", "custom_host": slow.url},
        {"provider": "openai", "api_key": "sk-b", "custom_host": fake_openai.url}]}
    alone = {"provider": "openai", "api_key": "sk-a", "custom_host": slow.url, "request_timeout": 300}

    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        fell_back = client.post("/v1/chat/completions", headers={"x-portkey-config": json.dumps(config)},
                                content=json.dumps(STREAM))
        timed_out = client.post("/v1/chat/completions", headers={"x-portkey-config": json.dumps(alone)},
                                content=json.dumps(STREAM))

    assert fell_back.status_code == 200
    assert fell_back.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert _events(fell_back.text)[-1] == "[DONE]"
    assert timed_out.status_code == 408
    assert "timeout" in timed_out.json()["error"]["message"].lower()
    assert len(gateway.wait_for_records(2)) == 2


@pytest.mark.slow
def test_5xx_and_429_storms_retry_fall_back_and_lose_no_record(start_gateway: StartGateway, tmp_path: Path) -> None:
    primary, secondary = FakeOpenAI().start(), FakeOpenAI().start()
    try:
        gateway = start_gateway(env={"SKYRELAY_BREAKER_FAILURE_THRESHOLD": "5",
                                     "SKYRELAY_BREAKER_COOLDOWN_S": "60"})
        config = {"strategy": {"mode": "fallback"}, "retry": {"attempts": 1}, "targets": [
            {"provider": "openai", "api_key": "sk-a", "custom_host": primary.url},
            {"provider": "openai", "api_key": "sk-b", "custom_host": secondary.url}]}
        headers = {"x-portkey-config": json.dumps(config)}
        primary.fail_always(503)

        def call(i: int) -> httpx.Response:
            body = STREAM if i % 2 else CHAT
            return httpx.post(f"{gateway.url}/v1/chat/completions", headers=headers, content=json.dumps(body),
                              timeout=60)

        with ThreadPoolExecutor(max_workers=20) as pool:
            storm = list(pool.map(call, range(100)))
        assert [r.status_code for r in storm] == [200] * 100
        assert {r.headers["x-portkey-last-used-option-index"] for r in storm} == {"config.targets[1]"}
        # The breaker opened: far fewer than 100 x 2 attempts reached the failing primary.
        assert len(primary.received) < 100, len(primary.received)

        secondary.fail_always(429)
        with ThreadPoolExecutor(max_workers=20) as pool:
            limited = list(pool.map(call, range(100, 150)))
        assert {r.status_code for r in limited} <= {429, 503}, {r.status_code for r in limited}
        assert all(r.json()["error"]["message"] for r in limited)

        records = gateway.wait_for_records(150, timeout_s=20)
        assert len(records) == 150
        assert httpx.get(f"{gateway.url}/v1/health", timeout=5).status_code == 200
    finally:
        primary.stop()
        secondary.stop()


def test_a_self_signed_https_custom_host_is_a_clear_error(start_gateway: StartGateway, tmp_path: Path,
                                                          fault: Callable[..., FaultUpstream]) -> None:
    upstream = fault("ok", tls=self_signed_context(tmp_path))
    gateway = start_gateway()
    for body in (CHAT, STREAM):
        response = httpx.post(f"{gateway.url}/v1/chat/completions", headers=_openai(upstream.url),
                              content=json.dumps(body), timeout=30)
        assert response.status_code == 502, response.text
        message = response.json()["error"]["message"].lower()
        assert "certificate" in message or "ssl" in message or "tls" in message, message
    assert upstream.requests == 0  # the handshake failed: nothing was sent to an untrusted host
    assert len(gateway.wait_for_records(2)) == 2
