"""Real loopback fakes for the azure-openai provider tests: a fake Azure OpenAI resource, fake identity endpoints
(App Service managed identity, IMDS, Entra over https) sharing one token ledger, and the real aiohttp client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from core.credentials.azure import AzureIdentityPool
from core.transport.aiohttp_client import AiohttpUpstreamClient
from tests.fakes.azure_identity import (
    AZURE_IDENTITY_VARIABLES,
    NO_IMDS,
    FakeAzureIdentity,
    ServicePrincipal,
    TokenLedger,
)
from tests.fakes.azure_openai_upstream import FakeAzureOpenAI

SERVICE_PRINCIPAL = ServicePrincipal("tenant-1", "client-1", client_secret="sp-secret-value-1")
WORKLOAD = ServicePrincipal("tenant-1", "workload-client", federated_token="k8s-service-account-jwt")


@pytest.fixture(autouse=True)
def no_ambient_azure_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test with no identity in the environment, and IMDS pointed at a refused loopback port."""
    for name in AZURE_IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in NO_IMDS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def azure_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeAzureIdentity, FakeAzureOpenAI]]:
    ledger = TokenLedger()
    identity = FakeAzureIdentity(tmp_path_factory.mktemp("entra-tls"), ledger).start()
    identity.add_principal(SERVICE_PRINCIPAL)
    identity.add_principal(WORKLOAD)
    azure = FakeAzureOpenAI(ledger=ledger).start()
    yield identity, azure
    azure.stop()
    identity.stop()


@pytest.fixture
def fake_identity(azure_servers: tuple[FakeAzureIdentity, FakeAzureOpenAI]) -> FakeAzureIdentity:
    azure_servers[0].reset()
    return azure_servers[0]


@pytest.fixture
def fake_azure(azure_servers: tuple[FakeAzureIdentity, FakeAzureOpenAI]) -> FakeAzureOpenAI:
    azure_servers[1].reset()
    return azure_servers[1]


@pytest.fixture
async def upstream() -> AsyncIterator[AiohttpUpstreamClient]:
    client = AiohttpUpstreamClient(max_connections=20, connect_timeout_s=5, read_timeout_s=10)
    yield client
    await client.aclose()


@pytest.fixture
async def identities(fake_identity: FakeAzureIdentity) -> AsyncIterator[AzureIdentityPool]:
    pool = AzureIdentityPool(provider="azure-openai", tls_ca_file=str(fake_identity.ca_file), retry_total=0)
    yield pool
    await pool.aclose()
