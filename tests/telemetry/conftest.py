"""Fixtures for the telemetry tests: in-memory sinks and real storage emulators (one of each per session)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from core.telemetry.records import RequestLog
from core.telemetry.sinks.base import Batch, SinkUnavailableError
from tests.support.emulators import Azurite, GcsEmulator, MotoS3


class MemorySink:
    """Stores batches like a bucket (one object per batch name, created only if absent); can be taken down."""

    def __init__(self) -> None:
        self.objects: dict[str, Batch] = {}
        self.order: list[str] = []
        self.down = False
        self.failures_left = 0
        self.attempts = 0
        self.delay_s = 0.0

    async def write_batch(self, batch: Batch) -> None:
        self.attempts += 1
        if self.down or self.failures_left:
            self.failures_left = max(0, self.failures_left - 1)
            raise SinkUnavailableError("memory://: down")
        if self.delay_s:  # like an SDK call in a thread: it lands even if the caller stops waiting
            asyncio.get_running_loop().call_later(self.delay_s, self._store, batch)
            await asyncio.sleep(self.delay_s + 0.01)
        else:
            self._store(batch)

    def _store(self, batch: Batch) -> None:
        name = batch.key("logs")
        if name not in self.objects:
            self.objects[name] = batch
            self.order.append(name)

    async def check(self) -> None:
        return None

    def describe(self) -> str:
        return "memory://logs"

    async def aclose(self) -> None:
        return None

    def records(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for name in self.order for line in self.objects[name].lines]


def entry(i: int, **fields: Any) -> RequestLog:
    log = RequestLog(method="POST", route="/v1/chat/completions", trace_id=f"t{i}", request_headers={})
    for key, value in fields.items():
        setattr(log, key, value)
    log.finish(fields.get("status", 200), fields.get("outcome", "ok"))
    return log


@pytest.fixture
def memory_sink() -> MemorySink:
    return MemorySink()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulator]:
    server = GcsEmulator().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    server = Azurite().start()
    yield server
    server.stop()


@dataclass
class Bucket:
    """One emulator, seen the way a test needs it."""

    name: str
    sink_url: Callable[[str], str]
    env: Callable[[str | None], dict[str, str]]
    objects: Callable[[str], dict[str, bytes]]
    port: int
    emulator: Any


@pytest.fixture(params=["s3", "gcs", "azure"])
def bucket(request: pytest.FixtureRequest) -> Bucket:
    if request.param == "s3":
        s3: MotoS3 = request.getfixturevalue("moto_s3")
        return Bucket("s3", lambda p: f"s3://{s3.bucket}/{p}", s3.env, s3.objects, s3.port, s3)
    if request.param == "gcs":
        gcs: GcsEmulator = request.getfixturevalue("gcs_emulator")
        return Bucket("gcs", lambda p: f"gs://{gcs.bucket}/{p}", gcs.env, gcs.objects, gcs.port, gcs)
    blob: Azurite = request.getfixturevalue("azurite")
    return Bucket("azure", lambda p: f"{blob.sink_url}/{p}", blob.env, blob.objects, blob.port, blob)
