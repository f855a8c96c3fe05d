"""A real `skyrelay serve`, driven by the openai SDK, logging to S3, GCS and Azure Blob emulators.

Pins down: N requests → N records in the bucket; SIGTERM while every record is still in an unwritten batch → none
lost; the bucket down for part of the run → every record after recovery; SIGTERM while the bucket is down → the
records wait in the disk spill and the next process replays them; no secret in any record or log line; /metrics
parses with Prometheus' own parser.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.openai_upstream import FakeOpenAI, Scripted
from tests.support.emulators import AZURITE_KEY, MotoS3, ToggleProxy
from tests.support.gateway_process import GatewayProcess
from tests.telemetry.conftest import Bucket

pytestmark = pytest.mark.slow

PROVIDER_KEY = "sk-provider-e2e-secret-5150"
GATEWAY_KEY = "sr-gateway-e2e-secret-8080"
TOOL_CALL = {
    "id": "chatcmpl-tool", "object": "chat.completion", "created": 1764201600, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}}],
    "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


def client(gateway: GatewayProcess, fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=PROVIDER_KEY, max_retries=0, default_headers={
        "x-portkey-provider": "openai", "x-portkey-custom-host": fake.url, "x-portkey-api-key": GATEWAY_KEY})


def gateway_env(sink_url: str, spill: Path, **extra: str) -> dict[str, str]:
    return {"SKYRELAY_LOG_SINK": sink_url, "SKYRELAY_LOG_SPILL_DIR": str(spill),
            "SKYRELAY_GATEWAY_KEY_HASHES": hashlib.sha256(GATEWAY_KEY.encode()).hexdigest(),
            "SKYRELAY_LOG_LEVEL": "info", **extra}


def send(c: openai.OpenAI, count: int, offset: int = 0) -> None:
    def one(i: int) -> None:
        messages = [{"role": "user", "content": f"request {offset + i}"}]
        if i % 3 == 0:
            text = "".join(chunk.choices[0].delta.content or "" for chunk in c.chat.completions.create(
                model="gpt-4o-mini", messages=messages, stream=True) if chunk.choices)  # type: ignore[arg-type]
            assert text == "Hello from the fake stream."
        else:
            answer = c.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
            assert answer.choices[0].message.content == "Hello from the fake upstream."

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(one, range(count)))


def metrics(gateway: GatewayProcess) -> dict[str, float]:
    """Every sample, keyed by name (labels summed away)."""
    text = httpx.get(f"{gateway.url}/metrics").text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def records_in(objects: dict[str, bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for data in objects.values() for line in data.splitlines()]


def assert_no_secret(blobs: list[bytes], stderr: str) -> None:
    """Neither the caller's keys nor the storage account key (in the Azure connection string) leak anywhere."""
    for secret in (PROVIDER_KEY, GATEWAY_KEY, AZURITE_KEY):
        for blob in blobs:
            assert secret.encode() not in blob
        assert secret not in stderr


def wait_for(check: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    return check()


@pytest.fixture
def prefix() -> str:
    return f"gw/{uuid.uuid4().hex[:8]}"


def test_sigterm_mid_batch_loses_nothing(bucket: Bucket, prefix: str, start_gateway: Any,
                                         fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    env = gateway_env(bucket.sink_url(prefix), tmp_path / "spill", SKYRELAY_LOG_BATCH_MAX_AGE_S="60",
                      **bucket.env(None))
    gateway: GatewayProcess = start_gateway(env=env)
    c = client(gateway, fake_openai)
    fake_openai.enqueue(Scripted(body=TOOL_CALL))
    tool = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}],
                                     tools=TOOLS)  # type: ignore[arg-type]
    assert tool.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[index]
    send(c, 18)
    bad = httpx.post(f"{gateway.url}/v1/chat/completions", content=b"{", headers={"x-portkey-api-key": GATEWAY_KEY})
    assert bad.status_code == 400

    # Metrics come from records built in the writer, which looks at its queue every 50 ms.
    before = wait_for(lambda: (m := metrics(gateway)).get("skyrelay_requests_total") == 20 and m, 5) or metrics(gateway)
    assert before["skyrelay_requests_total"] == 20
    assert before["skyrelay_log_records_written_total"] == 0  # all 20 are still in the unwritten batch
    assert bucket.objects(prefix) == {}

    assert gateway.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    objects = bucket.objects(prefix)
    records = records_in(objects)
    assert len(records) == 20 and len({r["id"] for r in records}) == 20
    assert sorted(r["status"] for r in records) == [200] * 19 + [400]
    assert sum(1 for r in records if r["stream"]) == 6
    (tool_record,) = [r for r in records if (r["response"].get("body") or {}).get("id") == "chatcmpl-tool"]
    assert tool_record["response"]["body"]["choices"][0]["message"]["tool_calls"][0]["id"] == "call_1"
    assert tool_record["cost_status"] == "ok" and tool_record["cost"] > 0
    assert all(r["gateway_key_id"] and r["request"]["headers"]["authorization"] == "[REDACTED]"
               for r in records if r["status"] == 200)
    assert_no_secret(list(objects.values()), gateway.stderr())


def test_a_bucket_down_mid_run_gets_every_record_after_recovery(moto_s3: MotoS3, prefix: str, start_gateway: Any,
                                                                 fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    proxy = ToggleProxy(moto_s3.port).start()
    try:
        env = gateway_env(f"s3://{moto_s3.bucket}/{prefix}", tmp_path / "spill", SKYRELAY_LOG_WRITE_ATTEMPTS="1",
                          SKYRELAY_LOG_REPLAY_INTERVAL_S="0.3", **moto_s3.env(proxy.url))
        gateway: GatewayProcess = start_gateway(env=env)
        c = client(gateway, fake_openai)
        send(c, 10)
        assert wait_for(lambda: len(records_in(moto_s3.objects(prefix))) == 10)
        proxy.down()
        send(c, 15, offset=10)
        spilled = wait_for(lambda: metrics(gateway)["skyrelay_log_spill_records"] == 15)
        assert spilled, metrics(gateway)
        ready = httpx.get(f"{gateway.url}/v1/ready").json()
        assert ready["status"] == "ready" and ready["checks"]["log_sink"]["state"] == "degraded"
        proxy.up()
        send(c, 5, offset=25)
        records = wait_for(lambda: (r := records_in(moto_s3.objects(prefix))) and len(r) >= 30 and r)
        assert len(records) == 30 and len({r["id"] for r in records}) == 30
        after = metrics(gateway)
        assert after["skyrelay_log_records_replayed_total"] >= 15 and after["skyrelay_log_records_dropped_total"] == 0
        assert after["skyrelay_log_spill_records"] == 0
        assert_no_secret(list(moto_s3.raw_objects(prefix).values()), gateway.stderr())
    finally:
        proxy.stop()


@pytest.fixture
def down_proxy(moto_s3: MotoS3) -> Iterator[ToggleProxy]:
    proxy = ToggleProxy(moto_s3.port).start()
    proxy.down()
    yield proxy
    proxy.stop()


def test_sigterm_while_the_bucket_is_down_spills_and_the_next_process_replays(
    moto_s3: MotoS3, prefix: str, start_gateway: Any, fake_openai: FakeOpenAI, tmp_path: Path,
    down_proxy: ToggleProxy,
) -> None:
    spill = tmp_path / "spill"
    sink = f"s3://{moto_s3.bucket}/{prefix}"
    first: GatewayProcess = start_gateway(env=gateway_env(sink, spill, SKYRELAY_LOG_FLUSH_TIMEOUT_S="1",
                                                          SKYRELAY_LOG_BATCH_MAX_AGE_S="60",
                                                          **moto_s3.env(down_proxy.url)))
    send(client(first, fake_openai), 12)
    assert first.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert moto_s3.objects(prefix) == {}
    assert list(spill.rglob("*.batch"))  # on disk, not lost
    assert "wait in the spill folder" in first.stderr()

    down_proxy.up()
    second: GatewayProcess = start_gateway(env=gateway_env(sink, spill, **moto_s3.env(down_proxy.url)))
    send(client(second, fake_openai), 3, offset=100)
    records = wait_for(lambda: (r := records_in(moto_s3.objects(prefix))) and len(r) >= 15 and r)
    assert len(records) == 15 and len({r["id"] for r in records}) == 15
    assert second.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert not list(spill.rglob("*.batch"))
    assert_no_secret([*moto_s3.raw_objects(prefix).values()], first.stderr() + second.stderr())
