"""OpenTelemetry spans and GenAI metrics built after the fact from records, captured with the SDK's in-memory
exporter and reader."""

from __future__ import annotations

import orjson
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from core.telemetry.pipeline import LogPipeline
from core.telemetry.tracing import OtelObserver, make_id_generator
from tests.telemetry.conftest import MemorySink, entry

RESPONSE = orjson.dumps({"id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18",
                         "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "x"}}],
                         "usage": {"prompt_tokens": 11, "completion_tokens": 5}})
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def otel() -> tuple[InMemorySpanExporter, InMemoryMetricReader, OtelObserver]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(id_generator=make_id_generator())
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    observer = OtelObserver(tracer_provider, MeterProvider(metric_readers=[reader]), version="1.0")
    return exporter, reader, observer


async def test_one_client_span_per_request_with_genai_attributes(otel: tuple) -> None:
    exporter, _, observer = otel
    pipeline = LogPipeline(MemorySink(), replica="r1", observers=[observer])
    log = entry(1, trace_id=TRACE_ID, operation="chat", provider="openai", model="gpt-4o-mini",
                request_body={"model": "gpt-4o-mini", "max_tokens": 64, "temperature": 0.2}, response_body=RESPONSE,
                target_path="config.targets[0]")
    log.finished = log.started + 0.25
    pipeline.submit(log)
    assert await pipeline.flush(5)

    (span,) = exporter.get_finished_spans()
    assert span.name == "chat gpt-4o-mini" and span.kind is SpanKind.CLIENT
    assert f"{span.context.trace_id:032x}" == TRACE_ID  # the record's trace id is the trace's id
    assert span.start_time == int(log.started_wall * 1e9)
    assert span.end_time - span.start_time == pytest.approx(0.25e9, rel=1e-3)
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attrs["gen_ai.response.id"] == "chatcmpl-1"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 11 and attrs["gen_ai.usage.output_tokens"] == 5
    assert attrs["gen_ai.request.max_tokens"] == 64 and attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["skyrelay.target_path"] == "config.targets[0]"
    assert span.status.status_code is StatusCode.UNSET


async def test_a_traceparent_makes_the_span_its_child_and_errors_are_marked(otel: tuple) -> None:
    exporter, _, observer = otel
    pipeline = LogPipeline(MemorySink(), replica="r1", observers=[observer])
    headers = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
    pipeline.submit(entry(1, request_headers=headers, operation="chat", provider="bedrock", model="m", status=429,
                          outcome="rejected", error={"type": "rate_limit_error"}))
    assert await pipeline.flush(5)
    (span,) = exporter.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert span.attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert span.attributes["error.type"] == "rate_limit_error"
    assert span.status.status_code is StatusCode.ERROR


async def test_genai_client_metrics(otel: tuple) -> None:
    _, reader, observer = otel
    pipeline = LogPipeline(MemorySink(), replica="r1", observers=[observer])
    for i in range(2):
        pipeline.submit(entry(i, operation="chat", provider="openai", model="gpt-4o-mini", response_body=RESPONSE))
    assert await pipeline.flush(5)
    data = reader.get_metrics_data()
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert metrics["gen_ai.client.operation.duration"].unit == "s"
    assert sum(p.count for p in metrics["gen_ai.client.operation.duration"].data.data_points) == 2
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in metrics["gen_ai.client.token.usage"].data.data_points}
    assert tokens == {"input": 22, "output": 10}
