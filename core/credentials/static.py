"""A fixed header credential: provider API keys (``Authorization: Bearer``, ``api-key``, ``x-api-key``)."""

from __future__ import annotations

from collections.abc import Mapping


class StaticHeaderCredential:
    def __init__(self, header: str, value: str) -> None:
        self._header = header.lower()
        self._value = value

    @classmethod
    def bearer(cls, token: str) -> StaticHeaderCredential:
        return cls("authorization", f"Bearer {token}")

    async def authorize(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        return {self._header: self._value}

    def invalidate(self) -> None:
        return None
