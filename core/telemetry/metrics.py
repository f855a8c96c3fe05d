"""Prometheus metrics, served at ``GET /metrics``.

Request metrics are derived from finished log records in the pipeline's writer (:class:`PrometheusObserver`),
never on the hot path. State — queue depth, spill contents, pipeline counters, circuit breakers — is read when
Prometheus scrapes (:class:`StateCollector`), so it is exact at that moment and costs nothing in between.

Each gateway has its own metrics (no module-level singletons). With ``SKYRELAY_WORKERS`` > 1 every worker
process has its own numbers and a scrape sees one worker: run one worker per container and scale out by replicas.

Label values that come from callers (model names) are capped at ``max_models`` distinct values per process; later
ones are counted under ``model="other"``, so a client sending random model names cannot grow memory without bound.

The text is written by :mod:`core.telemetry.exposition`, not prometheus_client, whose import costs every process
megabytes of modules it never uses; the names, HELP, samples and formatting are the ones the library wrote.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.telemetry.exposition import CONTENT_TYPE, Collector, CounterReading, GaugeReading, Reading, render
from core.telemetry.metric_families import CounterChild, CounterFamily, Families, HistogramChild, HistogramFamily

if TYPE_CHECKING:
    from core.telemetry.records import RequestLog
    from core.telemetry.writer import LogWriter

METRICS_CONTENT_TYPE = CONTENT_TYPE

#: LLM calls take from tens of milliseconds (embeddings, cache hits) to minutes (long generations).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6)

#: ``skyrelay_circuit_breaker_state`` values.
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class GatewayMetrics:
    """Every metric, and the collectors that report them; :meth:`render` is the body of ``GET /metrics``.

    The request metrics are :mod:`core.telemetry.metric_families` (plain numbers the log writer adds to); the
    state is read at scrape time by collectors added with :meth:`add_state`, in the order they are added.
    """

    def __init__(self, *, max_models: int = 500, request_metrics: bool = True) -> None:
        """``request_metrics=False``: a gateway whose log writer process keeps them (its text is appended)."""
        self._collectors: list[Collector] = []
        self.requests = CounterFamily("skyrelay_requests", "Requests answered, by operation, provider, model, status "
                                      "and outcome.", ["operation", "provider", "model", "status", "outcome"])
        self.errors = CounterFamily("skyrelay_request_errors", "Requests that did not end well, by error type (the "
                                    "OpenAI error type, or upstream_error, stream_error, client_disconnected).",
                                    ["operation", "provider", "error_type"])
        self.latency = HistogramFamily("skyrelay_request_duration_seconds", "Time from request to the last byte.",
                                       ["operation", "provider", "model", "stream"], LATENCY_BUCKETS)
        self.ttft = HistogramFamily("skyrelay_time_to_first_token_seconds", "Streams: time from request to the "
                                    "first chunk from the provider.", ["provider", "model"], TTFT_BUCKETS)
        self.tokens = CounterFamily("skyrelay_tokens", "Tokens reported by providers.",
                                    ["provider", "model", "direction"])
        self.cost = CounterFamily("skyrelay_cost_usd", "Cost in US dollars from token usage and the price table.",
                                  ["provider", "model"])
        self.unpriced = CounterFamily("skyrelay_unpriced_requests", "Requests with token usage that could not be "
                                      "priced (unknown_model, no_price_table, invalid_usage).",
                                      ["provider", "model", "reason"])
        self.cache = CounterFamily("skyrelay_cache_lookups", "Requests by response-cache status (HIT, MISS, "
                                   "REFRESH, DISABLED).", ["status"])
        self.retries = CounterFamily("skyrelay_retries", "Retry attempts made by the router.", ["provider"])
        self.fallbacks = CounterFamily("skyrelay_fallbacks", "Times a fallback moved on to the next target.")
        if request_metrics:
            self._collectors.append(Families([self.requests, self.errors, self.latency, self.ttft, self.tokens,
                                              self.cost, self.unpriced, self.cache, self.retries, self.fallbacks]))
        self._max_models = max_models
        self._models: set[str] = set()

    def add_state(self, collector: Collector) -> None:
        self._collectors.append(collector)

    def add_process_metrics(self, namespace: str = "") -> None:
        self._collectors.append(ProcessCollector(namespace))

    def render(self) -> bytes:
        return render(self._collectors)

    def model_label(self, model: str | None) -> str:
        if not model:
            return ""
        if model in self._models:
            return model
        if len(self._models) < self._max_models:
            self._models.add(model)
            return model
        return "other"


#: The fields :class:`PrometheusObserver` reads from every record, fetched in one call: every record the writer
#: builds has them (:meth:`core.telemetry.records.RequestLog.to_record`). The first eight make a series' labels.
_FIELDS = operator.itemgetter("operation", "provider", "model", "status", "outcome", "stream", "cache_status", "error",
                              "latency_ms", "ttfb_ms", "usage", "retry_attempts")


@dataclass(slots=True)
class _Series:
    """The metric children one combination of labels updates, looked up once and kept."""

    requests: CounterChild
    latency: HistogramChild
    ttft: HistogramChild
    tokens_in: CounterChild
    tokens_out: CounterChild
    cost: CounterChild
    cache: CounterChild
    retries: CounterChild
    errors: CounterChild | None


class PrometheusObserver:
    """Turns each finished record into metric updates (runs in the log writer, for every record: kept cheap)."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._m = metrics
        self._series: dict[tuple[Any, ...], _Series] = {}

    def _lookup(self, fields: tuple[Any, ...]) -> _Series:
        """The series of a record's label fields (the first eight of :data:`_FIELDS`, the error as its type),
        kept per raw value: a model's label never changes once given."""
        series = self._series.get(fields)
        if series is not None:
            return series
        m = self._m
        operation, provider, model, status, outcome, stream, cache_status, error_type = fields
        operation, provider, model = operation or "none", provider or "none", m.model_label(model)
        stream = "true" if stream else "false"
        series = _Series(
            requests=m.requests.labels(operation, provider, model, str(status), outcome),
            latency=m.latency.labels(operation, provider, model, stream),
            ttft=m.ttft.labels(provider, model),
            tokens_in=m.tokens.labels(provider, model, "input"),
            tokens_out=m.tokens.labels(provider, model, "output"),
            cost=m.cost.labels(provider, model),
            cache=m.cache.labels(str(cache_status or "DISABLED")),
            retries=m.retries.labels(provider),
            errors=m.errors.labels(operation, provider, error_type) if outcome != "ok" else None,
        )
        if len(self._series) < 100_000:
            self._series[fields] = series
        return series

    def observe(self, record: dict[str, Any], entry: RequestLog) -> None:
        (operation, provider, model, status, outcome, stream, cache_status, error, latency, ttfb, usage,
         retries) = _FIELDS(record)
        outcome = outcome or "ok"
        error_type = str(error.get("type") or outcome) if isinstance(error, dict) else outcome
        series = self._lookup((operation, provider, model, status, outcome, stream, cache_status, error_type))
        series.requests.value += 1
        if series.errors is not None:
            series.errors.value += 1
        if latency is not None:
            series.latency.observe(latency / 1000)
        if ttfb is not None and stream:
            series.ttft.observe(ttfb / 1000)
        if type(usage) is dict:
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if type(prompt) is int and prompt > 0:
                series.tokens_in.value += prompt
            if type(completion) is int and completion > 0:
                series.tokens_out.value += completion
        cost, cost_status = record.get("cost"), record.get("cost_status")
        if type(cost) is float and cost > 0:
            series.cost.value += cost
        elif cost_status in ("unknown_model", "no_price_table", "invalid_usage"):
            self._m.unpriced.labels(provider or "none", self._m.model_label(model), cost_status).value += 1
        series.cache.value += 1
        if type(retries) is int and retries > 0:
            series.retries.value += retries
        fallbacks = record.get("fallbacks")
        if type(fallbacks) is int and fallbacks > 0:
            self._m.fallbacks.labels().value += fallbacks


class StateCollector:
    """Gauges and counters read at scrape time from the pipeline and the circuit breaker."""

    def __init__(self, pipeline: LogWriter, breaker_snapshot: Callable[[], dict[str, str]], *,
                 version: str, replica: str) -> None:
        self._pipeline = pipeline
        self._breakers = breaker_snapshot
        self._version = version
        self._replica = replica

    def collect(self) -> Iterator[Reading]:
        info = GaugeReading("skyrelay_info", "This gateway process.", labels=["version", "replica"])
        info.add([self._version, self._replica], 1)
        yield info
        p = self._pipeline
        yield GaugeReading("skyrelay_log_queue_depth", "Log records waiting in memory.", value=p.queue_depth)
        yield GaugeReading("skyrelay_log_spill_records", "Log records in the local disk spill, waiting for the "
                           "sink.", value=p.spill_records)
        yield GaugeReading("skyrelay_log_spill_bytes", "Bytes in the local disk spill.", value=p.spill_bytes)
        s = p.stats
        for name, value, text in (
            ("submitted", s.submitted, "Log records submitted by requests."),
            ("written", s.written, "Log records stored in the sink (including replays)."),
            ("spilled", s.spilled, "Log records moved to the disk spill because the sink failed."),
            ("replayed", s.replayed, "Log records replayed from the spill into the sink."),
            ("dropped", s.dropped, "Log records lost: the queue was full (sink failing, spill full or off)."),
        ):
            yield CounterReading(f"skyrelay_log_records_{name}", text, value=value)
        yield CounterReading("skyrelay_log_write_failures", "Failed attempts to write a batch to the sink.",
                             value=s.failed_writes)
        yield CounterReading("skyrelay_log_build_cpu_seconds", "CPU time the log writer spent building records "
                             "(redaction, stream assembly, cost, metrics, serialisation) on the event loop.",
                             value=s.build_cpu_s)
        states = GaugeReading("skyrelay_circuit_breaker_state", "Circuit state of targets that are not closed: "
                              "1 half-open, 2 open.", labels=["target"])
        snapshot = self._breakers()
        for target, state in sorted(snapshot.items()):
            states.add([target], BREAKER_STATES.get(state, 2))
        yield states
        yield GaugeReading("skyrelay_circuit_breakers_open", "Targets whose circuit is open.",
                           value=sum(1 for state in snapshot.values() if state == "open"))


class ProcessCollector:
    """CPU, memory and file descriptors of this process, read from /proc at scrape time, named and computed as
    prometheus_client's ``ProcessCollector`` does (``<namespace>_process_…``); nothing without /proc."""

    def __init__(self, namespace: str = "", proc: str = "/proc") -> None:
        self._prefix = f"{namespace}_process_" if namespace else "process_"
        self._proc = proc
        self._ticks = _sysconf("SC_CLK_TCK", 100)
        self._page_size = _sysconf("SC_PAGE_SIZE", 4096)
        self._boot_time = 0.0
        try:
            with open(os.path.join(proc, "stat"), "rb") as stat:
                self._boot_time = next((float(line.split()[1]) for line in stat if line.startswith(b"btime ")), 0.0)
        except OSError:
            pass

    def collect(self) -> Iterator[Reading]:
        if not self._boot_time:
            return
        own, prefix = os.path.join(self._proc, "self"), self._prefix
        try:
            with open(os.path.join(own, "stat"), "rb") as stat:
                fields = stat.read().split(b")")[-1].split()  # after the command name, which may hold spaces
        except OSError:
            fields = []
        if fields:
            yield GaugeReading(f"{prefix}virtual_memory_bytes", "Virtual memory size in bytes.",
                               value=float(fields[20]))
            yield GaugeReading(f"{prefix}resident_memory_bytes", "Resident memory size in bytes.",
                               value=float(fields[21]) * self._page_size)
            yield GaugeReading(f"{prefix}start_time_seconds", "Start time of the process since unix epoch in "
                               "seconds.", value=float(fields[19]) / self._ticks + self._boot_time)
            yield CounterReading(f"{prefix}cpu_seconds", "Total user and system CPU time spent in seconds.",
                                 value=float(fields[11]) / self._ticks + float(fields[12]) / self._ticks)
        try:
            with open(os.path.join(own, "limits"), "rb") as limits:
                max_fds = next((float(line.split()[3]) for line in limits if line.startswith(b"Max open file")),
                               None)
            open_fds = len(os.listdir(os.path.join(own, "fd")))
        except OSError:
            return
        yield GaugeReading(f"{prefix}open_fds", "Number of open file descriptors.", value=open_fds)
        if max_fds is not None:
            yield GaugeReading(f"{prefix}max_fds", "Maximum number of open file descriptors.", value=max_fds)


def _sysconf(name: str, default: int) -> int:
    try:
        return os.sysconf(name)
    except (ValueError, OSError):
        return default
