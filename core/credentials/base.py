"""The CredentialSource protocol and a small expiring-token cache the cloud sources share.

A source turns an outgoing request into the headers that authorize it. It is transport-agnostic (it returns headers,
it never sends), refreshes its secret shortly before expiry — never per request — and can be told that the provider
rejected a credential (401/403) so the next call refreshes once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol


class CredentialSource(Protocol):
    async def authorize(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """Headers to add to this request (e.g. ``authorization``, SigV4's ``x-amz-*``)."""
        ...

    def invalidate(self) -> None:
        """The provider rejected the credential: fetch a fresh one on the next call."""
        ...


@dataclass(frozen=True, slots=True)
class ExpiringToken:
    value: str
    expires_at: float  # time.time() seconds; float("inf") for tokens without expiry


class TokenCache:
    """Holds one token; refreshes it ``refresh_margin_s`` before expiry with a single in-flight fetch.

    Concurrent callers during a refresh wait for the same fetch (no thundering herd against the token endpoint).
    """

    def __init__(self, fetch: Callable[[], Awaitable[ExpiringToken]], refresh_margin_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._margin = refresh_margin_s
        self._clock = clock
        self._token: ExpiringToken | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    def _fresh(self) -> ExpiringToken | None:
        token = self._token
        if token is not None and token.expires_at - self._margin > self._clock():
            return token
        return None

    async def get(self) -> str:
        token = self._fresh()
        if token is not None:
            return token.value
        async with self._lock:
            token = self._fresh()
            if token is None:
                token = await self._fetch()
                self.fetches += 1
                self._token = token
        return token.value

    def invalidate(self) -> None:
        self._token = None
