"""What the bucket sinks (S3, GCS, Azure Blob) share: gzip'd JSON Lines objects, written from a thread of their own.

Cloud SDKs block, so each bucket sink runs its calls on a small executor it owns: a hung upload can then never
starve the event loop's default executor, which credential refreshes and file writes also use. The SDK client is
created lazily in that thread on first use (cold start stays cheap) and kept for the life of the process; the SDKs
cache and refresh their own credentials (botocore's refreshable credentials, google-auth, azure-identity).
"""

from __future__ import annotations

import asyncio
import gzip
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from core.telemetry.sinks.base import Batch, SinkUnavailableError

T = TypeVar("T")

#: Content type of every object: a gzip file (no Content-Encoding, so no store transcodes it on download).
CONTENT_TYPE = "application/gzip"

#: Seconds an SDK call may take before the sink gives up on it (the pipeline then retries or spills).
CALL_TIMEOUT_S = 20.0


def gzip_jsonl(batch: Batch) -> bytes:
    """The object body. ``mtime=0`` makes it a function of the records only: a re-upload is byte-identical."""
    return gzip.compress(batch.jsonl(), compresslevel=6, mtime=0)


class ObjectStoreSink(ABC):
    """A bucket sink: ``prefix/dt=YYYY-MM-DD/hour=HH/<replica>-<run>-<seq>.jsonl.gz``, created only if absent."""

    scheme: str = ""

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._executor: ThreadPoolExecutor | None = None

    def describe(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}" if self.prefix else f"{self.scheme}://{self.bucket}"

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"skyrelay-{self.scheme}-sink")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def write_batch(self, batch: Batch) -> None:
        if not batch.lines:
            return
        key = batch.key(self.prefix)
        await self._call(lambda: self._put_if_absent(key, gzip_jsonl(batch)))

    async def check(self) -> None:
        await self._call(self._probe)

    async def aclose(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @abstractmethod
    def _put_if_absent(self, key: str, body: bytes) -> None:
        """Create the object; an existing object under ``key`` is this batch from an earlier attempt: success."""

    @abstractmethod
    def _probe(self) -> None:
        """Cheap reachability check for readiness; raises :class:`SinkUnavailableError`."""


def unavailable(sink: ObjectStoreSink, what: str, exc: BaseException) -> SinkUnavailableError:
    """The error the pipeline sees: the destination and the SDK's error class, never a message that may echo a URL
    with a signature or a connection string."""
    return SinkUnavailableError(f"{sink.describe()}: {what} failed ({type(exc).__name__})")
