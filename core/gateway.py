"""The composition root: settings → every part of the gateway, wired explicitly (no module-level singletons)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core import __version__
from core.auth.gateway_keys import GatewayKey, GatewayKeyStore
from core.config.plan import Planner
from core.providers.registry import ProviderDeps, ProviderRegistry
from core.routing.attempt import AttemptRunner
from core.security.ssrf import SsrfGuard
from core.service import GatewayService
from core.settings import Settings
from core.telemetry.pipeline import LogPipeline
from core.telemetry.sinks import open_sink
from core.telemetry.sinks.base import LogSink
from core.transport import UpstreamClient, create_upstream_client

logger = logging.getLogger("skyrelay")


@dataclass
class Gateway:
    """Everything one process runs. ``startup``/``shutdown`` are called by the app's lifespan (or a handler)."""

    settings: Settings
    service: GatewayService
    pipeline: LogPipeline
    upstream: UpstreamClient
    registry: ProviderRegistry
    guard: SsrfGuard
    version: str = __version__
    _started: bool = False

    async def startup(self) -> None:
        if self._started:
            return
        self.pipeline.start()
        self._started = True

    async def shutdown(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.pipeline.aclose(self.settings.log_flush_timeout_s)
        await self.upstream.aclose()

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        try:
            await self.pipeline.sink.check()
            checks["log_sink"] = {"status": "ok", "sink": self.pipeline.sink.describe(),
                                  "pending": self.pipeline.pending}
        except OSError as exc:
            checks["log_sink"] = {"status": "failing", "error": type(exc).__name__}
        ready = all(c["status"] == "ok" for c in checks.values())
        return {"status": "ready" if ready else "not_ready", "checks": checks}


def build_gateway_keys(settings: Settings) -> GatewayKeyStore:
    """Keys from settings (ids ``key-<digest prefix>``) plus the config file's ``gateway_keys``."""
    keys = [GatewayKey.from_hex(f"key-{d[:8]}", d) for d in settings.gateway_key_hashes]
    if settings.config:
        from core.config.store_file import load_store_file

        document = load_store_file(settings.config)
        keys.extend(GatewayKey.from_hex(k.id, k.sha256, k.configs, k.virtual_keys) for k in document.gateway_keys)
    return GatewayKeyStore(keys)


def build_gateway(settings: Settings | None = None, *, sink: LogSink | None = None,
                  upstream: UpstreamClient | None = None) -> Gateway:
    settings = settings or Settings()
    guard = SsrfGuard(settings.ssrf_allow)
    upstream = upstream or create_upstream_client(settings, guard)
    registry = ProviderRegistry(ProviderDeps(upstream=upstream, guard=guard, settings=settings))
    pipeline = LogPipeline(
        sink or open_sink(settings.log_sink, replica=settings.replica_id),
        replica=settings.replica_id,
        include_bodies=settings.log_bodies,
        redact_fields=tuple(settings.log_redact_body_fields),
        queue_max_records=settings.log_queue_max_records,
        batch_max_records=settings.log_batch_max_records,
        batch_max_bytes=settings.log_batch_max_bytes,
        batch_max_age_s=settings.log_batch_max_age_s,
    )
    service = GatewayService(
        keys=build_gateway_keys(settings),
        planner=Planner(registry, guard),
        attempts=AttemptRunner(registry, guard),
        pipeline=pipeline,
    )
    return Gateway(settings=settings, service=service, pipeline=pipeline, upstream=upstream, registry=registry,
                   guard=guard)
