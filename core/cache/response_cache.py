"""The response cache as routing sees it: look up before a target's first attempt, store after a 2xx answer.

Portkey's ``cache: {mode: "simple", max_age}`` (seconds; the setting's default TTL otherwise) switches it on for a
target and everything under it. ``x-portkey-cache-force-refresh: true`` skips the lookup and stores the fresh answer
(status REFRESH). Errors are never stored, entries over the size cap are skipped, and stores run as owned
background tasks so a slow Redis never delays a response. ``semantic`` mode is not supported: it is refused with a
clear 400 rather than silently served as exact matching.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from core.cache.backends import CacheBackend
from core.cache.keys import cache_key
from core.cache.replay import completion_chunks, replay
from core.config.schema import CacheConfig
from core.config.target import Target
from core.errors import InvalidRequestError
from core.providers.base import Operation, ProviderResult

logger = logging.getLogger("skyrelay.cache")

CACHEABLE = frozenset({Operation.CHAT, Operation.COMPLETION, Operation.EMBEDDING})
HIT, MISS, REFRESH, DISABLED = "HIT", "MISS", "REFRESH", "DISABLED"


@dataclass(slots=True)
class CacheLookup:
    key: str
    ttl_s: float
    status: str
    result: ProviderResult | None = None


class ResponseCache:
    def __init__(self, backend: CacheBackend, *, default_ttl_s: float, max_entry_bytes: int) -> None:
        self.backend = backend
        self._default_ttl_s = default_ttl_s
        self._max_entry_bytes = max_entry_bytes
        self._tasks: set[asyncio.Task[None]] = set()

    async def lookup(self, config: CacheConfig | None, namespace: str, target: Target, operation: Operation,
                     body: dict[str, Any], force_refresh: bool) -> CacheLookup | None:
        """``None`` when caching is off for this target; else the key, and the cached result on a HIT."""
        if config is None or operation not in CACHEABLE:
            return None
        if config.mode != "simple":
            raise InvalidRequestError("Cache mode 'semantic' is not supported by this gateway; use 'simple'",
                                      code="unsupported_cache_mode", param="cache.mode")
        key = cache_key(namespace, target, operation, body)
        ttl = config.max_age or self._default_ttl_s
        if force_refresh:
            return CacheLookup(key, ttl, REFRESH)
        raw = await self.backend.get(key)
        if raw is None:
            self.backend.stats.misses += 1
            return CacheLookup(key, ttl, MISS)
        try:
            entry = orjson.loads(raw)
            response = entry["response"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.backend.stats.errors += 1
            return CacheLookup(key, ttl, MISS)
        self.backend.stats.hits += 1
        return CacheLookup(key, ttl, HIT, _result(entry.get("provider") or target.provider, response, body))

    def store_later(self, lookup: CacheLookup, provider: str, response: bytes | dict[str, Any]) -> None:
        """Store a 2xx answer (JSON bytes, or an assembled completion) without delaying the response."""
        task = asyncio.get_running_loop().create_task(self._store(lookup, provider, response))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _store(self, lookup: CacheLookup, provider: str, response: bytes | dict[str, Any]) -> None:
        try:
            parsed = orjson.loads(response) if isinstance(response, bytes) else response
        except orjson.JSONDecodeError:
            return
        if not isinstance(parsed, dict) or "error" in parsed:
            return
        entry = orjson.dumps({"v": 1, "provider": provider, "response": parsed})
        if len(entry) > self._max_entry_bytes:
            self.backend.stats.too_large += 1
            return
        await self.backend.set(lookup.key, entry, lookup.ttl_s)
        self.backend.stats.stores += 1

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _result(provider: str, response: dict[str, Any], body: dict[str, Any]) -> ProviderResult:
    if body.get("stream") is True:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = completion_chunks(response, include_usage)
        return ProviderResult(status=200, headers=[], provider=provider, chunks=replay(chunks),
                              media_type="text/event-stream")
    return ProviderResult(status=200, headers=[], provider=provider, body=orjson.dumps(response))
