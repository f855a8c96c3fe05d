"""The embedded default sink: JSON Lines files under a local folder, partitioned by date and hour.

Layout: ``<dir>/dt=YYYY-MM-DD/hour=HH/<replica>.jsonl`` — the partition scheme the bucket sinks use, so a folder of
local logs can be queried the same way. Plain (not gzip'd) so ``tail -f`` works. Writes run in a worker thread; each
batch is one ``write`` plus ``flush``, so a crash loses at most the batch being written. Appends cannot detect an
earlier partial attempt, so a batch retried after a failed write may appear twice: dedupe on the record ``id``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from core.telemetry.sinks.base import Batch, safe_name


class FileLogSink:
    def __init__(self, directory: Path, *, replica: str) -> None:
        self._dir = directory
        self._replica = safe_name(replica)

    def describe(self) -> str:
        return f"file://{self._dir}"

    def _write(self, batch: Batch) -> None:
        path = self._dir / batch.partition / f"{self._replica}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as handle:
            handle.write(batch.jsonl())
            handle.flush()

    async def write_batch(self, batch: Batch) -> None:
        if batch.lines:
            await asyncio.to_thread(self._write, batch)

    async def check(self) -> None:
        def probe() -> None:
            self._dir.mkdir(parents=True, exist_ok=True)
            if not os.access(self._dir, os.W_OK):
                raise PermissionError(f"{self._dir} is not writable")

        await asyncio.to_thread(probe)

    async def aclose(self) -> None:
        return None
