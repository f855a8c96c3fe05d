"""Regressions for the crashes fuzzing and its review found: each is now a clear answer, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.gateway_process import GatewayProcess

USER = [{"role": "user", "content": "hi"}]

CASES = [
    # (name, path, body, status)
    ("image source not an object", "/v1/messages",
     {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": "x"}]}]},
     400),
    ("metadata not an object", "/v1/messages", {"model": "m", "max_tokens": 5, "messages": USER, "metadata": "x"}, 200),
    ("integral float max_tokens", "/v1/messages", {"model": "m", "max_tokens": 5.0, "messages": USER}, 200),
    ("float max_tokens over 64 bits", "/v1/messages", {"model": "m", "max_tokens": 1e20, "messages": USER}, 400),
    ("integral float n", "/v1/chat/completions", {"model": "m", "n": 1.0, "messages": USER}, 200),
    ("float n over 64 bits", "/v1/chat/completions", {"model": "m", "n": 1e20, "messages": USER}, 400),
]


@pytest.mark.parametrize(("name", "path", "body", "status"), CASES, ids=[c[0] for c in CASES])
def test_no_500(gateway: GatewayProcess, fake_openai: FakeOpenAI, name: str, path: str, body: dict[str, object],
                status: int) -> None:
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": fake_openai.url, "authorization": "Bearer x"}
    response = httpx.post(f"{gateway.url}{path}", json=body, headers=headers, timeout=10)
    assert response.status_code == status, response.text
    if status == 400:
        assert "max_tokens" in response.text or "source" in response.text or "'n'" in response.text
