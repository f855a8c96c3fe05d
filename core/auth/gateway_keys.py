"""Gateway API keys, stored only as SHA-256 digests and compared in constant time.

A caller presents its key in ``x-portkey-api-key``. The presented key is hashed and compared against every stored
digest with :func:`hmac.compare_digest`, without an early exit, so timing reveals neither which key matched nor how
much of a digest did.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from core.errors import AuthenticationError
from core.ratelimit.base import UNLIMITED, Limits

KEY_PREFIX = "sk-sr-"


def hash_key(key: str) -> str:
    """The hex SHA-256 digest under which a gateway key is stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class GatewayKey:
    """A stored key: its public id (used in logs and metrics, never the secret) and what it may use.

    ``None`` for ``allowed_configs`` / ``allowed_virtual_keys`` means no restriction.
    """

    id: str
    digest: bytes
    allowed_configs: frozenset[str] | None = None
    allowed_virtual_keys: frozenset[str] | None = None
    limits: Limits = UNLIMITED

    @classmethod
    def from_hex(
        cls,
        key_id: str,
        hex_digest: str,
        allowed_configs: Iterable[str] | None = None,
        allowed_virtual_keys: Iterable[str] | None = None,
        limits: Limits | None = None,
    ) -> GatewayKey:
        return cls(
            id=key_id,
            digest=bytes.fromhex(hex_digest),
            allowed_configs=None if allowed_configs is None else frozenset(allowed_configs),
            allowed_virtual_keys=None if allowed_virtual_keys is None else frozenset(allowed_virtual_keys),
            limits=limits or Limits(),
        )


class GatewayKeyStore:
    def __init__(self, keys: Iterable[GatewayKey] = ()) -> None:
        self._keys = tuple(keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def authenticate(self, presented: str | None) -> GatewayKey | None:
        """The matching key; ``None`` when no keys are configured; 401 when keys are and none matches."""
        if not self._keys:
            return None
        if not presented:
            raise AuthenticationError("A gateway API key is required in the x-portkey-api-key header")
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        found: GatewayKey | None = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        if found is None:
            raise AuthenticationError("The gateway API key is not valid")
        return found
