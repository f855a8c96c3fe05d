"""The log pipeline: batching, retries while the sink fails, flush with a deadline, and the loss policy."""

from __future__ import annotations

import asyncio

import orjson

from core.telemetry.pipeline import LogPipeline
from core.telemetry.records import RequestLog


class MemorySink:
    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.failures_left = 0

    async def write_batch(self, records: list[bytes]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise OSError("sink down")
        self.batches.append(records)

    async def check(self) -> None:
        return None

    def describe(self) -> str:
        return "memory://"

    async def aclose(self) -> None:
        return None

    def records(self) -> list[dict]:
        return [orjson.loads(line) for batch in self.batches for line in batch]


def entry(i: int) -> RequestLog:
    log = RequestLog(method="POST", route="/v1/chat/completions", trace_id=f"t{i}", request_headers={})
    log.finish(200)
    return log


async def test_batches_by_count_and_flushes_everything() -> None:
    sink = MemorySink()
    pipeline = LogPipeline(sink, replica="r", batch_max_records=10, batch_max_age_s=60)
    pipeline.start()
    for i in range(25):
        pipeline.submit(entry(i))
    assert await pipeline.flush(5)
    assert [len(b) for b in sink.batches] == [10, 10, 5]
    assert [r["trace_id"] for r in sink.records()] == [f"t{i}" for i in range(25)]
    await pipeline.aclose()


async def test_age_triggers_a_write_without_a_full_batch() -> None:
    sink = MemorySink()
    pipeline = LogPipeline(sink, replica="r", batch_max_records=100, batch_max_age_s=0.05)
    pipeline.start()
    pipeline.submit(entry(1))
    await asyncio.sleep(0.3)
    assert len(sink.records()) == 1
    await pipeline.aclose()


async def test_failing_sink_is_retried_in_order_until_it_recovers() -> None:
    sink = MemorySink()
    sink.failures_left = 3
    pipeline = LogPipeline(sink, replica="r", batch_max_records=4, batch_max_age_s=0.01)
    pipeline.start()
    for i in range(10):
        pipeline.submit(entry(i))
    assert await pipeline.flush(10)
    assert [r["trace_id"] for r in sink.records()] == [f"t{i}" for i in range(10)]
    assert pipeline.stats.failed_writes == 3
    assert pipeline.stats.dropped == 0
    await pipeline.aclose()


async def test_flush_respects_its_deadline_while_the_sink_is_down() -> None:
    sink = MemorySink()
    sink.failures_left = 1000
    pipeline = LogPipeline(sink, replica="r", batch_max_age_s=0.01)
    pipeline.start()
    pipeline.submit(entry(1))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert not await pipeline.flush(0.3)
    assert loop.time() - started < 1.0
    assert pipeline.pending == 1
    sink.failures_left = 0
    assert await pipeline.flush(10)
    await pipeline.aclose()


async def test_a_full_queue_counts_every_dropped_record() -> None:
    sink = MemorySink()
    pipeline = LogPipeline(sink, replica="r", queue_max_records=5)
    for i in range(8):
        pipeline.submit(entry(i))
    assert pipeline.stats.dropped == 3
    assert await pipeline.flush(5)  # no writer task: flushes inline
    assert len(sink.records()) == 5
