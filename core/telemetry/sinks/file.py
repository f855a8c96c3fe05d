"""The embedded default sink: JSON Lines files under a local folder, partitioned by date and hour.

Layout: ``<dir>/dt=YYYY-MM-DD/hour=HH/<replica>.jsonl`` — the same partition scheme the bucket sinks use, so a
folder of local logs can be queried the same way. Writes run in a worker thread; each batch is one ``write`` plus
``flush`` so a crash loses at most the batch being written.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path


class FileLogSink:
    def __init__(self, directory: Path, *, replica: str) -> None:
        self._dir = directory
        self._replica = replica.replace("/", "_")

    def describe(self) -> str:
        return f"file://{self._dir}"

    def _path(self) -> Path:
        now = datetime.now(UTC)
        return self._dir / f"dt={now:%Y-%m-%d}" / f"hour={now:%H}" / f"{self._replica}.jsonl"

    def _write(self, payload: bytes) -> None:
        path = self._path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as handle:
            handle.write(payload)
            handle.flush()

    async def write_batch(self, records: list[bytes]) -> None:
        if records:
            await asyncio.to_thread(self._write, b"\n".join(records) + b"\n")

    async def check(self) -> None:
        def probe() -> None:
            self._dir.mkdir(parents=True, exist_ok=True)
            if not os.access(self._dir, os.W_OK):
                raise PermissionError(f"{self._dir} is not writable")

        await asyncio.to_thread(probe)

    async def aclose(self) -> None:
        return None
