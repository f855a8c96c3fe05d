"""A fake OpenAI API speaking the documented wire format: chat completions (JSON and SSE), completions,
embeddings and models, with scripted failures and a gate that holds a stream between chunks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import ServedFake, ThreadedServer


@dataclass
class Scripted:
    """One canned answer, used by the next matching request."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    raw: bytes | None = None


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


def chat_completion(model: str, text: str = "Hello from the fake upstream.") -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake123",
        "object": "chat.completion",
        "created": 1764201600,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
    }


def chat_chunks(model: str, words: list[str], include_usage: bool) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-fakestream", "object": "chat.completion.chunk", "created": 1764201600, "model": model,
            "system_fingerprint": "fp_fake"}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "logprobs": None, "finish_reason": None}]}]
    for word in words:
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": word}, "logprobs": None,
                                            "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
    if include_usage:
        chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": len(words),
                                                         "total_tokens": 9 + len(words)}})
    return chunks


class FakeOpenAI(ServedFake):
    """Start with :meth:`start`; inspect :attr:`received`; script answers with :meth:`enqueue`."""

    STREAM_WORDS = ["Hello", " from", " the", " fake", " stream", "."]

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.scripts: list[Scripted] = []
        self.chunk_gate: threading.Event | None = None
        self.chunk_delay_s = 0.0
        self.stream_cancelled = threading.Event()
        self.always_status: int | None = None
        self._lock = threading.Lock()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        self._server = ThreadedServer(app)

    @property
    def url(self) -> str:
        return f"{self._server.url}/v1"

    def enqueue(self, *items: Scripted) -> None:
        with self._lock:
            self.scripts.extend(items)

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.scripts.clear()
        self.chunk_gate = None
        self.chunk_delay_s = 0.0
        self.always_status = None
        self.stream_cancelled.clear()

    async def _record(self, request: web.Request) -> Any:
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        with self._lock:
            self.received.append(Received(request.method, request.path, request.query_string,
                                          {k.lower(): v for k, v in request.headers.items()}, body))
        return body

    def _next_script(self) -> Scripted | None:
        with self._lock:
            return self.scripts.pop(0) if self.scripts else None

    async def _scripted(self, script: Scripted) -> web.StreamResponse:
        if script.delay_s:
            await asyncio.sleep(script.delay_s)
        payload = script.raw if script.raw is not None else orjson.dumps(script.body)
        return web.Response(status=script.status, body=payload, headers={"content-type": "application/json",
                                                                         **script.headers})

    def fail_always(self, status: int) -> None:
        """Answer every request with ``status`` until :meth:`reset` (a provider outage)."""
        self.always_status = status

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if self.always_status is not None:
            return web.json_response({"error": {"message": f"outage {self.always_status}", "type": "server_error",
                                                "param": None, "code": None}}, status=self.always_status)
        script = self._next_script()
        if script is not None:
            return await self._scripted(script)
        model = body.get("model", "gpt-4o-mini")
        if not body.get("stream"):
            return web.json_response(chat_completion(model), headers={"x-request-id": "req_fake",
                                                                      "openai-processing-ms": "1"})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await self._stream(request, chat_chunks(model, self.STREAM_WORDS, include_usage))

    async def _stream(self, request: web.Request, chunks: list[dict[str, Any]]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8",
                                               "x-request-id": "req_fake_stream"})
        await response.prepare(request)
        try:
            for i, chunk in enumerate(chunks):
                await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                if i == 0 and self.chunk_gate is not None:
                    gate = self.chunk_gate
                    deadline = time.monotonic() + 10
                    while not gate.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110 - a thread's Event
                        await asyncio.sleep(0.005)
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.stream_cancelled.set()
            raise
        return response

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        script = self._next_script()
        if script is not None:
            return await self._scripted(script)
        return web.json_response({
            "id": "cmpl-fake", "object": "text_completion", "created": 1764201600, "model": body["model"],
            "choices": [{"text": " world", "index": 0, "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
        })

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        script = self._next_script()
        if script is not None:
            return await self._scripted(script)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response({
            "object": "list", "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(inputs))],
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        })

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.json_response({"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"}]})
