"""The LogSink protocol: where batches of serialised records end up."""

from __future__ import annotations

from typing import Protocol


class LogSink(Protocol):
    """Receives batches of JSON-serialised records (one ``bytes`` per record, no trailing newline).

    ``write_batch`` either stores the whole batch or raises; the pipeline retries a failed batch. ``describe``
    names the destination for start-up messages and /v1/ready (never with credentials).
    """

    async def write_batch(self, records: list[bytes]) -> None: ...

    async def check(self) -> None:
        """Raise if the destination cannot currently be written (readiness)."""
        ...

    def describe(self) -> str: ...

    async def aclose(self) -> None: ...
