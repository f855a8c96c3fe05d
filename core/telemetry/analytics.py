"""Optional analytics: a summary of every request, POSTed in batches to a control-plane URL.

The seed's "Send Analytics" flow: token counts, latency, cost, status and routing facts per request — never bodies,
headers or credentials — buffered in memory and sent as ``{"replica", "sent_at", "events": [...]}`` with
``Authorization: Bearer <SKYRELAY_ANALYTICS_TOKEN>`` every ``SKYRELAY_ANALYTICS_INTERVAL_S`` or when a batch is
full. The full record always goes to the log sink; analytics is a convenience view, so its buffer is bounded and a
control plane that stays down loses the oldest summaries (counted in :attr:`AnalyticsForwarder.dropped` and logged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import httpx

    from core.telemetry.records import RequestLog

logger = logging.getLogger("skyrelay.logs")

SUMMARY_FIELDS = ("id", "trace_id", "timestamp", "latency_ms", "ttfb_ms", "status", "outcome", "operation",
                  "provider", "model", "target_path", "virtual_key", "gateway_key_id", "config_id", "cache_status",
                  "stream", "attempts", "retry_attempts", "fallbacks", "cost", "cost_status", "metadata")


def summarise(record: dict[str, Any]) -> dict[str, Any]:
    event = {name: record.get(name) for name in SUMMARY_FIELDS}
    raw_usage = record.get("usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    event["prompt_tokens"] = usage.get("prompt_tokens")
    event["completion_tokens"] = usage.get("completion_tokens")
    event["total_tokens"] = usage.get("total_tokens")
    error = record.get("error")
    event["error_type"] = error.get("type") if isinstance(error, dict) else None
    return event


class AnalyticsForwarder:
    def __init__(self, url: str, *, replica: str, token: str | None = None, batch_max_records: int = 500,
                 interval_s: float = 10.0, buffer_max_records: int = 20_000, timeout_s: float = 10.0) -> None:
        self.url = url
        self.sent = 0
        self.dropped = 0
        self.failed_posts = 0
        self._replica = replica
        self._token = token
        self._batch_max = batch_max_records
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._buffer: deque[dict[str, Any]] = deque(maxlen=buffer_max_records)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._last_drop_log = 0.0
        self._posting = asyncio.Lock()  # one batch in flight at a time: keeps order when a failed one goes back

    def describe(self) -> str:
        return self.url.split("?", 1)[0]

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def observe(self, record: dict[str, Any], entry: RequestLog) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1  # the deque drops the oldest summary on append
            now = time.monotonic()
            if now - self._last_drop_log > 10:
                self._last_drop_log = now
                logger.error("analytics buffer full: %s is not taking batches; %d summaries dropped so far",
                             self.describe(), self.dropped)
        self._buffer.append(summarise(record))
        if len(self._buffer) >= self._batch_max:
            self._wakeup.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="skyrelay-analytics")

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._interval_s)
            except TimeoutError:
                pass
            while self._buffer:
                if not await self._post_batch():
                    break

    async def _post_batch(self) -> bool:
        """POST the oldest batch; True when the control plane took it (2xx)."""
        async with self._posting:
            return await self._post_locked() if self._buffer else True

    async def _post_locked(self) -> bool:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout_s)
        events = [self._buffer.popleft() for _ in range(min(self._batch_max, len(self._buffer)))]
        headers = {"content-type": "application/json"}
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        body = orjson.dumps({"replica": self._replica, "sent_at": time.time(), "events": events}, default=str)
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except (httpx.HTTPError, asyncio.CancelledError) as exc:
            self._put_back(events)
            if isinstance(exc, asyncio.CancelledError):
                raise
            self.failed_posts += 1
            logger.warning("analytics POST to %s failed: %s", self.describe(), type(exc).__name__)
            return False
        if response.status_code >= 300:
            self._put_back(events)
            self.failed_posts += 1
            logger.warning("analytics POST to %s answered %d", self.describe(), response.status_code)
            return False
        self.sent += len(events)
        return True

    def _put_back(self, events: list[dict[str, Any]]) -> None:
        """Return a batch that was not taken to the front; if newer summaries filled the room, its oldest go."""
        room = (self._buffer.maxlen or 0) - len(self._buffer)
        keep = events[len(events) - room:] if room < len(events) else events
        self.dropped += len(events) - len(keep)
        self._buffer.extendleft(reversed(keep))

    async def flush(self, deadline_s: float) -> bool:
        end = time.monotonic() + deadline_s
        while self._buffer and time.monotonic() < end:
            try:
                ok = await asyncio.wait_for(self._post_batch(), timeout=max(0.01, end - time.monotonic()))
            except TimeoutError:
                break
            if not ok:
                break
        return not self._buffer

    async def aclose(self, deadline_s: float = 5.0) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if not await self.flush(deadline_s) and self._buffer:
            logger.error("%d analytics summaries could not be sent to %s before shutdown", len(self._buffer),
                         self.describe())
        if self._client is not None:
            await self._client.aclose()
            self._client = None
