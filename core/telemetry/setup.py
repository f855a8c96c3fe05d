"""Builds the telemetry parts from settings: sink, spill, pipeline, price table, metrics, traces, analytics.

:class:`Telemetry` owns their lifecycle — ``start`` from the app's lifespan (or a serverless handler),
``flush(deadline)`` before a serverless invocation returns, ``aclose(deadline)`` at shutdown — and reports their
state for ``/v1/ready``. Everything here is built once per process by :func:`core.gateway.build_gateway`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from core.telemetry.metrics import GatewayMetrics, PrometheusObserver, StateCollector
from core.telemetry.sinks.base import LogSink, SinkUnavailableError
from core.telemetry.writer import LogWriter

if TYPE_CHECKING:
    from core.settings import Settings
    from core.telemetry.analytics import AnalyticsForwarder
    from core.telemetry.builder import RecordObserver

#: ``inline``: this process builds and stores the records; ``process``: it hands them to a log writer process;
#: ``writer``: this process is that writer.
TelemetryMode = Literal["inline", "process", "writer"]

logger = logging.getLogger("skyrelay.logs")


@dataclass
class Telemetry:
    pipeline: LogWriter
    metrics: GatewayMetrics | None = None
    analytics: AnalyticsForwarder | None = None
    otel_providers: tuple[Any, ...] = field(default_factory=tuple)

    def start(self) -> None:
        self.pipeline.start()
        if self.analytics is not None:
            self.analytics.start()

    async def flush(self, deadline_s: float) -> bool:
        """Serverless entries await this before the invocation ends: True when every record is in the sink."""
        drained = await self.pipeline.flush(deadline_s)
        if self.analytics is not None:
            await self.analytics.flush(min(deadline_s, 2.0))
        return drained

    async def aclose(self, deadline_s: float) -> None:
        await self.pipeline.aclose(deadline_s)
        if self.analytics is not None:
            await self.analytics.aclose(min(deadline_s, 5.0))
        for provider in self.otel_providers:
            await asyncio.to_thread(provider.shutdown)  # flushes the exporters: blocking

    async def render_metrics(self) -> bytes:
        """``GET /metrics``: this process's registry, then the log writer process's request metrics if it has one."""
        own = self.metrics.render() if self.metrics is not None else b""
        return own + await self.pipeline.metrics_text()

    async def health(self) -> dict[str, Any]:
        """The pipeline's state for /v1/ready.

        ``status`` is ``failing`` only when the sink's own check fails (e.g. an unwritable log folder). A sink
        that rejects writes makes the ``state`` ``degraded`` (records spill to disk and are replayed) or
        ``losing_records`` (queue nearly full: records are being or about to be dropped) without making the
        gateway unready: taking every replica out of rotation would turn a logging outage into an outage.
        """
        p = self.pipeline
        spilled = p.spill_records
        report: dict[str, Any] = {"status": "ok", "state": "ok", "sink": p.describe_sink(), "pending": p.pending,
                                  "spilled_records": spilled, "dropped_records": p.stats.dropped,
                                  "last_error": p.last_error}
        if p.last_error is not None or spilled:
            report["state"] = "degraded"
        if p.queue_depth >= 0.9 * p.queue_capacity:
            report["state"] = "losing_records"
        try:
            await p.check_sink()
        except OSError as exc:
            report["status"] = "failing"
            report["error"] = str(exc) if isinstance(exc, SinkUnavailableError) else type(exc).__name__
        return report


def spill_root(base: str, sink: LogSink) -> Path:
    """One folder per destination, so a batch is only ever replayed into the sink it was meant for."""
    described = sink.describe()
    scheme = described.split(":", 1)[0] or "sink"
    return Path(base) / f"{scheme}-{hashlib.sha256(described.encode()).hexdigest()[:12]}"


def build_telemetry(settings: Settings, *, sink: LogSink | None = None,
                    breaker_snapshot: Callable[[], dict[str, str]] = dict, version: str = "",
                    tracer_provider: Any = None, meter_provider: Any = None,
                    mode: TelemetryMode = "inline") -> Telemetry:
    """``tracer_provider``/``meter_provider``: OpenTelemetry providers to use (tests pass in-memory ones);
    with ``settings.otel_enabled`` and none given, OTLP/HTTP exporters are built from ``OTEL_*`` variables.

    ``mode`` (see :data:`TelemetryMode`): ``process`` needs everything to come from settings, so a ``sink`` or
    OpenTelemetry providers passed in keep the records in this process.
    """
    if mode == "process" and sink is None and tracer_provider is None and meter_provider is None:
        return _handing_over(settings, breaker_snapshot, version)
    # Imported here: a gateway worker that hands its records to a writer process never builds one (1.7 MiB less).
    from core.telemetry.analytics import AnalyticsForwarder
    from core.telemetry.costs import PriceTable
    from core.telemetry.pipeline import LogPipeline, new_run_id
    from core.telemetry.sinks import open_sink
    from core.telemetry.spill import DiskSpill

    sink = sink or open_sink(settings.log_sink, replica=settings.replica_id, s3_kms_key_id=settings.log_s3_kms_key_id)
    run_id = new_run_id()
    spill = None
    if settings.log_spill_max_bytes > 0 and settings.log_spill_dir:
        spill = DiskSpill(spill_root(settings.log_spill_dir, sink), run_id=run_id,
                          max_bytes=settings.log_spill_max_bytes)
    observers: list[RecordObserver] = []
    metrics = None
    if settings.metrics_enabled:
        metrics = GatewayMetrics(max_models=settings.metrics_max_models)
        # A writer process's CPU and memory under their own names: the gateway's process_* are its worker's.
        metrics.add_process_metrics(namespace="skyrelay_log_writer" if mode == "writer" else "")
        observers.append(PrometheusObserver(metrics))
    otel_providers: tuple[Any, ...] = ()
    if settings.otel_enabled and tracer_provider is None and meter_provider is None:
        from core.telemetry.tracing import build_otlp_providers

        tracer_provider, meter_provider = build_otlp_providers(version=version, replica=settings.replica_id)
        otel_providers = (tracer_provider, meter_provider)
    if tracer_provider is not None or meter_provider is not None:
        from core.telemetry.tracing import OtelObserver

        observers.append(OtelObserver(tracer_provider, meter_provider, version=version))
    analytics = None
    if settings.analytics_url:
        token = settings.analytics_token.get_secret_value() if settings.analytics_token is not None else None
        analytics = AnalyticsForwarder(settings.analytics_url, replica=settings.replica_id, token=token,
                                       batch_max_records=settings.analytics_batch_max_records,
                                       interval_s=settings.analytics_interval_s)
        observers.append(analytics)
    pipeline = LogPipeline(
        sink,
        replica=settings.replica_id,
        include_bodies=settings.log_bodies,
        redact_fields=tuple(settings.log_redact_body_fields),
        queue_max_records=settings.log_queue_max_records,
        batch_max_records=settings.log_batch_max_records,
        batch_max_bytes=settings.log_batch_max_bytes,
        batch_max_age_s=settings.log_batch_max_age_s,
        spill=spill,
        write_attempts=settings.log_write_attempts,
        write_timeout_s=settings.log_write_timeout_s,
        replay_interval_s=settings.log_replay_interval_s,
        # The writer process makes a missing price export in a child, so the library's memory never stays in it.
        prices=PriceTable(isolated_export=mode == "writer"),
        observers=observers,
        run_id=run_id,
        tick_s=settings.log_handoff_interval_s,
    )
    if metrics is not None and mode != "writer":  # a writer's pipeline state is reported by its gateway
        metrics.add_state(StateCollector(pipeline, breaker_snapshot, version=version, replica=settings.replica_id))
    return Telemetry(pipeline=pipeline, metrics=metrics, analytics=analytics, otel_providers=otel_providers)


def _handing_over(settings: Settings, breaker_snapshot: Callable[[], dict[str, str]], version: str) -> Telemetry:
    """The gateway side of ``mode="process"``: records, request metrics, traces and analytics live in the writer
    process; this process keeps the hand-off, its own process metrics and the pipeline and breaker state."""
    from core.telemetry.process_pipeline import ProcessLogPipeline
    from core.telemetry.sinks import describe_sink_url

    pipeline = ProcessLogPipeline(settings, describe=describe_sink_url(settings.log_sink))
    metrics = None
    if settings.metrics_enabled:
        metrics = GatewayMetrics(max_models=settings.metrics_max_models, request_metrics=False)
        metrics.add_process_metrics()
        metrics.add_state(StateCollector(pipeline, breaker_snapshot, version=version, replica=settings.replica_id))
    return Telemetry(pipeline=pipeline, metrics=metrics)
