"""Turning one :class:`RequestLog` into one line of JSON: the record, its cost, the observers, the secret scrub.

Runs in the log writer, once per record. Everything here was measured per record (see bench/logging_cost.py and
the ``skyrelay_log_build_cpu_seconds_total`` metric): bodies go into the record without a redacted copy when
nothing in them can need hiding, stream assembly takes a one-pass fast path, metric children and price
coefficients are looked up once and kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from core.telemetry.costs import PriceTable, price_record
from core.telemetry.redaction import BodyRedactor, scrub_carried

if TYPE_CHECKING:
    from core.telemetry.records import RequestLog
    from core.telemetry.writer import PipelineStats

logger = logging.getLogger("skyrelay.logs")


class RecordObserver(Protocol):
    """Sees every finished record once, in the writer (off the hot path); must be quick and must not raise."""

    def observe(self, record: dict[str, Any], entry: RequestLog) -> None: ...


class RecordBuilder:
    def __init__(self, stats: PipelineStats, *, replica: str, include_bodies: bool, redact_fields: tuple[str, ...],
                 prices: PriceTable | None, observers: Sequence[RecordObserver]) -> None:
        self._stats = stats
        self._replica = replica
        self._include_bodies = include_bodies
        self._redact = BodyRedactor(redact_fields)
        self._prices = prices
        self._observers = list(observers)

    def build(self, entry: RequestLog) -> bytes:
        """The record as one line of JSON (no newline), with the caller's credential values scrubbed."""
        try:
            record = entry.to_record(include_bodies=self._include_bodies, redact_body=self._redact,
                                     replica=self._replica)
            if self._prices is not None:
                price_record(self._prices, record, entry.response_json)
            self._observe(record, entry)
            # An exact-size copy: orjson's bytes keep its whole output buffer (16 KiB for a 1.4 KB record), and
            # a batch holds up to 500 lines until it is written — 8 MiB instead of 0.7, and a heap that creeps.
            line = memoryview(orjson.dumps(record, default=str)).tobytes()
        except Exception as exc:  # noqa: BLE001 - a record that cannot be built still leaves a trace of itself
            self._stats.serialisation_errors += 1
            logger.error("could not serialise the log record of trace %s: %s", entry.trace_id, type(exc).__name__)
            line = orjson.dumps({"id": entry.id, "trace_id": entry.trace_id, "route": entry.route,
                                 "status": entry.status, "outcome": entry.outcome,
                                 "serialisation_error": type(exc).__name__})
        return scrub_carried(line, entry.request_headers)

    def _observe(self, record: dict[str, Any], entry: RequestLog) -> None:
        for observer in self._observers:
            try:
                observer.observe(record, entry)
            except Exception as exc:  # noqa: BLE001 - a metrics bug must never cost a log record
                self._stats.observer_errors += 1
                if self._stats.observer_errors <= 10 or self._stats.observer_errors % 1000 == 0:
                    logger.error("%s failed on trace %s: %s", type(observer).__name__, entry.trace_id,
                                 type(exc).__name__)
