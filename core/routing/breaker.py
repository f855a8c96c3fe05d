"""Circuit breaker per target: stop sending to a target that keeps failing, probe it again after a cool-down.

closed ──(N consecutive failures, or error rate ≥ R over the window with ≥ M calls)──▶ open
open ──(cool-down elapsed: one probe allowed)──▶ half-open ──(probe ok)──▶ closed
                                                            └─(probe fails)──▶ open

Failures are answers that say the target is unhealthy: 5xx, 429, per-attempt timeouts and connection errors. Other
4xx answers mean the target works (the request was wrong), so they count as successes. A healthy target keeps no
state at all: its calls are counted from its first failure on, so the hot path of a healthy gateway pays nothing.
State lives behind the :class:`Breaker` protocol: this module keeps it in memory for one process;
:mod:`core.routing.redis_breaker` shares it across replicas.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from core.routing.clock import Clock

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def is_failure(status: int) -> bool:
    return status >= 500 or status in (408, 429)


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    enabled: bool = True
    failure_threshold: int = 5
    error_rate_threshold: float = 0.5
    min_calls: int = 20
    window_s: float = 60.0
    cooldown_s: float = 30.0


class Breaker(Protocol):
    async def allow(self, key: str) -> bool:
        """May a call go to this target now? (In half-open state, only one probe at a time.)"""
        ...

    async def record(self, key: str, status: int) -> None: ...

    def is_open(self, key: str) -> bool:
        """Best-effort, without side effects: is the target cooling down (load balancing skips it)?"""
        ...

    def snapshot(self) -> dict[str, str]:
        """State of every target that is not closed, for /v1/ready and metrics."""
        ...


@dataclass(slots=True)
class _State:
    state: str = CLOSED
    consecutive: int = 0
    opened_at: float = 0.0
    probing: bool = False
    calls: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=4096))


class MemoryBreaker:
    def __init__(self, settings: BreakerSettings, clock: Clock, max_targets: int = 10_000) -> None:
        self._settings = settings
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._max_targets = max_targets

    def _get(self, key: str) -> _State:
        state = self._states.get(key)
        if state is None:
            if len(self._states) >= self._max_targets:
                self._evict_closed()
            state = self._states[key] = _State()
        return state

    def _evict_closed(self) -> None:
        for key in [k for k, s in self._states.items() if s.state == CLOSED][: self._max_targets // 10 or 1]:
            del self._states[key]

    async def allow(self, key: str) -> bool:
        if not self._settings.enabled:
            return True
        state = self._states.get(key)
        if state is None or state.state == CLOSED:
            return True
        now = self._clock.now()
        if state.state == OPEN and now - state.opened_at >= self._settings.cooldown_s:
            state.state = HALF_OPEN
            state.probing = False
        if state.state == HALF_OPEN and not state.probing:
            state.probing = True
            return True
        return False

    async def record(self, key: str, status: int) -> None:
        if not self._settings.enabled:
            return
        failed = is_failure(status)
        state = self._states.get(key)
        if state is None:
            if not failed:
                return  # healthy targets cost nothing until they fail
            state = self._get(key)
        now = self._clock.now()
        if state.state == HALF_OPEN:
            state.probing = False
            if failed:
                self._open(state, now)
            else:
                self._close(state)
            return
        state.calls.append((now, failed))
        horizon = now - self._settings.window_s
        while state.calls and state.calls[0][0] < horizon:
            state.calls.popleft()
        state.consecutive = state.consecutive + 1 if failed else 0
        if state.state == CLOSED and failed and self._should_open(state):
            self._open(state, now)

    def _should_open(self, state: _State) -> bool:
        if state.consecutive >= self._settings.failure_threshold:
            return True
        calls = len(state.calls)
        if calls < self._settings.min_calls:
            return False
        failures = sum(1 for _, failed in state.calls if failed)
        return failures / calls >= self._settings.error_rate_threshold

    def _open(self, state: _State, now: float) -> None:
        state.state, state.opened_at, state.probing = OPEN, now, False

    @staticmethod
    def _close(state: _State) -> None:
        state.state, state.consecutive, state.probing = CLOSED, 0, False
        state.calls.clear()

    def is_open(self, key: str) -> bool:
        state = self._states.get(key)
        return (state is not None and state.state == OPEN
                and self._clock.now() - state.opened_at < self._settings.cooldown_s)

    def snapshot(self) -> dict[str, str]:
        return {key: s.state for key, s in self._states.items() if s.state != CLOSED}
