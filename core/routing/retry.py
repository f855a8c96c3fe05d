"""Retry policy: which statuses are retried, how long to wait, and the Retry-After budget.

Delays grow exponentially from ``base_s`` (1 s, 2 s, 4 s, ... as Portkey) with *equal jitter*: each delay is drawn
uniformly from [d/2, d], so replicas retrying the same outage spread out instead of stampeding together (Portkey uses
no jitter). When ``use_retry_after_header`` is set, a 429 or 503 carrying ``retry-after-ms``, ``x-ms-retry-after-ms``
or ``retry-after`` (seconds or an HTTP date) waits exactly that long instead — as long as the waits of this request
stay within ``RETRY_AFTER_BUDGET_S``; past it the retries stop (attempt count -1).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from core.config.schema import DEFAULT_RETRY_STATUS_CODES

RETRY_AFTER_BUDGET_S = 60.0
MAX_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 0
    on_status_codes: frozenset[int] = field(default_factory=lambda: frozenset(DEFAULT_RETRY_STATUS_CODES))
    use_retry_after_header: bool = False
    base_s: float = 1.0
    max_delay_s: float = 30.0

    def retries_status(self, status: int) -> bool:
        return status in self.on_status_codes

    def backoff_s(self, retry_index: int, rand: Callable[[], float] = random.random) -> float:
        """Delay before retry number ``retry_index + 1``: exponential, capped, with equal jitter."""
        nominal = min(self.max_delay_s, self.base_s * (2**retry_index))
        return nominal / 2 + (nominal / 2) * rand()


NO_RETRY = RetryPolicy()


def retry_after_s(headers: list[tuple[str, str]], now_epoch: float) -> float | None:
    """The wait a provider asked for, from the first of retry-after-ms, x-ms-retry-after-ms, retry-after."""
    lookup = {k.lower(): v for k, v in headers}
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = lookup.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            if name == "retry-after":
                try:
                    return max(0.0, parsedate_to_datetime(value).timestamp() - now_epoch)
                except (TypeError, ValueError):
                    return None
    return None
