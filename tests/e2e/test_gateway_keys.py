"""Gateway API keys: required on /v1 routes except health when configured; refusal to bind publicly without."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from core.auth.gateway_keys import hash_key
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.gateway_process import ROOT, GatewayProcess, free_port

KEY = "sk-sr-team-search-0123456789"


@pytest.fixture
def keyed_gateway(start_gateway: object, tmp_path: Path) -> GatewayProcess:
    config = tmp_path / "skyrelay.yaml"
    config.write_text(f"gateway_keys:\n  - id: team-search\n    sha256: {hash_key(KEY)}\n")
    return start_gateway(args=["--config", str(config)])  # type: ignore[operator,no-any-return]


def test_requests_without_a_valid_key_get_401(keyed_gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": fake_openai.url}
    missing = httpx.post(f"{keyed_gateway.url}/v1/chat/completions", json=body, headers=headers)
    wrong = httpx.post(f"{keyed_gateway.url}/v1/chat/completions", json=body,
                       headers={**headers, "x-portkey-api-key": KEY + "x"})
    models = httpx.get(f"{keyed_gateway.url}/v1/models", headers=headers)

    assert missing.status_code == wrong.status_code == models.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{keyed_gateway.url}/v1/health").status_code == 200
    assert not fake_openai.received


def test_a_valid_key_is_accepted_and_its_id_logged(keyed_gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    c = openai.OpenAI(base_url=f"{keyed_gateway.url}/v1", api_key="sk-provider", max_retries=0,
                      default_headers={"x-portkey-provider": "openai", "x-portkey-custom-host": fake_openai.url,
                                       "x-portkey-api-key": KEY})
    assert c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices

    record = keyed_gateway.wait_for_records(1)[-1]
    assert record["gateway_key_id"] == "team-search"
    assert KEY not in str(record)


def test_refuses_public_bind_without_keys() -> None:
    result = subprocess.run([sys.executable, "-m", "core.cli", "serve", "--host", "0.0.0.0",
                             "--port", str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "refusing to bind 0.0.0.0" in result.stderr


def test_config_validate_reports_each_error_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("gateway_keys:\n  - id: a\n    sha256: nothex\n  - sha256: " + "a" * 64 + "\n")
    result = subprocess.run([sys.executable, "-m", "core.cli", "config", "validate", str(bad)], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "gateway_keys.0.sha256" in result.stderr
    assert "gateway_keys.1.id" in result.stderr

    good = tmp_path / "good.yaml"
    good.write_text(f"gateway_keys:\n  - id: a\n    sha256: {hash_key('k')}\n")
    ok = subprocess.run([sys.executable, "-m", "core.cli", "config", "validate", str(good)], cwd=ROOT,
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
