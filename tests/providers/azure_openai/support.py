"""Builders shared by the azure-openai provider tests: targets, requests, providers, and an in-memory upstream that
records what the provider sends (golden request tests) and answers with canned bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from core.config.target import Target
from core.credentials.azure import AzureIdentityPool
from core.providers.azure_openai import AzureOpenAIProvider
from core.providers.base import Operation, ProviderRequest, ProviderResult
from core.providers.registry import ProviderDeps
from core.security.ssrf import SsrfGuard
from core.settings import Settings
from core.transport.base import UpstreamClient

OPERATIONS = {"chat": Operation.CHAT, "completion": Operation.COMPLETION, "embedding": Operation.EMBEDDING}


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass
class CannedResponse:
    status: int = 200
    body: bytes = b"{}"
    parts: list[bytes] | None = None
    headers: list[tuple[str, str]] = field(default_factory=lambda: [("content-type", "application/json")])
    closed: bool = False

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    async def read(self) -> bytes:
        return self.body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for part in self.parts or []:
            yield part

    async def aclose(self) -> None:
        self.closed = True


class RecordingUpstream:
    """An UpstreamClient that records each request and answers with the queued responses (default: 200 ``{}``)."""

    def __init__(self, *responses: CannedResponse) -> None:
        self.sent: list[Sent] = []
        self.responses = list(responses)

    async def send(self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
                   ) -> CannedResponse:
        self.sent.append(Sent(method, url, dict(headers), body))
        return self.responses.pop(0) if self.responses else CannedResponse()

    async def aclose(self) -> None:
        return None


def sse(*events: Any) -> CannedResponse:
    parts = [b"data: " + (e.encode() if isinstance(e, str) else orjson.dumps(e)) + b"\n\n" for e in events]
    return CannedResponse(parts=parts, headers=[("content-type", "text/event-stream")])


def make_provider(upstream: UpstreamClient | RecordingUpstream, identities: AzureIdentityPool | None = None
                  ) -> AzureOpenAIProvider:
    deps = ProviderDeps(upstream=cast(UpstreamClient, upstream), guard=SsrfGuard(["localhost", "127.0.0.0/8", "::1"]),
                        settings=Settings())
    if identities is None:
        identities = AzureIdentityPool(provider="azure-openai", environ={})
    return AzureOpenAIProvider(provider_id="azure-openai", deps=deps, identities=identities)


def make_target(options: Mapping[str, Any] | None = None, *, api_key: str | None = None,
                custom_host: str | None = None, forward_headers: tuple[str, ...] = ()) -> Target:
    return Target(provider="azure-openai", api_key=api_key, custom_host=custom_host, forward_headers=forward_headers,
                  options=dict(options or {}))


def make_request(target: Target, body: dict[str, Any], *, operation: Operation = Operation.CHAT, query: str = "",
                 client_headers: Mapping[str, str] | None = None) -> ProviderRequest:
    return ProviderRequest(operation=operation, body=body, target=target, client_headers=dict(client_headers or {}),
                           trace_id="trace-test", raw_body=orjson.dumps(body), query=query)


async def collect(chunks: AsyncIterator[bytes] | None) -> list[bytes]:
    assert chunks is not None
    return [chunk async for chunk in chunks]


def body_of(result: ProviderResult) -> Any:
    assert result.body is not None
    return orjson.loads(result.body)


def events(chunks: list[bytes]) -> list[Any]:
    """Decoded ``data:`` payloads of an OpenAI SSE byte stream ("[DONE]" kept as a string)."""
    out: list[Any] = []
    for event in b"".join(chunks).split(b"\n\n"):
        if not event.strip():
            continue
        assert event.startswith(b"data: "), event
        payload = event[len(b"data: "):]
        out.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
    return out
