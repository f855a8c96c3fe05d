"""The buffered Lambda entry (``handlers/aws/handler.handler``) run by awslambdaric — the managed Python runtime's
own client — against the Runtime API double, with authentic API Gateway, ALB and Function URL events, logging to
S3 (moto)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.fakes.lambda_runtime_api import RuntimeApiDouble
from tests.fakes.openai_upstream import FakeOpenAI
from tests.handlers.conftest import chat_body, chat_headers
from tests.handlers.lambda_events import HTTP_FIXTURES, decoded_body, http_event, load, result_headers
from tests.handlers.processes import EntryProcess, awslambdaric_process, invoke, records_of
from tests.support.emulators import MotoS3, ToggleProxy

PREFIX = "lambda-buffered"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bucket_proxy(s3: MotoS3) -> Iterator[ToggleProxy]:
    """The function reaches S3 through this proxy, so a test can take the bucket away."""
    proxy = ToggleProxy(s3.port).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def function(runtime_api: RuntimeApiDouble, s3: MotoS3, bucket_proxy: ToggleProxy,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntryProcess]:
    home = tmp_path_factory.mktemp("lambda-buffered")
    env = {k: v for k, v in s3.env(bucket_proxy.url).items() if k != "AWS_DEFAULT_REGION"}
    process = awslambdaric_process(runtime_api, home, SKYRELAY_LOG_BUCKET=s3.bucket, SKYRELAY_LOG_PREFIX=PREFIX,
                                   **env).start()
    invoke(runtime_api, process, http_event("function_url", "GET", "/v1/health"), timeout_s=60)
    yield process
    process.stop()


def records(s3: MotoS3) -> list[dict]:
    return records_of(s3.objects(PREFIX))


@pytest.mark.parametrize("fixture", HTTP_FIXTURES)
def test_every_http_trigger_reaches_the_gateway(fixture: str, function: EntryProcess, runtime_api: RuntimeApiDouble,
                                                fake_openai: FakeOpenAI, s3: MotoS3) -> None:
    event = http_event(fixture, "POST", "/v1/chat/completions", chat_headers(fake_openai), chat_body())
    result = runtime_api.invoke(event).json()

    assert result["statusCode"] == 200, result
    answer = json.loads(decoded_body(result))
    assert answer["choices"][0]["message"]["content"] == "Hello from the fake upstream."
    headers = result_headers(result)
    assert headers["x-portkey-provider"] == ["openai"]
    sent = fake_openai.received[-1]
    assert sent.body["messages"] == chat_body()["messages"]  # base64 request bodies (HTTP API v2, ALB) decoded
    assert sent.headers["authorization"] == "Bearer sk-handler-test-key"
    trace_id = headers["x-portkey-trace-id"][0]
    # The invocation returned only after its record was written: it is in the bucket now, no waiting.
    logged = [r for r in records(s3) if r["trace_id"] == trace_id]
    assert len(logged) == 1 and logged[0]["status"] == 200
    assert "sk-handler-test-key" not in json.dumps(logged[0])


def test_multi_value_triggers_get_multi_value_headers(function: EntryProcess, runtime_api: RuntimeApiDouble,
                                                      fake_openai: FakeOpenAI) -> None:
    """An ALB target group with multi-value headers on reads only ``multiValueHeaders``; otherwise ``headers``."""
    def invoke(fixture: str) -> dict:
        event = http_event(fixture, "POST", "/v1/chat/completions", chat_headers(fake_openai), chat_body())
        return runtime_api.invoke(event).json()

    multi, single = invoke("alb_multi_value"), invoke("alb")

    assert multi["multiValueHeaders"]["x-portkey-provider"] == ["openai"] and "headers" not in multi
    assert single["headers"]["x-portkey-provider"] == "openai" and "multiValueHeaders" not in single


def test_a_requested_stream_arrives_whole(function: EntryProcess, runtime_api: RuntimeApiDouble,
                                          fake_openai: FakeOpenAI) -> None:
    event = http_event("apigw_http_v2", "POST", "/v1/chat/completions", chat_headers(fake_openai),
                       chat_body(stream=True))
    result = runtime_api.invoke(event).json()

    body = decoded_body(result).decode()
    assert result["statusCode"] == 200
    assert result["headers"]["content-type"] == "text/event-stream"
    assert body.count("data: ") == len(FakeOpenAI.STREAM_WORDS) + 3 and body.endswith("data: [DONE]\n\n")


def test_gateway_routes_and_errors_pass_through(function: EntryProcess, runtime_api: RuntimeApiDouble) -> None:
    health = runtime_api.invoke(http_event("apigw_rest_proxy", "GET", "/v1/health")).json()
    missing = runtime_api.invoke(http_event("alb", "GET", "/v2/nothing")).json()
    bad = runtime_api.invoke(http_event("function_url", "POST", "/v1/chat/completions",
                                        {"content-type": "application/json"}, b"{not json")).json()

    assert (health["statusCode"], json.loads(health["body"])) == (200, {"status": "ok"})
    assert missing["statusCode"] == 404 and json.loads(missing["body"])["error"]["type"] == "not_found_error"
    assert bad["statusCode"] == 400 and json.loads(bad["body"])["error"]["type"] == "invalid_request_error"


def test_the_gateway_is_built_once_per_execution_environment(function: EntryProcess, runtime_api: RuntimeApiDouble,
                                                             fake_openai: FakeOpenAI, s3: MotoS3) -> None:
    for _ in range(3):
        runtime_api.invoke(http_event("function_url", "POST", "/v1/chat/completions", chat_headers(fake_openai),
                                      chat_body()))

    names = [name.rsplit("/", 1)[1] for name in s3.raw_objects(PREFIX)]
    # <replica>-<run id>-<seq>.jsonl.gz: one replica (named from the log stream), one pipeline run, rising seq.
    runs = {name.rsplit("-", 1)[0] for name in names}
    seqs = sorted(int(name.rsplit("-", 1)[1].split(".")[0]) for name in names)
    assert len(runs) == 1 and runs.pop().startswith("skyrelay-test-0123456789ab-")
    assert len(seqs) >= 3 and len(set(seqs)) == len(seqs)


def test_a_non_http_event_is_an_invocation_error(function: EntryProcess, runtime_api: RuntimeApiDouble) -> None:
    failed = runtime_api.invoke(load("eventbridge_scheduled"))
    after = runtime_api.invoke(http_event("function_url", "GET", "/v1/health"))

    assert failed.outcome == "error"
    assert after.outcome == "response" and after.json()["statusCode"] == 200


def test_the_flush_gives_up_at_the_invocation_deadline(function: EntryProcess, runtime_api: RuntimeApiDouble,
                                                       fake_openai: FakeOpenAI, s3: MotoS3,
                                                       bucket_proxy: ToggleProxy) -> None:
    """With the bucket unreachable, an invocation with 2 s left still answers in time; its record waits in the
    spill under /tmp and reaches the bucket with a later invocation once S3 is back."""
    event = http_event("function_url", "POST", "/v1/chat/completions", chat_headers(fake_openai), chat_body())
    bucket_proxy.down()
    try:
        started = time.monotonic()
        result = runtime_api.invoke(event, deadline_s=2.0)
        elapsed = time.monotonic() - started
    finally:
        bucket_proxy.up()
    stranded = result_headers(result.json())["x-portkey-trace-id"][0]

    assert result.json()["statusCode"] == 200
    assert elapsed < 2.0, f"the invocation overran its deadline: {elapsed:.2f} s"
    assert stranded not in {r["trace_id"] for r in records(s3)}

    later = runtime_api.invoke(event, deadline_s=30.0)
    traces = {r["trace_id"] for r in records(s3)}
    assert stranded in traces and result_headers(later.json())["x-portkey-trace-id"][0] in traces
