"""A config source read through Redis, so N replicas polling one bucket cost the bucket one read per TTL.

The first replica to find the cached copy missing or expired reads the real source and shares the document in
Redis for ``ttl_s``; the others take it from Redis. The store still validates every document before use, so a bad
shared copy is refused by each replica exactly as a bad source would be. A failing Redis means reading the source
directly.
"""

from __future__ import annotations

import orjson

from core.config.sources import ConfigSource
from core.state.redis import RedisState, RedisUnavailable


class RedisCachedSource:
    def __init__(self, inner: ConfigSource, redis: RedisState, ttl_s: float) -> None:
        self._inner = inner
        self._redis = redis
        self._ttl_ms = max(1000, int(ttl_s * 1000))
        self._key = "skyrelay:config:{" + inner.describe() + "}"

    def describe(self) -> str:
        return self._inner.describe()

    async def fetch(self, version: str | None) -> tuple[str | None, str | None]:
        try:
            cached = await self._redis.call("config get", lambda c: c.get(self._key))
        except RedisUnavailable:
            return await self._inner.fetch(version)
        if cached:
            entry = orjson.loads(cached)
            if entry["version"] == version:
                return None, version
            return entry["text"], entry["version"]
        text, new_version = await self._inner.fetch(None)
        if text is not None:
            payload = orjson.dumps({"text": text, "version": new_version})
            try:
                await self._redis.call("config set", lambda c: c.set(self._key, payload, px=self._ttl_ms))
            except RedisUnavailable:
                pass
        if new_version is not None and new_version == version:
            return None, version
        return text, new_version
