"""The container entries (``python -m handlers.aws.server``, ``python -m handlers.gcp.server``) as a platform runs
them: bound to every interface on the platform's port, refusing to run open by accident, and flushing their logs
to the bucket on SIGTERM."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.handlers.conftest import chat_body, chat_headers
from tests.handlers.processes import EntryProcess, clean_env, port, records_of, wait_http
from tests.support.emulators import GcsEmulator, MotoS3

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gcs() -> Iterator[GcsEmulator]:
    emulator = GcsEmulator().start()
    yield emulator
    emulator.stop()


def entry(module: str, tmp_path, **env: str) -> EntryProcess:
    return EntryProcess([sys.executable, "-m", module], clean_env(tmp_path, **env), tmp_path / f"{module}.log")


def test_the_eks_entry_refuses_an_open_public_bind(tmp_path) -> None:
    process = entry("handlers.aws.server", tmp_path, SKYRELAY_PORT=str(port())).start()

    assert process.wait(60) == 2
    output = process.output()
    assert "refusing to bind 0.0.0.0" in output and "SKYRELAY_LOG_SINK=stdout://" in output


def test_the_eks_entry_flushes_its_logs_to_s3_on_sigterm(tmp_path, s3: MotoS3, fake_openai: FakeOpenAI) -> None:
    listen = port()
    process = entry("handlers.aws.server", tmp_path, SKYRELAY_PORT=str(listen), SKYRELAY_ALLOW_UNAUTHENTICATED="true",
                    SKYRELAY_LOG_BUCKET=s3.bucket, SKYRELAY_LOG_PREFIX="eks", SKYRELAY_LOG_BATCH_MAX_AGE_S="300",
                    HOSTNAME="skyrelay-7d9f8-x2x4q", **s3.env()).start()
    try:
        wait_http(f"http://127.0.0.1:{listen}/v1/health", process)
        answer = httpx.post(f"http://127.0.0.1:{listen}/v1/chat/completions", headers=chat_headers(fake_openai),
                            json=chat_body(), timeout=10)
        assert answer.status_code == 200
        assert s3.objects("eks") == {}  # held in memory: the batch age is 5 minutes
        process.signal(signal.SIGTERM)
        assert process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    finally:
        process.stop()

    [record] = records_of(s3.objects("eks"))
    assert record["trace_id"] == answer.headers["x-portkey-trace-id"]


def test_the_cloud_run_entry_serves_on_port_and_flushes_to_gcs(tmp_path, gcs: GcsEmulator,
                                                                fake_openai: FakeOpenAI) -> None:
    listen = port()
    process = entry("handlers.gcp.server", tmp_path, PORT=str(listen), SKYRELAY_ALLOW_UNAUTHENTICATED="true",
                    SKYRELAY_LOG_BUCKET=gcs.bucket, SKYRELAY_LOG_PREFIX="cloud-run", K_REVISION="skyrelay-00007-zeb",
                    SKYRELAY_LOG_BATCH_MAX_AGE_S="300", **gcs.env()).start()
    try:
        wait_http(f"http://127.0.0.1:{listen}/v1/health", process)
        with httpx.stream("POST", f"http://127.0.0.1:{listen}/v1/chat/completions", headers=chat_headers(fake_openai),
                          json=chat_body(stream=True), timeout=10) as response:
            body = b"".join(response.iter_bytes())
        assert body.endswith(b"data: [DONE]\n\n")
        process.signal(signal.SIGTERM)
        assert process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    finally:
        process.stop()

    [record] = records_of(gcs.objects("cloud-run"))
    assert record["stream"] is True and record["replica"].startswith("skyrelay-00007-zeb-")
