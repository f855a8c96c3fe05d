from __future__ import annotations

import json

from core.telemetry.redaction import REDACTED, BodyRedactor, redact_headers


def test_credential_headers_are_redacted_and_routing_headers_kept() -> None:
    headers = {
        "Authorization": "Bearer sk-live", "api-key": "az", "x-api-key": "ant", "cookie": "c",
        "x-portkey-api-key": "gw", "x-portkey-aws-secret-access-key": "s", "x-portkey-aws-session-token": "t",
        "x-portkey-vertex-service-account-json": "{}", "x-portkey-azure-ad-token": "ad",
        "x-portkey-azure-entra-client-secret": "cs", "x-portkey-provider": "openai",
        "x-portkey-virtual-key": "openai-prod", "x-portkey-trace-id": "t1", "content-type": "application/json",
    }
    out = redact_headers(headers)
    for name in ("authorization", "api-key", "x-api-key", "cookie", "x-portkey-api-key",
                 "x-portkey-aws-secret-access-key", "x-portkey-aws-session-token",
                 "x-portkey-vertex-service-account-json", "x-portkey-azure-ad-token",
                 "x-portkey-azure-entra-client-secret"):
        assert out[name] == REDACTED, name
    assert out["x-portkey-provider"] == "openai"
    assert out["x-portkey-virtual-key"] == "openai-prod"
    assert out["x-portkey-trace-id"] == "t1"


def test_config_header_keeps_structure_but_loses_credentials() -> None:
    config = {"strategy": {"mode": "fallback"}, "targets": [
        {"provider": "openai", "api_key": "sk-1"},
        {"provider": "bedrock", "aws_secret_access_key": "s", "aws_session_token": "t", "aws_region": "us-east-1"},
        {"provider": "vertex-ai", "vertex_service_account_json": {"private_key": "pk"}},
    ]}
    out = json.loads(redact_headers({"x-portkey-config": json.dumps(config)})["x-portkey-config"])
    assert out["targets"][0] == {"provider": "openai", "api_key": REDACTED}
    assert out["targets"][1]["aws_region"] == "us-east-1"
    assert out["targets"][1]["aws_secret_access_key"] == REDACTED
    assert out["targets"][2]["vertex_service_account_json"] == REDACTED


def test_body_redactor_replaces_configured_fields_at_any_depth() -> None:
    redact = BodyRedactor(["ssn"])
    body = {"messages": [{"role": "user", "content": "x", "ssn": "123"}], "max_tokens": 5, "user": "u"}
    assert redact(body) == {"messages": [{"role": "user", "content": "x", "ssn": REDACTED}], "max_tokens": 5,
                            "user": "u"}


def test_headers_are_redacted_the_same_as_a_dict_or_as_pairs() -> None:
    """A dict is redacted by a plan kept per set of names; pairs one by one: the same record either way."""
    config = json.dumps({"provider": "openai", "api_key": "sk-1"})
    for headers in (
        {"authorization": "Bearer sk-live", "x-portkey-config": config, "x-portkey-custom-host": "https://u:p@h/v1",
         "content-length": "91"},
        {"Authorization": "Bearer sk-live", "X-Portkey-Config": config, "x-portkey-config": "{}",
         "X-Portkey-Custom-Host": "https://u:p@h/v1", "X-Trace": "t", "x-trace": "u"},
        {},
    ):
        assert redact_headers(headers) == redact_headers(list(headers.items()))
        assert list(redact_headers(headers)) == list(redact_headers(list(headers.items())))


def test_a_config_header_is_logged_as_an_id_or_a_redacted_object_and_anything_else_is_hidden() -> None:
    def logged(value: str) -> str:
        return redact_headers({"x-portkey-config": value})["x-portkey-config"]

    assert logged("pc-bench_1") == "pc-bench_1"
    assert json.loads(logged('{"provider": "openai", "api_key": "sk-live-123"}')) == {
        "provider": "openai", "api_key": REDACTED}
    assert logged('"sk-live-quoted-secret"') == REDACTED  # a JSON string is not an id
    assert logged('{"api_key": "sk-live-123", broken') == REDACTED
