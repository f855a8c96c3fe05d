"""The direct Anthropic API (api.anthropic.com): OpenAI chat ↔ Messages through the shared translation.

Auth is the caller's key (``Authorization`` or a virtual key) sent as ``x-api-key``; ``anthropic-version`` comes
from the client header, ``x-portkey-anthropic-version`` or the ``anthropic_version`` option (default 2023-06-01),
and ``anthropic-beta`` flags are forwarded as a header. ``/v1/messages/count_tokens`` is served too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from core.providers.anthropic_messages.request import chat_to_messages
from core.providers.anthropic_messages.response import messages_to_chat
from core.providers.anthropic_messages.stream import MessagesStreamTranslator, translate_messages_stream
from core.providers.base import ProviderBase, ProviderRequest, ProviderResult
from core.providers.http import error_result, forwarded_headers, passthrough_headers, streamed_result
from core.providers.registry import ProviderDeps

DEFAULT_VERSION = "2023-06-01"
BASE_URL = "https://api.anthropic.com/v1"


def _first(request: ProviderRequest, *names: str) -> str | None:
    return next((request.client_headers[n] for n in names if request.client_headers.get(n)), None)


def _strict(request: ProviderRequest) -> bool:
    return request.client_headers.get("x-portkey-strict-open-ai-compliance", "").strip().lower() != "false"


class AnthropicProvider(ProviderBase):
    def __init__(self, *, provider_id: str, deps: ProviderDeps, clock: Callable[[], float] = time.time) -> None:
        self.id = provider_id
        self._upstream = deps.upstream
        self._clock = clock

    def _headers(self, request: ProviderRequest) -> dict[str, str]:
        headers = forwarded_headers(request.target.forward_headers, request.client_headers)
        headers["content-type"] = "application/json"
        version = (_first(request, "anthropic-version", "x-portkey-anthropic-version")
                   or request.target.option("anthropic_version") or DEFAULT_VERSION)
        headers["anthropic-version"] = str(version)
        beta = _first(request, "anthropic-beta", "x-portkey-anthropic-beta") or request.target.option("anthropic_beta")
        if beta:
            headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
        if request.target.api_key:
            headers["x-api-key"] = request.target.api_key
        return headers

    def _url(self, request: ProviderRequest, path: str) -> str:
        return f"{request.target.custom_host or BASE_URL}/{path}"

    async def chat(self, request: ProviderRequest) -> ProviderResult:
        model = str(request.body.get("model"))
        body = chat_to_messages(request.body, model=model, stream=True if request.stream else None)
        response = await self._upstream.send("POST", self._url(request, "messages"), headers=self._headers(request),
                                             body=orjson.dumps(body))
        if not 200 <= response.status < 300:
            return await error_result(self.id, response)
        created = int(self._clock())
        if request.stream:
            translator = MessagesStreamTranslator(provider=self.id, model=model, created=created,
                                                  strict=_strict(request))
            return streamed_result(self.id, response, translate_messages_stream(response.iter_chunks(), translator))
        data = orjson.loads(await response.read())
        chat = messages_to_chat(data, provider=self.id, model=model, created=created, strict=_strict(request))
        return ProviderResult(status=response.status, headers=passthrough_headers(response.headers),
                              provider=self.id, body=orjson.dumps(chat))

    async def count_tokens(self, request: ProviderRequest) -> ProviderResult:
        body = chat_to_messages(request.body, model=str(request.body.get("model")))
        body.pop("max_tokens", None)
        response = await self._upstream.send("POST", self._url(request, "messages/count_tokens"),
                                             headers=self._headers(request), body=orjson.dumps(body))
        if not 200 <= response.status < 300:
            return await error_result(self.id, response)
        return ProviderResult(status=response.status, headers=passthrough_headers(response.headers),
                              provider=self.id, body=await response.read())
