"""OpenTelemetry: one span per request and the GenAI client metrics, following the GenAI semantic conventions.

Spans are created after the fact, in the log writer, from the finished record, with the request's real start and
end times — so tracing costs the hot path nothing. Span kind CLIENT (the gateway is the model's client), name
``"{gen_ai.operation.name} {gen_ai.request.model}"``, attributes ``gen_ai.operation.name``, ``gen_ai.provider.name``
(and the older ``gen_ai.system``), ``gen_ai.request.model`` / ``max_tokens`` / ``temperature`` / ``top_p``,
``gen_ai.response.model`` / ``id`` / ``finish_reasons``, ``gen_ai.usage.input_tokens`` / ``output_tokens``,
``error.type``, ``http.response.status_code``, plus ``skyrelay.*`` (trace id, target path, cache status, cost).

Trace ids line up with the log record: a W3C ``traceparent`` from the caller makes the span its child; otherwise a
gateway trace id that is 32 hex digits (the generated ones are) becomes the span's trace id, so the ``trace_id`` of
a record finds its trace.

Metrics: ``gen_ai.client.operation.duration`` (s), ``gen_ai.client.token.usage`` ({token}, by
``gen_ai.token.type``) and ``gen_ai.server.time_to_first_token`` (s, streams).

:func:`build_otlp_providers` wires OTLP/HTTP exporters configured by the standard ``OTEL_EXPORTER_OTLP_*``
variables (install the ``[otel]`` extra); tests pass their own providers with in-memory exporters.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.telemetry.records import RequestLog

#: Our provider ids → ``gen_ai.provider.name`` values of the semantic conventions.
GEN_AI_PROVIDERS = {
    "openai": "openai",
    "azure-openai": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "vertex-ai": "gcp.vertex_ai",
    "anthropic": "anthropic",
    "groq": "groq",
    "mistral-ai": "mistral_ai",
    "deepseek": "deepseek",
    "perplexity-ai": "perplexity",
    "x-ai": "x_ai",
}
OPERATION_NAMES = {"chat": "chat", "completion": "text_completion", "embed": "embeddings"}

_trace_id_hint: contextvars.ContextVar[int | None] = contextvars.ContextVar("skyrelay_trace_id", default=None)


def make_id_generator() -> Any:
    """An IdGenerator that uses the trace id of the record being turned into a span, when it has a usable one."""
    from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

    class RecordTraceIdGenerator(IdGenerator):
        def __init__(self) -> None:
            self._random = RandomIdGenerator()

        def generate_span_id(self) -> int:
            return self._random.generate_span_id()

        def generate_trace_id(self) -> int:
            return _trace_id_hint.get() or self._random.generate_trace_id()

    return RecordTraceIdGenerator()


def _hex_id(text: str | None, digits: int) -> int | None:
    if not text or len(text) != digits:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return value or None


def _parent(traceparent: str | None) -> tuple[int, int, int] | None:
    """``(trace_id, span_id, flags)`` from a W3C traceparent header, or None."""
    if not traceparent:
        return None
    parts = traceparent.strip().split("-")
    if len(parts) < 4 or parts[0] == "ff":
        return None
    trace_id, span_id = _hex_id(parts[1], 32), _hex_id(parts[2], 16)
    flags = _hex_id(parts[3], 2) or 0
    return (trace_id, span_id, flags) if trace_id and span_id else None


class OtelObserver:
    """Spans and GenAI metrics from finished records (runs in the log writer)."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None, *, version: str = "") -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer = tracer_provider.get_tracer("skyrelay", version) if tracer_provider is not None else None
        self._duration = self._tokens = self._ttft = None
        if meter_provider is not None:
            meter = meter_provider.get_meter("skyrelay", version)
            self._duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s",
                                                    description="GenAI operation duration.")
            self._tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}",
                                                  description="Number of input and output tokens used.")
            self._ttft = meter.create_histogram("gen_ai.server.time_to_first_token", unit="s",
                                                description="Time to generate the first token (streams).")

    def observe(self, record: dict[str, Any], entry: RequestLog) -> None:
        attributes = self._attributes(record, entry)
        if self._tracer is not None:
            self._span(record, entry, attributes)
        if self._duration is not None:
            self._metrics(record, attributes)

    def _attributes(self, record: dict[str, Any], entry: RequestLog) -> dict[str, Any]:
        provider = record.get("provider") or ""
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": OPERATION_NAMES.get(record.get("operation") or "", record.get("operation") or
                                                         "unknown"),
            "gen_ai.provider.name": GEN_AI_PROVIDERS.get(provider, provider or "unknown"),
            "gen_ai.system": GEN_AI_PROVIDERS.get(provider, provider or "unknown"),
        }
        if record.get("model"):
            attrs["gen_ai.request.model"] = record["model"]
        body = entry.request_json()
        body = body if isinstance(body, dict) else {}
        for key, name in (("max_tokens", "gen_ai.request.max_tokens"), ("max_completion_tokens",
                          "gen_ai.request.max_tokens"), ("temperature", "gen_ai.request.temperature"),
                          ("top_p", "gen_ai.request.top_p")):
            value = body.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attrs[name] = value
        response = entry.response_json if isinstance(entry.response_json, dict) else {}
        if isinstance(response.get("model"), str):
            attrs["gen_ai.response.model"] = response["model"]
        if isinstance(response.get("id"), str):
            attrs["gen_ai.response.id"] = response["id"]
        choices = response.get("choices")
        if isinstance(choices, list):
            reasons = [c.get("finish_reason") for c in choices if isinstance(c, dict) and c.get("finish_reason")]
            if reasons:
                attrs["gen_ai.response.finish_reasons"] = [str(r) for r in reasons]
        raw_usage = record.get("usage")
        usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
        for key, name in (("prompt_tokens", "gen_ai.usage.input_tokens"),
                          ("completion_tokens", "gen_ai.usage.output_tokens")):
            if isinstance(usage.get(key), int):
                attrs[name] = usage[key]
        return attrs

    def _span(self, record: dict[str, Any], entry: RequestLog, attrs: dict[str, Any]) -> None:
        trace = self._trace
        span_attrs = dict(attrs)
        span_attrs["http.response.status_code"] = int(record.get("status") or 0)
        for key, name in (("trace_id", "skyrelay.trace_id"), ("target_path", "skyrelay.target_path"),
                          ("cache_status", "skyrelay.cache_status"), ("outcome", "skyrelay.outcome"),
                          ("retry_attempts", "skyrelay.retry_attempts"), ("virtual_key", "skyrelay.virtual_key"),
                          ("gateway_key_id", "skyrelay.gateway_key_id"), ("cost", "skyrelay.cost_usd"),
                          ("id", "skyrelay.log_record_id")):
            value = record.get(key)
            if value is not None:
                span_attrs[name] = value
        error_type = _error_type(record)
        if error_type:
            span_attrs["error.type"] = error_type
        context = None
        parent = _parent(entry.request_headers.get("traceparent"))
        hint = None
        if parent is not None:
            trace_id, span_id, flags = parent
            remote = trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags))
            context = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        else:
            hint = _hex_id(str(record.get("trace_id") or ""), 32)
        start_ns = int(entry.started_wall * 1e9)
        latency_ms = record.get("latency_ms") or 0
        name = f"{attrs['gen_ai.operation.name']} {attrs.get('gen_ai.request.model', '')}".strip()
        token = _trace_id_hint.set(hint)
        try:
            span = self._tracer.start_span(name, context=context, kind=trace.SpanKind.CLIENT,  # type: ignore[union-attr]
                                           attributes=span_attrs, start_time=start_ns)
        finally:
            _trace_id_hint.reset(token)
        if error_type:
            span.set_status(trace.Status(trace.StatusCode.ERROR, error_type))
        span.end(end_time=start_ns + int(latency_ms * 1e6))

    def _metrics(self, record: dict[str, Any], attrs: dict[str, Any]) -> None:
        base = {k: v for k, v in attrs.items() if k in ("gen_ai.operation.name", "gen_ai.provider.name",
                                                         "gen_ai.request.model", "gen_ai.response.model")}
        error_type = _error_type(record)
        duration_attrs = {**base, "error.type": error_type} if error_type else base
        if isinstance(record.get("latency_ms"), int | float):
            self._duration.record(record["latency_ms"] / 1000, duration_attrs)  # type: ignore[union-attr]
        for token_type, key in (("input", "gen_ai.usage.input_tokens"), ("output", "gen_ai.usage.output_tokens")):
            if key in attrs:
                self._tokens.record(attrs[key], {**base, "gen_ai.token.type": token_type})  # type: ignore[union-attr]
        if record.get("stream") and isinstance(record.get("ttfb_ms"), int | float):
            self._ttft.record(record["ttfb_ms"] / 1000, base)  # type: ignore[union-attr]


def _error_type(record: dict[str, Any]) -> str | None:
    if record.get("outcome") == "ok" and int(record.get("status") or 0) < 400:
        return None
    error = record.get("error")
    if isinstance(error, dict) and error.get("type"):
        return str(error["type"])
    status = int(record.get("status") or 0)
    return str(status) if status >= 400 else str(record.get("outcome"))


def build_otlp_providers(*, version: str, replica: str) -> tuple[Any, Any]:
    """Tracer and meter providers exporting over OTLP/HTTP (endpoint, headers, protocol from ``OTEL_*``)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise RuntimeError("install the `[otel]` extra to export OpenTelemetry traces and metrics") from None
    resource = Resource.create({"service.name": "skyrelay", "service.version": version,
                                "service.instance.id": replica})
    tracer_provider = TracerProvider(resource=resource, id_generator=make_id_generator())
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    meter_provider = MeterProvider(resource=resource,
                                   metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())])
    return tracer_provider, meter_provider

