"""Building a record: stream assembly (fast framing agrees with the general SSE parser), timestamps, one line."""

from __future__ import annotations

import uuid

import orjson
import pytest

from core.api.stream_assembly import assemble_stream
from core.telemetry.records import _assemble, _iso
from core.telemetry.redaction import BodyRedactor
from tests.telemetry.conftest import entry


def event(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
TEXT = [event({**BASE, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        event({**BASE, "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
        event({**BASE, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}),
        event({**BASE, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
        b"data: [DONE]\n\n"]
TOOLS = [event({**BASE, "choices": [{"index": 0, "delta": {"tool_calls": [
             {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{\"a\""}}]}}]}),
         event({**BASE, "choices": [{"index": 0, "delta": {"tool_calls": [
             {"index": 0, "function": {"arguments": ": 1}"}}]}, "finish_reason": "tool_calls"}]}),
         b"data: [DONE]\n\n"]


@pytest.mark.parametrize("chunks", [
    TEXT,
    TOOLS,
    [b"".join(TEXT)[:50], b"".join(TEXT)[50:]],  # an event split across chunks
    [*TEXT[:2], event({"error": {"message": "boom", "type": "server_error"}})],
    [chunk.replace(b"\n", b"\r\n") for chunk in TEXT],  # other framing: the general parser
    [b": keep-alive\n\n", *TEXT],
    [b"event: message\ndata: " + orjson.dumps({**BASE, "choices": []}) + b"\n\n"],
    [TEXT[0], TEXT[1][:20]],  # cut off mid-event (capture limit)
    [TEXT[3], b"data: [DONE]\n\n"],  # usage only, no choices
    [event({**BASE, "choices": [{"index": 0, "delta": {"content": "a"}}, {"index": 1, "delta": {"content": "b"}}]})],
    [event({"id": "cmpl-1", "object": "text_completion",
            "choices": [{"index": 0, "text": "hi", "finish_reason": "stop"}]})],
    [event({**BASE, "provider": "openai", "choices": [{"delta": {"content": "x"}}]}), b"data: [DONE]\n\n"],
    [b"data: [DONE]\n\n"],
    TEXT[:4],  # no [DONE]
    [TEXT[1], b"data: [DONE]\n\n", TEXT[2]],  # [DONE] before the end
    [TEXT[1], b"\n", TEXT[2]],  # an extra blank line
    [TEXT[1], TEXT[2][:-1]],  # the last event not closed
    [b"data: \n\n", TEXT[1]],  # an empty event
])
def test_fast_assembly_agrees_with_the_sse_parser(chunks: list[bytes]) -> None:
    assert _assemble(chunks) == assemble_stream(chunks)


def test_timestamps_are_iso_utc_with_milliseconds() -> None:
    assert _iso(1_790_000_000.1234) == "2026-09-21T14:13:20.123Z"
    assert _iso(1_790_000_000.9999) == "2026-09-21T14:13:20.999Z"
    assert _iso(1_790_000_000.0) == "2026-09-21T14:13:20.000Z"


def test_record_ids_are_random_uuid4_hex() -> None:
    ids = {entry(i).id for i in range(1000)}
    assert len(ids) == 1000
    assert all(uuid.UUID(i).hex == i and uuid.UUID(i).version == 4 for i in ids)


def test_a_pretty_printed_body_still_makes_one_line() -> None:
    log = entry(1, request_body={"model": "m", "messages": [{"role": "user", "content": "a\nb"}]},
                response_body=b'{\n  "id": "x",\n  "choices": []\n}')
    record = log.to_record(include_bodies=True, redact_body=BodyRedactor(()), replica="r")
    line = orjson.dumps(record)
    assert b"\n" not in line
    assert orjson.loads(line)["response"]["body"] == {"id": "x", "choices": []}
    assert orjson.loads(line)["request"]["body"]["messages"][0]["content"] == "a\nb"


@pytest.mark.parametrize("raw", [
    b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}',  # as the caller spaced it
    b'{\n  "model": "m",\n  "messages": []\n}',  # pretty-printed: parsed, so the record stays one line
    b'{"model":"m","api_key":"sk-body-secret"}',  # a credential field: walked and hidden
    b'{"model":"m","\\u0061pi_key":"sk-escaped-secret"}',  # the same key spelled with an escape
    b'{"model":"m","extra":{"ssn":"123-45"}}',  # a configured field
])
def test_a_request_body_kept_as_the_callers_bytes_records_as_its_parsed_and_redacted_form(raw: bytes) -> None:
    """The service logs the request body as the bytes it received; the record is what the parsed dict gives."""
    redactor = BodyRedactor(("ssn",))
    from_bytes = entry(1, request_body=raw).to_record(include_bodies=True, redact_body=redactor, replica="r")
    from_dict = entry(1, request_body=orjson.loads(raw)).to_record(include_bodies=True, redact_body=redactor,
                                                                   replica="r")
    line = orjson.dumps(from_bytes)
    assert b"\n" not in line and b"secret" not in line and b"123-45" not in line
    assert orjson.loads(line)["request"] == orjson.loads(orjson.dumps(from_dict))["request"]
    assert entry(1, request_body=raw).request_json() == orjson.loads(raw)
