"""The log writer process: builds and stores the request logs a gateway process hands it over a pipe.

    python -m core.telemetry.writer_process <read fd> <write fd>

Started by :class:`core.telemetry.process_pipeline.ProcessLogPipeline`, one per gateway worker. It runs the same
:class:`~core.telemetry.pipeline.LogPipeline` the serverless entries run in-process — records, redaction, cost,
metrics, traces, analytics, batches, sink, spill — on its own core, so a request costs its gateway process only
the hand-off (see :mod:`core.telemetry.writer_frames`).

It ignores SIGINT and SIGTERM and runs in its own session: a terminal's Ctrl-C or a signal to the gateway's
process group must not stop it before the gateway has handed over its last records. It stops when its input
closes — the gateway shutting down, or dying — after writing (or spilling) everything it was given.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any, cast

from core.telemetry import writer_frames as frames
from core.telemetry.pipeline import describe_failure
from core.telemetry.setup import Telemetry, build_telemetry

if TYPE_CHECKING:
    from core.settings import Settings

logger = logging.getLogger("skyrelay.logs")


class _Inbox(asyncio.Protocol):
    """Frames from the gateway: batches go straight into the pipeline, queries run as tasks."""

    def __init__(self, writer: WriterProcess) -> None:
        self._writer = writer
        self._reader = frames.FrameReader()

    def data_received(self, data: bytes) -> None:
        for kind, payload in self._reader.feed(data):
            self._writer.on_frame(kind, payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self._writer.input_closed.set()


class _Outbox(asyncio.Protocol):
    """The pipe back to the gateway; ``closed`` resolves once everything written has left."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class WriterProcess:
    def __init__(self, out: asyncio.WriteTransport) -> None:
        self._out = out
        self.telemetry: Telemetry | None = None
        self._flush_timeout_s = 10.0
        self._ack_interval_s = 0.05  # the gateway's hand-off interval: acks come as often as batches go
        self.input_closed = asyncio.Event()
        self.ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_ack: tuple[Any, ...] | None = None

    def on_frame(self, kind: bytes, payload: bytes) -> None:
        if kind == frames.SETTINGS:
            settings = frames.WriterSettings(payload)
            self._flush_timeout_s = float(settings.log_flush_timeout_s)
            self._ack_interval_s = float(settings.log_handoff_interval_s)
            logging.getLogger().setLevel(str(settings.log_level).upper())  # the gateway's verbosity
            self.telemetry = build_telemetry(cast("Settings", settings), mode="writer")
            self.telemetry.start()
            self.ready.set()
        elif kind == frames.ENTRIES:
            assert self.telemetry is not None, "the gateway sends its settings first"
            submit = self.telemetry.pipeline.submit
            for entry in frames.unpack_entries(payload):
                submit(entry)
        elif kind == frames.QUERY:
            query_id, name, argument = frames.decode(payload)
            task = asyncio.get_running_loop().create_task(self._answer(query_id, name, argument))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, query_id: int, name: str, argument: Any) -> None:
        await self.ready.wait()
        assert self.telemetry is not None
        answer: Any = None
        try:
            if name == "flush":
                answer = await self.telemetry.flush(float(argument))
                self.send_ack()  # the counters the flush moved, before its answer
            elif name == "check":
                try:
                    await self.telemetry.pipeline.check_sink()
                except OSError as exc:
                    answer = describe_failure(exc)
            elif name == "metrics":
                metrics = self.telemetry.metrics
                answer = metrics.render() if metrics is not None else b""
        except Exception as exc:  # noqa: BLE001 - a failed query must not stop the writer
            logger.error("log writer: query %s failed: %s", name, type(exc).__name__)
        self._send(frames.frame(frames.REPLY, frames.encode((query_id, answer))))

    def send_ack(self) -> None:
        """The pipeline's counters, when they changed: ``done`` lets the gateway forget what it handed over."""
        if self.telemetry is None:
            return
        p = self.telemetry.pipeline
        s = p.stats
        snapshot = (s.written + s.spilled - s.replayed + s.dropped, s.submitted, s.written, s.spilled, s.replayed,
                    s.dropped, s.failed_writes, s.serialisation_errors, s.observer_errors, round(s.build_cpu_s, 6),
                    p.queue_depth, p.spill_records, p.spill_bytes, p.last_error)
        if snapshot != self._last_ack:
            self._last_ack = snapshot
            self._send(frames.frame(frames.ACK, frames.encode(snapshot)))

    def _send(self, data: bytes) -> None:
        """To the gateway, unless it is gone (killed): then what it was told no longer matters, and the records
        it handed over still get written (uvloop raises on a write to a closed pipe; that must not stop us)."""
        if self._out.is_closing():
            return
        try:
            self._out.write(data)
        except (RuntimeError, OSError):
            pass

    async def run(self) -> None:
        while not self.input_closed.is_set():
            try:
                await asyncio.wait_for(self.input_closed.wait(), self._ack_interval_s)
            except TimeoutError:
                pass
            self.send_ack()
        if self.telemetry is not None:
            await self.telemetry.aclose(self._flush_timeout_s)
            self.send_ack()
        for task in list(self._tasks):
            task.cancel()
        self._out.close()


async def _main(read_fd: int, write_fd: int) -> None:
    loop = asyncio.get_running_loop()
    out, outbox = await loop.connect_write_pipe(_Outbox, os.fdopen(write_fd, "wb", buffering=0))
    writer = WriterProcess(out)
    await loop.connect_read_pipe(lambda: _Inbox(writer), os.fdopen(read_fd, "rb", buffering=0))
    await writer.run()
    try:
        await asyncio.wait_for(outbox.closed, 5.0)  # the last ack leaves before the process does
    except TimeoutError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [log writer %(process)d] %(name)s: %(message)s")
    started = time.monotonic()
    try:
        import uvloop

        uvloop.run(_main(int(args[0]), int(args[1])))
    except ImportError:
        asyncio.run(_main(int(args[0]), int(args[1])))
    logger.debug("log writer exits after %.1f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
