"""A fake Vertex AI endpoint on loopback speaking Vertex's wire format.

It requires ``Authorization: Bearer <token>`` with a token one of the fake identities issued (401 in Google's error
JSON otherwise), validates every request body strictly (:mod:`tests.fakes.vertex_wire`; a rejected body is a 400
``INVALID_ARGUMENT`` and is recorded in :attr:`FakeVertex.rejected`), and answers:

- ``publishers/google/models/{m}:generateContent`` and ``:streamGenerateContent?alt=sse`` (``data: {...}\\r\\n\\r\\n``),
- ``publishers/anthropic/models/{m}:rawPredict`` and ``:streamRawPredict`` (Anthropic ``event:``/``data:`` SSE),
- ``publishers/google/models/{m}:predict`` (text embeddings),

with canned answers, or with scripted ones (:meth:`FakeVertex.enqueue`), including Google error JSON.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.gcp_identity import IssuedTokens
from tests.fakes.server import ServedFake, ThreadedServer
from tests.fakes.vertex_wire import (
    WireError,
    validate_claude_request,
    validate_gemini_request,
    validate_predict_request,
)

STREAM_WORDS = ["Hello", " from", " the", " fake", " stream."]


@dataclass
class Scripted:
    """One canned answer for the next request: a JSON ``body``, stream ``events``, or ``raw`` bytes."""

    status: int = 200
    body: Any = None
    events: list[Any] | None = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    publisher: str = ""
    model: str = ""
    method: str = ""


def google_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def gemini_response(model: str, parts: list[dict[str, Any]], *, finish: str = "STOP",
                    response_id: str = "fake-gemini-response") -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "avgLogprobs": -0.2}],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 5, "totalTokenCount": 12,
                          "trafficType": "ON_DEMAND"},
        "modelVersion": model, "createTime": "2026-01-12T10:00:00.000000Z", "responseId": response_id,
    }


def gemini_stream_events(model: str, words: list[str]) -> list[dict[str, Any]]:
    base = {"modelVersion": model, "createTime": "2026-01-12T10:00:00.000000Z", "responseId": "fake-gemini-stream"}
    events: list[dict[str, Any]] = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": word}]}}],
         "usageMetadata": {"trafficType": "ON_DEMAND"}, **base} for word in words
    ]
    events[-1]["candidates"][0]["finishReason"] = "STOP"
    events[-1]["usageMetadata"] = {"promptTokenCount": 7, "candidatesTokenCount": len(words),
                                   "totalTokenCount": 7 + len(words), "trafficType": "ON_DEMAND"}
    return events


def claude_message(model: str, content: list[dict[str, Any]], *, stop_reason: str = "end_turn") -> dict[str, Any]:
    return {"id": "msg_vrtx_fake01", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 6, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0}}


def claude_stream_events(model: str, words: list[str]) -> list[dict[str, Any]]:
    return [
        {"type": "message_start", "message": {"id": "msg_vrtx_stream01", "type": "message", "role": "assistant",
                                              "model": model, "content": [], "stop_reason": None,
                                              "stop_sequence": None,
                                              "usage": {"input_tokens": 10, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}} for w in words),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": len(words)}},
        {"type": "message_stop"},
    ]


class FakeVertex(ServedFake):
    def __init__(self, tokens: IssuedTokens) -> None:
        self.tokens = tokens
        self.received: list[Received] = []
        self.rejected: list[str] = []
        self.scripts: list[Scripted] = []
        self.chunk_gate: threading.Event | None = None
        self.stream_cancelled = threading.Event()
        self._lock = threading.Lock()
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{target}",
                            self._handle)
        self._server = ThreadedServer(app)

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.rejected.clear()
            self.scripts.clear()
        self.chunk_gate = None
        self.stream_cancelled.clear()

    def enqueue(self, *items: Scripted) -> None:
        with self._lock:
            self.scripts.extend(items)

    def _next_script(self) -> Scripted | None:
        with self._lock:
            return self.scripts.pop(0) if self.scripts else None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        model, _, method = request.match_info["target"].rpartition(":")
        publisher = request.match_info["publisher"]
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        with self._lock:
            self.received.append(Received(request.path, request.query_string,
                                          {k.lower(): v for k, v in request.headers.items()}, body, publisher, model,
                                          method))
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.tokens:
            return web.json_response(google_error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                                                  "credentials. Expected OAuth 2 access token."), status=401)
        handler = {
            ("google", "generateContent"): self._generate,
            ("google", "streamGenerateContent"): self._generate,
            ("anthropic", "rawPredict"): self._claude,
            ("anthropic", "streamRawPredict"): self._claude,
            ("google", "predict"): self._predict,
        }.get((publisher, method))
        if handler is None:
            return web.json_response(google_error(404, "NOT_FOUND", f"{publisher}/{model}:{method} not found"),
                                     status=404)
        try:
            return await handler(request, body, model, method)
        except WireError as exc:
            self.rejected.append(str(exc))
            return web.json_response(google_error(400, "INVALID_ARGUMENT", str(exc)), status=400)

    async def _generate(self, request: web.Request, body: Any, model: str, method: str) -> web.StreamResponse:
        stream = method == "streamGenerateContent"
        if stream and request.query.get("alt") != "sse":
            raise WireError("streamGenerateContent is served as SSE only with alt=sse")
        validate_gemini_request(body)
        script = self._next_script()
        if script is not None and (script.status != 200 or not stream):
            return self._scripted(script)
        if not stream:
            return web.json_response(gemini_response(model, [{"text": "Hello from fake Gemini."}]))
        events = script.events if script is not None and script.events is not None else gemini_stream_events(
            model, STREAM_WORDS)
        frames = [b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in events]
        return await self._stream(request, script.raw if script and script.raw is not None else frames)

    async def _claude(self, request: web.Request, body: Any, model: str, method: str) -> web.StreamResponse:
        stream = method == "streamRawPredict"
        validate_claude_request(body, stream=stream)
        script = self._next_script()
        if script is not None and (script.status != 200 or not stream):
            return self._scripted(script)
        if not stream:
            return web.json_response(claude_message(model, [{"type": "text", "text": "Hello from fake Claude."}]))
        events = script.events if script is not None and script.events is not None else claude_stream_events(
            model, STREAM_WORDS)
        frames = [f"event: {e['type']}\ndata: ".encode() + orjson.dumps(e) + b"\n\n" for e in events]
        return await self._stream(request, script.raw if script and script.raw is not None else frames)

    async def _predict(self, request: web.Request, body: Any, model: str, method: str) -> web.StreamResponse:
        validate_predict_request(body)
        script = self._next_script()
        if script is not None:
            return self._scripted(script)
        dims = (body.get("parameters") or {}).get("outputDimensionality") or 4
        predictions = [{"embeddings": {"values": [round(0.1 * (i + 1), 3)] * dims,
                                       "statistics": {"truncated": False, "token_count": len(inst["content"].split())}}}
                       for i, inst in enumerate(body["instances"])]
        return web.json_response({"predictions": predictions, "metadata": {"billableCharacterCount": 10}})

    @staticmethod
    def _scripted(script: Scripted) -> web.StreamResponse:
        payload = script.raw if script.raw is not None else orjson.dumps(script.body)
        return web.Response(status=script.status, body=payload,
                            headers={"content-type": "application/json", **script.headers})

    async def _stream(self, request: web.Request, frames: list[bytes] | bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream",
                                               "x-vertex-ai-llm-request-type": "shared"})
        await response.prepare(request)
        try:
            for i, frame in enumerate([frames] if isinstance(frames, bytes) else frames):
                await response.write(frame)
                if i == 0 and self.chunk_gate is not None:
                    gate = self.chunk_gate
                    deadline = time.monotonic() + 10
                    while not gate.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110 - a thread's Event
                        await asyncio.sleep(0.005)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.stream_cancelled.set()
            raise
        return response
