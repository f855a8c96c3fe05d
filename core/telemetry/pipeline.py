"""The log pipeline: a bounded in-memory queue drained by one background writer into a sink.

``submit`` never blocks and never awaits: the hot path only appends. The writer (owned by the app's lifespan)
batches by count, bytes and age, builds each record (redaction, stream assembly, cost), hands it to the observers
(Prometheus, OpenTelemetry, analytics) and writes the batch:

    queue ──▶ batch ──▶ sink            up to ``write_attempts`` tries with backoff, each bounded by a timeout
                   └──▶ disk spill      when those fail; while the spill holds batches, new ones queue behind
                                        them there, and the oldest is replayed (with backoff) until the sink
                                        takes it again — so batches reach the sink in order

Loss policy (see :class:`PipelineStats`): a record is lost only when the memory queue is full, which takes a sink
that fails and a spill that is full (or disabled). Then the writer keeps the batch in hand and retries it, new
records fill the queue, and once it is full each new record is dropped, counted (``dropped``, the
``skyrelay_log_records_dropped_total`` metric) and reported in an ERROR line at most every 10 s. On shutdown the
writer gets ``log_flush_timeout_s`` to write everything; what is still in memory then goes to the spill, to be
replayed by the next process that uses the same spill folder.

Delivery is at least once. Bucket sinks store a batch under a name derived from its identity and only if absent,
so retries and replays never duplicate or overwrite an object; the file and stdout sinks append, so a batch whose
write failed half way may appear twice. Every record carries a unique ``id``: dedupe on it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Sequence

from core.telemetry.builder import RecordBuilder, RecordObserver
from core.telemetry.costs import PriceTable
from core.telemetry.records import RequestLog
from core.telemetry.sinks.base import Batch, LogSink
from core.telemetry.spill import DiskSpill
from core.telemetry.writer import PipelineStats

logger = logging.getLogger("skyrelay.logs")

_MAX_BACKOFF_S = 5.0
_DROP_REPORT_INTERVAL_S = 10.0
_ORPHAN_SCAN_INTERVAL_S = 60.0
_BUILD_CHUNK = 64  # records built between two yields to the event loop
_TICK_S = 0.05  # how often an idle writer looks at the queue (records wait at most this long to be built)


def new_run_id() -> str:
    """Sortable by start time (hex seconds) and unique per process start (random tail)."""
    return f"{int(time.time()):08x}{uuid.uuid4().hex[:6]}"


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
        spill: DiskSpill | None = None,
        write_attempts: int = 3,
        write_timeout_s: float = 30.0,
        replay_interval_s: float = 5.0,
        prices: PriceTable | None = None,
        observers: Sequence[RecordObserver] = (),
        run_id: str | None = None,
        tick_s: float = _TICK_S,
    ) -> None:
        self.sink = sink
        self.spill = spill
        self.stats = PipelineStats()
        self.run_id = run_id or (spill.run_id if spill is not None else new_run_id())
        self.last_error: str | None = None
        self._replica = replica
        self._prices = prices
        self._builder = RecordBuilder(self.stats, replica=replica, include_bodies=include_bodies,
                                      redact_fields=redact_fields, prices=prices, observers=observers)
        self._queue: deque[RequestLog] = deque()
        self._queue_max = queue_max_records
        self._batch_max_records = batch_max_records
        self._batch_max_bytes = batch_max_bytes
        self._batch_max_age_s = batch_max_age_s
        self._write_attempts = write_attempts
        self._write_timeout_s = write_timeout_s
        self._replay_interval_s = replay_interval_s
        self._wakeup = asyncio.Event()
        self._wake_at = min(_BUILD_CHUNK, batch_max_records)
        self._tick_s = min(tick_s, batch_max_age_s)
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._prepared = False
        self._closing = False
        self._flushing = 0
        self._held: Batch | None = None  # the batch the writer is delivering
        self._unsent: deque[Batch] = deque()  # batches closed outside the writer that the spill could not take
        self._open: list[bytes] = []  # serialised records of the batch being filled
        self._open_bytes = 0
        self._open_started = 0.0  # perf_counter of its oldest record (the age limit)
        self._open_ts = 0.0  # wall clock of its oldest record (the partition)
        self._seq = 0
        self._replay_backoff = 0.1
        self._next_replay = 0.0
        self._next_orphan_scan = 0.0
        self._drops_unreported = 0
        self._last_drop_report = 0.0

    # --- hot path ------------------------------------------------------------------------------------------
    def submit(self, entry: RequestLog) -> None:
        if len(self._queue) >= self._queue_max:
            self._drop(entry)
            return
        self._queue.append(entry)
        self.stats.submitted += 1
        if len(self._queue) == self._wake_at:
            self._wakeup.set()  # otherwise the writer looks every tick: waking it per record costs more than a record

    def _drop(self, entry: RequestLog) -> None:
        self.stats.dropped += 1
        self._drops_unreported += 1
        now = time.monotonic()
        if now - self._last_drop_report >= _DROP_REPORT_INTERVAL_S:
            logger.error("log queue full (%d records) and the sink %s is failing: dropped %d records (latest: "
                         "trace %s); %d dropped since start", self._queue_max, self.sink.describe(),
                         self._drops_unreported, entry.trace_id, self.stats.dropped)
            self._drops_unreported = 0
            self._last_drop_report = now

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def queue_capacity(self) -> int:
        return self._queue_max

    @property
    def pending(self) -> int:
        """Records submitted but not yet in the sink: in memory, in hand, or in the spill."""
        return self._in_memory() + self.spill_records

    @property
    def spill_records(self) -> int:
        return self.spill.records if self.spill is not None else 0

    @property
    def spill_bytes(self) -> int:
        return self.spill.bytes if self.spill is not None else 0

    def describe_sink(self) -> str:
        return self.sink.describe()

    async def check_sink(self) -> None:
        """Raises OSError when the sink cannot be used (``SinkUnavailableError`` carries a message safe to show)."""
        await self.sink.check()

    async def metrics_text(self) -> bytes:
        """Request metrics kept elsewhere (a writer process's); inline, they are in this process's registry."""
        return b""

    def _in_memory(self) -> int:
        held = len(self._held.lines) if self._held is not None else 0
        return len(self._queue) + len(self._open) + held + sum(len(b.lines) for b in self._unsent)

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None or self._task.done():
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="skyrelay-log-writer")

    async def flush(self, deadline_s: float) -> bool:
        """Wait until every record submitted so far is in the sink, or ``deadline_s`` passes; True when drained.

        For serverless entries before the invocation ends. Works without a running writer (one is started for
        the duration). At the deadline, records still only in memory are moved to the disk spill.
        """
        temporary = self._task is None or self._task.done()
        if temporary:
            self.start()
        end = time.monotonic() + deadline_s
        self._flushing += 1
        self._wakeup.set()
        try:
            while self.pending and time.monotonic() < end:
                self._progress.clear()
                try:
                    await asyncio.wait_for(self._progress.wait(), timeout=max(0.0, end - time.monotonic()))
                except TimeoutError:
                    break
        finally:
            self._flushing -= 1
            if temporary:
                await self._stop_writer()
        if self._queue or self._open:
            await self._spill_queue()
        return self.pending == 0

    async def aclose(self, deadline_s: float = 10.0) -> None:
        """Flush with a deadline, stop the writer, spill what is left, close the sink; reports what was not stored."""
        await self.flush(deadline_s)
        await self._stop_writer()
        if self._held is not None:
            self._unsent.appendleft(self._held)
            self._held = None
        while self._unsent and await self._spill_batch(self._unsent[0]):
            self.stats.spilled += len(self._unsent.popleft().lines)
        await self._spill_queue()
        lost = self._in_memory()
        if lost:
            self.stats.dropped += lost
            logger.error("%d log records could not be written or spilled before shutdown", lost)
        if self.spill is not None:
            if self.spill.records:
                logger.error("%d log records wait in the spill folder %s: the next process using it replays them",
                             self.spill.records, self.spill.root)
            await asyncio.to_thread(self.spill.close)
        await self.sink.aclose()

    async def _stop_writer(self) -> None:
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    # --- writer --------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        await self._prepare()
        while not self._closing:
            try:
                if self._held is not None:
                    await self._deliver(self._held)
                elif self._unsent:
                    await self._deliver(self._unsent.popleft())
                elif self._open and self._open_due():
                    await self._deliver(self._close_open())
                elif self._queue:
                    self._build()
                    await asyncio.sleep(0)  # let requests run between chunks of records
                elif self.spill is not None and self.spill.batches and time.monotonic() >= self._next_replay:
                    await self._replay_one()
                else:
                    await self._idle()
            except (OSError, RuntimeError, ValueError) as exc:  # a local disk or bookkeeping failure: keep going
                logger.error("log writer error: %s; continuing in 1 s", describe_failure(exc))
                await asyncio.sleep(1.0)

    async def _prepare(self) -> None:
        if self._prepared:
            return
        if self._prices is not None:
            await self._prices.warm_up()
        if self.spill is not None:
            try:
                await asyncio.to_thread(self.spill.open)
            except OSError as exc:
                logger.error("log spill folder %s is unusable (%s): spilling is off", self.spill.root, exc.strerror)
                self.spill = None
            self._next_orphan_scan = time.monotonic() + _ORPHAN_SCAN_INTERVAL_S
        self._prepared = True

    def _open_due(self) -> bool:
        """Write the batch being filled: it is full, old enough, or a flush wants everything out."""
        if len(self._open) >= self._batch_max_records or self._open_bytes >= self._batch_max_bytes:
            return True
        if (self._flushing or self._closing) and not self._queue:
            return True
        return time.perf_counter() - self._open_started >= self._batch_max_age_s

    async def _idle(self) -> None:
        waits = [self._tick_s]
        if self._open:
            waits.append(self._batch_max_age_s - (time.perf_counter() - self._open_started))
        if self.spill is not None:
            if self.spill.batches:
                waits.append(self._next_replay - time.monotonic())
            elif time.monotonic() >= self._next_orphan_scan:
                self._next_orphan_scan = time.monotonic() + _ORPHAN_SCAN_INTERVAL_S
                await asyncio.to_thread(self.spill.adopt_orphans)
                return
        self._wakeup.clear()
        timeout = max(0.0, min(waits))
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)
        except TimeoutError:
            pass

    async def _deliver(self, batch: Batch) -> None:
        """Sink, or spill behind an existing backlog, or spill after failed tries, or hold and retry until written."""
        self._held = batch
        if self.spill is not None and self.spill.batches and await self._spill_batch(batch):
            self._done(batch, spilled=True)
            return
        if await self._write(batch, self._write_attempts):
            self._done(batch)
            return
        if await self._spill_batch(batch):
            self._done(batch, spilled=True)
            self._next_replay = time.monotonic() + self._replay_backoff
            return
        await self._write(batch, None)  # no room on disk: keep it in hand; the queue absorbs, then drops
        self._done(batch)

    def _done(self, batch: Batch, *, spilled: bool = False) -> None:
        self._held = None
        if spilled:
            self.stats.spilled += len(batch.lines)
        else:
            self.stats.written += len(batch.lines)
        self._progress.set()

    async def _write(self, batch: Batch, attempts: int | None) -> bool:
        """Up to ``attempts`` tries (``None``: until written) with capped exponential backoff."""
        backoff, tries = 0.1, 0
        while True:
            tries += 1
            if await self._attempt(batch):
                return True
            if attempts is not None and tries >= attempts:
                return False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    async def _attempt(self, batch: Batch) -> bool:
        try:
            await asyncio.wait_for(self.sink.write_batch(batch), timeout=self._write_timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK raises its own types; the batch is retried or spilled
            self.stats.failed_writes += 1
            self.last_error = describe_failure(exc)
            logger.warning("log sink %s failed: %s", self.sink.describe(), self.last_error)
            return False
        self.last_error = None
        return True

    async def _spill_batch(self, batch: Batch) -> bool:
        if self.spill is None:
            return False
        return await asyncio.to_thread(self.spill.append, batch)

    async def _spill_queue(self) -> None:
        """Move everything still in memory to the spill (flush deadline, shutdown)."""
        while (self._queue or self._open) and self.spill is not None and not self._unsent:
            self._build(limit=None)
            batch = self._close_open()
            if not await self._spill_batch(batch):
                self._unsent.append(batch)  # the writer delivers it first; shutdown counts it if it cannot
                return
            self.stats.spilled += len(batch.lines)

    async def _replay_one(self) -> None:
        assert self.spill is not None
        oldest = await asyncio.to_thread(self.spill.oldest)
        if oldest is None:
            return
        entry, batch = oldest
        if await self._attempt(batch):
            await asyncio.to_thread(self.spill.remove, entry)
            self.stats.replayed += len(batch.lines)
            self.stats.written += len(batch.lines)
            self._replay_backoff = 0.1
            self._next_replay = 0.0
            self._progress.set()
        else:
            self._next_replay = time.monotonic() + self._replay_backoff
            self._replay_backoff = min(self._replay_backoff * 2, self._replay_interval_s)

    # --- records -------------------------------------------------------------------------------------------
    def _build(self, limit: int | None = _BUILD_CHUNK) -> None:
        """Turn queued entries into records of the open batch, up to ``limit`` at a time or until it is full.

        Records are built as they arrive, not when a batch is due: metrics and traces stay current, and the
        event loop is never held for a whole batch's worth of serialisation.
        """
        started = time.thread_time()
        queue, batch, build = self._queue, self._open, self._builder.build
        room = self._batch_max_records - len(batch)
        todo = min(len(queue), room if limit is None else min(limit, room))
        if todo > 0 and not batch:
            self._open_started, self._open_ts = queue[0].started, queue[0].started_wall
        for _ in range(todo):
            if self._open_bytes >= self._batch_max_bytes:
                break
            line = build(queue.popleft())
            batch.append(line)
            self._open_bytes += len(line)
        self.stats.build_cpu_s += time.thread_time() - started

    def _close_open(self) -> Batch:
        self._seq += 1
        batch = Batch(replica=self._replica, run_id=self.run_id, seq=self._seq, first_ts=self._open_ts,
                      lines=tuple(self._open))
        self._open, self._open_bytes = [], 0
        return batch


def describe_failure(exc: BaseException) -> str:
    """A failure for logs and /v1/ready: our sink errors carry a safe message, anything else only its type."""
    from core.telemetry.sinks.base import SinkUnavailableError

    if isinstance(exc, SinkUnavailableError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__ + (f" ({exc.strerror})" if isinstance(exc, OSError) and exc.strerror else "")


def default_spill_dir() -> str:
    return os.path.join(os.environ.get("TMPDIR", "/tmp"), "skyrelay-spill")
