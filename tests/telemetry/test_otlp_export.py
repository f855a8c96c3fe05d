"""SKYRELAY_OTEL_ENABLED=true exports spans and GenAI metrics over OTLP/HTTP to the standard OTEL endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from core.settings import Settings
from core.telemetry.setup import build_telemetry
from tests.fakes.server import ThreadedServer
from tests.telemetry.conftest import MemorySink, entry


class Collector:
    def __init__(self) -> None:
        self.spans: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        self.server = ThreadedServer(app)

    async def _traces(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        self.spans.append(ExportTraceServiceRequest.FromString(await request.read()))
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics.append(ExportMetricsServiceRequest.FromString(await request.read()))
        return web.Response(body=b"", content_type="application/x-protobuf")


@pytest.fixture
def collector() -> Iterator[Collector]:
    fake = Collector()
    fake.server.start()
    yield fake
    fake.server.stop()


async def test_spans_and_metrics_reach_an_otlp_collector(collector: Collector, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: object) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.server.url)
    settings = Settings(otel_enabled=True, log_spill_max_bytes=0, replica_id="pod-1")
    telemetry = build_telemetry(settings, sink=MemorySink(), version="1.2.3")
    telemetry.start()
    response = orjson.dumps({"model": "gpt-4o-mini", "usage": {"prompt_tokens": 4, "completion_tokens": 2}})
    telemetry.pipeline.submit(entry(1, operation="chat", provider="openai", model="gpt-4o-mini",
                                    response_body=response))
    await telemetry.aclose(5)  # shuts the providers down, which exports what they hold

    spans = [span for request in collector.spans for rs in request.resource_spans
             for ss in rs.scope_spans for span in ss.spans]
    assert [span.name for span in spans] == ["chat gpt-4o-mini"]
    resource = {a.key: a.value.string_value for a in collector.spans[0].resource_spans[0].resource.attributes}
    assert resource["service.name"] == "skyrelay" and resource["service.instance.id"] == "pod-1"
    names = {m.name for request in collector.metrics for rm in request.resource_metrics
             for sm in rm.scope_metrics for m in sm.metrics}
    assert {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"} <= names
