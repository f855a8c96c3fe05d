"""The log pipeline: batching, retries, the disk spill and its replay, the loss policy, flush and shutdown."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from core.telemetry.pipeline import LogPipeline
from core.telemetry.spill import DiskSpill
from tests.telemetry.conftest import MemorySink, entry


def pipeline(sink: MemorySink, tmp_path: Path | None = None, *, spill_bytes: int = 10_000_000,
             run_id: str = "run1", **kwargs: object) -> LogPipeline:
    spill = DiskSpill(tmp_path / "spill", run_id=run_id, max_bytes=spill_bytes) if tmp_path else None
    options: dict[str, object] = {"batch_max_age_s": 0.01, "write_attempts": 2, "replay_interval_s": 0.05}
    options.update(kwargs)
    return LogPipeline(sink, replica="r1", spill=spill, run_id=run_id, **options)  # type: ignore[arg-type]


def trace_ids(sink: MemorySink) -> list[str]:
    return [r["trace_id"] for r in sink.records()]


async def test_batches_by_count_and_flush_writes_everything(memory_sink: MemorySink) -> None:
    p = pipeline(memory_sink, batch_max_records=10, batch_max_age_s=60)
    p.start()
    for i in range(25):
        p.submit(entry(i))
    assert await p.flush(5)
    assert [len(memory_sink.objects[n].lines) for n in memory_sink.order] == [10, 10, 5]
    assert trace_ids(memory_sink) == [f"t{i}" for i in range(25)]
    await p.aclose()


async def test_age_triggers_a_write_without_a_full_batch(memory_sink: MemorySink) -> None:
    p = pipeline(memory_sink, batch_max_records=100, batch_max_age_s=0.05)
    p.start()
    p.submit(entry(1))
    await asyncio.sleep(0.4)
    assert trace_ids(memory_sink) == ["t1"]
    await p.aclose()


async def test_byte_limit_splits_batches(memory_sink: MemorySink) -> None:
    p = pipeline(memory_sink, batch_max_records=100, batch_max_bytes=1024, batch_max_age_s=60)
    for i in range(10):
        p.submit(entry(i))
    assert await p.flush(5)
    sizes = [sum(len(line) for line in memory_sink.objects[n].lines) for n in memory_sink.order]
    assert len(sizes) > 1 and all(size < 1024 + 1024 for size in sizes)
    assert trace_ids(memory_sink) == [f"t{i}" for i in range(10)]


async def test_object_names_are_partitioned_and_unique(memory_sink: MemorySink) -> None:
    p = pipeline(memory_sink, batch_max_records=2, batch_max_age_s=60, run_id="0000abcd12")
    for i in range(6):
        p.submit(entry(i))
    assert await p.flush(5)
    assert len(set(memory_sink.order)) == 3
    for seq, name in enumerate(memory_sink.order, start=1):
        prefix, dt, hour, leaf = name.split("/")
        assert (prefix, dt[:3], hour[:5]) == ("logs", "dt=", "hour=")
        assert leaf == f"r1-0000abcd12-{seq:08d}.jsonl.gz"


async def test_a_failing_sink_is_retried_and_keeps_order(memory_sink: MemorySink) -> None:
    memory_sink.failures_left = 1  # fewer failures than write_attempts: no spill needed
    p = pipeline(memory_sink, batch_max_records=4)
    p.start()
    for i in range(10):
        p.submit(entry(i))
    assert await p.flush(5)
    assert trace_ids(memory_sink) == [f"t{i}" for i in range(10)]
    assert p.stats.failed_writes == 1 and p.stats.spilled == 0 and p.stats.dropped == 0
    await p.aclose()


async def test_sink_down_spills_to_disk_then_replays_in_order(memory_sink: MemorySink, tmp_path: Path) -> None:
    p = pipeline(memory_sink, tmp_path, batch_max_records=5)
    p.start()
    for i in range(5):
        p.submit(entry(i))
    assert await p.flush(5)
    memory_sink.down = True
    for i in range(5, 30):
        p.submit(entry(i))
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.3)
    assert p.spill is not None and p.spill.records >= 20  # spilled, not waiting in memory
    assert p.queue_depth == 0
    memory_sink.down = False
    for i in range(30, 40):  # new records during recovery queue behind the spilled ones
        p.submit(entry(i))
    assert await p.flush(10)
    assert trace_ids(memory_sink) == [f"t{i}" for i in range(40)]  # N records, in order, no duplicates
    assert p.stats.replayed >= 20 and p.stats.dropped == 0
    assert p.spill.records == 0 and not list((tmp_path / "spill").rglob("*.batch"))
    await p.aclose()


async def test_spill_full_holds_the_batch_then_drops_new_records_counted_and_logged(
    memory_sink: MemorySink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    memory_sink.down = True
    p = pipeline(memory_sink, tmp_path, spill_bytes=600, batch_max_records=1, queue_max_records=5)
    p.start()
    with caplog.at_level(logging.ERROR, logger="skyrelay.logs"):
        for i in range(12):
            p.submit(entry(i))
            await asyncio.sleep(0.03)
    assert p.spill is not None and p.spill.bytes <= 600
    assert p.stats.dropped > 0
    assert p.stats.dropped + p.spill.records + p.queue_depth + 1 == 12  # +1: the batch held in hand
    assert any("dropped" in r.message for r in caplog.records if r.levelno == logging.ERROR)
    memory_sink.down = False
    assert await p.flush(10)
    assert len(memory_sink.records()) == 12 - p.stats.dropped
    await p.aclose()


async def test_flush_respects_its_deadline_while_the_sink_is_down(memory_sink: MemorySink) -> None:
    memory_sink.down = True
    p = pipeline(memory_sink)
    p.start()
    p.submit(entry(1))
    started = asyncio.get_running_loop().time()
    assert not await p.flush(0.3)
    assert asyncio.get_running_loop().time() - started < 1.0
    assert p.pending == 1
    memory_sink.down = False
    assert await p.flush(10)
    await p.aclose()


async def test_flush_without_a_running_writer_drains_inline(memory_sink: MemorySink) -> None:
    p = pipeline(memory_sink, queue_max_records=5)
    for i in range(8):
        p.submit(entry(i))
    assert p.stats.dropped == 3
    assert await p.flush(5)  # serverless: no lifespan, the handler flushes
    assert len(memory_sink.records()) == 5
    assert p.pending == 0


async def test_shutdown_with_the_sink_down_spills_and_the_next_process_replays(
    memory_sink: MemorySink, tmp_path: Path
) -> None:
    memory_sink.down = True
    first = pipeline(memory_sink, tmp_path, run_id="run-a", batch_max_age_s=60)
    first.start()
    for i in range(7):
        first.submit(entry(i))
    await first.aclose(0.3)
    assert first.stats.dropped == 0
    assert sum(1 for _ in (tmp_path / "spill").rglob("*.batch")) >= 1

    memory_sink.down = False
    second = pipeline(memory_sink, tmp_path, run_id="run-b")
    second.start()
    second.submit(entry(100))
    assert await second.flush(5)
    assert trace_ids(memory_sink) == [*(f"t{i}" for i in range(7)), "t100"]
    assert all("-run-a-" in name for name in memory_sink.order[:-1])  # replayed under their original names
    await second.aclose()
    assert not (tmp_path / "spill" / "run-a").exists()


async def test_a_live_process_spill_is_not_adopted(tmp_path: Path) -> None:
    sink_a, sink_b = MemorySink(), MemorySink()
    sink_a.down = True
    a = pipeline(sink_a, tmp_path, run_id="run-a", batch_max_age_s=60)
    a.start()
    a.submit(entry(1))
    assert not await a.flush(0.2)  # the record is now in run-a's spill, and run-a is alive
    b = pipeline(sink_b, tmp_path, run_id="run-b")
    b.start()
    assert await b.flush(1)
    assert sink_b.records() == []
    await b.aclose()
    sink_a.down = False
    await a.aclose(5)
    assert trace_ids(sink_a) == ["t1"]


async def test_a_replayed_batch_that_was_already_stored_is_not_stored_twice(
    memory_sink: MemorySink, tmp_path: Path
) -> None:
    memory_sink.delay_s = 0.3  # every write outlasts its timeout, but lands
    p = pipeline(memory_sink, tmp_path, write_attempts=1, write_timeout_s=0.05, batch_max_age_s=60)
    p.start()
    for i in range(3):
        p.submit(entry(i))
    await asyncio.sleep(0.1)
    assert not await p.flush(0.1)
    memory_sink.delay_s = 0
    assert await p.flush(5)
    assert p.stats.spilled == 3 and p.stats.replayed == 3  # the write timed out, was spilled, then replayed...
    assert trace_ids(memory_sink) == ["t0", "t1", "t2"]  # ...and its object was already there: one copy
    await p.aclose()


class BrokenObserver:
    def observe(self, record: dict, entry: object) -> None:
        raise KeyError("bug")


async def test_a_failing_observer_never_costs_a_record(memory_sink: MemorySink) -> None:
    p = pipeline(memory_sink, observers=[BrokenObserver()])
    for i in range(3):
        p.submit(entry(i))
    assert await p.flush(5)
    assert len(memory_sink.records()) == 3
    assert p.stats.observer_errors == 3


async def test_what_a_full_spill_cannot_take_at_a_flush_deadline_stays_in_memory_for_the_writer(
    memory_sink: MemorySink, tmp_path: Path
) -> None:
    memory_sink.down = True
    p = pipeline(memory_sink, tmp_path, spill_bytes=400, batch_max_records=2, batch_max_age_s=60)
    p.start()
    for i in range(9):
        p.submit(entry(i))
    assert not await p.flush(0.3)  # spill full: some batches could not move to disk
    assert p.pending == 9 and p.stats.dropped == 0
    memory_sink.down = False
    assert await p.flush(10)
    assert sorted(trace_ids(memory_sink), key=lambda t: int(t[1:])) == [f"t{i}" for i in range(9)]
    await p.aclose()
