"""The request log: gathered cheaply on the hot path, turned into a redacted record off it.

:class:`RequestLog` is a bag of attributes the service fills as the request moves through its lifecycle. The
pipeline's writer calls :meth:`RequestLog.to_record` in the background, so JSON decoding of responses, stream
assembly and redaction never delay a response.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from core.api.stream_assembly import assemble_stream
from core.telemetry.redaction import BodyRedactor, redact_headers

#: Cap on stream bytes kept for the record; past it the record says the stream was truncated.
MAX_STREAM_CAPTURE_BYTES = 4 * 1024 * 1024


def new_record_id() -> str:
    """A random UUID (version 4) as 32 hex digits, what ``uuid.uuid4().hex`` returns, at a third of its cost:
    every request makes one on the hot path."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


@dataclass(slots=True)
class RequestLog:
    """Everything one request leaves behind. Filled by the service; serialised by the pipeline's writer."""

    method: str
    route: str
    trace_id: str
    request_headers: dict[str, str]
    started_wall: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    id: str = field(default_factory=new_record_id)
    operation: str | None = None
    gateway_key_id: str | None = None
    metadata: dict[str, Any] | None = None
    request_body: Any = None  # the JSON bytes the caller sent, or a parsed body: see request_json()
    provider: str | None = None
    model: str | None = None
    target_path: str | None = None
    virtual_key: str | None = None
    stream: bool = False
    status: int = 0
    retry_attempts: int = 0
    attempts: int = 0
    cache_status: str = "DISABLED"
    response_body: bytes | None = None
    response_json: Any = None
    stream_chunks: list[bytes] | None = None
    stream_bytes: int = 0
    stream_truncated: bool = False
    first_byte_at: float | None = None
    finished: float | None = None
    outcome: str = "ok"
    error: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def capture_chunk(self, chunk: bytes) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.perf_counter()
        if self.stream_chunks is None:
            self.stream_chunks = []
        if self.stream_bytes + len(chunk) <= MAX_STREAM_CAPTURE_BYTES:
            self.stream_chunks.append(chunk)
            self.stream_bytes += len(chunk)
        else:
            self.stream_truncated = True

    def finish(self, status: int, outcome: str = "ok") -> None:
        self.status = status
        self.outcome = outcome
        self.finished = time.perf_counter()

    def request_json(self) -> Any:
        """The request body parsed (the service keeps the bytes the caller sent, already checked to be JSON)."""
        body = self.request_body
        if isinstance(body, bytes | bytearray | memoryview):
            return orjson.loads(body) if body else None
        return body

    def to_record(self, *, include_bodies: bool, redact_body: BodyRedactor, replica: str) -> dict[str, Any]:
        finished = self.finished if self.finished is not None else time.perf_counter()
        elapsed = finished - self.started
        response = self._response_payload()
        request: dict[str, Any] = {"headers": redact_headers(self.request_headers)}
        answer: dict[str, Any] = {"status": self.status}
        if self.stream_truncated:
            answer["truncated"] = True
        if include_bodies:
            request["body"] = redact_body.for_record(self.request_body)
            # The answer comes from the provider, not the caller: only configured fields are hidden in it.
            answer["body"] = redact_body(response) if redact_body.fields else response
        record: dict[str, Any] = {
            "id": self.id,
            "trace_id": self.trace_id,
            "timestamp": _iso(self.started_wall),
            "end_time": _iso(self.started_wall + elapsed),
            "latency_ms": round(elapsed * 1000, 3),
            "ttfb_ms": None if self.first_byte_at is None else round((self.first_byte_at - self.started) * 1000, 3),
            "replica": replica,
            "method": self.method,
            "route": self.route,
            "operation": self.operation,
            "status": self.status,
            "outcome": self.outcome,
            "provider": self.provider,
            "model": self.model,
            "target_path": self.target_path,
            "virtual_key": self.virtual_key,
            "gateway_key_id": self.gateway_key_id,
            "stream": self.stream,
            "attempts": self.attempts,
            "retry_attempts": self.retry_attempts,
            "cache_status": self.cache_status,
            "metadata": self.metadata,
            "usage": response.get("usage") if isinstance(response, dict) else None,
            "error": self.error,
            "request": request,
            "response": answer,
        }
        if self.extra:
            record.update(self.extra)
        return record

    def _response_payload(self) -> Any:
        if self.response_json is not None:
            return self.response_json
        if self.stream_chunks is not None:
            self.response_json = _assemble(self.stream_chunks)
        elif self.response_body:
            try:
                self.response_json = orjson.loads(self.response_body)
            except orjson.JSONDecodeError:
                self.response_json = self.response_body[:65536].decode("utf-8", "replace")
        return self.response_json


def _assemble(chunks: list[bytes]) -> Any:
    """The completion a stream described, as :func:`core.api.stream_assembly.assemble_stream` builds it.

    The gateway's own SSE output is one ``data:`` line per event, so its payloads are cut out by counting
    newlines (:func:`_data_payloads`) and parsed with one ``orjson`` call; a plain single-choice text stream
    (nearly all of them) is then folded here in one pass. Anything else — other framing, tool calls, several
    choices, legacy completions, error events — goes through the general parser and assembler. The tests hold
    both paths to the same answers.
    """
    payloads = _data_payloads(b"".join(chunks))
    if payloads is None:
        return assemble_stream(chunks)
    try:
        parsed = orjson.loads(b"[" + payloads + b"]")
    except orjson.JSONDecodeError:
        return assemble_stream(chunks)
    return _fold_text_stream(parsed) or assemble_stream(chunks)


_DATA = b"data: "
_NEXT_EVENT = b"\n\ndata: "
_DONE_EVENT = b"data: [DONE]\n\n"


def _data_payloads(raw: bytes) -> bytes | None:
    """The payloads of a stream of ``data: <payload>\\n\\n`` events, comma-separated (a closing ``[DONE]``
    dropped); None for any other framing.

    Replaced in place rather than split into a list of events: when no newline is left once every event
    boundary became a comma, each event was one ``data:`` line.
    """
    end = len(raw) - len(_DONE_EVENT) if raw.endswith(_DONE_EVENT) else len(raw)
    if not raw.startswith(_DATA) or not raw.endswith(b"\n\n", 0, end):
        return None
    payloads = raw[6 : end - 2].replace(_NEXT_EVENT, b",")
    if payloads.find(b"\n") != -1 or payloads.find(b"\r") != -1:
        return None
    return payloads


_HEAD_KEYS = ("id", "model", "created", "system_fingerprint", "provider")


def _fold_text_stream(parsed: list[Any]) -> dict[str, Any] | None:
    """One pass over the chunks of a single-choice text stream; None when the stream is anything else.

    Head fields keep their first value, so only the ones not seen yet are looked for in later chunks.
    """
    head: dict[str, Any] = {}
    missing: tuple[str, ...] = _HEAD_KEYS
    want_object = True
    text: list[str] = []
    role, finish, usage, seen, any_choice = None, None, None, False, False
    for chunk in parsed:
        if type(chunk) is not dict or "error" in chunk:
            return None
        seen = True
        if missing:
            known = len(head)
            for key in missing:
                if key in chunk:
                    head[key] = chunk[key]
            if len(head) != known:
                missing = tuple(key for key in missing if key not in head)
        if want_object and chunk.get("object"):
            head["object"] = str(chunk["object"]).removesuffix(".chunk")
            want_object = False
        if chunk.get("usage"):
            usage = chunk["usage"]
        choices = chunk.get("choices")
        if not choices:
            continue
        if type(choices) is not list or len(choices) > 1:
            return None
        choice = choices[0]
        if type(choice) is not dict or choice.get("index", 0) != 0 or "text" in choice:
            return None
        any_choice = True
        if reason := choice.get("finish_reason"):
            finish = reason
        delta = choice.get("delta") or {}
        if type(delta) is not dict or delta.get("tool_calls"):
            return None
        content = delta.get("content")
        if type(content) is str:
            text.append(content)
        if delta_role := delta.get("role"):
            role = delta_role
    if not seen:
        return None
    joined = "".join(text)
    message = {"role": role or "assistant", "content": joined or None}
    choices_out = [{"index": 0, "message": message, "finish_reason": finish}] if any_choice else []
    out: dict[str, Any] = {**head, "choices": choices_out}
    out.setdefault("object", "chat.completion")
    if usage is not None:
        out["usage"] = usage
    return out


def _iso(ts: float) -> str:
    whole = int(ts)
    millis = int((ts - whole) * 1000)
    return _iso_second(whole) + (_MILLIS[millis] if 0 <= millis < 1000 else f".{millis:03d}Z")


#: ``.000Z`` to ``.999Z``: joined to a cached second instead of formatting the milliseconds (two per record).
_MILLIS = tuple(f".{millis:03d}Z" for millis in range(1000))


@functools.lru_cache(maxsize=256)
def _iso_second(whole: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a second: records of the same second share it (two per record, hot in the writer)."""
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
