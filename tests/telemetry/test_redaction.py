"""No credential from a request survives into its log record: by header name, config field, or value."""

from __future__ import annotations

import json

import orjson

from core.telemetry.pipeline import LogPipeline
from core.telemetry.redaction import REDACTED, scrub, scrub_carried, secret_values
from tests.telemetry.conftest import MemorySink, entry

PROVIDER_KEY = "sk-provider-abcdef123456"
GATEWAY_KEY = "sr-gateway-key-987654321"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SA_PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n"

HEADERS = {
    "authorization": f"Bearer {PROVIDER_KEY}",
    "x-portkey-api-key": GATEWAY_KEY,
    "x-portkey-aws-secret-access-key": AWS_SECRET,
    "x-portkey-config": json.dumps({"provider": "vertex-ai", "vertex_service_account_json": {
        "type": "service_account", "private_key": SA_PRIVATE_KEY}, "api_key": "sk-inline-config-key-42"}),
    "x-portkey-provider": "openai",
    "x-portkey-trace-id": "trace-1",
}
SECRETS = [PROVIDER_KEY, GATEWAY_KEY, AWS_SECRET, SA_PRIVATE_KEY, "sk-inline-config-key-42", "MIIEvQIBADANBg"]


def test_secret_values_include_bearer_tokens_and_config_credentials() -> None:
    values = secret_values(HEADERS)
    assert PROVIDER_KEY.encode() in values
    assert f"Bearer {PROVIDER_KEY}".encode() in values
    assert GATEWAY_KEY.encode() in values and AWS_SECRET.encode() in values
    assert json.dumps(SA_PRIVATE_KEY)[1:-1].encode() in values  # as it appears inside JSON
    assert b"trace-1" not in values and b"openai" not in values


def test_scrub_replaces_every_occurrence() -> None:
    line = orjson.dumps({"error": {"message": f"Incorrect API key provided: {PROVIDER_KEY}"}, "k": PROVIDER_KEY})
    out = scrub(line, secret_values(HEADERS))
    assert PROVIDER_KEY.encode() not in out
    assert out.count(REDACTED.encode()) == 2


def test_the_record_scrub_is_scrub_of_the_secret_values() -> None:
    """``scrub_carried`` looks first for the values every other one contains; the answer is the same."""
    echoed = orjson.dumps({"error": {"message": f"bad Bearer {PROVIDER_KEY}, {GATEWAY_KEY}"}, "k": AWS_SECRET})
    clean = orjson.dumps({"error": {"message": "rate limited"}})
    for line in (echoed, clean):
        assert scrub_carried(line, HEADERS) == scrub(line, secret_values(HEADERS))
    assert scrub_carried(echoed, {"x-portkey-provider": "openai"}) == echoed


async def test_a_record_holds_no_secret_anywhere() -> None:
    sink = MemorySink()
    pipeline = LogPipeline(sink, replica="r1", redact_fields=("ssn",))
    log = entry(1, request_headers=HEADERS, provider="openai", model="gpt-4o-mini", status=401,
                request_body={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                              "ssn": "123-45-6789", "user": {"api_key": "sk-nested-body-key-77"}},
                response_body=orjson.dumps({"error": {"message": f"invalid key {PROVIDER_KEY} for {GATEWAY_KEY}"}}))
    pipeline.submit(log)
    assert await pipeline.flush(5)
    raw = b"\n".join(line for batch in sink.objects.values() for line in batch.lines)
    for secret in [*SECRETS, "123-45-6789", "sk-nested-body-key-77"]:
        assert secret.encode() not in raw, secret
        assert json.dumps(secret)[1:-1].encode() not in raw, secret
    record = sink.records()[0]
    assert record["request"]["headers"]["authorization"] == REDACTED
    assert record["request"]["headers"]["x-portkey-trace-id"] == "trace-1"
    assert record["request"]["body"]["ssn"] == REDACTED
    assert record["request"]["body"]["messages"][0]["content"] == "hi"


async def test_bodies_can_be_left_out_entirely() -> None:
    sink = MemorySink()
    pipeline = LogPipeline(sink, replica="r1", include_bodies=False)
    pipeline.submit(entry(1, request_body={"messages": [{"role": "user", "content": "private"}]},
                          response_body=b'{"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}'))
    assert await pipeline.flush(5)
    record = sink.records()[0]
    assert "body" not in record["request"] and "body" not in record["response"]
    assert record["usage"] == {"prompt_tokens": 3, "completion_tokens": 1}
    assert b"private" not in sink.objects[sink.order[0]].lines[0]
