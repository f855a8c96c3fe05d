"""What the gateway needs from its request-log writer, in-process (:class:`~core.telemetry.pipeline.LogPipeline`)
or in a separate process (:class:`~core.telemetry.process_pipeline.ProcessLogPipeline`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from core.telemetry.records import RequestLog


@dataclass(slots=True)
class PipelineStats:
    submitted: int = 0
    written: int = 0
    dropped: int = 0
    failed_writes: int = 0
    spilled: int = 0
    replayed: int = 0
    serialisation_errors: int = 0
    observer_errors: int = 0
    build_cpu_s: float = 0.0  # CPU time the writer spent building records: what logging costs the event loop


class LogWriter(Protocol):
    last_error: str | None

    @property
    def stats(self) -> PipelineStats: ...

    @property
    def queue_depth(self) -> int: ...

    @property
    def queue_capacity(self) -> int: ...

    @property
    def pending(self) -> int:
        """Records submitted but not yet in the sink (in memory or in the disk spill)."""
        ...

    @property
    def spill_records(self) -> int: ...

    @property
    def spill_bytes(self) -> int: ...

    def submit(self, entry: RequestLog) -> None:
        """The hot path: never blocks, never awaits."""
        ...

    def start(self) -> None: ...

    async def flush(self, deadline_s: float) -> bool: ...

    async def aclose(self, deadline_s: float = 10.0) -> None: ...

    def describe_sink(self) -> str: ...

    async def check_sink(self) -> None: ...

    async def metrics_text(self) -> bytes: ...
