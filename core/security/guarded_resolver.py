"""An aiohttp resolver that re-applies the SSRF guard to the addresses actually connected to.

Only hosts the guard approved as caller-chosen custom hosts are checked, so provider endpoints reached through
private VPC endpoints (PrivateLink, Private Service Connect) keep working.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from core.errors import InvalidRequestError
from core.security.ssrf import SsrfGuard


class GuardedResolver(AbstractResolver):
    def __init__(self, guard: SsrfGuard) -> None:
        self._guard = guard
        self._inner: ThreadedResolver | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()
        results = await self._inner.resolve(host, port, family)
        if self._guard.is_guarded(host):
            try:
                self._guard.check_addresses(host, [r["host"] for r in results])
            except InvalidRequestError as exc:
                raise OSError(exc.message) from None
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
