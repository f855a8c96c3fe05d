"""One Redis client per process, every command bounded by a millisecond-range timeout.

Redis is an accelerator, never a dependency the gateway dies with: a failing or slow Redis raises
:class:`RedisUnavailable` within ``timeout_ms``, and after a failure calls fail fast (no connection attempt) for
``retry_interval_s`` so a dead Redis does not add its timeout to every request. After that interval the next call
tries again — recovery is automatic. Degradations are counted and logged once per outage.

ElastiCache, Memorystore and Azure Managed Redis are reached with ``rediss://`` (TLS) and AUTH (in the URL or
``SKYRELAY_REDIS_PASSWORD``); ``SKYRELAY_REDIS_CLUSTER=true`` uses the cluster client (keys that a script touches
together share a ``{hash tag}``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

logger = logging.getLogger("skyrelay.redis")

T = TypeVar("T")


class RedisUnavailable(Exception):
    """Redis did not answer in time or refused; callers degrade (cache MISS, local breaker, fail open/closed)."""


@dataclass(slots=True)
class RedisStats:
    calls: int = 0
    failures: int = 0
    fast_failures: int = 0
    outages: int = 0
    last_error: str | None = None


class RedisState:
    def __init__(self, url: str, *, cluster: bool = False, timeout_ms: float = 50.0, password: str | None = None,
                 retry_interval_s: float = 1.0, max_connections: int = 256) -> None:
        try:
            from redis.asyncio import Redis
            from redis.asyncio.cluster import RedisCluster
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise RuntimeError("install the `[redis]` extra to use SKYRELAY_REDIS_URL") from None
        timeout = timeout_ms / 1000
        options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                                   "retry": Retry(NoBackoff(), 0), "health_check_interval": 0}
        if password:
            options["password"] = password
        if cluster:
            self.client: Any = RedisCluster.from_url(url, **options)
        else:
            self.client = Redis.from_url(url, max_connections=max_connections, **options)
        self._timeout = timeout
        self._retry_interval_s = retry_interval_s
        self._down_until = 0.0
        self.stats = RedisStats()
        self.url_for_humans = url.split("@")[-1]

    @property
    def degraded(self) -> bool:
        return time.monotonic() < self._down_until

    async def call(self, operation: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``fn(client)`` under the timeout; any Redis or network failure becomes :class:`RedisUnavailable`."""
        if self.degraded:
            self.stats.fast_failures += 1
            raise RedisUnavailable(f"redis is degraded (last error: {self.stats.last_error})")
        from redis.exceptions import RedisError

        self.stats.calls += 1
        try:
            async with asyncio.timeout(self._timeout * 2):
                result = await fn(self.client)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(operation, exc)
            raise RedisUnavailable(f"redis {operation} failed: {type(exc).__name__}") from None
        if self._down_until:
            logger.warning("redis at %s is answering again; shared state resumed", self.url_for_humans)
            self._down_until = 0.0
        return result

    def _failed(self, operation: str, exc: BaseException) -> None:
        self.stats.failures += 1
        self.stats.last_error = f"{operation}: {type(exc).__name__}"
        if not self._down_until:
            self.stats.outages += 1
            logger.warning("redis at %s failed (%s during %s); degrading to local state for %.1fs at a time",
                           self.url_for_humans, type(exc).__name__, operation, self._retry_interval_s)
        self._down_until = time.monotonic() + self._retry_interval_s

    async def ping(self) -> bool:
        return bool(await self.call("ping", lambda c: c.ping()))

    async def aclose(self) -> None:
        close = getattr(self.client, "aclose", None) or self.client.close
        await close()
