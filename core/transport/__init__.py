"""The one seam every provider call goes through: :class:`UpstreamClient`.

Two implementations exist so the hot path can use the fastest client measured by ``bench/`` (aiohttp) while
tests and token endpoints keep httpx's API (``MockTransport``, Auth flows). See :func:`create_upstream_client`.
"""

from core.transport.base import (
    TransportConnectError,
    TransportError,
    TransportTimeout,
    UpstreamClient,
    UpstreamResponse,
)
from core.transport.factory import create_upstream_client

__all__ = [
    "TransportConnectError",
    "TransportError",
    "TransportTimeout",
    "UpstreamClient",
    "UpstreamResponse",
    "create_upstream_client",
]
