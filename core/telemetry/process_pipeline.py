"""Request logs built and stored by a separate writer process, so a gateway worker's core serves only requests.

Building a record (bodies, redaction, stream assembly, cost, metrics, JSON) costs 50-70 us of CPU, a fifth of
what the request itself costs; in the gateway's process that comes straight off its throughput. Here the worker
only packs each :class:`RequestLog` (about 3 us, :mod:`core.telemetry.writer_frames`) and writes batches to a
pipe; :mod:`core.telemetry.writer_process` — the same :class:`LogPipeline` the serverless entries run inline —
does the rest on whatever core is free. ``SKYRELAY_LOG_WRITER`` chooses (``process`` is the default of long-lived
servers, ``skyrelay serve`` and the container entries; serverless entries always build inline).

Zero loss across the hand-off: a batch stays in this process until the writer reports it stored, spilled or
dropped (its ``done`` count). When the writer dies, it is started again and every batch it had not finished is
sent again — at-least-once, like the sinks: a record may then appear twice, with the same ``id``. Records already
handed over survive the gateway process dying: the writer sees its input close and writes them out.
The bound is the same as inline: ``log_queue_max_records`` records in memory, past which new ones are dropped and
counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import core
from core.telemetry import writer_frames as frames
from core.telemetry.records import RequestLog
from core.telemetry.sinks.base import SinkUnavailableError
from core.telemetry.writer import PipelineStats
from core.telemetry.writer_frames import pack_entry

if TYPE_CHECKING:
    from core.settings import Settings

logger = logging.getLogger("skyrelay.logs")

_PACK = 64  # records per batch frame
_MAX_PIPE_BUFFER = 8 * 1024 * 1024  # bytes waiting for the writer's pipe before records wait in the queue instead
_RESTART_BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)
_DROP_REPORT_INTERVAL_S = 10.0
#: Where ``core`` is imported from: the writer process must import the same code.
_PACKAGE_ROOT = str(Path(core.__file__).resolve().parent.parent)


class _Inbox(asyncio.Protocol):
    def __init__(self, owner: ProcessLogPipeline, generation: int) -> None:
        self._owner = owner
        self._generation = generation
        self._reader = frames.FrameReader()

    def data_received(self, data: bytes) -> None:
        for kind, payload in self._reader.feed(data):
            self._owner._on_frame(self._generation, kind, payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._on_writer_gone(self._generation)


class ProcessLogPipeline:
    """The gateway side: :meth:`submit` on the hot path, a task that packs and sends, a reader for the acks."""

    def __init__(self, settings: Settings, *, describe: str, env: dict[str, str] | None = None) -> None:
        self.last_error: str | None = None
        self._stats = PipelineStats()
        self._submitted = 0
        self._dropped = 0  # here: queue full, or lost at shutdown
        self._settings = settings
        self._describe = describe
        self._env = env
        self._queue: deque[bytes] = deque()  # packed request logs (frames.pack_entry) not yet sent
        self._queue_max = settings.log_queue_max_records
        self._tick_s = settings.log_handoff_interval_s  # how long a record may wait before it is sent
        self._unacked: deque[tuple[int, bytes]] = deque()  # (records, frame) sent to the writer, not yet done
        self._unacked_records = 0
        self._sent = 0  # records sent to the current writer
        self._done = 0  # of those, stored / spilled / dropped (its ack)
        self._base = PipelineStats()  # counters of writers that have exited
        self._child = PipelineStats()  # the current writer's, from its last ack
        self._child_spill = (0, 0)  # its spill: records, bytes
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: asyncio.WriteTransport | None = None
        self._generation = 0
        self._restarts = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._queries: dict[int, asyncio.Future[Any]] = {}
        self._query_ids = itertools.count(1)
        self._connected = asyncio.Event()
        self._gone = asyncio.Event()  # the current writer's pipe reached its end (its last ack is read)
        self._drops_unreported = 0
        self._last_drop_report = 0.0

    # --- hot path ------------------------------------------------------------------------------------------
    def submit(self, entry: RequestLog) -> None:
        if len(self._queue) + self._unacked_records >= self._queue_max:
            self._drop(entry)
            return
        self._queue.append(pack_entry(entry))
        self._submitted += 1
        if len(self._queue) == _PACK and self._wakeup is not None:
            self._wakeup.set()

    def _drop(self, entry: RequestLog) -> None:
        self._dropped += 1
        self._drops_unreported += 1
        now = time.monotonic()
        if now - self._last_drop_report >= _DROP_REPORT_INTERVAL_S:
            logger.error("log queue full (%d records): the log writer process is not keeping up or not running; "
                         "dropped %d records (latest: trace %s); %d dropped since start", self._queue_max,
                         self._drops_unreported, entry.trace_id, self._dropped)
            self._drops_unreported = 0
            self._last_drop_report = now

    # --- what the rest of the gateway reads ----------------------------------------------------------------
    def describe_sink(self) -> str:
        return self._describe

    @property
    def queue_depth(self) -> int:
        """Records in memory: waiting here, in the pipe, or in the writer."""
        return len(self._queue) + self._unacked_records

    @property
    def queue_capacity(self) -> int:
        return self._queue_max

    @property
    def spill_records(self) -> int:
        return self._child_spill[0]

    @property
    def spill_bytes(self) -> int:
        return self._child_spill[1]

    @property
    def pending(self) -> int:
        return self.queue_depth + self.spill_records

    @property
    def writer_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def stats(self) -> PipelineStats:
        """This process's submissions and drops, plus the writers' counters (the current one's last ack)."""
        s = self._stats
        for name in _COUNTERS:
            setattr(s, name, getattr(self._base, name) + getattr(self._child, name))
        s.submitted = self._submitted
        s.dropped += self._dropped
        return s

    async def check_sink(self) -> None:
        """The writer checks its sink (it holds the credentials); raises OSError with what it reported."""
        answer = await self._query("check", None, timeout_s=10.0)
        if answer is _NO_ANSWER:
            raise SinkUnavailableError(f"the log writer process did not answer{self._exit_note()}")
        if answer is not None:
            raise SinkUnavailableError(str(answer))

    async def metrics_text(self) -> bytes:
        """The writer's request metrics (Prometheus text), or nothing when it does not answer in time."""
        answer = await self._query("metrics", None, timeout_s=5.0)
        return answer if isinstance(answer, bytes) else b""

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None or self._task.done():
            self._closing = False
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="skyrelay-log-handoff")

    async def flush(self, deadline_s: float) -> bool:
        """Everything submitted so far is in the sink (or the spill), or ``deadline_s`` passed: True when drained."""
        end = time.monotonic() + deadline_s
        self.start()
        while time.monotonic() < end:
            if self._queue and not self._send_queued():
                await asyncio.sleep(0.01)  # the pipe is full, or a writer is starting
                continue
            answer = await self._query("flush", max(0.0, end - time.monotonic()), timeout_s=end - time.monotonic())
            if answer is True and not self._queue and self._unacked_records == 0:
                return True
            if answer is not _NO_ANSWER:
                return False  # the writer ran out of time itself
            await asyncio.sleep(0.01)  # the writer stopped mid-flush: its replacement gets everything again
        return False

    async def aclose(self, deadline_s: float = 10.0) -> None:
        """Hand over everything, close the writer's input, wait for it to write (or spill) and exit."""
        end = time.monotonic() + deadline_s
        with contextlib.suppress(Exception):
            await self.flush(deadline_s)
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        proc = self._proc
        if self._out is not None:
            self._send_queued(limit=None)
            self._out.close()
        if proc is not None:
            # The writer gets its own flush deadline for what is still open, then a moment to spill and exit.
            margin = self._settings.log_flush_timeout_s + 5.0
            if not await _wait_exit(proc, max(end - time.monotonic(), 0.0) + margin):
                logger.error("the log writer process %d did not exit in time: killing it", proc.pid)
                proc.kill()
                await _wait_exit(proc, 5.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gone.wait(), 2.0)  # its final ack, written before it exited
        lost = len(self._queue) + self._unacked_records
        if lost:
            self._dropped += lost
            logger.error("%d log records could not be handed to the log writer before shutdown", lost)
        self._queue.clear()
        self._unacked.clear()
        self._unacked_records = 0

    # --- the hand-off --------------------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wakeup is not None
        while not self._closing:
            if self.writer_pid is None or self._out is None or self._out.is_closing():
                await self._restart_writer()
                continue
            self._send_queued()
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._tick_s)

    def _send_queued(self, limit: int | None = 16 * _PACK) -> bool:
        """Pack queued records into frames and write them; False when the pipe is full or the writer is gone."""
        out, queue = self._out, self._queue
        if out is None or out.is_closing():
            return False
        sent = 0
        while queue and (limit is None or sent < limit):
            if out.get_write_buffer_size() > _MAX_PIPE_BUFFER:
                return False
            batch = [queue.popleft() for _ in range(min(_PACK, len(queue)))]
            data = frames.frame(frames.ENTRIES, b"".join(batch))
            self._unacked.append((len(batch), data))
            self._unacked_records += len(batch)
            self._sent += len(batch)
            sent += len(batch)
            if not _write(out, data):
                return False  # the writer is gone: the batch waits, unacked, for its replacement
        return True

    async def _restart_writer(self) -> None:
        if self._proc is not None:
            delay = _RESTART_BACKOFF_S[min(self._restarts, len(_RESTART_BACKOFF_S) - 1)]
            self._restarts += 1
            await asyncio.sleep(delay)
        try:
            await self._spawn()
        except OSError as exc:
            self.last_error = f"could not start the log writer process: {exc.strerror or type(exc).__name__}"
            logger.error("%s", self.last_error)
            await asyncio.sleep(1.0)
            return
        # Everything the last writer had not finished goes to the new one, in order.
        out = self._out
        assert out is not None
        self._sent = self._unacked_records
        for _, data in self._unacked:
            if not _write(out, data):
                return

    async def _spawn(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(self._env if self._env is not None else os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        try:
            # fork + exec of a large process takes milliseconds: not on the event loop
            proc = await asyncio.to_thread(
                subprocess.Popen,
                [sys.executable, "-m", "core.telemetry.writer_process", str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w), env=env, start_new_session=True, stdin=subprocess.DEVNULL)
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._generation += 1
        self._proc = proc
        self._fold_child_counters()
        self._done = 0
        loop = asyncio.get_running_loop()
        generation = self._generation
        out, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(to_child_w, "wb", buffering=0))
        await loop.connect_read_pipe(lambda: _Inbox(self, generation), os.fdopen(from_child_r, "rb", buffering=0))
        self._out = out
        self._gone.clear()
        self._connected.set()
        _write(out, frames.frame(frames.SETTINGS, frames.plain_settings(self._settings)))
        logger.info("log writer process %d started (sink %s)", proc.pid, self._describe)

    def _fold_child_counters(self) -> None:
        for name in _COUNTERS:
            setattr(self._base, name, getattr(self._base, name) + getattr(self._child, name))
        self._child, self._child_spill = PipelineStats(), (0, 0)

    # --- from the writer -----------------------------------------------------------------------------------
    def _on_frame(self, generation: int, kind: bytes, payload: bytes) -> None:
        if generation != self._generation:
            return
        if kind == frames.ACK:
            self._on_ack(frames.decode(payload))
        elif kind == frames.REPLY:
            query_id, answer = frames.decode(payload)
            future = self._queries.pop(query_id, None)
            if future is not None and not future.done():
                future.set_result(answer)

    def _on_ack(self, ack: tuple[Any, ...]) -> None:
        c = self._child
        (done, c.submitted, c.written, c.spilled, c.replayed, c.dropped, c.failed_writes, c.serialisation_errors,
         c.observer_errors, c.build_cpu_s, _queue, spill_records, spill_bytes, self.last_error) = ack
        self._child_spill = (spill_records, spill_bytes)
        if done > self._done:
            self._restarts = 0  # a writer that stores records works: the next failure restarts it at once
        self._done = done
        # Batches the writer has finished (it works in order) are forgotten; a partly finished one is kept.
        finished = done - (self._sent - self._unacked_records)
        while self._unacked and self._unacked[0][0] <= finished:
            count, _ = self._unacked.popleft()
            self._unacked_records -= count
            finished -= count

    def _on_writer_gone(self, generation: int) -> None:
        if generation != self._generation:
            return
        if self._out is not None:
            self._out.close()  # its pipe's reader is gone
        self._out = None
        self._connected.clear()
        self._gone.set()
        for future in self._queries.values():
            if not future.done():
                future.set_result(_NO_ANSWER)
        self._queries.clear()
        if not self._closing:
            logger.error("the log writer process stopped%s: starting another; %d records it had not finished are "
                         "sent again", self._exit_note(), self._unacked_records)
            if self._wakeup is not None:
                self._wakeup.set()

    def _exit_note(self) -> str:
        code = self._proc.poll() if self._proc is not None else None
        return f" (exit code {code})" if code is not None else ""

    async def _query(self, name: str, argument: Any, *, timeout_s: float) -> Any:
        """Ask the writer; waits for a writer (one may be starting) within the same timeout."""
        end = time.monotonic() + max(timeout_s, 0.1)
        if self._task is None and not self._closing:
            self.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), max(0.0, end - time.monotonic()))
        out = self._out
        if out is None or out.is_closing():
            return _NO_ANSWER
        query_id = next(self._query_ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queries[query_id] = future
        if not _write(out, frames.frame(frames.QUERY, frames.encode((query_id, name, argument)))):
            self._queries.pop(query_id, None)
            return _NO_ANSWER
        try:
            return await asyncio.wait_for(future, max(end - time.monotonic(), 0.05))
        except TimeoutError:
            return _NO_ANSWER
        finally:
            self._queries.pop(query_id, None)


_NO_ANSWER = object()
#: The writers' counters, summed over every writer this gateway has had (``submitted`` is counted here instead).
_COUNTERS = tuple(f.name for f in dataclasses.fields(PipelineStats) if f.name != "submitted")


def _write(out: asyncio.WriteTransport, data: bytes) -> bool:
    """False when the writer's pipe is closed (uvloop raises on such a write; the caller keeps the data)."""
    if out.is_closing():
        return False
    try:
        out.write(data)
    except (RuntimeError, OSError):
        return False
    return True


async def _wait_exit(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while proc.poll() is None:
        if time.monotonic() >= end:
            return False
        await asyncio.sleep(0.02)
    return True
