"""Protocols for the upstream HTTP client and the transport-level errors both implementations raise."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol


class TransportError(Exception):
    """The request did not produce a complete HTTP response."""


class TransportConnectError(TransportError):
    """No connection could be made (refused, DNS, TLS handshake, a resolver-level SSRF refusal)."""


class TransportTimeout(TransportError):
    """Connecting, or waiting for the next bytes, took longer than the client allows."""


class UpstreamResponse(Protocol):
    """A response whose headers have arrived; the body is read once, whole or chunk by chunk."""

    status: int
    headers: Sequence[tuple[str, str]]

    def header(self, name: str) -> str | None:
        """The first value of a header, case-insensitively."""
        ...

    async def read(self) -> bytes:
        """The whole (decoded) body; releases the connection."""
        ...

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive, without waiting for more; releases the connection at the end."""
        ...

    async def aclose(self) -> None:
        """Release the connection early (client went away, a retry replaces this response)."""
        ...


class UpstreamClient(Protocol):
    """One per process: a pooled keep-alive client shared by every provider."""

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> UpstreamResponse:
        """Send one request; returns once the status line and headers are in."""
        ...

    async def aclose(self) -> None: ...
