"""OpenAI, and any OpenAI-compatible host (``x-portkey-custom-host``, groq, together-ai, ...): pass-through.

The request body is sent as the client wrote it — params the gateway does not know (new OpenAI params,
compatible hosts' extensions) keep working, unlike Portkey 1.15.2 which drops them. Responses, streams included,
are relayed unchanged; only errors are reshaped into the provider error form.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

from core.errors import UpstreamConnectionError
from core.providers.base import Operation, ProviderRequest, ProviderResult, RelayingProvider
from core.providers.http import error_result, forwarded_headers, passthrough_headers, streamed_result
from core.providers.registry import ProviderDeps
from core.transport.base import UpstreamResponse

#: Client headers with an OpenAI meaning, and the Portkey aliases that set them.
_OPENAI_HEADERS = {
    "openai-organization": ("x-portkey-openai-organization", "openai-organization"),
    "openai-project": ("x-portkey-openai-project", "openai-project"),
    "openai-beta": ("x-portkey-openai-beta", "openai-beta"),
}
_OPTION_HEADERS = {"openai-organization": "openai_organization", "openai-project": "openai_project"}


class OpenAIProvider(RelayingProvider):
    """The pass-through call. Hosts that speak OpenAI's format behind another URL scheme or auth (Azure OpenAI)
    subclass it and override the hooks: ``_url``, ``_exchange`` (auth), ``_body``, ``_stream_chunks``,
    ``_response_body`` and ``_map_error``.
    """

    #: Client headers with an OpenAI meaning that this host receives, and the headers that set them.
    _client_headers: Mapping[str, tuple[str, ...]] = _OPENAI_HEADERS
    #: Rewrites a non-2xx body into the provider error shape; None = the generic mapping.
    _map_error: Callable[[bytes], bytes] | None = None

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
        for upstream_name, sources in self._client_headers.items():
            value = next((request.client_headers[s] for s in sources if s in request.client_headers), None)
            option = _OPTION_HEADERS.get(upstream_name)
            if value is None and option:
                value = target.option(option)
            if value:
                headers[upstream_name] = value
        return headers

    def _body(self, request: ProviderRequest) -> bytes:
        return request.encoded_body()

    async def _send(self, request: ProviderRequest, auth: Mapping[str, str]) -> UpstreamResponse:
        has_body = request.operation is not Operation.MODELS
        headers = self._headers(request, has_body=has_body)
        headers.update(auth)
        return await self._upstream.send(
            "POST" if has_body else "GET",
            self._url(request),
            headers=headers,
            body=self._body(request) if has_body else None,
        )

    async def _exchange(self, request: ProviderRequest) -> UpstreamResponse:
        """Send the call with its authorization: the caller's key as a bearer token."""
        key = request.target.api_key
        return await self._send(request, {"authorization": f"Bearer {key}"} if key else {})

    def _stream_chunks(self, request: ProviderRequest, response: UpstreamResponse) -> AsyncIterator[bytes]:
        return _until_done(self.id, response.iter_chunks())

    def _response_body(self, request: ProviderRequest, body: bytes) -> bytes:
        return body

    async def _call(self, request: ProviderRequest) -> ProviderResult:
        response = await self._exchange(request)
        if not 200 <= response.status < 300:
            return await error_result(self.id, response, self._map_error)
        content_type = response.header("content-type") or ""
        if request.stream and content_type.startswith("text/event-stream"):
            return streamed_result(self.id, response, self._stream_chunks(request, response))
        return ProviderResult(
            status=response.status,
            headers=passthrough_headers(response.headers),
            provider=self.id,
            body=self._response_body(request, await response.read()),
            media_type=content_type or "application/json",
        )


async def _until_done(provider: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Relay chunks as they come; a stream that ends without ``data: [DONE]`` was cut off and says so.

    A close-delimited body that is reset mid-stream looks like a normal end to the HTTP client; only the missing
    terminator tells, so the client gets an error event instead of a silently truncated answer.
    """
    tail = b""
    done = False
    async for chunk in chunks:
        if not done:
            window = tail + chunk
            done = window.find(b"[DONE]") != -1  # find, not `in`: measurably cheaper per chunk on CPython 3.11
            tail = window[-16:]
        yield chunk
    if not done:
        raise UpstreamConnectionError("the provider's stream ended before data: [DONE]", provider=provider,
                                      code="upstream_stream_truncated")

