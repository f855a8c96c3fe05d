"""The log writer process (``SKYRELAY_LOG_WRITER=process``): the same records as inline, nothing lost when either
process dies, metrics and readiness through it.

The writer is a real child process (``python -m core.telemetry.writer_process``) in every test here.
"""

from __future__ import annotations

import asyncio
import decimal
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings
from core.telemetry import writer_frames as frames
from core.telemetry.process_pipeline import ProcessLogPipeline
from core.telemetry.records import RequestLog
from core.telemetry.setup import build_telemetry
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.slow

SECRET = "sk-process-writer-secret-4242"
COMPLETION = orjson.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1764201600, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
})
STREAM = [b'data: {"id":"c2","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,'
          b'"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}\n\n',
          b'data: {"id":"c2","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,'
          b'"delta":{"content":"lo"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":2}}\n\n',
          b"data: [DONE]\n\n"]


def entry(i: int, **extra: Any) -> RequestLog:
    """A request log as the service leaves it: plain, streamed, failed, or carrying odd values in metadata."""
    log = RequestLog("POST", "/v1/chat/completions", f"trace-{i:05d}",
                     {"authorization": f"Bearer {SECRET}", "content-type": "application/json",
                      "x-portkey-provider": "openai"},
                     started_wall=1795000000.0 + i, started=time.perf_counter(), id=f"{i:032x}")
    log.operation, log.provider, log.model, log.attempts = "chat", "openai", "gpt-4o-mini", 1
    log.request_body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hello {i}"}]}
    if i % 2:  # as the service keeps it: the bytes the caller sent
        log.request_body = orjson.dumps(log.request_body)
    if i % 3 == 1:
        log.stream = True
        for chunk in STREAM:
            log.capture_chunk(chunk)
        log.first_byte_at = log.started + 0.01
    elif i % 3 == 2:
        log.error = {"message": "upstream failed", "type": "upstream_error", "code": None}
        log.outcome = "error"
    else:
        log.response_body = COMPLETION
    log.finish(502 if i % 3 == 2 else 200, log.outcome)
    log.finished = log.started + 0.25
    log.extra = {"config_id": None, "fallbacks": 0, **extra}
    return log


def settings(tmp_path: Path, name: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"log_sink": f"file://{tmp_path / name}", "log_spill_dir": str(tmp_path / f"spill-{name}"),
                              "log_batch_max_age_s": 0.05, "replica_id": "replica-a", **overrides}
    return Settings(**values)


def lines(folder: Path) -> list[bytes]:
    return [line for path in sorted(folder.rglob("*.jsonl")) for line in path.read_bytes().splitlines()]


def test_frames_survive_any_split_and_refuse_a_corrupt_length() -> None:
    data = b"".join(frames.frame(kind, payload) for kind, payload in
                    ((frames.ACK, b"x" * 10), (frames.REPLY, b""), (frames.ENTRIES, bytes(range(256)) * 40)))
    for step in (1, 3, 7, 4096):
        reader = frames.FrameReader()
        got = [f for start in range(0, len(data), step) for f in reader.feed(data[start:start + step])]
        assert got == [(frames.ACK, b"x" * 10), (frames.REPLY, b""), (frames.ENTRIES, bytes(range(256)) * 40)]
    with pytest.raises(ValueError, match="corrupt"):
        frames.FrameReader().feed(frames.HEADER.pack(frames.ENTRIES, frames.MAX_FRAME_BYTES + 1))


def test_entries_round_trip_and_odd_values_travel_as_their_json() -> None:
    plain, odd, strange = entry(0), entry(3, note=decimal.Decimal("1.5")), entry(6, note=lambda: None)
    raw = entry(7)
    raw.request_body, raw.metadata = b'{"model": "m"}', {"n": 2**70, 1: (1, 2)}
    raw.stream_chunks = [b"data: {}\n\n", bytearray(b"data: [DONE]\n\n")]
    payload = b"".join(frames.pack_entry(e) for e in (plain, odd, strange, raw))
    ((kind, back_payload),) = frames.FrameReader().feed(frames.frame(frames.ENTRIES, payload))
    back = list(frames.unpack_entries(back_payload))
    assert kind == frames.ENTRIES
    assert [b.trace_id for b in back] == [plain.trace_id, odd.trace_id, strange.trace_id, raw.trace_id]
    # a parsed request body travels as its JSON, which is what the record writes of it
    assert back[0].request_json() == plain.request_json() and back[0].request_headers == plain.request_headers
    assert (back[0].started, back[0].finished, back[0].id) == (plain.started, plain.finished, plain.id)
    assert back[3].request_body == raw.request_body and back[3].stream_chunks == raw.stream_chunks
    assert back[3].metadata == {"n": 2**70, "1": [1, 2]}  # as JSON has them
    assert back[1].extra["note"] == "1.5"  # what the record holds for a Decimal (orjson's default=str)
    assert back[2].extra["note"].startswith("<function")


async def test_the_writer_process_writes_exactly_what_the_inline_pipeline_writes(tmp_path: Path) -> None:
    entries = [entry(i) for i in range(150)]
    inline = build_telemetry(settings(tmp_path, "inline"))
    inline.start()
    for e in [entry(i) for i in range(150)]:
        inline.pipeline.submit(e)
    assert await inline.flush(10)
    await inline.aclose(5)

    handed = ProcessLogPipeline(settings(tmp_path, "process"), describe="file://process")
    handed.start()
    for e in entries:
        handed.submit(e)
    assert await handed.flush(20)
    assert handed.pending == 0 and handed.stats.written == 150 and handed.stats.submitted == 150
    await handed.aclose(10)
    assert handed.stats.dropped == 0 and handed.writer_pid is None  # exited, nothing counted lost

    want, got = lines(tmp_path / "inline"), lines(tmp_path / "process")
    assert len(want) == 150 and sorted(got) == sorted(want)  # byte for byte
    assert not any(SECRET.encode() in line for line in got)
    assert sum(1 for line in got if orjson.loads(line)["stream"]) == 50


async def test_a_killed_writer_is_replaced_and_its_unfinished_records_are_sent_again(tmp_path: Path) -> None:
    pipeline = ProcessLogPipeline(settings(tmp_path, "logs", log_batch_max_age_s=0.5), describe="file://logs")
    pipeline.start()
    for i in range(300):
        pipeline.submit(entry(i))
    deadline = time.monotonic() + 20
    while pipeline.writer_pid is None or pipeline.stats.written == 0:  # some written, later ones still open
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    first = pipeline.writer_pid
    assert first is not None
    for i in range(300, 600):
        pipeline.submit(entry(i))
    await asyncio.sleep(0.2)  # handed over, not yet written (the batch age is 0.5 s)
    os.kill(first, signal.SIGKILL)
    for i in range(600, 700):
        pipeline.submit(entry(i))
    assert await pipeline.flush(30)
    assert pipeline.writer_pid not in (None, first)
    await pipeline.aclose(10)
    ids = [orjson.loads(line)["trace_id"] for line in lines(tmp_path / "logs")]
    assert set(ids) == {f"trace-{i:05d}" for i in range(700)}  # at least once; duplicates carry the same id
    assert pipeline.stats.dropped == 0


def metric_totals(text: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def ask(gateway: GatewayProcess, fake: FakeOpenAI, count: int) -> None:
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": fake.url, "authorization": f"Bearer {SECRET}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=10) as c:
        for i in range(count):
            answer = c.post("/v1/chat/completions", json={"model": "gpt-4o-mini",
                                                          "messages": [{"role": "user", "content": f"q{i}"}]})
            assert answer.status_code == 200, answer.text


def wait_until(check: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def writer_of(gateway: GatewayProcess) -> int:
    """The gateway's log writer process (it runs in a session of its own, so not in the gateway's group)."""
    assert gateway.proc is not None
    tasks = Path(f"/proc/{gateway.proc.pid}/task")

    def find() -> list[int]:
        children = [c for task in tasks.iterdir() for c in (task / "children").read_text().split()]
        return [int(c) for c in children if b"writer_process" in Path(f"/proc/{c}/cmdline").read_bytes()]

    (pid,) = wait_until(find, 10)
    return pid


def test_serve_hands_records_to_a_writer_process_with_metrics_and_readiness(
        start_gateway: Any, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    gateway: GatewayProcess = start_gateway(env={"SKYRELAY_LOG_SPILL_DIR": str(tmp_path / "spill")})
    writer = writer_of(gateway)
    ask(gateway, fake_openai, 12)
    totals = wait_until(lambda: (t := metric_totals(httpx.get(f"{gateway.url}/metrics").text))
                        .get("skyrelay_log_records_written_total") == 12 and t)
    assert totals, httpx.get(f"{gateway.url}/metrics").text
    assert totals["skyrelay_requests_total"] == 12 and totals["skyrelay_tokens_total"] > 0
    assert totals["process_cpu_seconds_total"] > 0 and totals["skyrelay_log_writer_process_cpu_seconds_total"] > 0
    ready = httpx.get(f"{gateway.url}/v1/ready").json()["checks"]["log_sink"]
    assert ready["status"] == "ok" and ready["pending"] == 0 and ready["sink"].startswith("file://")
    assert len(lines(gateway.log_dir)) == 12

    assert gateway.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert wait_until(lambda: not Path(f"/proc/{writer}").exists(), 15), "the writer exits with its gateway"
    assert SECRET not in gateway.stderr()


def test_records_handed_over_survive_the_gateway_being_killed(
        start_gateway: Any, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    gateway: GatewayProcess = start_gateway(env={"SKYRELAY_LOG_BATCH_MAX_AGE_S": "60",
                                                 "SKYRELAY_LOG_SPILL_DIR": str(tmp_path / "spill")})
    writer = writer_of(gateway)
    ask(gateway, fake_openai, 20)
    handed = wait_until(lambda: metric_totals(httpx.get(f"{gateway.url}/metrics").text)
                        .get("skyrelay_requests_total") == 20)  # counted by the writer: it holds all 20
    assert handed and lines(gateway.log_dir) == []  # still in its open batch (60 s)
    assert gateway.proc is not None
    gateway.proc.kill()
    assert wait_until(lambda: len(lines(gateway.log_dir)) == 20, 20), "the writer drains when its input closes"
    assert wait_until(lambda: not Path(f"/proc/{writer}").exists(), 15)


@pytest.mark.parametrize(("writer", "long_lived", "expected"), [
    ("auto", True, "ProcessLogPipeline"), ("auto", False, "LogPipeline"), ("inline", True, "LogPipeline"),
    ("process", False, "ProcessLogPipeline"),
])
def test_who_writes_the_logs_follows_the_setting_and_the_entry(tmp_path: Path, writer: str, long_lived: bool,
                                                               expected: str) -> None:
    from core.gateway import build_gateway

    gateway = build_gateway(settings(tmp_path, "logs", log_writer=writer), long_lived=long_lived)
    assert type(gateway.pipeline).__name__ == expected
    assert gateway.pipeline.describe_sink() == f"file://{tmp_path / 'logs'}"


def test_a_sink_object_keeps_the_records_in_process(tmp_path: Path) -> None:
    from core.gateway import build_gateway
    from core.telemetry.sinks.file import FileLogSink

    sink = FileLogSink(tmp_path / "logs", replica="r")
    gateway = build_gateway(settings(tmp_path, "logs", log_writer="process"), sink=sink, long_lived=True)
    assert type(gateway.pipeline).__name__ == "LogPipeline"


def test_sink_urls_are_checked_and_described_without_their_sdk() -> None:
    from core.errors import InvalidRequestError
    from core.telemetry.sinks import describe_sink_url

    assert describe_sink_url("s3://bucket/logs") == "s3://bucket/logs"
    assert describe_sink_url("https://acct.blob.core.windows.net/c/p?sv=1&sig=SECRET") == \
        "https://acct.blob.core.windows.net/c/p"
    for bad in ("ftp://x", "s3://", "https://example.com/c"):
        with pytest.raises(InvalidRequestError):
            describe_sink_url(bad)


def test_the_writer_gets_every_setting_as_plain_values_and_never_imports_pydantic(tmp_path: Path) -> None:
    import subprocess
    import sys

    from pydantic import SecretStr

    source = settings(tmp_path, "logs", analytics_url="http://127.0.0.1:9/a", analytics_token=SecretStr("tok-9"),
                      log_redact_body_fields="ssn,card")
    plain = frames.WriterSettings(frames.plain_settings(source))
    assert plain.analytics_token.get_secret_value() == "tok-9" and "tok-9" not in repr(plain.analytics_token)
    assert plain.log_redact_body_fields == ["ssn", "card"] and plain.log_sink == source.log_sink
    assert plain.log_batch_max_age_s == 0.05 and plain.metrics_enabled is True
    loaded = subprocess.run([sys.executable, "-c", "import sys, core.telemetry.writer_process; "
                             "print(sorted(m for m in sys.modules if m.startswith('pydantic')))"],
                            capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
