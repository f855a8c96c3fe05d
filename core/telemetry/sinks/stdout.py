"""Records as JSON Lines on standard output, for platforms that ship stdout to their own log store."""

from __future__ import annotations

import sys


class StdoutLogSink:
    def describe(self) -> str:
        return "stdout://"

    async def write_batch(self, records: list[bytes]) -> None:
        if records:
            sys.stdout.buffer.write(b"\n".join(records) + b"\n")
            sys.stdout.buffer.flush()

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
