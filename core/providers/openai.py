"""OpenAI, and any OpenAI-compatible host (``x-portkey-custom-host``, groq, together-ai, ...): pass-through.

The request body is sent as the client wrote it — params the gateway does not know (new OpenAI params,
compatible hosts' extensions) keep working, unlike Portkey 1.15.2 which drops them. Responses, streams included,
are relayed unchanged; only errors are reshaped into the provider error form.
"""

from __future__ import annotations

from core.providers.base import Operation, ProviderBase, ProviderRequest, ProviderResult
from core.providers.http import error_result, forwarded_headers, passthrough_headers, streamed_result
from core.providers.registry import ProviderDeps

#: Client headers with an OpenAI meaning, and the Portkey aliases that set them.
_OPENAI_HEADERS = {
    "openai-organization": ("x-portkey-openai-organization", "openai-organization"),
    "openai-project": ("x-portkey-openai-project", "openai-project"),
    "openai-beta": ("x-portkey-openai-beta", "openai-beta"),
}
_OPTION_HEADERS = {"openai-organization": "openai_organization", "openai-project": "openai_project"}


class OpenAIProvider(ProviderBase):
    def __init__(self, *, provider_id: str, deps: ProviderDeps, base_url: str) -> None:
        self.id = provider_id
        self._upstream = deps.upstream
        self._base_url = base_url.rstrip("/")

    def _url(self, request: ProviderRequest) -> str:
        base = request.target.custom_host or self._base_url
        url = f"{base}/{request.operation.path}"
        return f"{url}?{request.query}" if request.query else url

    def _headers(self, request: ProviderRequest, *, has_body: bool) -> dict[str, str]:
        target = request.target
        headers = forwarded_headers(target.forward_headers, request.client_headers)
        if has_body:
            headers["content-type"] = "application/json"
        if target.api_key:
            headers["authorization"] = f"Bearer {target.api_key}"
        for upstream_name, sources in _OPENAI_HEADERS.items():
            value = next((request.client_headers[s] for s in sources if s in request.client_headers), None)
            option = _OPTION_HEADERS.get(upstream_name)
            if value is None and option:
                value = target.option(option)
            if value:
                headers[upstream_name] = value
        return headers

    async def _call(self, request: ProviderRequest) -> ProviderResult:
        has_body = request.operation is not Operation.MODELS
        response = await self._upstream.send(
            "POST" if has_body else "GET",
            self._url(request),
            headers=self._headers(request, has_body=has_body),
            body=request.encoded_body() if has_body else None,
        )
        if not 200 <= response.status < 300:
            return await error_result(self.id, response)
        content_type = response.header("content-type") or ""
        if request.stream and content_type.startswith("text/event-stream"):
            return streamed_result(self.id, response, response.iter_chunks())
        return ProviderResult(
            status=response.status,
            headers=passthrough_headers(response.headers),
            provider=self.id,
            body=await response.read(),
            media_type=content_type or "application/json",
        )

    async def chat(self, request: ProviderRequest) -> ProviderResult:
        return await self._call(request)

    async def completion(self, request: ProviderRequest) -> ProviderResult:
        return await self._call(request)

    async def embed(self, request: ProviderRequest) -> ProviderResult:
        return await self._call(request)

    async def list_models(self, request: ProviderRequest) -> ProviderResult:
        return await self._call(request)
