from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from core.providers.bedrock.provider import BedrockProvider
from core.providers.registry import ProviderDeps
from core.security.ssrf import SsrfGuard
from core.settings import Settings
from core.transport.aiohttp_client import AiohttpUpstreamClient
from tests.fakes.bedrock_upstream import FakeBedrock
from tests.providers.bedrock.support import ACCESS_KEY, SECRET_KEY


@pytest.fixture(scope="session")
def fake_bedrock_server() -> Iterator[FakeBedrock]:
    fake = FakeBedrock().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_bedrock(fake_bedrock_server: FakeBedrock) -> FakeBedrock:
    fake_bedrock_server.reset()
    fake_bedrock_server.allow(ACCESS_KEY, SECRET_KEY)
    return fake_bedrock_server


@pytest.fixture
async def upstream() -> AsyncIterator[AiohttpUpstreamClient]:
    client = AiohttpUpstreamClient(max_connections=20, connect_timeout_s=5, read_timeout_s=10)
    yield client
    await client.aclose()


ProviderFactory = Callable[..., BedrockProvider]


@pytest.fixture
def make_provider(upstream: AiohttpUpstreamClient) -> ProviderFactory:
    def make(environ: dict[str, str] | None = None, guard: SsrfGuard | None = None) -> BedrockProvider:
        deps = ProviderDeps(upstream=upstream, guard=guard or SsrfGuard(["127.0.0.0/8", "localhost"]),
                            settings=Settings())
        return BedrockProvider(provider_id="bedrock", deps=deps, environ=environ if environ is not None else {})

    return make
