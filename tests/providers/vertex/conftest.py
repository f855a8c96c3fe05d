"""Loopback servers for the Vertex provider tests: fake Google OAuth, a fake Vertex, and a provider wired to them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from core.config.target import Target
from core.providers.base import Operation, ProviderRequest
from core.providers.registry import ProviderDeps
from core.providers.vertex.provider import VertexProvider
from core.security.ssrf import SsrfGuard
from core.settings import Settings
from core.transport.factory import create_upstream_client
from tests.fakes.gcp_identity import FakeGoogleOAuth, IssuedTokens, make_service_account_key
from tests.fakes.vertex_upstream import FakeVertex


@pytest.fixture(scope="module")
def issued_tokens() -> IssuedTokens:
    return IssuedTokens()


@pytest.fixture(scope="module")
def google_oauth(issued_tokens: IssuedTokens) -> Iterator[FakeGoogleOAuth]:
    fake = FakeGoogleOAuth(issued_tokens).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def vertex_server(issued_tokens: IssuedTokens) -> Iterator[FakeVertex]:
    fake = FakeVertex(issued_tokens).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_vertex(vertex_server: FakeVertex) -> FakeVertex:
    vertex_server.reset()
    return vertex_server


@pytest.fixture
def service_account(google_oauth: FakeGoogleOAuth) -> dict[str, Any]:
    """A fresh key (its own token cache entry) registered with the fake OAuth endpoint."""
    info, public_key = make_service_account_key(google_oauth.token_uri)
    google_oauth.register(info["client_email"], public_key)
    return info


@pytest.fixture
async def provider() -> AsyncIterator[VertexProvider]:
    settings = Settings()
    guard = SsrfGuard(settings.ssrf_allow)
    upstream = create_upstream_client(settings, guard)
    yield VertexProvider(provider_id="vertex-ai", deps=ProviderDeps(upstream=upstream, guard=guard,
                                                                    settings=settings))
    await upstream.aclose()


RequestFactory = Callable[..., ProviderRequest]


@pytest.fixture
def make_request(fake_vertex: FakeVertex) -> RequestFactory:
    """A chat (or other operation) request aimed at the fake Vertex, with target options as keyword arguments."""

    def build(body: dict[str, Any], *, operation: Operation = Operation.CHAT, api_key: str | None = None,
              custom_host: str | None = "fake", headers: dict[str, str] | None = None,
              forward_headers: tuple[str, ...] = (), **options: Any) -> ProviderRequest:
        options.setdefault("vertex_region", "us-central1")
        target = Target(provider="vertex-ai", api_key=api_key,
                        custom_host=fake_vertex.url if custom_host == "fake" else custom_host,
                        forward_headers=forward_headers, options=options)
        return ProviderRequest(operation, body, target, headers or {}, "trace-test")

    return build
