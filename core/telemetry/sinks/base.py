"""The LogSink protocol, and the batch it receives.

A :class:`Batch` carries its own identity (replica, run id, sequence number, time of its oldest record), so every
sink derives the same object name from it on every attempt. Bucket sinks create that object only if it does not
exist yet: a retry after an answer that was lost, or the replay of a spilled batch that had in fact been stored,
finds its own object and counts as written — never a second copy, never an overwrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")


def safe_name(text: str) -> str:
    """A replica id made safe for object names and file names (``/`` and spaces become ``_``)."""
    return _UNSAFE.sub("_", text) or "replica"


@dataclass(frozen=True, slots=True)
class Batch:
    """Serialised records (one JSON document each, no newline) written together as one object."""

    replica: str
    run_id: str
    seq: int
    first_ts: float
    lines: tuple[bytes, ...]

    @property
    def partition(self) -> str:
        """``dt=YYYY-MM-DD/hour=HH`` of the oldest record: Hive-style, so Athena, BigQuery and Synapse prune by it."""
        when = datetime.fromtimestamp(self.first_ts, UTC)
        return f"dt={when:%Y-%m-%d}/hour={when:%H}"

    @property
    def object_name(self) -> str:
        """``<replica>-<run id>-<seq>.jsonl.gz``: unique per process start, so names never collide or repeat."""
        return f"{safe_name(self.replica)}-{self.run_id}-{self.seq:08d}.jsonl.gz"

    def key(self, prefix: str) -> str:
        head = prefix.strip("/")
        return f"{head}/{self.partition}/{self.object_name}" if head else f"{self.partition}/{self.object_name}"

    def jsonl(self) -> bytes:
        return b"\n".join(self.lines) + b"\n" if self.lines else b""


class LogSink(Protocol):
    """Where batches end up.

    ``write_batch`` either stores the whole batch or raises; the pipeline retries a failed batch, then spills it
    to local disk and replays it later. A sink must treat "this batch's object already exists" as success.
    ``describe`` names the destination for start-up messages and /v1/ready — never with credentials.
    """

    async def write_batch(self, batch: Batch) -> None: ...

    async def check(self) -> None:
        """Raise if the destination cannot currently be written (readiness)."""
        ...

    def describe(self) -> str: ...

    async def aclose(self) -> None: ...


class SinkUnavailableError(OSError):
    """A sink could not store a batch this time (the pipeline retries, then spills). Never carries credentials."""
