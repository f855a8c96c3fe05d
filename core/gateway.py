"""The composition root: settings → every part of the gateway, wired explicitly (no module-level singletons).

What only some settings use (config store sources, the Redis-backed breaker and config cache) is imported when
those settings ask for it, so a serverless cold start without them does not load it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core import __version__
from core.auth.gateway_keys import GatewayKey
from core.cache.backends import CacheBackend, MemoryCache, RedisCache
from core.cache.response_cache import ResponseCache
from core.config.plan import Planner
from core.config.store import ConfigStore
from core.providers.registry import ProviderDeps, ProviderRegistry
from core.ratelimit.base import RateLimiter
from core.ratelimit.limiters import MemoryRateLimiter, RedisRateLimiter
from core.routing.attempt import AttemptRunner
from core.routing.breaker import Breaker, BreakerSettings, MemoryBreaker
from core.routing.clock import Clock, SystemClock
from core.routing.executor import Executor
from core.routing.remote import RemoteGateways
from core.security.ssrf import SsrfGuard
from core.service import GatewayService
from core.settings import Settings
from core.state.redis import RedisState, RedisUnavailable
from core.telemetry.setup import Telemetry, TelemetryMode, build_telemetry
from core.telemetry.sinks.base import LogSink
from core.telemetry.writer import LogWriter
from core.transport import UpstreamClient, create_upstream_client

if TYPE_CHECKING:
    from core.config.sources import ConfigSource

logger = logging.getLogger("skyrelay")


@dataclass
class Gateway:
    """Everything one process runs. ``startup``/``shutdown`` are called by the app's lifespan (or a handler)."""

    settings: Settings
    service: GatewayService
    pipeline: LogWriter
    upstream: UpstreamClient
    registry: ProviderRegistry
    guard: SsrfGuard
    store: ConfigStore
    breaker: Breaker
    cache: ResponseCache
    remotes: RemoteGateways
    redis: RedisState | None = None
    telemetry: Telemetry = field(default=None)  # type: ignore[assignment]  # set in __post_init__ when omitted
    version: str = __version__
    _started: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.telemetry is None:
            self.telemetry = Telemetry(pipeline=self.pipeline)

    async def startup(self) -> None:
        if self._started:
            return
        await self.store.load_initial()
        self.store.start()
        self.remotes.start()
        self.telemetry.start()
        self._started = True

    async def shutdown(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.store.aclose()
        await self.remotes.aclose()
        await self.service.aclose()
        await self.cache.aclose()
        await self.telemetry.aclose(self.settings.log_flush_timeout_s)
        await self.registry.aclose()  # adapters' own sessions (e.g. the Azure identity pool)
        await self.upstream.aclose()
        if self.redis is not None:
            await self.redis.aclose()

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        checks["log_sink"] = await self.telemetry.health()
        if self.store.source is not None:
            checks["config_store"] = {
                "status": "ok", "source": self.store.source.describe(), "version": self.store.snapshot.version,
                "reload_failures": self.store.stats.failures, "last_error": self.store.stats.last_error,
            }
        if self.redis is not None:
            try:
                await self.redis.ping()
                checks["redis"] = {"status": "ok", "url": self.redis.url_for_humans}
            except RedisUnavailable as exc:
                # Degraded, not unready: every Redis feature has a local fallback.
                checks["redis"] = {"status": "ok", "degraded": True, "error": str(exc)}
        ready = all(c["status"] == "ok" for c in checks.values())
        report: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": checks,
                                  "circuits": self.breaker.snapshot()}
        remotes = self.remotes.status()
        if remotes:
            report["remote_gateways"] = remotes
        return report


def settings_keys(settings: Settings) -> list[GatewayKey]:
    """Keys given directly in settings (ids ``key-<digest prefix>``), besides the config store's."""
    return [GatewayKey.from_hex(f"key-{d[:8]}", d) for d in settings.gateway_key_hashes]


def build_config_store(settings: Settings, provider_ids: set[str], redis: RedisState | None = None) -> ConfigStore:
    source: ConfigSource | None = None
    if settings.config:
        from core.config.sources import FileSource, open_source

        source = open_source(settings.config)
        if redis is not None and not isinstance(source, FileSource):
            from core.config.cached_source import RedisCachedSource

            source = RedisCachedSource(source, redis, ttl_s=max(5.0, settings.config_poll_interval_s))
    return ConfigStore(source, extra_keys=settings_keys(settings), provider_ids=provider_ids,
                       poll_interval_s=settings.config_poll_interval_s)


def build_redis(settings: Settings) -> RedisState | None:
    if not settings.redis_url:
        return None
    return RedisState(settings.redis_url, cluster=settings.redis_cluster, timeout_ms=settings.redis_timeout_ms,
                      password=settings.redis_password, retry_interval_s=settings.redis_retry_interval_s)


def build_gateway(settings: Settings | None = None, *, sink: LogSink | None = None,
                  upstream: UpstreamClient | None = None, clock: Clock | None = None,
                  long_lived: bool = False) -> Gateway:
    """``long_lived``: a server process (``skyrelay serve``), where ``SKYRELAY_LOG_WRITER=auto`` means a log
    writer process; serverless entries and embedded uses build records in their own process."""
    settings = settings or Settings()
    clock = clock or SystemClock()
    guard = SsrfGuard(settings.ssrf_allow)
    upstream = upstream or create_upstream_client(settings, guard)
    registry = ProviderRegistry(ProviderDeps(upstream=upstream, guard=guard, settings=settings))
    redis = build_redis(settings)
    store = build_config_store(settings, set(registry.ids()), redis)
    breaker_settings = BreakerSettings(
        enabled=settings.breaker_enabled,
        failure_threshold=settings.breaker_failure_threshold,
        error_rate_threshold=settings.breaker_error_rate,
        min_calls=settings.breaker_min_calls,
        window_s=settings.breaker_window_s,
        cooldown_s=settings.breaker_cooldown_s,
    )
    local_breaker = MemoryBreaker(breaker_settings, clock)
    breaker: Breaker
    backend: CacheBackend
    limiter: RateLimiter
    if redis is not None:
        from core.routing.redis_breaker import RedisBreaker

        breaker = RedisBreaker(redis, breaker_settings, local_breaker)
        backend = RedisCache(redis)
        limiter = RedisRateLimiter(redis, fail_open=settings.ratelimit_fail_open)
    else:
        breaker, backend, limiter = local_breaker, MemoryCache(settings.cache_memory_max_bytes), MemoryRateLimiter()
    remotes = RemoteGateways(upstream, lambda: store.snapshot.remote_gateways, max_hops=settings.max_hops,
                             poll_interval_s=settings.remote_health_interval_s,
                             unhealthy_after=settings.remote_unhealthy_after)
    cache = ResponseCache(backend, default_ttl_s=settings.cache_default_ttl_s,
                          max_entry_bytes=settings.cache_max_entry_bytes)
    mode: TelemetryMode = "inline"
    if settings.log_writer == "process" or (settings.log_writer == "auto" and long_lived):
        mode = "process"
    telemetry = build_telemetry(settings, sink=sink, breaker_snapshot=breaker.snapshot, version=__version__,
                                mode=mode)
    pipeline = telemetry.pipeline
    service = GatewayService(
        store=store,
        planner=Planner(registry, guard, store, settings.affinity()),
        executor=Executor(AttemptRunner(registry, guard, remotes), breaker, clock, cache=cache, limiter=limiter,
                          remote_healthy=remotes.is_healthy),
        pipeline=pipeline,
        limiter=limiter,
        cache=cache,
    )
    return Gateway(settings=settings, service=service, pipeline=pipeline, upstream=upstream, registry=registry,
                   guard=guard, store=store, breaker=breaker, cache=cache, remotes=remotes, redis=redis,
                   telemetry=telemetry)
