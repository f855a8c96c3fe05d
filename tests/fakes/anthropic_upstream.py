"""A fake Anthropic Messages API: JSON and SSE (the documented event sequence), tool use, count_tokens."""

from __future__ import annotations

import threading
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import ServedFake, ThreadedServer

API_KEY = "sk-ant-fake-key-0001"


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps(payload) + b"\n\n"


class FakeAnthropic(ServedFake):
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count)
        self._server = ThreadedServer(app)

    @property
    def url(self) -> str:
        return f"{self._server.url}/v1"

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.headers.clear()

    def _check(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-api-key") != API_KEY:
            return web.json_response({"type": "error", "error": {"type": "authentication_error",
                                                                 "message": "invalid x-api-key"}}, status=401)
        if not request.headers.get("anthropic-version"):
            return web.json_response({"type": "error", "error": {"type": "invalid_request_error",
                                                                 "message": "anthropic-version header is required"}},
                                     status=400)
        return None

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        with self._lock:
            self.received.append(body)
            self.headers.append({k.lower(): v for k, v in request.headers.items()})
        refused = self._check(request)
        if refused is not None:
            return refused
        for field in ("model", "messages", "max_tokens"):
            if field not in body:
                return web.json_response({"type": "error", "error": {"type": "invalid_request_error",
                                                                     "message": f"{field}: Field required"}},
                                         status=400)
        wants_tool = bool(body.get("tools")) and "weather" in orjson.dumps(body["messages"][-1]).decode()
        if not body.get("stream"):
            content: list[dict[str, Any]] = [{"type": "text", "text": "Hello from Claude."}]
            stop = "end_turn"
            if wants_tool:
                content = [{"type": "tool_use", "id": "toolu_01", "name": body["tools"][0]["name"],
                            "input": {"city": "Paris"}}]
                stop = "tool_use"
            return web.json_response({"id": "msg_fake01", "type": "message", "role": "assistant",
                                      "model": body["model"], "content": content, "stop_reason": stop,
                                      "stop_sequence": None,
                                      "usage": {"input_tokens": 12, "output_tokens": 5,
                                                "cache_read_input_tokens": 0}})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_event("message_start", {"type": "message_start", "message": {
            "id": "msg_fakestream", "type": "message", "role": "assistant", "model": body["model"], "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 1}}}))
        await response.write(_event("ping", {"type": "ping"}))
        if wants_tool:
            await response.write(_event("content_block_start", {"type": "content_block_start", "index": 0,
                                                                "content_block": {"type": "tool_use", "id": "toolu_02",
                                                                                  "name": body["tools"][0]["name"],
                                                                                  "input": {}}}))
            for part in ('{"city":', ' "Paris"}'):
                await response.write(_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                                    "delta": {"type": "input_json_delta",
                                                                              "partial_json": part}}))
            stop = "tool_use"
        else:
            await response.write(_event("content_block_start", {"type": "content_block_start", "index": 0,
                                                                "content_block": {"type": "text", "text": ""}}))
            for word in ("Hello", " from", " Claude", "."):
                await response.write(_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                                    "delta": {"type": "text_delta", "text": word}}))
            stop = "end_turn"
        await response.write(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        await response.write(_event("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 6}}))
        await response.write(_event("message_stop", {"type": "message_stop"}))
        await response.write_eof()
        return response

    async def _count(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        with self._lock:
            self.received.append(body)
        refused = self._check(request)
        if refused is not None:
            return refused
        return web.json_response({"input_tokens": len(orjson.dumps(body["messages"])) // 4})
