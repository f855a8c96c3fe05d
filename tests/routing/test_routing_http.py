"""Strategies, nesting, inheritance, retries, timeouts and the breaker — through real HTTP with the openai SDK."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from core.routing.clock import ManualClock
from tests.fakes.openai_upstream import FakeOpenAI, Scripted
from tests.support.inprocess import InProcessGateway

MESSAGES = [{"role": "user", "content": "hi"}]


def target(fake: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "api_key": "sk-test", "custom_host": fake.url, **extra}


def call(gateway: InProcessGateway, config: dict[str, Any], *, metadata: dict[str, Any] | None = None,
         model: str = "gpt-4o-mini", **headers: str) -> httpx.Response:
    hdrs = {"x-portkey-config": json.dumps(config), **headers}
    if metadata is not None:
        hdrs["x-portkey-metadata"] = json.dumps(metadata)
    return httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": model, "messages": MESSAGES},
                      headers=hdrs, timeout=15)


def outage(status: int, message: str = "down") -> Scripted:
    return Scripted(status=status, body={"error": {"message": message, "type": "server_error"}})


def test_fallback_moves_on_after_a_failure(routed_gateway: InProcessGateway, upstreams: list[FakeOpenAI]) -> None:
    a, b, _ = upstreams
    a.enqueue(outage(500))
    config = {"strategy": {"mode": "fallback"}, "targets": [target(a), target(b)]}

    response = call(routed_gateway, config)

    assert response.status_code == 200
    assert response.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert response.headers["x-portkey-retry-attempt-count"] == "0"
    assert len(a.received) == 1 and len(b.received) == 1


def test_fallback_only_on_listed_status_codes(routed_gateway: InProcessGateway, upstreams: list[FakeOpenAI]) -> None:
    a, b, _ = upstreams
    a.enqueue(outage(400, "bad request"))
    config = {"strategy": {"mode": "fallback", "on_status_codes": [429, 503]}, "targets": [target(a), target(b)]}

    response = call(routed_gateway, config)

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "openai error: bad request"
    assert response.headers["x-portkey-last-used-option-index"] == "config.targets[0]"
    assert not b.received


def test_all_fallbacks_failing_returns_the_last_response(routed_gateway: InProcessGateway,
                                                         upstreams: list[FakeOpenAI]) -> None:
    a, b, c = upstreams
    a.enqueue(outage(500, "first"))
    b.enqueue(outage(502, "second"))
    c.enqueue(outage(503, "third"))
    config = {"strategy": {"mode": "fallback"}, "targets": [target(a), target(b), target(c)]}

    response = call(routed_gateway, config)

    assert response.status_code == 503
    assert response.json()["error"]["message"] == "openai error: third"
    assert response.headers["x-portkey-last-used-option-index"] == "config.targets[2]"


def test_loadbalance_respects_weights_and_never_picks_weight_zero(
    routed_gateway: InProcessGateway, upstreams: list[FakeOpenAI]
) -> None:
    a, b, c = upstreams
    config = {"strategy": {"mode": "loadbalance"},
              "targets": [target(a, weight=3), target(b, weight=1), target(c, weight=0)]}
    with httpx.Client(timeout=15) as client:
        for _ in range(200):
            response = client.post(f"{routed_gateway.url}/v1/chat/completions",
                                   json={"model": "m", "messages": MESSAGES},
                                   headers={"x-portkey-config": json.dumps(config)})
            assert response.status_code == 200

    assert not c.received
    assert 120 <= len(a.received) <= 180  # expected 150 of 200; bounds are > 4 standard deviations wide
    assert len(a.received) + len(b.received) == 200


def test_all_zero_weights_is_a_400_not_a_hang(routed_gateway: InProcessGateway, upstreams: list[FakeOpenAI]) -> None:
    a, b, _ = upstreams
    config = {"strategy": {"mode": "loadbalance"}, "targets": [target(a, weight=0), target(b, weight=0)]}

    response = call(routed_gateway, config)

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "failure" and body["message"] == "Invalid config passed"
    assert any("weight" in e for e in body["errors"])


def test_conditional_routes_on_metadata_and_params(routed_gateway: InProcessGateway,
                                                   upstreams: list[FakeOpenAI]) -> None:
    a, b, c = upstreams
    config = {
        "strategy": {"mode": "conditional", "conditions": [
            {"query": {"metadata.tier": {"$eq": "pro"}}, "then": "pro"},
            {"query": {"$or": [{"params.model": {"$regex": "^mini"}}, {"metadata.x": "1"}]}, "then": "cheap"},
        ], "default": "fallback"},
        "targets": [target(a, name="pro"), target(b, name="cheap"), target(c, name="fallback")],
    }

    assert call(routed_gateway, config, metadata={"tier": "pro"}).headers[
        "x-portkey-last-used-option-index"] == "config.targets[0]"
    assert call(routed_gateway, config, model="mini-model").headers[
        "x-portkey-last-used-option-index"] == "config.targets[1]"
    assert call(routed_gateway, config, metadata={"x": "1"}).headers[
        "x-portkey-last-used-option-index"] == "config.targets[1]"
    assert call(routed_gateway, config).headers["x-portkey-last-used-option-index"] == "config.targets[2]"
    assert (len(a.received), len(b.received), len(c.received)) == (1, 2, 1)


def test_conditional_without_a_match_or_default_is_a_400(routed_gateway: InProcessGateway,
                                                         upstreams: list[FakeOpenAI]) -> None:
    a, _, _ = upstreams
    config = {"strategy": {"mode": "conditional", "conditions": [{"query": {"metadata.t": "x"}, "then": "one"}]},
              "targets": [target(a, name="one")]}

    response = call(routed_gateway, config)

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Query router did not resolve to any valid target"


def test_nested_strategies_report_the_full_path(routed_gateway: InProcessGateway, upstreams: list[FakeOpenAI]) -> None:
    a, b, c = upstreams
    a.enqueue(outage(500))
    b.enqueue(outage(500))
    config = {"strategy": {"mode": "fallback"}, "targets": [
        {"strategy": {"mode": "fallback"}, "targets": [target(a), target(b)]},
        {"strategy": {"mode": "loadbalance"}, "targets": [target(c, weight=0), {
            "strategy": {"mode": "single"}, "targets": [target(c)]}]},
    ]}

    response = call(routed_gateway, config)

    assert response.status_code == 200
    assert response.headers["x-portkey-last-used-option-index"] == "config.targets[1].targets[1].targets[0]"


def test_override_params_are_merged_down_the_tree(routed_gateway: InProcessGateway,
                                                  upstreams: list[FakeOpenAI]) -> None:
    a, _, _ = upstreams
    config = {"override_params": {"temperature": 0.1, "model": "parent-model"}, "strategy": {"mode": "single"},
              "targets": [target(a, override_params={"model": "child-model", "max_tokens": 5})]}

    assert call(routed_gateway, config).status_code == 200
    sent = a.received[-1].body
    assert (sent["model"], sent["temperature"], sent["max_tokens"]) == ("child-model", 0.1, 5)


def test_retries_back_off_and_count(routed_gateway: InProcessGateway, upstreams: list[FakeOpenAI],
                                    clock: ManualClock) -> None:
    a, _, _ = upstreams
    a.enqueue(outage(503), outage(500))
    config = {"retry": {"attempts": 3}, **target(a)}

    response = call(routed_gateway, config)

    assert response.status_code == 200
    assert response.headers["x-portkey-retry-attempt-count"] == "2"
    assert len(a.received) == 3
    assert len(clock.sleeps) == 2
    assert 0.5 <= clock.sleeps[0] <= 1.0 and 1.0 <= clock.sleeps[1] <= 2.0  # 1 s, 2 s with equal jitter


def test_exhausted_retries_report_minus_one(routed_gateway: InProcessGateway, upstreams: list[FakeOpenAI],
                                            clock: ManualClock) -> None:
    a, _, _ = upstreams
    a.fail_always(500)
    response = call(routed_gateway, {"retry": {"attempts": 2}, **target(a)})

    assert response.status_code == 500
    assert response.headers["x-portkey-retry-attempt-count"] == "-1"
    assert len(a.received) == 3


def test_statuses_outside_on_status_codes_are_not_retried(routed_gateway: InProcessGateway,
                                                           upstreams: list[FakeOpenAI]) -> None:
    a, _, _ = upstreams
    a.enqueue(outage(500))
    response = call(routed_gateway, {"retry": {"attempts": 3, "on_status_codes": [429]}, **target(a)})

    assert response.status_code == 500
    assert response.headers["x-portkey-retry-attempt-count"] == "0"
    assert len(a.received) == 1


def test_retry_after_header_sets_the_delay(routed_gateway: InProcessGateway, upstreams: list[FakeOpenAI],
                                           clock: ManualClock) -> None:
    a, _, _ = upstreams
    a.enqueue(Scripted(status=429, body={"error": {"message": "slow down"}}, headers={"retry-after-ms": "1500"}),
              Scripted(status=429, body={"error": {"message": "slow down"}}, headers={"retry-after": "7"}))
    response = call(routed_gateway, {"retry": {"attempts": 3, "use_retry_after_header": True}, **target(a)})

    assert response.status_code == 200
    assert clock.sleeps == [1.5, 7.0]


def test_retry_after_beyond_the_budget_stops_retrying(routed_gateway: InProcessGateway,
                                                      upstreams: list[FakeOpenAI], clock: ManualClock) -> None:
    a, _, _ = upstreams
    a.enqueue(Scripted(status=429, body={"error": {"message": "later"}}, headers={"retry-after": "120"}))
    response = call(routed_gateway, {"retry": {"attempts": 3, "use_retry_after_header": True}, **target(a)})

    assert response.status_code == 429
    assert response.headers["x-portkey-retry-attempt-count"] == "-1"
    assert clock.sleeps == []


def test_request_timeout_is_408_and_falls_back(routed_gateway: InProcessGateway,
                                               upstreams: list[FakeOpenAI]) -> None:
    a, b, _ = upstreams
    a.enqueue(Scripted(delay_s=1.0, body={"late": True}))
    alone = call(routed_gateway, {"request_timeout": 150, **target(a)})
    assert alone.status_code == 408
    assert alone.json()["error"] == {"message": "Request exceeded the timeout sent in the request: 150ms",
                                     "type": "timeout_error", "param": None, "code": None}

    a.enqueue(Scripted(delay_s=1.0, body={"late": True}))
    config = {"request_timeout": 150, "strategy": {"mode": "fallback"}, "targets": [target(a), target(b)]}
    response = call(routed_gateway, config)
    assert response.status_code == 200
    assert response.headers["x-portkey-last-used-option-index"] == "config.targets[1]"


def test_breaker_opens_skips_the_target_and_probes_after_cooldown(
    routed_gateway: InProcessGateway, upstreams: list[FakeOpenAI], clock: ManualClock
) -> None:
    a, b, _ = upstreams
    a.fail_always(500)
    config = {"strategy": {"mode": "fallback"}, "targets": [target(a), target(b)]}
    for _ in range(3):
        assert call(routed_gateway, config).status_code == 200
    assert len(a.received) == 3

    for _ in range(5):  # open: a is skipped without a call
        assert call(routed_gateway, config).headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert len(a.received) == 3
    ready = httpx.get(f"{routed_gateway.url}/v1/ready").json()
    assert list(ready["circuits"].values()) == ["open"]

    clock.advance(31)
    a.reset()  # the provider recovered
    response = call(routed_gateway, config)
    assert response.headers["x-portkey-last-used-option-index"] == "config.targets[0]"  # the half-open probe
    assert len(a.received) == 1
    assert httpx.get(f"{routed_gateway.url}/v1/ready").json()["circuits"] == {}


def test_a_lone_open_circuit_answers_503(routed_gateway: InProcessGateway, upstreams: list[FakeOpenAI]) -> None:
    a, _, _ = upstreams
    a.fail_always(502)
    for _ in range(3):
        call(routed_gateway, target(a))
    response = call(routed_gateway, target(a))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "circuit_open"


def test_streams_route_through_configs_too(routed_gateway: InProcessGateway, upstreams: list[FakeOpenAI]) -> None:
    a, b, _ = upstreams
    a.enqueue(outage(500))
    config = {"strategy": {"mode": "fallback"}, "targets": [target(a), target(b)]}
    client = openai.OpenAI(base_url=f"{routed_gateway.url}/v1", api_key="unused", max_retries=0,
                           default_headers={"x-portkey-config": json.dumps(config)})
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from the fake stream."


@pytest.mark.parametrize(("config", "message", "error"), [
    ({"strategy": {"mode": "roundrobin"}, "targets": [{"provider": "openai"}]}, "Invalid config passed",
     "path: strategy,mode, message: Invalid 'mode' value. Must be one of: single, loadbalance, fallback, "
     "conditional"),
    ({"retry": {"attempts": "many"}, "provider": "openai"}, "Invalid config passed", "path: retry,attempts, "),
    ({"strategy": {"mode": "fallback"}}, "Invalid config passed", "a 'strategy' needs 'targets'"),
    ({"options": [{"provider": "openai"}]}, "This version of config is not supported in this route. Please migrate "
     "to the latest version", None),
])
def test_invalid_configs_get_portkeys_400(routed_gateway: InProcessGateway, config: dict[str, Any], message: str,
                                          error: str | None) -> None:
    response = call(routed_gateway, config)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "failure" and body["message"] == message
    if error is not None:
        assert any(e.startswith(error) or error in e for e in body["errors"]), body["errors"]


def test_config_that_is_not_json_nor_a_saved_id(routed_gateway: InProcessGateway) -> None:
    response = httpx.post(f"{routed_gateway.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES},
                          headers={"x-portkey-config": "{not json"})
    assert response.status_code == 400
    assert response.json()["message"] == "Invalid config passed. You need to pass a valid json"
    unknown = httpx.post(f"{routed_gateway.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES},
                         headers={"x-portkey-config": "pc-missing"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "config_not_found"
    assert "pc-missing" in unknown.json()["error"]["message"]


def test_config_without_provider_uses_the_provider_headers(routed_gateway: InProcessGateway,
                                                           upstreams: list[FakeOpenAI]) -> None:
    a, _, _ = upstreams
    a.enqueue(outage(500))
    response = httpx.post(f"{routed_gateway.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES},
                          headers={"x-portkey-config": json.dumps({"retry": {"attempts": 1}}),
                                   "x-portkey-provider": "openai", "x-portkey-custom-host": a.url,
                                   "authorization": "Bearer sk-header"})
    assert response.status_code == 200
    assert response.headers["x-portkey-retry-attempt-count"] == "1"
    assert a.received[-1].headers["authorization"] == "Bearer sk-header"


def test_headers_beat_the_config_for_custom_host(routed_gateway: InProcessGateway,
                                                 upstreams: list[FakeOpenAI]) -> None:
    a, b, _ = upstreams
    response = call(routed_gateway, target(a), **{"x-portkey-custom-host": b.url})
    assert response.status_code == 200
    assert not a.received and len(b.received) == 1
