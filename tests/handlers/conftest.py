"""Fixtures for the entry tests: storage emulators, the Lambda Runtime API double, and the chat request every entry
relays to the fake OpenAI upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.lambda_runtime_api import RuntimeApiDouble
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.emulators import MotoS3

ASK = [{"role": "user", "content": "Say hello"}]


def chat_headers(fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": fake.url,
            "authorization": "Bearer sk-handler-test-key", "content-type": "application/json", **extra}


def chat_body(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": ASK, "stream": stream, **extra}


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def runtime_api() -> Iterator[RuntimeApiDouble]:
    double = RuntimeApiDouble().start()
    yield double
    double.stop()
