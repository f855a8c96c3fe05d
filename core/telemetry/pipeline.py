"""The log pipeline: a bounded in-memory queue drained by one background writer into a sink.

``submit`` never blocks and never awaits: the hot path only appends. The writer (owned by the app's lifespan)
batches by count, bytes and age, serialises records (see :meth:`RequestLog.to_record`) and writes each batch,
retrying with capped backoff while the sink fails. Records stay queued — in order — until written.

Loss policy: a record is only ever lost when the queue is full (the sink has been failing long enough to fill
``log_queue_max_records``). That drop is counted in :attr:`PipelineStats.dropped` and logged at ERROR, never
silent. ``flush(deadline)`` lets a serverless entry wait for everything submitted so far before it freezes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

import orjson

from core.telemetry.records import RequestLog
from core.telemetry.redaction import BodyRedactor
from core.telemetry.sinks.base import LogSink

logger = logging.getLogger("skyrelay.logs")

_MAX_BACKOFF_S = 5.0


@dataclass(slots=True)
class PipelineStats:
    submitted: int = 0
    written: int = 0
    dropped: int = 0
    failed_writes: int = 0
    serialisation_errors: int = 0


class LogPipeline:
    def __init__(
        self,
        sink: LogSink,
        *,
        replica: str,
        include_bodies: bool = True,
        redact_fields: tuple[str, ...] = (),
        queue_max_records: int = 10_000,
        batch_max_records: int = 500,
        batch_max_bytes: int = 4 * 1024 * 1024,
        batch_max_age_s: float = 1.0,
    ) -> None:
        self.sink = sink
        self.stats = PipelineStats()
        self._replica = replica
        self._include_bodies = include_bodies
        self._redact = BodyRedactor(redact_fields)
        self._queue: deque[RequestLog] = deque()
        self._queue_max = queue_max_records
        self._batch_max_records = batch_max_records
        self._batch_max_bytes = batch_max_bytes
        self._batch_max_age_s = batch_max_age_s
        self._wakeup = asyncio.Event()
        self._written_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._flush_requested = False
        self._in_flight = 0

    # --- hot path ------------------------------------------------------------------------------------------
    def submit(self, entry: RequestLog) -> None:
        if len(self._queue) >= self._queue_max:
            self.stats.dropped += 1
            logger.error(
                "log queue full (%d records): dropped the record of trace %s; the sink %s is not keeping up",
                self._queue_max, entry.trace_id, self.sink.describe(),
            )
            return
        self._queue.append(entry)
        self.stats.submitted += 1
        depth = len(self._queue)
        if depth == 1 or depth >= self._batch_max_records:
            self._wakeup.set()  # first record starts the age timer; a full batch is written at once

    @property
    def pending(self) -> int:
        return len(self._queue) + self._in_flight

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None or self._task.done():
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="skyrelay-log-writer")

    async def flush(self, deadline_s: float) -> bool:
        """Wait until every record submitted so far is written, or ``deadline_s`` passes. True when drained."""
        if self._task is None or self._task.done():
            await self._drain_inline(deadline_s)
            return self.pending == 0
        end = time.monotonic() + deadline_s
        self._flush_requested = True
        self._wakeup.set()
        while self.pending and time.monotonic() < end:
            self._written_event.clear()
            try:
                await asyncio.wait_for(self._written_event.wait(), timeout=max(0.0, end - time.monotonic()))
            except TimeoutError:
                break
        return self.pending == 0

    async def aclose(self, deadline_s: float = 10.0) -> None:
        """Flush with a deadline, stop the writer, close the sink; reports what could not be written."""
        drained = await self.flush(deadline_s)
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if not drained and self.pending:
            logger.error("%d log records could not be written before shutdown", self.pending)
        await self.sink.aclose()

    # --- writer --------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._closing:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if len(self._queue) < self._batch_max_records and not self._flush_requested:
                oldest_age = time.perf_counter() - self._queue[0].started
                wait = self._batch_max_age_s - oldest_age
                if wait > 0:
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), timeout=wait)
                    except TimeoutError:
                        pass
                    continue
            await self._write_next_batch()

    async def _write_next_batch(self) -> None:
        batch, lines = self._take_batch()
        backoff = 0.1
        while True:
            try:
                await self.sink.write_batch(lines)
                break
            except asyncio.CancelledError:
                self._requeue(batch)
                raise
            except Exception as exc:  # noqa: BLE001 - any sink failure is retried; each SDK raises its own types
                self.stats.failed_writes += 1
                logger.warning("log sink %s failed (%s); retrying in %.1fs", self.sink.describe(),
                               type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
        self._in_flight = 0
        self.stats.written += len(batch)
        if not self._queue:
            self._flush_requested = False
        self._written_event.set()

    def _take_batch(self) -> tuple[list[RequestLog], list[bytes]]:
        batch: list[RequestLog] = []
        lines: list[bytes] = []
        size = 0
        while self._queue and len(batch) < self._batch_max_records and size < self._batch_max_bytes:
            entry = self._queue.popleft()
            line = self._serialise(entry)
            if line is None:
                continue
            batch.append(entry)
            lines.append(line)
            size += len(line)
        self._in_flight = len(batch)
        return batch, lines

    def _requeue(self, batch: list[RequestLog]) -> None:
        self._queue.extendleft(reversed(batch))
        self._in_flight = 0

    def _serialise(self, entry: RequestLog) -> bytes | None:
        try:
            record = entry.to_record(include_bodies=self._include_bodies, redact_body=self._redact,
                                     replica=self._replica)
            return orjson.dumps(record, default=str)
        except (TypeError, ValueError) as exc:
            self.stats.serialisation_errors += 1
            logger.error("could not serialise the log record of trace %s: %s", entry.trace_id, exc)
            fallback = {"id": entry.id, "trace_id": entry.trace_id, "route": entry.route, "status": entry.status,
                        "outcome": entry.outcome, "serialisation_error": str(exc)}
            return orjson.dumps(fallback)

    async def _drain_inline(self, deadline_s: float) -> None:
        """Write what is queued without the background task (serverless entries between invocations)."""
        end = time.monotonic() + deadline_s
        while self._queue and time.monotonic() < end:
            batch, lines = self._take_batch()
            try:
                await asyncio.wait_for(self.sink.write_batch(lines), timeout=max(0.01, end - time.monotonic()))
            except (TimeoutError, OSError) as exc:
                logger.warning("inline log flush failed: %s", type(exc).__name__)
                self._requeue(batch)
                return
            self._in_flight = 0
            self.stats.written += len(batch)
