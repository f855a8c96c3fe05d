"""Records as JSON Lines on standard output, for platforms that ship stdout to their own log store."""

from __future__ import annotations

import sys

from core.telemetry.sinks.base import Batch


class StdoutLogSink:
    def describe(self) -> str:
        return "stdout://"

    async def write_batch(self, batch: Batch) -> None:
        if batch.lines:
            sys.stdout.buffer.write(batch.jsonl())
            sys.stdout.buffer.flush()

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
