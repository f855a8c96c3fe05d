"""Header limits, header injection and key comparison: the edges an attacker reaches before any config is read.

Body size limits (413, declared and chunked) are pinned in tests/e2e/test_bad_input.py; these are the rest.
"""

from __future__ import annotations

import hmac
import socket

import httpx
import pytest

from core.auth.gateway_keys import GatewayKey, GatewayKeyStore, hash_key
from core.errors import AuthenticationError
from core.fast_routes import MAX_HEADER_BYTES, MAX_HEADER_FIELDS
from tests.support.gateway_process import GatewayProcess

CHAT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/health"])
@pytest.mark.parametrize("shape", ["one huge header", "too many headers"])
def test_oversized_headers_are_a_431(gateway: GatewayProcess, path: str, shape: str) -> None:
    if shape == "one huge header":
        headers = [("x-portkey-metadata", "a" * (MAX_HEADER_BYTES + 1))]
    else:
        headers = [(f"x-filler-{i}", "v") for i in range(MAX_HEADER_FIELDS + 1)]
    method = "POST" if path != "/v1/health" else "GET"
    body = CHAT if method == "POST" else None
    response = httpx.request(method, f"{gateway.url}{path}", headers=headers, content=body, timeout=10)

    assert response.status_code == 431, response.text
    assert response.json()["error"]["code"] == "request_headers_too_large"
    assert httpx.get(f"{gateway.url}/v1/health", timeout=5).status_code == 200


def test_headers_under_the_limit_still_work(gateway: GatewayProcess) -> None:
    headers = [("x-portkey-metadata", '{"a":"' + "b" * (MAX_HEADER_BYTES // 2) + '"}')]
    assert httpx.get(f"{gateway.url}/v1/health", headers=headers, timeout=10).status_code == 200


@pytest.mark.parametrize("raw", [
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-portkey-provider: openai\rinjected: 1\r\n"
    b"content-length: 2\r\n\r\n{}",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-portkey-provider: openai\ninjected: 1\r\n"
    b"content-length: 2\r\n\r\n{}",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-portkey-provider: open\x00ai\r\ncontent-length: 2\r\n\r\n{}",
    b"GET /v1/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
], ids=["bare CR", "bare LF", "NUL in value", "CL and TE together"])
def test_header_injection_is_refused_and_the_process_stays_healthy(gateway: GatewayProcess, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(raw)
        answer = sock.recv(4096)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer
    assert httpx.get(f"{gateway.url}/v1/health", timeout=5).status_code == 200


def test_key_comparison_is_constant_time_and_has_no_early_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stored digest is compared with hmac.compare_digest, whichever one matches (or none)."""
    keys = [GatewayKey.from_hex(f"k{i}", hash_key(f"sk-srl-key-{i}")) for i in range(5)]
    store = GatewayKeyStore(keys)
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for presented, expected in (("sk-srl-key-0", "k0"), ("sk-srl-key-4", "k4"), ("sk-srl-nope", None)):
        compared.clear()
        if expected is None:
            with pytest.raises(AuthenticationError):
                store.authenticate(presented)
        else:
            assert store.authenticate(presented).id == expected  # type: ignore[union-attr]
        assert len(compared) == len(keys)
        assert all(len(a) == len(b) == 32 for a, b in compared)  # digests, never the raw key
