"""Where the vertex-ai provider sends a call and with which identity, checked without a network: a recording
upstream client answers, and a stand-in plays the gateway's own (ADC) identity."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
import pytest

from core.errors import InvalidRequestError
from core.providers.registry import ProviderDeps
from core.providers.vertex.provider import VertexProvider
from core.security.ssrf import SsrfGuard
from core.settings import Settings
from tests.fakes.vertex_upstream import gemini_response
from tests.providers.vertex.conftest import RequestFactory

CHAT = {"model": "gemini-2.0-flash", "messages": [{"role": "user", "content": "Hi"}]}


class _RecordingUpstream:
    """Answers every call with a canned Gemini response and records where it was sent, without a network."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []

    async def send(self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None) -> Any:
        self.sent.append((url, dict(headers)))
        return _CannedResponse(orjson.dumps(gemini_response("gemini-2.0-flash", [{"text": "ok"}])))

    async def aclose(self) -> None:
        return None


class _CannedResponse:
    status = 200
    headers = [("content-type", "application/json")]

    def __init__(self, body: bytes) -> None:
        self._body = body

    def header(self, name: str) -> str | None:
        return "application/json" if name.lower() == "content-type" else None

    async def read(self) -> bytes:
        return self._body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        yield self._body

    async def aclose(self) -> None:
        return None


class _GatewayIdentity:
    """Stands in for the gateway's ADC identity: a fixed token and project."""

    project_id = "adc-project"

    def __init__(self) -> None:
        self.calls = 0

    async def application_default(self) -> _GatewayIdentity:
        self.calls += 1
        return self

    async def authorize(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        return {"authorization": "Bearer ya29.gateway-identity"}

    def invalidate(self) -> None:
        return None


@pytest.fixture
def offline() -> tuple[VertexProvider, _RecordingUpstream, _GatewayIdentity]:
    settings = Settings()
    upstream = _RecordingUpstream()
    provider = VertexProvider(provider_id="vertex-ai", deps=ProviderDeps(upstream=upstream,  # type: ignore[arg-type]
                                                                         guard=SsrfGuard(settings.ssrf_allow),
                                                                         settings=settings))
    identity = _GatewayIdentity()
    provider._identity = identity  # type: ignore[assignment]
    return provider, upstream, identity


@pytest.mark.parametrize(("region", "host"), [
    ("us-central1", "https://us-central1-aiplatform.googleapis.com"),
    ("europe-west4", "https://europe-west4-aiplatform.googleapis.com"),
    ("global", "https://aiplatform.googleapis.com"),
])
async def test_regional_and_global_hosts(
    offline: tuple[VertexProvider, _RecordingUpstream, _GatewayIdentity], make_request: RequestFactory,
    region: str, host: str,
) -> None:
    provider, upstream, _ = offline
    result = await provider.chat(make_request(CHAT, custom_host=None, vertex_region=region))

    assert result.status == 200
    url, headers = upstream.sent[-1]
    assert url == f"{host}/v1/projects/adc-project/locations/{region}/publishers/google/models/gemini-2.0-flash" \
                  ":generateContent"
    assert headers["authorization"] == "Bearer ya29.gateway-identity"


async def test_a_google_bearer_from_the_caller_is_the_oauth_token(
    offline: tuple[VertexProvider, _RecordingUpstream, _GatewayIdentity], make_request: RequestFactory,
) -> None:
    provider, upstream, identity = offline
    await provider.chat(make_request(CHAT, custom_host=None, api_key="ya29.callers-own", vertex_project_id="p1"))

    assert upstream.sent[-1][1]["authorization"] == "Bearer ya29.callers-own"
    assert identity.calls == 0


async def test_an_sdk_placeholder_key_gives_way_to_the_gateway_identity_at_google(
    offline: tuple[VertexProvider, _RecordingUpstream, _GatewayIdentity], make_request: RequestFactory,
) -> None:
    provider, upstream, _ = offline
    await provider.chat(make_request(CHAT, custom_host=None, api_key="sk-placeholder"))

    assert upstream.sent[-1][1]["authorization"] == "Bearer ya29.gateway-identity"


async def test_the_gateway_identity_never_goes_to_a_caller_chosen_host(
    offline: tuple[VertexProvider, _RecordingUpstream, _GatewayIdentity], make_request: RequestFactory,
) -> None:
    provider, upstream, identity = offline
    with pytest.raises(InvalidRequestError, match=r"only sent to googleapis\.com"):
        await provider.chat(make_request(CHAT, custom_host="https://proxy.example.com", vertex_project_id="p1"))
    assert upstream.sent == [] and identity.calls == 0

    await provider.chat(make_request(CHAT, custom_host="https://proxy.example.com", vertex_project_id="p1",
                                     api_key="proxy-key"))
    url, headers = upstream.sent[-1]
    assert url.startswith("https://proxy.example.com/v1/projects/p1/")
    assert headers["authorization"] == "Bearer proxy-key"
    assert identity.calls == 0


@pytest.mark.parametrize("options", [
    {"vertex_region": "evil.example.com/#"},
    {"vertex_region": ""},
    {"vertex_region": "us-central1", "vertex_project_id": "p/../../other"},
    {"vertex_region": "us-central1", "vertex_project_id": "x.example.com/?"},
])
async def test_region_and_project_are_validated_before_any_call(
    offline: tuple[VertexProvider, _RecordingUpstream, _GatewayIdentity], make_request: RequestFactory,
    options: dict[str, str],
) -> None:
    provider, upstream, _ = offline
    with pytest.raises(InvalidRequestError):
        await provider.chat(make_request(CHAT, custom_host=None, api_key="ya29.t", **options))
    assert upstream.sent == []
