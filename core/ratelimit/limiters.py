"""Rate limiters: in memory for one process, and in Redis — one atomic Lua round trip per decision.

When Redis fails, the Redis limiter either lets requests through (``fail_open``, the default: an outage of the
cache tier must not become an outage of the gateway) or refuses them with a 503; each degraded decision is counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.ratelimit.base import Decision, Limits, RateLimiterUnavailable, Reservation, current_window
from core.state.redis import RedisState, RedisUnavailable

logger = logging.getLogger("skyrelay.ratelimit")

# KEYS: requests counter, tokens counter (same hash tag). ARGV: rpm, tpm, tokens, ttl.
# A request asking for more tokens than the whole budget still passes into an empty window, so it is not refused
# forever; otherwise both limits must hold, and both counters move together.
_ACQUIRE_LUA = """
local r = tonumber(redis.call('GET', KEYS[1]) or '0')
local t = tonumber(redis.call('GET', KEYS[2]) or '0')
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local need = tonumber(ARGV[3])
if (rpm > 0 and r + 1 > rpm) or (tpm > 0 and t > 0 and t + need > tpm) then
  return {0, r, t}
end
r = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
t = redis.call('INCRBY', KEYS[2], need)
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {1, r, t}
"""


@dataclass(slots=True)
class LimiterStats:
    allowed: int = 0
    limited: int = 0
    degraded: int = 0


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._counters: dict[tuple[str, int], list[int]] = {}
        self.stats = LimiterStats()

    async def acquire(self, scope: str, limits: Limits, tokens: int) -> tuple[Decision, Reservation | None]:
        window, reset = current_window()
        if len(self._counters) > 10_000:
            self._counters = {k: v for k, v in self._counters.items() if k[1] >= window}
        counter = self._counters.setdefault((scope, window), [0, 0])
        requests, used = counter
        if (limits.rpm and requests + 1 > limits.rpm) or (limits.tpm and used and used + tokens > limits.tpm):
            self.stats.limited += 1
            return Decision(False, requests, used, reset), None
        counter[0] += 1
        counter[1] += tokens
        self.stats.allowed += 1
        return Decision(True, counter[0], counter[1], reset), Reservation(scope, limits, window, tokens)

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        counter = self._counters.get((reservation.scope, reservation.window))
        if counter is not None:
            counter[1] = max(0, counter[1] + actual_tokens - reservation.tokens)


class RedisRateLimiter:
    def __init__(self, redis: RedisState, *, fail_open: bool = True) -> None:
        self._redis = redis
        self._fail_open = fail_open
        self._script = redis.client.register_script(_ACQUIRE_LUA)
        self.stats = LimiterStats()

    @staticmethod
    def _keys(scope: str, window: int) -> list[str]:
        tag = f"{{skyrelay:rl:{scope}:{window}}}"
        return [f"{tag}:r", f"{tag}:t"]

    async def acquire(self, scope: str, limits: Limits, tokens: int) -> tuple[Decision, Reservation | None]:
        window, reset = current_window()
        args = [limits.rpm or 0, limits.tpm or 0, tokens, 120]
        keys = self._keys(scope, window)
        try:
            allowed, requests, used = await self._redis.call(
                "rate limit", lambda c: self._script(keys=keys, args=args, client=c))
        except RedisUnavailable:
            self.stats.degraded += 1
            if not self._fail_open:
                raise RateLimiterUnavailable(
                    "Rate limiting is unavailable (Redis is down) and set to fail closed") from None
            return Decision(True, 0, 0, reset), None
        if not allowed:
            self.stats.limited += 1
            return Decision(False, int(requests), int(used), reset), None
        self.stats.allowed += 1
        return Decision(True, int(requests), int(used), reset), Reservation(scope, limits, window, tokens)

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        delta = actual_tokens - reservation.tokens
        if not delta or not reservation.limits.tpm:
            return
        key = self._keys(reservation.scope, reservation.window)[1]
        try:
            await self._redis.call("rate limit settle", lambda c: c.incrby(key, delta))
        except RedisUnavailable:
            self.stats.degraded += 1
