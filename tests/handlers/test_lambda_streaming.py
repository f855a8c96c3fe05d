"""The streaming Lambda entry — ``handlers/aws/stream_bootstrap``, the exec wrapper that runs our Runtime API loop
— against the Runtime API double: Function URL and REST API events streamed chunk by chunk, other triggers answered
buffered, logs in S3 (moto) before the runtime asks for its next event."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import pytest

from tests.fakes.lambda_runtime_api import RuntimeApiDouble
from tests.fakes.openai_upstream import FakeOpenAI
from tests.handlers.conftest import chat_body, chat_headers
from tests.handlers.lambda_events import http_event, load
from tests.handlers.processes import EntryProcess, invoke, records_of, streaming_runtime_process
from tests.support.emulators import MotoS3

PREFIX = "lambda-stream"
CHUNK_DELAY_S = 0.25
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def function(runtime_api: RuntimeApiDouble, s3: MotoS3,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntryProcess]:
    home = tmp_path_factory.mktemp("lambda-stream")
    process = streaming_runtime_process(runtime_api, home, SKYRELAY_LOG_BUCKET=s3.bucket,
                                        SKYRELAY_LOG_PREFIX=PREFIX, **s3.env()).start()
    invoke(runtime_api, process, http_event("function_url", "GET", "/v1/health"), timeout_s=60)
    yield process
    process.stop()


def stream_event(fake: FakeOpenAI, fixture: str = "function_url") -> dict:
    return http_event(fixture, "POST", "/v1/chat/completions", chat_headers(fake), chat_body(stream=True))


def test_a_function_url_stream_arrives_chunk_by_chunk(function: EntryProcess, runtime_api: RuntimeApiDouble,
                                                      fake_openai: FakeOpenAI, s3: MotoS3) -> None:
    fake_openai.chunk_delay_s = CHUNK_DELAY_S
    invocation = runtime_api.submit(stream_event(fake_openai)).wait_over()

    assert invocation.streamed and invocation.outcome == "response"
    assert invocation.content_type == "application/vnd.awslambda.http-integration-response"
    prelude = invocation.prelude()
    assert prelude["statusCode"] == 200 and prelude["cookies"] == []
    assert prelude["headers"]["content-type"] == "text/event-stream"
    assert prelude["headers"]["x-portkey-provider"] == "openai"
    body = invocation.body().decode()
    assert body.count("data: ") == len(FakeOpenAI.STREAM_WORDS) + 3 and body.endswith("data: [DONE]\n\n")
    # Each SSE event reached the Runtime API as its own chunk, when the upstream sent it: no buffering.
    times = [at for at, _ in invocation.body_chunks()]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) >= len(FakeOpenAI.STREAM_WORDS) + 2
    assert sum(gap >= CHUNK_DELAY_S * 0.6 for gap in gaps) >= len(FakeOpenAI.STREAM_WORDS)
    assert times[-1] - times[0] >= CHUNK_DELAY_S * (len(FakeOpenAI.STREAM_WORDS) - 1)
    # The record was flushed between the last chunk and the next `GET /invocation/next`.
    trace_id = prelude["headers"]["x-portkey-trace-id"]
    logged = [r for r in records_of(s3.objects(PREFIX)) if r["trace_id"] == trace_id]
    assert len(logged) == 1 and logged[0]["stream"] is True and logged[0]["outcome"] == "ok"


def test_a_rest_api_stream_carries_multi_value_metadata(function: EntryProcess, runtime_api: RuntimeApiDouble,
                                                        fake_openai: FakeOpenAI) -> None:
    invocation = runtime_api.submit(stream_event(fake_openai, "apigw_rest_proxy")).wait_over()

    prelude = invocation.prelude()
    assert invocation.streamed and set(prelude) == {"statusCode", "headers", "multiValueHeaders"}
    assert prelude["headers"]["content-type"] == "text/event-stream"
    assert invocation.body().decode().endswith("data: [DONE]\n\n")


def test_a_buffered_answer_is_one_body_after_the_prelude(function: EntryProcess, runtime_api: RuntimeApiDouble,
                                                         fake_openai: FakeOpenAI) -> None:
    event = http_event("function_url", "POST", "/v1/chat/completions", chat_headers(fake_openai), chat_body())
    invocation = runtime_api.submit(event).wait_over()

    assert invocation.prelude()["headers"]["content-type"].startswith("application/json")
    assert len(invocation.body_chunks()) == 1
    assert json.loads(invocation.body())["choices"][0]["message"]["content"] == "Hello from the fake upstream."


@pytest.mark.parametrize("fixture", ["alb", "apigw_http_v2"])
def test_triggers_that_cannot_stream_get_a_proxy_result(fixture: str, function: EntryProcess,
                                                        runtime_api: RuntimeApiDouble,
                                                        fake_openai: FakeOpenAI) -> None:
    invocation = runtime_api.invoke(stream_event(fake_openai, fixture))

    assert not invocation.streamed and invocation.outcome == "response"
    result = invocation.json()
    assert result["statusCode"] == 200 and result["body"].endswith("data: [DONE]\n\n")


def test_a_non_http_event_is_refused_and_the_runtime_goes_on(function: EntryProcess,
                                                             runtime_api: RuntimeApiDouble) -> None:
    refused = runtime_api.invoke(load("eventbridge_scheduled"))
    after = runtime_api.invoke(http_event("apigw_rest_proxy", "GET", "/v1/health"))

    assert (refused.outcome, refused.error_type) == ("error", "Runtime.UnsupportedEvent")
    assert after.prelude()["statusCode"] == 200 and json.loads(after.body()) == {"status": "ok"}


def test_an_init_failure_is_reported_without_the_bad_value(tmp_path) -> None:
    double = RuntimeApiDouble().start()
    process = streaming_runtime_process(double, tmp_path, SKYRELAY_LOG_SINK="stdout://",
                                        SKYRELAY_REDIS_TIMEOUT_MS="hunter2-not-a-number").start()
    try:
        assert process.wait(60) == 1
    finally:
        process.stop()
        double.stop()

    [error] = double.init_errors
    assert error["type"] == "Runtime.InitError"
    assert "redis_timeout_ms" in error["body"]["errorMessage"]
    assert "hunter2" not in json.dumps(error) and "hunter2" not in process.output()
