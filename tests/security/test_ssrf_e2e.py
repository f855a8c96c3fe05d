"""The SSRF guard end to end, through a real ``skyrelay serve`` with loopback *not* allow-listed.

tests/unit/test_ssrf_guard.py pins the guard's rules; this proves the wiring: every loopback spelling — names that
resolve there, encoded and IPv6-wrapped IP forms — is refused, from the header and from a config's targets alike,
and not one request reaches the upstream listening on that loopback address.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.gateway_process import GatewayProcess

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def target() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path_factory.mktemp("ssrf") / "logs",
                             env={"SKYRELAY_SSRF_ALLOW": "only-this.invalid"}).start()
    yield process
    process.stop()


def _spellings(port: int) -> list[str]:
    return [f"http://{host}:{port}/v1" for host in (
        "127.0.0.1", "localhost", "LOCALHOST", "localhost.", "127.1", "0x7f.1", "0177.0.0.1", "2130706433",
        "0x7f000001", "0", "[::1]", "[::ffff:127.0.0.1]", "[0:0:0:0:0:ffff:7f00:1]", "[::ffff:7f00:1]",
        "[2002:7f00:1::]", "127.0.0.1%2e", "%31%32%37.0.0.1",
    )]


def test_every_loopback_spelling_is_refused_and_nothing_reaches_it(guarded: GatewayProcess,
                                                                   target: FakeOpenAI) -> None:
    port = int(target.url.rsplit(":", 1)[1].split("/")[0])
    refused = []
    with httpx.Client(base_url=guarded.url, timeout=15) as client:
        for url in _spellings(port):
            by_header = client.post("/v1/chat/completions", json=CHAT, headers={
                "x-portkey-provider": "openai", "authorization": "Bearer sk-x", "x-portkey-custom-host": url})
            config = {"strategy": {"mode": "fallback"}, "targets": [
                {"provider": "openai", "api_key": "sk-x", "custom_host": "http://only-this.invalid/v1"},
                {"provider": "openai", "api_key": "sk-x", "custom_host": url}]}
            by_config = client.post("/v1/chat/completions", json=CHAT,
                                    headers={"x-portkey-config": json.dumps(config)})
            refused.append((url, by_header.status_code, by_config.status_code))
            assert by_header.status_code == 400, (url, by_header.text)
            assert by_config.status_code in (400, 502), (url, by_config.text)
    assert not target.received, f"the guard let requests through: {[r.path for r in target.received]}"
    assert httpx.get(f"{guarded.url}/v1/health", timeout=5).status_code == 200
