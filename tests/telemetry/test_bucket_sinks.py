"""The S3, GCS and Azure Blob sinks against real emulators: every record arrives byte-identical, objects are never
overwritten, and a bucket that goes down for part of the run still ends up with every record exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from core.telemetry.pipeline import LogPipeline
from core.telemetry.sinks import open_sink
from core.telemetry.sinks.base import Batch, LogSink
from core.telemetry.spill import DiskSpill
from tests.support.emulators import MotoS3, ToggleProxy
from tests.telemetry.conftest import Bucket, entry

pytestmark = pytest.mark.slow


class Recording:
    """Wraps a sink and keeps every batch it stored, to compare with what the bucket holds."""

    def __init__(self, inner: LogSink) -> None:
        self.inner = inner
        self.stored: list[Batch] = []

    async def write_batch(self, batch: Batch) -> None:
        await self.inner.write_batch(batch)
        self.stored.append(batch)

    async def check(self) -> None:
        await self.inner.check()

    def describe(self) -> str:
        return self.inner.describe()

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def prefix() -> str:
    return f"logs/{uuid.uuid4().hex[:8]}"


def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


async def test_n_records_arrive_identical_after_decompression(bucket: Bucket, prefix: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    use_env(monkeypatch, bucket.env(None))
    sink = Recording(open_sink(bucket.sink_url(prefix), replica="pod/a b"))
    pipeline = LogPipeline(sink, replica="pod/a b", batch_max_records=7, batch_max_age_s=60)
    for i in range(30):
        pipeline.submit(entry(i, provider="openai", model="gpt-4o-mini", request_body={"n": i}))
    assert await pipeline.flush(30)
    await pipeline.aclose()

    stored = await asyncio.to_thread(bucket.objects, prefix)
    expected = {batch.key(prefix): batch.jsonl() for batch in sink.stored}
    assert stored == expected  # same names, byte-identical JSON Lines after gunzip
    records = [orjson.loads(line) for name in sorted(stored) for line in stored[name].splitlines()]
    assert sorted(r["trace_id"] for r in records) == sorted(f"t{i}" for i in range(30))
    for name in stored:
        _, _, dt, hour, leaf = name.split("/")
        assert dt.startswith("dt=") and hour.startswith("hour=") and leaf.startswith("pod_a_b-")
        assert leaf.endswith(".jsonl.gz")


async def test_an_existing_object_is_never_overwritten(bucket: Bucket, prefix: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    use_env(monkeypatch, bucket.env(None))
    sink = open_sink(bucket.sink_url(prefix), replica="r1")
    first = Batch(replica="r1", run_id="run1", seq=1, first_ts=1_790_000_000.0, lines=(b'{"id":"a"}',))
    await sink.write_batch(first)
    await sink.write_batch(first)  # a retry of a write that had landed: success, one object
    await sink.aclose()
    stored = await asyncio.to_thread(bucket.objects, prefix)
    assert stored == {f"{prefix}/dt=2026-09-21/hour=14/r1-run1-00000001.jsonl.gz": b'{"id":"a"}\n'}


@pytest.fixture
def proxy(bucket: Bucket) -> Iterator[ToggleProxy]:
    toggle = ToggleProxy(bucket.port).start()
    yield toggle
    toggle.stop()


async def test_a_bucket_down_for_part_of_the_run_still_gets_every_record_once(
    bucket: Bucket, prefix: str, proxy: ToggleProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_env(monkeypatch, bucket.env(proxy.url))
    sink = open_sink(bucket.sink_url(prefix), replica="r1")
    spill = DiskSpill(tmp_path, run_id="run1", max_bytes=50_000_000)
    pipeline = LogPipeline(sink, replica="r1", spill=spill, batch_max_records=5, batch_max_age_s=0.02,
                           write_attempts=2, write_timeout_s=5, replay_interval_s=0.2)
    pipeline.start()
    for i in range(10):
        pipeline.submit(entry(i))
    assert await pipeline.flush(20)

    proxy.down()
    for i in range(10, 30):
        pipeline.submit(entry(i))
        await asyncio.sleep(0.01)
    for _ in range(200):
        if spill.records >= 20:
            break
        await asyncio.sleep(0.05)
    assert spill.records == 20 and pipeline.stats.failed_writes > 0  # on local disk, not in memory

    proxy.up()
    for i in range(30, 40):
        pipeline.submit(entry(i))
    assert await pipeline.flush(30)
    await pipeline.aclose()

    stored = await asyncio.to_thread(bucket.objects, prefix)
    records = [orjson.loads(line) for data in stored.values() for line in data.splitlines()]
    assert sorted(r["trace_id"] for r in records) == sorted(f"t{i}" for i in range(40))
    assert len({r["id"] for r in records}) == 40
    assert pipeline.stats.replayed == pipeline.stats.spilled >= 20 and pipeline.stats.dropped == 0


async def test_s3_objects_are_encrypted_with_the_configured_kms_key(moto_s3: MotoS3, prefix: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    use_env(monkeypatch, moto_s3.env())
    sink = open_sink(f"s3://{moto_s3.bucket}/{prefix}", replica="r1", s3_kms_key_id=moto_s3.kms_key_id)
    await sink.write_batch(Batch(replica="r1", run_id="run1", seq=1, first_ts=1_790_000_000.0, lines=(b"{}",)))
    (key,) = await asyncio.to_thread(moto_s3.raw_objects, prefix)
    head = await asyncio.to_thread(moto_s3.head, key)
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"].endswith(moto_s3.kms_key_id)
    assert head["ContentType"] == "application/gzip"
