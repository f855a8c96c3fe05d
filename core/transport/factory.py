"""Builds the process's upstream client from settings."""

from __future__ import annotations

from core.security.ssrf import SsrfGuard
from core.settings import Settings
from core.transport.base import UpstreamClient


def create_upstream_client(settings: Settings, guard: SsrfGuard) -> UpstreamClient:
    if settings.upstream_transport == "httpx":
        from core.transport.httpx_client import HttpxUpstreamClient

        return HttpxUpstreamClient(
            max_connections=settings.upstream_max_connections,
            connect_timeout_s=settings.upstream_connect_timeout_s,
            read_timeout_s=settings.upstream_read_timeout_s,
        )
    if settings.upstream_transport == "aiohttp":
        from core.security.guarded_resolver import GuardedResolver
        from core.transport.aiohttp_client import AiohttpUpstreamClient

        return AiohttpUpstreamClient(
            max_connections=settings.upstream_max_connections,
            connect_timeout_s=settings.upstream_connect_timeout_s,
            read_timeout_s=settings.upstream_read_timeout_s,
            resolver=GuardedResolver(guard),
        )
    from core.transport.http1_client import Http1UpstreamClient

    return Http1UpstreamClient(
        max_connections=settings.upstream_max_connections,
        connect_timeout_s=settings.upstream_connect_timeout_s,
        read_timeout_s=settings.upstream_read_timeout_s,
        guard=guard,
    )
