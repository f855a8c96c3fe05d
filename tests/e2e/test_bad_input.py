"""Every malformed request gets a clear 4xx in OpenAI's error shape; the process stays healthy afterwards."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.gateway_process import GatewayProcess

OK_BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
PROVIDER = {"x-portkey-provider": "openai", "content-type": "application/json"}

CASES = [
    # (name, path, body, extra headers, status, expected words in the message, param)
    ("malformed json", "/v1/chat/completions", b'{"model": "x", "messages": [', {}, 400, "not valid JSON", None),
    ("empty body", "/v1/chat/completions", b"", {}, 400, "empty", None),
    ("array body", "/v1/chat/completions", b"[1, 2]", {}, 400, "JSON object", None),
    ("string body", "/v1/chat/completions", b'"hello"', {}, 400, "JSON object", None),
    ("invalid utf-8", "/v1/chat/completions", b'{"model": "\xff\xfe", "messages": []}', {}, 400, "not valid JSON",
     None),
    ("deep nesting", "/v1/chat/completions", b"[" * 5000 + b"]" * 5000, {}, 400, "not valid JSON", None),
    ("missing messages", "/v1/chat/completions", b'{"model": "gpt-4o-mini"}', {}, 400, "'messages' is required",
     "messages"),
    ("empty messages", "/v1/chat/completions", b'{"model": "m", "messages": []}', {}, 400, "non-empty", "messages"),
    ("message not object", "/v1/chat/completions", b'{"model": "m", "messages": ["hi"]}', {}, 400,
     "must be an object", "messages[0]"),
    ("bad role", "/v1/chat/completions", b'{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}', {},
     400, "role must be one of", "messages[0].role"),
    ("missing model", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}]}', {}, 400,
     "'model' is required", "model"),
    ("model wrong type", "/v1/chat/completions", b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}',
     {}, 400, "'model' must be a non-empty string", "model"),
    ("stream wrong type", "/v1/chat/completions",
     b'{"model": "m", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}', {}, 400,
     "'stream' must be a boolean", "stream"),
    ("temperature wrong type", "/v1/chat/completions",
     b'{"model": "m", "temperature": "hot", "messages": [{"role": "user", "content": "x"}]}', {}, 400,
     "'temperature' must be a number", "temperature"),
    ("missing prompt", "/v1/completions", b'{"model": "m"}', {}, 400, "'prompt' is required", "prompt"),
    ("missing input", "/v1/embeddings", b'{"model": "m"}', {}, 400, "'input' is required", "input"),
    ("no provider", "/v1/chat/completions", OK_BODY, {"x-portkey-provider": ""}, 400,
     "Either x-portkey-config or x-portkey-provider header is required", None),
    ("unknown provider", "/v1/chat/completions", OK_BODY, {"x-portkey-provider": "nope-ai"}, 400,
     "Invalid provider passed", "x-portkey-provider"),
    ("custom host metadata", "/v1/chat/completions", OK_BODY,
     {"x-portkey-custom-host": "http://169.254.169.254/latest"}, 400, "Invalid custom host", "x-portkey-custom-host"),
    ("custom host private", "/v1/chat/completions", OK_BODY, {"x-portkey-custom-host": "http://10.0.0.8/v1"}, 400,
     "Invalid custom host", "x-portkey-custom-host"),
    ("custom host scheme", "/v1/chat/completions", OK_BODY, {"x-portkey-custom-host": "file:///etc/passwd"}, 400,
     "Invalid custom host", "x-portkey-custom-host"),
    ("custom host encoded ip", "/v1/chat/completions", OK_BODY, {"x-portkey-custom-host": "http://2852039166/"},
     400, "encoded IP", "x-portkey-custom-host"),
    ("bad request timeout", "/v1/chat/completions", OK_BODY, {"x-portkey-request-timeout": "soon"}, 400,
     "x-portkey-request-timeout", "x-portkey-request-timeout"),
    ("bad metadata", "/v1/chat/completions", OK_BODY, {"x-portkey-metadata": "{not json"}, 400,
     "x-portkey-metadata must be a JSON object", "x-portkey-metadata"),
    ("forward portkey headers", "/v1/chat/completions", OK_BODY, {"x-portkey-forward-headers": "x-portkey-api-key"},
     400, "may not name x-portkey-*", "x-portkey-forward-headers"),
    ("wrong content type", "/v1/chat/completions", OK_BODY, {"content-type": "text/plain"}, 400,
     "Invalid content type", None),
    ("unknown route", "/v1/nothing-here", OK_BODY, {}, 404, "No route", None),
]


@pytest.mark.parametrize(("name", "path", "body", "headers", "status", "words", "param"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_4xx(gateway: GatewayProcess, fake_openai: FakeOpenAI, name: str, path: str,
                                  body: bytes, headers: dict[str, str], status: int, words: str,
                                  param: str | None) -> None:
    response = httpx.post(f"{gateway.url}{path}", content=body,
                          headers={**PROVIDER, "x-portkey-custom-host": fake_openai.url, **headers}, timeout=10)

    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert words in error["message"]
    assert error["type"] and error["code"]
    if param is not None:
        assert error["param"] == param
    assert "Traceback" not in response.text
    assert not fake_openai.received, "a rejected request reached the provider"


def test_method_not_allowed_is_openai_shaped(gateway: GatewayProcess) -> None:
    response = httpx.get(f"{gateway.url}/v1/chat/completions")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_body_over_the_limit_is_413(start_gateway: object, fake_openai: FakeOpenAI) -> None:
    gateway = start_gateway(env={"SKYRELAY_MAX_BODY_BYTES": "2048"})  # type: ignore[operator]
    big = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * 4096 + b'"}]}'
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=big,
                          headers={**PROVIDER, "x-portkey-custom-host": fake_openai.url})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

    def chunks():  # no content-length: the limit applies while reading
        yield big[:1000]
        yield big[1000:]

    chunked = httpx.post(f"{gateway.url}/v1/chat/completions", content=chunks(),
                         headers={**PROVIDER, "x-portkey-custom-host": fake_openai.url})
    assert chunked.status_code == 413
    assert httpx.get(f"{gateway.url}/v1/health").status_code == 200


def test_gateway_is_healthy_after_the_matrix(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    assert httpx.get(f"{gateway.url}/v1/health").json() == {"status": "ok"}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=OK_BODY,
                          headers={**PROVIDER, "x-portkey-custom-host": fake_openai.url})
    assert response.status_code == 200


def test_unreachable_upstream_is_a_502_naming_the_provider(gateway: GatewayProcess) -> None:
    from tests.support.gateway_process import free_port

    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=OK_BODY,
                          headers={**PROVIDER, "x-portkey-custom-host": f"http://127.0.0.1:{free_port()}/v1"})
    assert response.status_code == 502
    assert response.json()["provider"] == "openai"
    assert response.json()["error"]["type"] == "upstream_error"
