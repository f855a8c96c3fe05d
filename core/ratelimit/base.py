"""Rate-limit vocabulary: limits, decisions, the limiter protocol and the 429 it produces.

Windows are fixed calendar minutes, the same on every replica (they share Redis time through the keys' minute id).
Tokens are *reserved* when a request is admitted — its prompt estimate plus its ``max_tokens`` — and *settled*
from the real usage when the answer is complete, so concurrent requests cannot overshoot a token budget by more
than their own estimates.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

from core.errors import RateLimitedError, SkyrelayError

WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.tpm)


UNLIMITED = Limits()


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    requests: int
    tokens: int
    reset_s: float

    def headers(self, limits: Limits) -> dict[str, str]:
        headers = {"retry-after": str(max(1, math.ceil(self.reset_s)))}
        if limits.rpm:
            headers["x-ratelimit-limit-requests"] = str(limits.rpm)
            headers["x-ratelimit-remaining-requests"] = str(max(0, limits.rpm - self.requests))
            headers["x-ratelimit-reset-requests"] = f"{self.reset_s:.0f}s"
        if limits.tpm:
            headers["x-ratelimit-limit-tokens"] = str(limits.tpm)
            headers["x-ratelimit-remaining-tokens"] = str(max(0, limits.tpm - self.tokens))
            headers["x-ratelimit-reset-tokens"] = f"{self.reset_s:.0f}s"
        return headers


@dataclass(slots=True)
class Reservation:
    """What an admitted request holds; settled with the real token count at the end."""

    scope: str
    limits: Limits
    window: int
    tokens: int


class RateLimiterUnavailable(SkyrelayError):
    status = 503
    error_type = "api_error"
    default_code = "rate_limiter_unavailable"
    retryable = True


class RateLimiter(Protocol):
    async def acquire(self, scope: str, limits: Limits, tokens: int) -> tuple[Decision, Reservation | None]: ...

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None: ...


def current_window(now: float | None = None) -> tuple[int, float]:
    """The minute id and the seconds left in it."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_S)
    return window, (window + 1) * WINDOW_S - now


def limited_error(scope_label: str, decision: Decision, limits: Limits) -> RateLimitedError:
    what = "requests" if limits.rpm and decision.requests >= limits.rpm else "tokens"
    return RateLimitedError(f"Rate limit exceeded for {scope_label}: too many {what} this minute; retry in "
                            f"{max(1, math.ceil(decision.reset_s))}s", headers=decision.headers(limits))
