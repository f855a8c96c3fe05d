"""Prometheus metrics derived from records in the writer, and state read at scrape time; parsed as Prometheus does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.telemetry.costs import PriceTable
from core.telemetry.metrics import GatewayMetrics, PrometheusObserver, StateCollector
from core.telemetry.pipeline import LogPipeline
from core.telemetry.spill import DiskSpill
from tests.telemetry.conftest import MemorySink, entry

OK_BODY = orjson.dumps({"model": "gpt-4o-mini", "usage": {"prompt_tokens": 100, "completion_tokens": 20}})


def samples(metrics: GatewayMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.render().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_request_metrics_and_state_gauges(tmp_path: Path) -> None:
    sink = MemorySink()
    metrics = GatewayMetrics(max_models=3)
    spill = DiskSpill(tmp_path, run_id="run1", max_bytes=1_000_000)
    pipeline = LogPipeline(sink, replica="r1", spill=spill, prices=PriceTable(),
                           observers=[PrometheusObserver(metrics)], write_attempts=1, batch_max_age_s=0.01)
    breaker = {"config.targets[0]": "open", "config.targets[1]": "half_open"}
    metrics.add_state(StateCollector(pipeline, lambda: breaker, version="9.9", replica="r1"))

    for i in range(3):
        pipeline.submit(entry(i, operation="chat", provider="openai", model="gpt-4o-mini", response_body=OK_BODY,
                              retry_attempts=1, extra={"fallbacks": 1}))
    stream = entry(3, operation="chat", provider="openai", model="gpt-4o-mini", stream=True, response_body=OK_BODY)
    stream.first_byte_at = stream.started + 0.2
    pipeline.submit(stream)
    pipeline.submit(entry(4, operation="chat", provider="bedrock", model="my-custom", status=502,
                          outcome="gateway_error", error={"type": "upstream_error", "message": "down"}))
    pipeline.submit(entry(5, operation="chat", provider="openai", model="local-model", response_body=OK_BODY.replace(
        b"gpt-4o-mini", b"local-model"), cache_status="MISS"))
    for i in range(6, 9):  # past max_models distinct names: counted as "other"
        pipeline.submit(entry(i, operation="embed", provider="openai", model=f"m{i}"))
    assert await pipeline.flush(5)

    found = samples(metrics)
    assert value(found, "skyrelay_requests_total", operation="chat", provider="openai", model="gpt-4o-mini",
                 status="200", outcome="ok") == 4
    assert value(found, "skyrelay_request_errors_total", operation="chat", provider="bedrock",
                 error_type="upstream_error") == 1
    assert value(found, "skyrelay_request_duration_seconds_count", operation="chat", provider="openai",
                 model="gpt-4o-mini", stream="false") == 3
    ttft = value(found, "skyrelay_time_to_first_token_seconds_sum", provider="openai", model="gpt-4o-mini")
    assert ttft == pytest.approx(0.2, abs=0.01)
    assert value(found, "skyrelay_tokens_total", provider="openai", model="gpt-4o-mini", direction="input") == 400
    assert value(found, "skyrelay_tokens_total", provider="openai", model="gpt-4o-mini", direction="output") == 80
    assert value(found, "skyrelay_cost_usd_total", provider="openai", model="gpt-4o-mini") == pytest.approx(
        4 * (100 * 0.15 + 20 * 0.6) / 1e6)
    assert value(found, "skyrelay_unpriced_requests_total", provider="openai", model="local-model",
                 reason="unknown_model") == 1
    assert value(found, "skyrelay_cache_lookups_total", status="MISS") == 1
    assert value(found, "skyrelay_retries_total", provider="openai") == 3
    assert value(found, "skyrelay_fallbacks_total") == 3
    assert value(found, "skyrelay_requests_total", operation="embed", provider="openai", model="other",
                 status="200", outcome="ok") == 3
    assert value(found, "skyrelay_circuit_breaker_state", target="config.targets[0]") == 2
    assert value(found, "skyrelay_circuit_breaker_state", target="config.targets[1]") == 1
    assert value(found, "skyrelay_circuit_breakers_open") == 1
    assert value(found, "skyrelay_log_records_written_total") == 9
    assert value(found, "skyrelay_info", version="9.9", replica="r1") == 1

    sink.down = True
    pipeline.submit(entry(20))
    assert not await pipeline.flush(0.3)
    found = samples(metrics)
    assert value(found, "skyrelay_log_spill_records") == 1
    assert value(found, "skyrelay_log_records_spilled_total") == 1
    assert value(found, "skyrelay_log_write_failures_total") >= 1
    assert value(found, "skyrelay_log_queue_depth") == 0
    sink.down = False
    await pipeline.aclose(5)


async def test_the_metrics_body_has_every_family_in_order(tmp_path: Path) -> None:
    """Request metrics, state and process metrics, as Prometheus parses them (how each family is written is pinned
    against prometheus_client in test_exposition)."""
    metrics = GatewayMetrics()
    metrics.add_process_metrics(namespace="skyrelay_log_writer")
    pipeline = LogPipeline(MemorySink(), replica="r1", prices=PriceTable(), observers=[PrometheusObserver(metrics)],
                           batch_max_age_s=0.01)
    metrics.add_state(StateCollector(pipeline, lambda: {"t[0]": "open"}, version="1", replica="r1"))
    pipeline.submit(entry(1, operation="chat", provider="openai", model="gpt-4o-mini", stream=True,
                          response_body=OK_BODY))
    pipeline.submit(entry(2, operation="chat", provider="openai", model='quote " and \\', status=502,
                          outcome="gateway_error", error={"type": "upstream_error", "message": "down"}))
    assert await pipeline.flush(5)

    families = list(text_string_to_metric_families(metrics.render().decode()))
    request = ["requests", "request_errors", "request_duration_seconds", "time_to_first_token_seconds", "tokens",
               "cost_usd", "unpriced_requests", "cache_lookups", "retries", "fallbacks"]
    process = ["virtual_memory_bytes", "resident_memory_bytes", "start_time_seconds", "cpu_seconds", "open_fds",
               "max_fds"]
    state = ["info", "log_queue_depth", "log_spill_records", "log_spill_bytes", "log_records_submitted",
             "log_records_written", "log_records_spilled", "log_records_replayed", "log_records_dropped",
             "log_write_failures", "log_build_cpu_seconds", "circuit_breaker_state", "circuit_breakers_open"]
    created = {"unpriced_requests"}  # no series yet: no _created family either
    assert [f.name for f in families] == [
        *(name for metric in request for name in (f"skyrelay_{metric}", f"skyrelay_{metric}_created")
          if not (metric in created and name.endswith("_created"))),
        *(f"skyrelay_log_writer_process_{name}" for name in process), *(f"skyrelay_{name}" for name in state)]
    kinds = {f.name: f.type for f in families}
    assert kinds["skyrelay_request_duration_seconds"] == "histogram" and kinds["skyrelay_requests"] == "counter"
    assert kinds["skyrelay_requests_created"] == "gauge"
    assert kinds["skyrelay_log_writer_process_cpu_seconds"] == "counter"
    found = {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}
    assert value(found, "skyrelay_requests_total", operation="chat", provider="openai", model='quote " and \\',
                 status="502", outcome="gateway_error") == 1
    assert value(found, "skyrelay_request_duration_seconds_bucket", operation="chat", provider="openai",
                 model="gpt-4o-mini", stream="true", le="+Inf") == 1
    assert value(found, "skyrelay_log_records_written_total") == 2
    assert value(found, "skyrelay_log_writer_process_resident_memory_bytes") > 0
    await pipeline.aclose(5)


def test_the_gateway_and_the_log_writer_never_import_prometheus_client(tmp_path: Path) -> None:
    """Its package imports HTTP servers and codecs the gateway has no use for: megabytes in every process."""
    script = f"""
import sys
import core.telemetry.writer_process
from core.app import create_app
from core.gateway import build_gateway
from core.settings import Settings
for writer in ("process", "inline"):
    settings = Settings(log_sink="file://{tmp_path}/logs", log_writer=writer, allow_unauthenticated=True)
    gateway = build_gateway(settings, long_lived=True)
    create_app(gateway)
    assert gateway.telemetry.metrics is not None and b"process_cpu_seconds_total" in gateway.telemetry.metrics.render()
print(sorted(name for name in sys.modules if name.startswith("prometheus_client")))
"""
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).parents[2])
    assert answer.stdout.strip() == "[]"
