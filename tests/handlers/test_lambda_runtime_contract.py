"""The streaming runtime's side of the Runtime API contract, with small ASGI apps in place of the gateway:
failures before and after the first byte, responses that never end, and when the log flush runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from handlers.aws.runtime_api import RuntimeApiClient
from handlers.aws.streaming import StreamingRuntime, describe_init_error
from tests.fakes.lambda_runtime_api import RuntimeApiDouble
from tests.handlers.lambda_events import http_event


class Failure(Exception):
    pass


class StubServerless:
    """What the runtime needs from :class:`ServerlessGateway`; remembers when it was flushed."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.flushes: list[tuple[float, float | None]] = []

    async def ensure_started(self) -> None:
        return None

    async def flush(self, remaining_s: float | None) -> bool:
        self.flushes.append((time.monotonic(), remaining_s))
        return True


def app_sending(*messages: dict[str, Any], fail: bool = False) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.request"
        for message in messages:
            await send(message)
            await asyncio.sleep(0.05)
        if fail:
            raise Failure("the upstream connection broke")

    return app


START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream"),
                                                                      (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]}
CHUNK = {"type": "http.response.body", "body": b"data: one\n\n", "more_body": True}
LAST = {"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False}


@pytest.fixture
def double() -> Iterator[RuntimeApiDouble]:
    api = RuntimeApiDouble().start()
    yield api
    api.stop()


async def run(double: RuntimeApiDouble, app: Any, deadline_s: float = 30.0) -> tuple[Any, StubServerless]:
    serverless = StubServerless(app)
    runtime = StreamingRuntime(serverless, RuntimeApiClient(double.address))  # type: ignore[arg-type]
    record = double.submit(http_event("function_url", "GET", "/v1/events"), deadline_s=deadline_s)
    await asyncio.wait_for(runtime.run_once(), 10)
    return record.wait(5), serverless


async def test_a_complete_stream_is_flushed_after_its_last_chunk(double: RuntimeApiDouble) -> None:
    record, serverless = await run(double, app_sending(START, CHUNK, LAST), deadline_s=20.0)

    assert record.outcome == "response" and record.trailers == {}
    assert record.prelude() == {"statusCode": 200, "headers": {"content-type": "text/event-stream"},
                                "cookies": ["a=1", "b=2"]}
    assert record.body() == b"data: one\n\ndata: [DONE]\n\n"
    [(flushed_at, remaining)] = serverless.flushes
    assert record.completed_at is not None and flushed_at >= record.completed_at
    assert remaining is not None and 15.0 < remaining <= 20.0


async def test_a_failure_mid_stream_ends_it_with_the_error_trailers(double: RuntimeApiDouble) -> None:
    record, serverless = await run(double, app_sending(START, CHUNK, fail=True))

    assert record.outcome == "error" and record.streamed
    assert record.trailers["lambda-runtime-function-error-type"] == "Runtime.HandlerError"
    assert record.error_body() == {"errorType": "Runtime.HandlerError", "errorMessage": "Failure", "stackTrace": []}
    assert record.body() == b"data: one\n\n"
    assert len(serverless.flushes) == 1  # the failed request's record is flushed too


async def test_a_failure_before_the_first_byte_is_an_invocation_error(double: RuntimeApiDouble) -> None:
    record, _ = await run(double, app_sending(fail=True))

    assert (record.outcome, record.error_type, record.streamed) == ("error", "Runtime.HandlerError", False)
    assert record.json()["errorType"] == "Runtime.HandlerError"


async def test_a_response_that_never_ends_is_reported_incomplete(double: RuntimeApiDouble) -> None:
    record, _ = await run(double, app_sending(START, CHUNK))

    assert record.trailers["lambda-runtime-function-error-type"] == "Runtime.IncompleteResponse"


def test_init_errors_name_the_setting_but_not_its_value() -> None:
    from core.settings import Settings

    with pytest.raises(ValidationError) as caught:
        Settings(redis_timeout_ms="s3cr3t-value")  # type: ignore[arg-type]

    message = describe_init_error(caught.value)
    assert "redis_timeout_ms" in message and "s3cr3t" not in message
