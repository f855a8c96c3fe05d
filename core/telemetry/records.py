"""The request log: gathered cheaply on the hot path, turned into a redacted record off it.

:class:`RequestLog` is a bag of attributes the service fills as the request moves through its lifecycle. The
pipeline's writer calls :meth:`RequestLog.to_record` in the background, so JSON decoding of responses, stream
assembly and redaction never delay a response.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from core.api.stream_assembly import assemble_stream
from core.telemetry.redaction import BodyRedactor, redact_headers

#: Cap on stream bytes kept for the record; past it the record says the stream was truncated.
MAX_STREAM_CAPTURE_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class RequestLog:
    """Everything one request leaves behind. Filled by the service; serialised by the pipeline's writer."""

    method: str
    route: str
    trace_id: str
    request_headers: dict[str, str]
    started_wall: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    operation: str | None = None
    gateway_key_id: str | None = None
    metadata: dict[str, Any] | None = None
    request_body: Any = None
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

    def to_record(self, *, include_bodies: bool, redact_body: BodyRedactor, replica: str) -> dict[str, Any]:
        finished = self.finished if self.finished is not None else time.perf_counter()
        response = self._response_payload()
        record: dict[str, Any] = {
            "id": self.id,
            "trace_id": self.trace_id,
            "timestamp": _iso(self.started_wall),
            "end_time": _iso(self.started_wall + (finished - self.started)),
            "latency_ms": round((finished - self.started) * 1000, 3),
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
            "request": {"headers": redact_headers(self.request_headers)},
            "response": {"status": self.status},
        }
        if self.stream_truncated:
            record["response"]["truncated"] = True
        if include_bodies:
            record["request"]["body"] = redact_body.for_record(self.request_body)
            # The answer comes from the provider, not the caller: only configured fields are hidden in it.
            record["response"]["body"] = redact_body(response) if redact_body.fields else response
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

    The gateway's own SSE output is one ``data:`` line per event, so it is framed by splitting on blank lines and
    parsed with one ``orjson`` call; a plain single-choice text stream (nearly all of them) is then folded here
    in one pass. Anything else — other framing, tool calls, several choices, legacy completions, error events —
    goes through the general parser and assembler. The tests hold both paths to the same answers.
    """
    raw = b"".join(chunks)
    if b"\r" in raw or not raw.startswith(b"data: "):
        return assemble_stream(chunks)
    payloads = []
    for event in raw.split(b"\n\n"):
        if not event or event == b"data: [DONE]":
            continue
        if not event.startswith(b"data: ") or b"\n" in event:
            return assemble_stream(chunks)
        payloads.append(event[6:])
    try:
        parsed = orjson.loads(b"[" + b",".join(payloads) + b"]")
    except orjson.JSONDecodeError:
        return assemble_stream(chunks)
    return _fold_text_stream(parsed) or assemble_stream(chunks)


_HEAD_KEYS = ("id", "model", "created", "system_fingerprint", "provider")


def _fold_text_stream(parsed: list[Any]) -> dict[str, Any] | None:
    """One pass over the chunks of a single-choice text stream; None when the stream is anything else."""
    head: dict[str, Any] = {}
    text: list[str] = []
    role, finish, usage, seen, any_choice = None, None, None, False, False
    for chunk in parsed:
        if type(chunk) is not dict or "error" in chunk:
            return None
        seen = True
        if len(head) < 6:
            for key in _HEAD_KEYS:
                if key in chunk and key not in head:
                    head[key] = chunk[key]
            if chunk.get("object") and "object" not in head:
                head["object"] = str(chunk["object"]).removesuffix(".chunk")
        if chunk.get("usage"):
            usage = chunk["usage"]
        choices = chunk.get("choices") or []
        if len(choices) > 1:
            return None
        for choice in choices:
            if type(choice) is not dict or choice.get("index", 0) != 0 or "text" in choice:
                return None
            any_choice = True
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
            delta = choice.get("delta") or {}
            if type(delta) is not dict or delta.get("tool_calls"):
                return None
            content = delta.get("content")
            if type(content) is str:
                text.append(content)
            if delta.get("role"):
                role = delta["role"]
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
    return f"{_iso_second(whole)}.{int((ts - whole) * 1000):03d}Z"


@functools.lru_cache(maxsize=256)
def _iso_second(whole: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a second: records of the same second share it (two per record, hot in the writer)."""
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
