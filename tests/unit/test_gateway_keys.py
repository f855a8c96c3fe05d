from __future__ import annotations

import pytest

from core.auth.gateway_keys import GatewayKey, GatewayKeyStore, generate_key, hash_key
from core.errors import AuthenticationError


def test_no_keys_means_open() -> None:
    assert GatewayKeyStore().authenticate(None) is None


def test_matching_key_found_by_digest() -> None:
    a, b = generate_key(), generate_key()
    store = GatewayKeyStore([GatewayKey.from_hex("a", hash_key(a)), GatewayKey.from_hex("b", hash_key(b))])
    assert store.authenticate(b).id == "b"  # type: ignore[union-attr]
    with pytest.raises(AuthenticationError):
        store.authenticate(a + "x")
    with pytest.raises(AuthenticationError):
        store.authenticate(None)


def test_generated_keys_are_unique_and_prefixed() -> None:
    keys = {generate_key() for _ in range(100)}
    assert len(keys) == 100 and all(k.startswith("sk-sr-") for k in keys)
