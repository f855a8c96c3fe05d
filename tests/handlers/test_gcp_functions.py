"""The Cloud Run functions entry served by the real functions-framework server (``functions-framework --source
handlers/gcp/main.py --target gateway``, its gunicorn + uvicorn workers), logging to the GCS emulator."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.handlers.conftest import ASK, chat_body, chat_headers
from tests.handlers.processes import EntryProcess, clean_env, port, records_of, wait_http
from tests.support.emulators import ROOT, GcsEmulator

PREFIX = "functions"
CHUNK_DELAY_S = 0.25
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gcs() -> Iterator[GcsEmulator]:
    emulator = GcsEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def function(gcs: GcsEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("gcp-function")
    listen = port()
    framework = Path(sys.executable).parent / "functions-framework"
    process = EntryProcess(
        [str(framework), "--source", str(ROOT / "handlers" / "gcp" / "main.py"), "--target", "gateway",
         "--port", str(listen)],
        clean_env(home, SKYRELAY_LOG_BUCKET=gcs.bucket, SKYRELAY_LOG_PREFIX=PREFIX, K_REVISION="skyrelay-00001-fn",
                  K_SERVICE="skyrelay", FUNCTION_TARGET="gateway", TMPDIR=str(home), **gcs.env()),
        home / "functions-framework.log").start()
    url = f"http://127.0.0.1:{listen}"
    wait_http(f"{url}/v1/health", process, timeout_s=60)
    yield url
    process.stop()


def test_a_stream_reaches_the_client_chunk_by_chunk(function: str, fake_openai: FakeOpenAI,
                                                    gcs: GcsEmulator) -> None:
    fake_openai.chunk_delay_s = CHUNK_DELAY_S
    arrivals: list[tuple[float, bytes]] = []
    with httpx.stream("POST", f"{function}/v1/chat/completions", headers=chat_headers(fake_openai),
                      json=chat_body(stream=True), timeout=30) as response:
        for chunk in response.iter_raw():
            arrivals.append((time.monotonic(), chunk))
    ended = time.monotonic()

    body = b"".join(chunk for _, chunk in arrivals)
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    assert body.count(b"data: ") == len(FakeOpenAI.STREAM_WORDS) + 3 and body.endswith(b"data: [DONE]\n\n")
    times = [at for at, _ in arrivals]
    assert len(times) >= len(FakeOpenAI.STREAM_WORDS) + 2
    assert times[-1] - times[0] >= CHUNK_DELAY_S * (len(FakeOpenAI.STREAM_WORDS) - 1)
    assert times[0] < ended - CHUNK_DELAY_S * (len(FakeOpenAI.STREAM_WORDS) - 1)
    # The response ended only after its record was in the bucket.
    logged = [r for r in records_of(gcs.objects(PREFIX)) if r["trace_id"] == response.headers["x-portkey-trace-id"]]
    assert len(logged) == 1 and logged[0]["replica"].startswith("skyrelay-00001-fn-")


def test_the_openai_sdk_works_against_the_function(function: str, fake_openai: FakeOpenAI, gcs: GcsEmulator) -> None:
    client = openai.OpenAI(base_url=f"{function}/v1", api_key="sk-handler-test-key", max_retries=0,
                           default_headers={"x-portkey-provider": "openai", "x-portkey-custom-host": fake_openai.url})
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=ASK)  # type: ignore[arg-type]
    words = [event.choices[0].delta.content for event in client.chat.completions.create(
        model="gpt-4o-mini", messages=ASK, stream=True) if event.choices and event.choices[0].delta.content]  # type: ignore[arg-type]

    assert raw.parse().choices[0].message.content == "Hello from the fake upstream."
    assert "".join(words) == "".join(FakeOpenAI.STREAM_WORDS)
    assert raw.headers["x-portkey-trace-id"] in {r["trace_id"] for r in records_of(gcs.objects(PREFIX))}


def test_the_gateway_routes_and_errors_pass_through_the_framework(function: str) -> None:
    health = httpx.get(f"{function}/v1/health")
    missing = httpx.get(f"{function}/v2/nothing")
    wrong_type = httpx.post(f"{function}/v1/chat/completions", content=b"x", headers={"content-type": "text/plain"})

    assert health.json() == {"status": "ok"}
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    assert wrong_type.status_code == 400 and wrong_type.json()["error"]["code"] == "invalid_content_type"
