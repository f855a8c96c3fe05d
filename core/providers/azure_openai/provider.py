"""The azure-openai provider: OpenAI's pass-through call with Azure's URLs, credentials and response quirks.

Chat, completions and embeddings, buffered and streamed, on the deployments API or the v1 API
(:mod:`~core.providers.azure_openai.endpoint`); auth by api key, a caller's Entra token, or an Entra token of an
identity (:mod:`~core.providers.azure_openai.auth`, tokens cached in :mod:`core.credentials.azure`). A 401 to an
identity token drops that token and retries the call once with a fresh one. Portkey's ``azure_model_name`` is
accepted and, as in Portkey's open-source gateway, not sent upstream. Listing models is not served: Azure's model
list describes the resource's base models, not the deployments a call can use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import orjson

from core.credentials.azure import AzureIdentityPool
from core.providers.azure_openai.auth import AzureAuthResolver
from core.providers.azure_openai.endpoint import resolve_endpoint, v1_body
from core.providers.azure_openai.errors import azure_error_body
from core.providers.azure_openai.response import normalize_completion
from core.providers.azure_openai.stream import decode_stream
from core.providers.base import ProviderRequest, ProviderResult
from core.providers.openai import OpenAIProvider
from core.providers.registry import ProviderDeps
from core.transport.base import UpstreamResponse

_AZURE_CLIENT_HEADERS = {"openai-beta": ("x-portkey-openai-beta", "openai-beta")}


class AzureOpenAIProvider(OpenAIProvider):
    _client_headers = _AZURE_CLIENT_HEADERS

    def __init__(self, *, provider_id: str, deps: ProviderDeps, identities: AzureIdentityPool | None = None) -> None:
        super().__init__(provider_id=provider_id, deps=deps, base_url="https://openai.azure.com")
        self._identities = AzureIdentityPool(provider=provider_id) if identities is None else identities
        self._auth = AzureAuthResolver(provider_id, self._identities, deps.guard)
        self._map_error = partial(azure_error_body, provider_id)

    def _url(self, request: ProviderRequest) -> str:
        return resolve_endpoint(request.target, request.operation, request.query).url

    def _body(self, request: ProviderRequest) -> bytes:
        model = resolve_endpoint(request.target, request.operation, request.query).body_model
        if model is None or request.body.get("model") == model:
            return request.encoded_body()
        return orjson.dumps(v1_body(request.body, model))

    async def _exchange(self, request: ProviderRequest) -> UpstreamResponse:
        url = self._url(request)
        auth = await self._auth.resolve(request.target, url)
        response = await self._send(request, auth.headers)
        if response.status != 401 or auth.source is None:
            return response
        await response.aclose()
        auth.source.invalidate(auth.token)
        fresh = await self._auth.resolve(request.target, url)
        return await self._send(request, fresh.headers)

    def _stream_chunks(self, request: ProviderRequest, response: UpstreamResponse) -> AsyncIterator[bytes]:
        return decode_stream(self.id, request.operation, response.iter_chunks())

    def _response_body(self, request: ProviderRequest, body: bytes) -> bytes:
        return normalize_completion(request.operation, body)

    async def list_models(self, request: ProviderRequest) -> ProviderResult:
        return self._unsupported(request)

    async def aclose(self) -> None:
        """Close the identity pool's session (the gateway calls this at shutdown)."""
        await self._identities.aclose()
