"""The circuit breaker shared by every replica through Redis, with the local breaker as its fallback.

State per target is one Redis hash (Redis's own clock decides cool-downs, so replicas need no clock agreement);
each decision is one Lua round trip. To keep a healthy gateway's hot path free of Redis calls, a replica that saw
a target closed trusts that for ``sync_interval_s``, and reports successes only for targets it has seen fail (or
that it is probing) — failures always go to Redis. So a circuit opened by one replica is honoured by the others
within ``sync_interval_s``. When Redis is unavailable every decision falls back to the in-process breaker.
"""

from __future__ import annotations

import hashlib
import time

from core.routing.breaker import CLOSED, HALF_OPEN, OPEN, BreakerSettings, MemoryBreaker, is_failure
from core.state.redis import RedisState, RedisUnavailable

_ALLOW_LUA = """
local s = redis.call('HMGET', KEYS[1], 'state', 'opened_at', 'probe_until')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not s[1] or s[1] == 'closed' then return {1, 'closed'} end
if s[1] == 'open' then
  if now - tonumber(s[2]) < tonumber(ARGV[1]) then return {0, 'open'} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', now + tonumber(ARGV[2]))
  return {1, 'half_open'}
end
if tonumber(s[3] or '0') > now then return {0, 'half_open'} end
redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[2]))
return {1, 'half_open'}
"""

# ARGV: failed (0/1), threshold, error rate, min calls, window ms, ttl ms
_RECORD_LUA = """
local s = redis.call('HMGET', KEYS[1], 'state', 'consecutive', 'win_start', 'win_calls', 'win_fail')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local failed = tonumber(ARGV[1]) == 1
local state = s[1] or 'closed'
if state == 'half_open' then
  if failed then
    redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now, 'probe_until', 0)
    redis.call('PEXPIRE', KEYS[1], ARGV[6])
    return 'open'
  end
  redis.call('DEL', KEYS[1])
  return 'closed'
end
if state == 'open' then return 'open' end
if not failed and not s[1] then return 'closed' end
local win_start = tonumber(s[3] or '0')
local calls = tonumber(s[4] or '0')
local fails = tonumber(s[5] or '0')
if now - win_start > tonumber(ARGV[5]) then win_start = now; calls = 0; fails = 0 end
calls = calls + 1
local consecutive = 0
if failed then
  fails = fails + 1
  consecutive = tonumber(s[2] or '0') + 1
end
local new_state = 'closed'
if failed and (consecutive >= tonumber(ARGV[2]) or
    (calls >= tonumber(ARGV[4]) and fails / calls >= tonumber(ARGV[3]))) then
  new_state = 'open'
end
redis.call('HSET', KEYS[1], 'state', new_state, 'consecutive', consecutive, 'win_start', win_start,
           'win_calls', calls, 'win_fail', fails, 'opened_at', now)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return new_state
"""

_PROBE_LEASE_MS = 30_000


class RedisBreaker:
    def __init__(self, redis: RedisState, settings: BreakerSettings, local: MemoryBreaker,
                 sync_interval_s: float = 0.5) -> None:
        self._redis = redis
        self._settings = settings
        self._local = local
        self._sync_interval_s = sync_interval_s
        self._allow = redis.client.register_script(_ALLOW_LUA)
        self._record = redis.client.register_script(_RECORD_LUA)
        self._closed_until: dict[str, float] = {}
        self._seen: dict[str, tuple[str, float]] = {}
        self._watch: set[str] = set()
        self.fallbacks = 0

    @staticmethod
    def _key(key: str) -> str:
        return "{skyrelay:br:" + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest() + "}"

    async def allow(self, key: str) -> bool:
        if not self._settings.enabled:
            return True
        now = time.monotonic()
        if self._closed_until.get(key, 0.0) > now:
            return True
        args = [int(self._settings.cooldown_s * 1000), _PROBE_LEASE_MS]
        try:
            allowed, state = await self._redis.call(
                "breaker allow", lambda c: self._allow(keys=[self._key(key)], args=args, client=c))
        except RedisUnavailable:
            self.fallbacks += 1
            return await self._local.allow(key)
        state = state.decode() if isinstance(state, bytes) else str(state)
        self._seen[key] = (state, now)
        if state == CLOSED:
            self._closed_until[key] = now + self._sync_interval_s
            self._seen.pop(key, None)
        else:
            self._watch.add(key)
        return bool(allowed)

    async def record(self, key: str, status: int) -> None:
        if not self._settings.enabled:
            return
        failed = is_failure(status)
        if not failed and key not in self._watch:
            return
        s = self._settings
        args = [1 if failed else 0, s.failure_threshold, s.error_rate_threshold, s.min_calls,
                int(s.window_s * 1000), int(max(s.window_s, s.cooldown_s) * 2000)]
        try:
            state = await self._redis.call(
                "breaker record", lambda c: self._record(keys=[self._key(key)], args=args, client=c))
        except RedisUnavailable:
            self.fallbacks += 1
            await self._local.record(key, status)
            return
        state = state.decode() if isinstance(state, bytes) else str(state)
        if failed:
            self._watch.add(key)
            self._closed_until.pop(key, None)
        if state == CLOSED and not failed:
            self._watch.discard(key)
            self._seen.pop(key, None)
        elif state in (OPEN, HALF_OPEN):
            self._seen[key] = (state, time.monotonic())
            self._closed_until.pop(key, None)

    def is_open(self, key: str) -> bool:
        seen = self._seen.get(key)
        fresh_open = seen is not None and seen[0] == OPEN and time.monotonic() - seen[1] < self._settings.cooldown_s
        return fresh_open or self._local.is_open(key)

    def snapshot(self) -> dict[str, str]:
        """This replica's view: circuits it saw not closed (through Redis) and its local fallback's."""
        return {**self._local.snapshot(), **{key: state for key, (state, _) in self._seen.items()}}
