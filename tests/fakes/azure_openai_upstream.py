"""A fake Azure OpenAI resource speaking Azure's wire format on loopback.

Routes: ``POST /openai/deployments/{deployment}/{chat/completions|completions|embeddings}?api-version=...`` and the v1
API ``POST /openai/v1/{...}`` (the body's model names the deployment). Auth: the resource's ``api-key``, or an
``Authorization: Bearer`` token that the fake identity endpoints issued for https://cognitiveservices.azure.com
(:class:`~tests.fakes.azure_identity.TokenLedger`); anything else is Azure's 401.

Answers carry Azure's extras: ``prompt_filter_results``, per-choice ``content_filter_results``, the prompt-annotation
chunk that opens a stream (empty id/model, ``choices: []``), usage only with ``stream_options.include_usage``.
Content decides the behaviour, as it does on Azure: a prompt containing "jailbreak" is refused (400
content_filter), one containing "violent" gets its output filtered (finish_reason content_filter; a filtered choice
has no message). A deployment in ``async_filter_deployments`` streams like Azure's asynchronous filter mode:
annotation chunks without ``delta``; the fake sends the filter verdict there as a bare annotation
(``finish_reason: null``) so tests pin the gateway's mapping. Requests with tools get a tool call until a tool
result is in the conversation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.azure_identity import TokenLedger
from tests.fakes.server import ServedFake, ThreadedServer

AUDIENCE = "https://cognitiveservices.azure.com"
CREATED = 1764201600
SAFE = {c: {"filtered": False, "severity": "safe"} for c in ("hate", "self_harm", "sexual", "violence")}
VIOLENT = {**SAFE, "violence": {"filtered": True, "severity": "medium"}}
PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": {**SAFE, "jailbreak": {"filtered": False,
                                                                                      "detected": False}}}]
BAD_KEY = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
           "for an active subscription and use a correct regional API endpoint for your resource.")
BAD_TOKEN = ("Unauthorized. Access token is missing, invalid, audience is incorrect "
             "(https://cognitiveservices.azure.com), or have expired.")


@dataclass
class Scripted:
    """One canned answer for the next request: a JSON body, or raw SSE ``stream`` parts (``[DONE]`` not added)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: list[bytes] | None = None


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class FakeAzureOpenAI(ServedFake):
    WORDS = ["Hello", " from", " Azure", "."]

    def __init__(self, api_key: str = "azure-key-0123456789", ledger: TokenLedger | None = None) -> None:
        self.api_key = api_key
        self.ledger = ledger or TokenLedger()
        self.deployments = {"gpt-4o": "gpt-4o-2024-11-20", "gpt-4o-async": "gpt-4o-2024-11-20",
                            "instruct": "gpt-35-turbo-instruct", "embed": "text-embedding-3-small"}
        self.async_filter_deployments = {"gpt-4o-async"}
        self.received: list[Received] = []
        self.scripts: list[Scripted] = []
        self._lock = threading.Lock()
        app = web.Application()
        for op in ("chat/completions", "completions", "embeddings"):
            app.router.add_post(f"/openai/deployments/{{deployment}}/{op}", self._handle)
            app.router.add_post(f"/openai/v1/{op}", self._handle)
        self._server = ThreadedServer(app)

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.scripts.clear()

    def enqueue(self, *scripts: Scripted) -> None:
        with self._lock:
            self.scripts.extend(scripts)

    # --- request handling ---------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw) if raw else {}
        with self._lock:
            self.received.append(Received(request.path, dict(request.query),
                                          {k.lower(): v for k, v in request.headers.items()}, body))
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        with self._lock:
            script = self.scripts.pop(0) if self.scripts else None
        v1 = request.path.startswith("/openai/v1/")
        if not v1 and not request.query.get("api-version"):
            return _error(404, "404", "Resource not found")
        deployment = str(body.get("model", "")) if v1 else request.match_info["deployment"]
        if deployment not in self.deployments:
            return _error(404, "DeploymentNotFound", "The API deployment for this resource does not exist. If you "
                          "created the deployment within the last 5 minutes, please wait a moment and try again.")
        if script is not None:
            return await self._scripted(request, script)
        model = self.deployments[deployment]
        if request.path.endswith("/embeddings"):
            return web.json_response(embeddings(model, body))
        prompt = orjson.dumps(body.get("messages") or body.get("prompt") or "").decode().lower()
        if "jailbreak" in prompt:
            return web.json_response(PROMPT_REFUSED, status=400)
        chat = request.path.endswith("/chat/completions")
        outcome = "violent" if "violent" in prompt else "tool" if chat and _wants_tool(body) else "text"
        if not body.get("stream"):
            return web.json_response(chat_completion(model, body, outcome) if chat else completion(model, outcome))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = chat_chunks(model, body, outcome, include_usage, async_filter=deployment in
                             self.async_filter_deployments) if chat else completion_chunks(model, outcome)
        return await _sse(request, [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"])

    def _authenticate(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("api-key")
        if key is not None:
            return None if key == self.api_key else _error(401, "401", BAD_KEY)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.ledger.accepts(token.strip(), AUDIENCE):
            return None
        return _error(401, "401", BAD_TOKEN)

    async def _scripted(self, request: web.Request, script: Scripted) -> web.StreamResponse:
        if script.stream is None:
            return web.json_response(script.body, status=script.status, headers=script.headers)
        return await _sse(request, script.stream)


async def _sse(request: web.Request, parts: list[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8",
                                           "apim-request-id": "apim-fake-1", "x-ms-region": "Sweden Central"})
    await response.prepare(request)
    for part in parts:
        await response.write(part)
    await response.write_eof()
    return response


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _wants_tool(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    return bool(body.get("tools")) and body.get("tool_choice") != "none" and not any(
        m.get("role") == "tool" for m in messages)


def _tool_name(body: dict[str, Any]) -> str:
    return str(body["tools"][0]["function"]["name"])


PROMPT_REFUSED = {"error": {
    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
               "Please modify your prompt and retry.",
    "type": None, "param": "prompt", "code": "content_filter", "status": 400,
    "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
        **SAFE, "jailbreak": {"filtered": True, "detected": True}}}}}


def _answer(body: dict[str, Any]) -> str:
    has_tool_result = any(m.get("role") == "tool" for m in body.get("messages") or [])
    return "It is sunny in Paris." if has_tool_result else "".join(FakeAzureOpenAI.WORDS)


def chat_completion(model: str, body: dict[str, Any], outcome: str) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "logprobs": None}
    if outcome == "violent":
        choice.update(finish_reason="content_filter", content_filter_results=VIOLENT)
    elif outcome == "tool":
        choice.update(finish_reason="tool_calls", content_filter_results={}, message={
            "role": "assistant", "content": None, "refusal": None, "annotations": [],
            "tool_calls": [{"id": "call_azure_1", "type": "function", "function": {
                "name": _tool_name(body), "arguments": '{"city":"Paris"}'}}]})
    else:
        choice.update(finish_reason="stop", content_filter_results=SAFE, message={
            "role": "assistant", "content": _answer(body), "refusal": None, "annotations": []})
    return {"id": "chatcmpl-azure-1", "object": "chat.completion", "created": CREATED, "model": model,
            "system_fingerprint": "fp_azure", "prompt_filter_results": PROMPT_FILTER, "choices": [choice],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                    "accepted_prediction_tokens": 0,
                                                    "rejected_prediction_tokens": 0}}}


def chat_chunks(model: str, body: dict[str, Any], outcome: str, include_usage: bool, *, async_filter: bool
                ) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-azure-stream", "object": "chat.completion.chunk", "created": CREATED, "model": model,
            "system_fingerprint": "fp_azure"}
    annotation = {"id": "", "object": "", "created": 0, "model": ""}
    chunks: list[dict[str, Any]] = [{**annotation, "choices": [], "prompt_filter_results": PROMPT_FILTER}]

    def choice(delta: dict[str, Any], finish: str | None = None, /, **extra: Any) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None, **extra}]}

    filters: dict[str, Any] = {} if async_filter else {"content_filter_results": SAFE}
    chunks.append(choice({"role": "assistant", "content": "", "refusal": None}, content_filter_results={}))
    if outcome == "tool":
        chunks.append(choice({"tool_calls": [{"index": 0, "id": "call_azure_1", "type": "function", "function": {
            "name": _tool_name(body), "arguments": ""}}]}))
        for part in ('{"city"', ':"Paris"}'):
            chunks.append(choice({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
        chunks.append(choice({}, "tool_calls"))
    else:
        words = _answer(body).split(" ")[: 2 if outcome == "violent" else None]
        for i, word in enumerate(words):
            chunks.append(choice({"content": word if i == 0 else f" {word}"}, **filters))
        if outcome == "violent" and not async_filter:
            chunks.append(choice({}, "content_filter", content_filter_results=VIOLENT))
        elif outcome != "violent":
            chunks.append(choice({}, "stop"))
    if async_filter:
        verdict = VIOLENT if outcome == "violent" else SAFE
        chunks.append({**annotation, "choices": [{"index": 0, "finish_reason": None, "content_filter_results":
                                                  verdict, "content_filter_offsets": {
                                                      "check_offset": 0, "start_offset": 0, "end_offset": 20}}]})
    if include_usage:
        chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5,
                                                        "total_tokens": 17}})
    return chunks


def completion(model: str, outcome: str) -> dict[str, Any]:
    choice: dict[str, Any] = {"text": " world", "index": 0, "logprobs": None, "finish_reason": "stop",
                              "content_filter_results": SAFE}
    if outcome == "violent":
        choice.update(text="", finish_reason="content_filter", content_filter_results=VIOLENT)
    return {"id": "cmpl-azure-1", "object": "text_completion", "created": CREATED, "model": model,
            "prompt_filter_results": PROMPT_FILTER, "choices": [choice],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}}


def completion_chunks(model: str, outcome: str) -> list[dict[str, Any]]:
    base = {"id": "cmpl-azure-stream", "object": "text_completion", "created": CREATED, "model": model}
    finish = "content_filter" if outcome == "violent" else "stop"
    return [{"id": "", "object": "", "created": 0, "model": "", "choices": [], "prompt_filter_results": PROMPT_FILTER},
            {**base, "choices": [{"text": " world", "index": 0, "logprobs": None, "finish_reason": None,
                                  "content_filter_results": SAFE}]},
            {**base, "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": finish}]}]


def embeddings(model: str, body: dict[str, Any]) -> dict[str, Any]:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": [0.01 * (i + 1), -0.02, 0.03]}
                     for i in range(len(inputs))],
            "usage": {"prompt_tokens": 4, "total_tokens": 4}}
