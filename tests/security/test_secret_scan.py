"""No secret reaches a log line, a log record, an error body, a response header or a metric label.

Requests carrying known secrets — provider keys (``Authorization``, ``x-api-key``, ``api-key``), gateway keys (valid
and wrong), SigV4-style AWS credentials, and ``x-portkey-config`` JSON with an ``api_key`` inside — go through a real
``skyrelay serve`` (debug log level, so the most verbose logging runs). Some succeed through the fake upstream, some
fail at the gateway, some fail at an upstream that echoes the key back in its error, as OpenAI's does. Then every
byte the run produced is scanned: log records, the server's stderr, every response body and header, and
``/metrics``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.auth.gateway_keys import hash_key
from tests.fakes.openai_upstream import FakeOpenAI, Scripted
from tests.support.gateway_process import GatewayProcess

GATEWAY_KEY = "sk-srl-gatewaysecret-0123456789abcdefghij"
WRONG_GATEWAY_KEY = "sk-srl-wrongsecret-9876543210zyxwvuts"
PROVIDER_KEY = "sk-proj-PROVIDERSECRET-abcdef0123456789"
CONFIG_KEY = "sk-CONFIGSECRET-in-portkey-config-4242"
ANTHROPIC_KEY = "sk-ant-ANTHROPICSECRET-000111222333"
AZURE_KEY = "azureSECRETkey0123456789abcdef0123"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
AWS_SESSION = "FwoGZXIvYXdzSESSIONSECRETTOKEN0123456789"
SECRETS = [GATEWAY_KEY, WRONG_GATEWAY_KEY, PROVIDER_KEY, CONFIG_KEY, ANTHROPIC_KEY, AZURE_KEY, AWS_SECRET, AWS_SESSION]
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def keyed_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path_factory.mktemp("secrets") / "logs", env={
        "SKYRELAY_GATEWAY_KEY_HASHES": hash_key(GATEWAY_KEY), "SKYRELAY_LOG_LEVEL": "debug"}).start()
    yield process
    process.stop()


def _fragments(secret: str) -> list[str]:
    """The secret and its distinctive halves: a partial echo ("sk-proj-PROV...") is a leak too."""
    half = len(secret) // 2
    return [secret, secret[:half], secret[half:]]


def _leaks(text: str) -> list[str]:
    return [f for secret in SECRETS for f in _fragments(secret) if f in text]


def _openai_headers(upstream: FakeOpenAI) -> dict[str, str]:
    return {"x-portkey-api-key": GATEWAY_KEY, "x-portkey-custom-host": upstream.url, "x-portkey-provider": "openai",
            "authorization": f"Bearer {PROVIDER_KEY}"}


def _exchanges(gateway: GatewayProcess, upstream: FakeOpenAI) -> list[httpx.Response]:
    base = {"x-portkey-api-key": GATEWAY_KEY, "x-portkey-custom-host": upstream.url}
    openai = {**base, "x-portkey-provider": "openai", "authorization": f"Bearer {PROVIDER_KEY}"}
    config = json.dumps({"provider": "openai", "api_key": CONFIG_KEY, "custom_host": upstream.url})
    bedrock = {"x-portkey-api-key": GATEWAY_KEY, "x-portkey-provider": "bedrock", "x-portkey-aws-region": "us-east-1",
               "x-portkey-aws-access-key-id": "AKIAIOSFODNN7EXAMPLE", "x-portkey-aws-secret-access-key": AWS_SECRET,
               "x-portkey-aws-session-token": AWS_SESSION, "x-portkey-custom-host": upstream.url}
    azure = {**base, "x-portkey-provider": "azure-openai", "api-key": AZURE_KEY,
             "x-portkey-azure-resource-name": "res", "x-portkey-azure-deployment-id": "dep"}
    upstream.enqueue(Scripted(status=401, body={"error": {"message": "Incorrect API key provided.", "type": "x",
                                                          "param": None, "code": "invalid_api_key"}}))
    calls: list[tuple[str, str, dict[str, str], object]] = [
        ("POST", "/v1/chat/completions", openai, {**CHAT, "stream": True}),    # upstream refuses the key (401)
        ("POST", "/v1/chat/completions", openai, CHAT),
        ("POST", "/v1/chat/completions", openai, {**CHAT, "stream": True}),
        ("POST", "/v1/embeddings", openai, {"model": "text-embedding-3-small", "input": "hi"}),
        ("POST", "/v1/chat/completions", {**base, "x-portkey-config": config}, CHAT),
        ("POST", "/v1/chat/completions", {**openai, "x-portkey-api-key": WRONG_GATEWAY_KEY}, CHAT),
        ("POST", "/v1/chat/completions", {**openai, "x-portkey-config": "{not json " + CONFIG_KEY}, CHAT),
        ("POST", "/v1/chat/completions", bedrock, CHAT),
        ("POST", "/v1/chat/completions", azure, CHAT),
        ("POST", "/v1/messages", {**base, "x-portkey-provider": "openai", "x-api-key": ANTHROPIC_KEY},
         {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        ("POST", "/v1/chat/completions", {**openai, "x-portkey-metadata": json.dumps({"token": PROVIDER_KEY})}, CHAT),
        ("GET", "/v1/models", openai, None),
        ("POST", "/v1/nowhere", openai, CHAT),
    ]
    responses = []
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        for method, path, headers, body in calls:
            responses.append(client.request(method, path, headers=headers,
                                            content=None if body is None else json.dumps(body)))
        upstream.fail_always(429)
        responses.append(client.post("/v1/chat/completions", headers=openai, content=json.dumps(CHAT)))
        upstream.always_status = None
    return responses


def test_no_secret_in_logs_records_errors_headers_or_metrics(keyed_gateway: GatewayProcess,
                                                              upstream: FakeOpenAI) -> None:
    responses = _exchanges(keyed_gateway, upstream)
    assert any(r.status_code == 200 for r in responses) and any(r.status_code == 401 for r in responses)
    assert upstream.received, "no request reached the upstream: the scan would prove nothing"
    # The provider key did reach the provider: the gateway forwards it, it just never writes it down.
    assert any(r.headers.get("authorization") == f"Bearer {PROVIDER_KEY}" for r in upstream.received)

    produced: dict[str, str] = {}
    for i, response in enumerate(responses):
        produced[f"response {i} {response.request.url.path} body"] = response.text
        produced[f"response {i} headers"] = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    produced["/metrics"] = httpx.get(f"{keyed_gateway.url}/metrics", timeout=10).text
    records = keyed_gateway.wait_for_records(len(responses) - 1)
    assert len(records) >= len(responses) - 2, "records missing: the scan would miss what they hold"
    produced["log records"] = json.dumps(records)
    keyed_gateway.stop()  # shutdown logs and the final flush are part of what is scanned
    produced["stderr"] = keyed_gateway.stderr()
    produced["log files"] = "\n".join(p.read_text(errors="replace") for p in keyed_gateway.log_dir.rglob("*")
                                      if p.is_file())
    assert "skyrelay" in produced["stderr"]

    leaks = {where: found for where, text in produced.items() if (found := _leaks(text))}
    assert not leaks, f"secrets leaked: {leaks}"


def test_cors_is_off_by_default(tmp_path: Path) -> None:
    process = GatewayProcess(tmp_path / "logs").start()
    try:
        origin = {"origin": "https://evil.example", "access-control-request-method": "POST",
                  "access-control-request-headers": "x-portkey-api-key"}
        preflight = httpx.options(f"{process.url}/v1/chat/completions", headers=origin, timeout=10)
        simple = httpx.get(f"{process.url}/v1/health", headers={"origin": "https://evil.example"}, timeout=10)
    finally:
        process.stop()
    for response in (preflight, simple):
        assert not any(name.startswith("access-control-") for name in response.headers), response.headers
    assert preflight.status_code in (404, 405)


def test_configured_cors_covers_the_api_routes_too(tmp_path: Path, upstream: FakeOpenAI) -> None:
    """The hot routes are served ahead of FastAPI's middleware; CORS wraps them as well, or a browser client would
    pass the preflight and then be refused the answer."""
    allowed = "https://app.example"
    process = GatewayProcess(tmp_path / "logs", env={"SKYRELAY_CORS_ORIGINS": allowed}).start()
    try:
        preflight = httpx.options(f"{process.url}/v1/chat/completions", timeout=10, headers={
            "origin": allowed, "access-control-request-method": "POST",
            "access-control-request-headers": "x-portkey-provider"})
        answer = httpx.post(f"{process.url}/v1/chat/completions", headers={**_openai_headers(upstream),
                            "origin": allowed}, content=json.dumps(CHAT), timeout=30)
        stranger = httpx.post(f"{process.url}/v1/chat/completions", headers={**_openai_headers(upstream),
                              "origin": "https://evil.example"}, content=json.dumps(CHAT), timeout=30)
        ready = httpx.get(f"{process.url}/v1/ready", headers={"origin": allowed}, timeout=10)
    finally:
        process.stop()
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == allowed
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == allowed
    assert answer.json()["object"] == "chat.completion"
    assert stranger.status_code == 200 and "access-control-allow-origin" not in stranger.headers
    assert ready.headers["access-control-allow-origin"] == allowed


# Findings 1 and 2 of SECURITY.md, fixed: an echoed key never reaches the client; a refused host's userinfo is not
# logged.

def test_a_provider_echoing_the_callers_key_does_not_reach_the_error_body(tmp_path: Path,
                                                                         upstream: FakeOpenAI) -> None:
    process = GatewayProcess(tmp_path / "logs", env={"SKYRELAY_GATEWAY_KEY_HASHES": hash_key(GATEWAY_KEY)}).start()
    try:
        upstream.enqueue(Scripted(status=401, body={"error": {
            "message": f"Incorrect API key provided: {PROVIDER_KEY}.", "type": "invalid_request_error",
            "param": None, "code": "invalid_api_key"}}))
        response = httpx.post(f"{process.url}/v1/chat/completions", headers=_openai_headers(upstream),
                              content=json.dumps(CHAT), timeout=30)
        assert response.status_code == 401
        assert "Incorrect API key provided: [REDACTED]" in response.text
        assert not _leaks(response.text), response.text
    finally:
        process.stop()


def test_credentials_in_a_refused_custom_host_are_not_logged(tmp_path: Path, upstream: FakeOpenAI) -> None:
    process = GatewayProcess(tmp_path / "logs").start()
    try:
        headers = {**_openai_headers(upstream), "x-portkey-custom-host": f"http://user:{CONFIG_KEY}@10.0.0.1/"}
        response = httpx.post(f"{process.url}/v1/chat/completions", headers=headers, content=json.dumps(CHAT),
                              timeout=30)
        records = process.wait_for_records(1)
    finally:
        process.stop()
    assert response.status_code == 400 and not _leaks(response.text)
    assert records, "the refused request left no record"
    assert not _leaks(json.dumps(records) + process.stderr())
