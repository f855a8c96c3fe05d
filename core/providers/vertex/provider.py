"""The ``vertex-ai`` provider: where a Vertex call goes, with which Google identity, and how its answer comes back.

Endpoint: ``https://{region}-aiplatform.googleapis.com`` (``aiplatform.googleapis.com`` for ``global``), or the
target's custom host, + ``/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{method}``.
The publisher comes from the model's prefix as in Portkey (``anthropic.claude-…`` → anthropic; ``google.…`` or no
known prefix → google); a bare ``claude-…`` model is Anthropic's too.

Identity, first match wins:

1. the target's ``vertex_service_account_json`` (a JSON string from the header, an object from a config or virtual
   key), exchanged for a cached token;
2. the caller's ``Authorization: Bearer`` token used as the OAuth token, as Portkey does — when it is a Google token
   (``ya29.…`` or a self-signed JWT), or whatever it is when the call goes to a caller-chosen custom host;
3. the gateway's own Application Default Credentials.

A bearer that is not a Google token cannot succeed at Google, and OpenAI SDKs always send one (a placeholder key), so
towards googleapis.com it gives way to the gateway's identity instead of producing a certain 401. The gateway's own
token is only ever sent to googleapis.com (or a loopback test double) — never to a caller-chosen custom host.
Project: ``vertex_project_id``, else the key's ``project_id``, else the ADC project. A 401 on a cached token
invalidates it and retries once with a fresh one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import orjson

from core.credentials.base import CredentialSource
from core.credentials.gcp import GcpIdentity, parse_service_account
from core.credentials.static import StaticHeaderCredential
from core.errors import InvalidRequestError, UnsupportedOperationError
from core.providers.base import ProviderBase, ProviderRequest, ProviderResult, provider_error_body
from core.providers.http import forwarded_headers, passthrough_headers, streamed_result
from core.providers.registry import ProviderDeps
from core.providers.vertex.claude import ClaudeOnVertex
from core.providers.vertex.embeddings import embedding_request, embedding_response
from core.providers.vertex.errors import vertex_error_result
from core.providers.vertex.gemini import GeminiChat
from core.transport.base import UpstreamResponse

#: Model prefixes Portkey reads as a publisher; the rest of the name is the model id.
_PUBLISHER_PREFIXES = frozenset({"google", "anthropic", "meta", "mistralai", "endpoints"})
_REGION = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9.:-]{0,127}$")


class ChatFamily(Protocol):
    """One publisher's chat endpoints and translations (Gemini, Claude)."""

    publisher: str

    def method(self, stream: bool) -> str: ...

    def request_body(self, request: ProviderRequest, model: str) -> dict[str, Any]: ...

    def response(self, data: Mapping[str, Any], request: ProviderRequest) -> dict[str, Any]: ...

    def stream(self, chunks: AsyncIterator[bytes], request: ProviderRequest) -> AsyncIterator[bytes]: ...


def split_model(model: str) -> tuple[str, str]:
    """(publisher, model id) for a Vertex model name."""
    prefix, dot, rest = model.partition(".")
    if dot and prefix in _PUBLISHER_PREFIXES:
        return prefix, rest
    if model.startswith("claude-"):
        return "anthropic", model
    return "google", model


def vertex_base_url(region: str) -> str:
    return "https://aiplatform.googleapis.com" if region == "global" else f"https://{region}-aiplatform.googleapis.com"


def _trusted_with_gateway_identity(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "googleapis.com" or host.endswith(".googleapis.com") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_google_token(token: str) -> bool:
    """A Google OAuth access token (``ya29.…``) or a self-signed service-account JWT — not an SDK placeholder key."""
    return token.startswith("ya29.") or (token.startswith("eyJ") and token.count(".") == 2)


@dataclass(frozen=True, slots=True)
class VertexLocation:
    base_url: str
    project: str
    region: str
    credential: CredentialSource
    #: False for the caller's own bearer token: retrying a 401 cannot fix it.
    refreshable: bool

    def model_url(self, publisher: str, model: str, method: str) -> str:
        return (f"{self.base_url}/v1/projects/{self.project}/locations/{self.region}/publishers/{publisher}"
                f"/models/{quote(model, safe='@')}:{method}")


class VertexProvider(ProviderBase):
    def __init__(self, *, provider_id: str, deps: ProviderDeps) -> None:
        self.id = provider_id
        self._upstream = deps.upstream
        self._guard = deps.guard
        self._identity = GcpIdentity(check_token_uri=self._check_caller_url)
        self._families: dict[str, ChatFamily] = {f.publisher: f for f in (GeminiChat(), ClaudeOnVertex())}

    async def aclose(self) -> None:
        """Called by the registry at shutdown: release the token sources' HTTP sessions."""
        await self._identity.aclose()

    async def chat(self, request: ProviderRequest) -> ProviderResult:
        publisher, model = split_model(str(request.body.get("model")))
        family = self._families.get(publisher)
        if family is None:
            raise UnsupportedOperationError(
                f"vertex-ai serves Gemini (google) and Claude (anthropic) chat models, not the {publisher} publisher",
                param="model",
            )
        body = orjson.dumps(family.request_body(request, model))  # a 400 for the input before any token work
        location = await self._locate(request)
        url = location.model_url(publisher, model, family.method(request.stream))
        response = await self._send(url, body, location, request)
        if not 200 <= response.status < 300:
            return await vertex_error_result(response)
        if request.stream:
            return streamed_result(self.id, response, family.stream(response.iter_chunks(), request))
        data = await self._json(response)
        if data is None:
            return self._unreadable(response)
        return self._result(response, family.response(data, request))

    async def embed(self, request: ProviderRequest) -> ProviderResult:
        publisher, model = split_model(str(request.body.get("model")))
        if publisher != "google":
            raise UnsupportedOperationError("vertex-ai embeddings are served by Google text-embedding models",
                                            param="model")
        body = orjson.dumps(embedding_request(request.body))
        location = await self._locate(request)
        response = await self._send(location.model_url(publisher, model, "predict"), body, location, request)
        if not 200 <= response.status < 300:
            return await vertex_error_result(response)
        data = await self._json(response)
        if data is None:
            return self._unreadable(response)
        encoding = request.body.get("encoding_format")
        return self._result(response, embedding_response(data, model=str(request.body.get("model")),
                                                         encoding_format=encoding))

    async def _locate(self, request: ProviderRequest) -> VertexLocation:
        target = request.target
        region = str(target.option("vertex_region") or "")
        if not _REGION.match(region):
            raise InvalidRequestError(
                "vertex-ai needs a region: set x-portkey-vertex-region (or vertex_region), e.g. us-central1 or global",
                param="vertex_region",
            )
        base_url = (target.custom_host or vertex_base_url(region)).rstrip("/")
        project = target.option("vertex_project_id")
        key = target.option("vertex_service_account_json")
        credential: CredentialSource
        if key is not None:
            info = parse_service_account(key)
            source = await self._identity.service_account(info)
            credential, refreshable, project = source, True, project or info.get("project_id")
        elif target.api_key and (_is_google_token(target.api_key) or not _trusted_with_gateway_identity(base_url)):
            credential, refreshable = StaticHeaderCredential.bearer(target.api_key), False
        else:
            if not _trusted_with_gateway_identity(base_url):
                raise InvalidRequestError(
                    "the gateway's own Google identity is only sent to googleapis.com; for a custom host send a "
                    "bearer token or vertex_service_account_json",
                    param="x-portkey-custom-host",
                )
            source = await self._identity.application_default()
            credential, refreshable, project = source, True, project or source.project_id
        project = str(project or "")
        if not _PROJECT.match(project):
            raise InvalidRequestError(
                "vertex-ai needs a project: set x-portkey-vertex-project-id (or vertex_project_id)",
                param="vertex_project_id",
            )
        return VertexLocation(base_url, project, region, credential, refreshable)

    async def _send(self, url: str, body: bytes, location: VertexLocation, request: ProviderRequest
                    ) -> UpstreamResponse:
        forwarded = forwarded_headers(request.target.forward_headers, request.client_headers)
        for attempt in range(2):
            auth = await location.credential.authorize("POST", url, {}, body)
            headers = {**forwarded, "content-type": "application/json", **auth}
            response = await self._upstream.send("POST", url, headers=headers, body=body)
            if response.status != 401 or not location.refreshable or attempt:
                return response
            await response.aclose()
            location.credential.invalidate()  # a revoked or rotated token: fetch a fresh one, once
        raise AssertionError("unreachable")

    async def _check_caller_url(self, url: str) -> None:
        """A caller-supplied key's token_uri gets the same SSRF checks as a custom host."""
        try:
            self._guard.check_url(url)
            await self._guard.check_resolution(url)
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"vertex_service_account_json token_uri refused: {exc.message}",
                                      param="vertex_service_account_json") from None

    @staticmethod
    async def _json(response: UpstreamResponse) -> Mapping[str, Any] | None:
        try:
            data = orjson.loads(await response.read())
        except orjson.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None

    def _result(self, response: UpstreamResponse, payload: Mapping[str, Any]) -> ProviderResult:
        return ProviderResult(status=response.status, headers=passthrough_headers(response.headers),
                              provider=self.id, body=orjson.dumps(payload))

    def _unreadable(self, response: UpstreamResponse) -> ProviderResult:
        return ProviderResult(status=502, headers=passthrough_headers(response.headers), provider=self.id,
                              body=provider_error_body(self.id, "unreadable response from Vertex AI",
                                                       error_type="upstream_error"))
