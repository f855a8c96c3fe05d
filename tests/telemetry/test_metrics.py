"""Prometheus metrics derived from records in the writer, and state read at scrape time; parsed as Prometheus does."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core.telemetry.costs import PriceTable
from core.telemetry.metric_families import CounterFamily, Families, HistogramFamily
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


def test_families_render_as_prometheus_client_would() -> None:
    """The request metrics are plain numbers; on the same updates they render as the library's own objects."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counter, unlabelled = CounterFamily("c", "A counter.", ["a", "b"]), CounterFamily("u", "Unlabelled.")
    histogram, unused = HistogramFamily("h", "Seconds.", ["a"], (0.1, 1.0, 10.0)), CounterFamily("n", "None.", ["a"])
    ours.register(Families([counter, unlabelled, histogram, unused]))
    lib_counter, lib_unlabelled = Counter("c", "A counter.", ["a", "b"], registry=theirs), Counter("u", "Unlabelled.",
                                                                                                 registry=theirs)
    lib_histogram = Histogram("h", "Seconds.", ["a"], buckets=(0.1, 1.0, 10.0), registry=theirs)
    Counter("n", "None.", ["a"], registry=theirs)
    for i, amount in enumerate((0.05, 0.1, 0.1 + 0.2, 1.0, 7.5, 12.0, 1e-9, 0.0)):
        labels = ("x", "y") if i % 3 else ("z", "w")
        counter.labels(*labels).value += amount
        lib_counter.labels(*labels).inc(amount)
        unlabelled.labels().value += 1
        lib_unlabelled.inc()
        histogram.labels(labels[0]).observe(amount)
        lib_histogram.labels(labels[0]).observe(amount)

    def text(registry: CollectorRegistry) -> str:  # creation times differ by microseconds
        return re.sub(r"(_created(\{[^}]*\})?) \S+", r"\1 T", generate_latest(registry).decode())

    assert text(ours) == text(theirs)
    assert "_created" in text(ours)
