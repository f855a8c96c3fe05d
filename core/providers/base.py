"""The Provider protocol, the request/result types every adapter speaks, and shared response helpers.

A provider owns the endpoint, credentials and error mapping of one vendor; translation between OpenAI's format
and the vendor's lives in separate modules the provider calls. Shared code never branches on provider names: it
looks a provider up in the :class:`~core.providers.registry.ProviderRegistry` and calls the method for the
operation (:attr:`Operation.method`).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from core.config.target import Target
from core.errors import UnsupportedOperationError


class Operation(enum.Enum):
    """An OpenAI-API operation; ``method`` is the Provider method that serves it."""

    CHAT = ("chat", "chat/completions")
    COMPLETION = ("completion", "completions")
    EMBEDDING = ("embed", "embeddings")
    MODELS = ("list_models", "models")
    COUNT_TOKENS = ("count_tokens", "messages/count_tokens")

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path


@dataclass(slots=True)
class ProviderRequest:
    """One attempt at one target. ``body`` already has the target's ``override_params`` merged in.

    ``raw_body`` is the client's original bytes when ``body`` is unchanged, so pass-through providers can send
    them without re-encoding.
    """

    operation: Operation
    body: dict[str, Any]
    target: Target
    client_headers: Mapping[str, str]
    trace_id: str
    raw_body: bytes | None = None
    query: str = ""

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    def encoded_body(self) -> bytes:
        return self.raw_body if self.raw_body is not None else orjson.dumps(self.body)


@dataclass(slots=True)
class ProviderResult:
    """What a provider answered: either a whole body or a stream of OpenAI-format SSE bytes.

    Non-2xx results carry an OpenAI-shaped error body with a ``provider`` field. ``aclose`` releases the upstream
    connection of a result the caller will not send on (a retry replaced it, the client went away).
    """

    status: int
    headers: list[tuple[str, str]]
    provider: str
    body: bytes | None = None
    chunks: AsyncIterator[bytes] | None = None
    media_type: str = "application/json"
    #: Facts for the log record only (e.g. which remote gateway served it); never sent to the client.
    annotations: dict[str, Any] = field(default_factory=dict)
    _closer: Any = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    async def aclose(self) -> None:
        if self._closer is not None:
            await self._closer()
            self._closer = None


class Provider(Protocol):
    """One LLM vendor. Each method serves one :class:`Operation`; unsupported ones raise a clear 400."""

    id: str

    async def chat(self, request: ProviderRequest) -> ProviderResult: ...

    async def completion(self, request: ProviderRequest) -> ProviderResult: ...

    async def embed(self, request: ProviderRequest) -> ProviderResult: ...

    async def list_models(self, request: ProviderRequest) -> ProviderResult: ...

    async def count_tokens(self, request: ProviderRequest) -> ProviderResult: ...


class ProviderBase:
    """Default methods: every operation unsupported until a subclass serves it."""

    id: str = "unknown"

    def _unsupported(self, request: ProviderRequest) -> ProviderResult:
        raise UnsupportedOperationError(
            f"{request.operation.path} is not supported by {self.id}", param="x-portkey-provider"
        )

    async def chat(self, request: ProviderRequest) -> ProviderResult:
        return self._unsupported(request)

    async def completion(self, request: ProviderRequest) -> ProviderResult:
        return self._unsupported(request)

    async def embed(self, request: ProviderRequest) -> ProviderResult:
        return self._unsupported(request)

    async def list_models(self, request: ProviderRequest) -> ProviderResult:
        return self._unsupported(request)

    async def count_tokens(self, request: ProviderRequest) -> ProviderResult:
        return self._unsupported(request)


class RelayingProvider(ProviderBase):
    """A provider that speaks OpenAI's API itself (OpenAI, a remote Skyrelay): chat, completions, embeddings
    and models are one call to the same-named path, made by :meth:`_call`."""

    async def _call(self, request: ProviderRequest) -> ProviderResult:
        raise NotImplementedError

    async def chat(self, request: ProviderRequest) -> ProviderResult:
        return await self._call(request)

    async def completion(self, request: ProviderRequest) -> ProviderResult:
        return await self._call(request)

    async def embed(self, request: ProviderRequest) -> ProviderResult:
        return await self._call(request)

    async def list_models(self, request: ProviderRequest) -> ProviderResult:
        return await self._call(request)


def provider_error_body(
    provider: str,
    message: str,
    *,
    error_type: str | None = None,
    param: str | None = None,
    code: str | int | None = None,
) -> bytes:
    """Portkey's provider error shape: OpenAI's error object, message prefixed with the provider, plus provider."""
    return orjson.dumps(
        {
            "error": {
                "message": f"{provider} error: {message}",
                "type": error_type,
                "param": param,
                "code": code,
            },
            "provider": provider,
        }
    )
