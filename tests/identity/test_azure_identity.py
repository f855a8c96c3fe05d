"""Azure identity tokens: azure-identity's real async credentials against fake App Service managed identity, IMDS
and Entra (https) endpoints — proving reuse, single fetches under concurrency, refresh near expiry, one refresh per
rejected token, and mapped failures — plus the cache policy against a scripted credential and a controlled clock.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessTokenInfo

from core.credentials.azure import (
    AzureAuthMode,
    AzureIdentity,
    AzureIdentityError,
    AzureIdentityPool,
    AzureIdentityUnreachableError,
    AzureTokenCredential,
)
from tests.fakes.azure_identity import AZURE_IDENTITY_VARIABLES, NO_IMDS, FakeAzureIdentity, ServicePrincipal

SERVICE_PRINCIPAL = ServicePrincipal("tenant-1", "client-1", client_secret="sp-secret-value-1")
WORKLOAD = ServicePrincipal("tenant-1", "workload-client", federated_token="k8s-service-account-jwt")


@pytest.fixture(autouse=True)
def no_ambient_azure_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """No identity from the machine's environment, and IMDS pointed at a refused loopback port."""
    for name in AZURE_IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in NO_IMDS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def identity_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAzureIdentity]:
    fake = FakeAzureIdentity(tmp_path_factory.mktemp("entra-tls")).start()
    fake.add_principal(SERVICE_PRINCIPAL)
    fake.add_principal(WORKLOAD)
    yield fake
    fake.stop()


@pytest.fixture
def fake_identity(identity_server: FakeAzureIdentity, monkeypatch: pytest.MonkeyPatch) -> FakeAzureIdentity:
    identity_server.reset()
    monkeypatch.setenv("IDENTITY_ENDPOINT", identity_server.msi_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", identity_server.identity_header)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", identity_server.authority)
    return identity_server


@pytest.fixture
async def pool(fake_identity: FakeAzureIdentity) -> AsyncIterator[AzureIdentityPool]:
    identities = AzureIdentityPool(provider="azure-openai", tls_ca_file=str(fake_identity.ca_file), retry_total=0)
    yield identities
    await identities.aclose()


MANAGED = AzureIdentity(AzureAuthMode.MANAGED)
ENTRA = AzureIdentity(AzureAuthMode.ENTRA, tenant_id=SERVICE_PRINCIPAL.tenant_id,
                      client_id=SERVICE_PRINCIPAL.client_id, client_secret=SERVICE_PRINCIPAL.client_secret)


async def test_managed_identity_token_is_reused_across_many_calls(pool, fake_identity) -> None:
    source = pool.source(MANAGED)

    tokens = {await source.token() for _ in range(50)}

    assert len(tokens) == 1
    assert fake_identity.fetches("msi") == 1 and source.fetches == 1
    assert fake_identity.requests[0]["resource"] == "https://cognitiveservices.azure.com"


async def test_concurrent_first_calls_share_one_fetch(pool, fake_identity) -> None:
    tokens = await asyncio.gather(*(pool.source(MANAGED).token() for _ in range(25)))

    assert len(set(tokens)) == 1
    assert fake_identity.fetches("msi") == 1


async def test_entra_client_secret_token_comes_from_the_authority_host(pool, fake_identity) -> None:
    source = pool.source(ENTRA)

    tokens = {await source.token() for _ in range(10)}

    assert len(tokens) == 1
    [request] = fake_identity.requests
    assert request == {"kind": "secret", "tenant": "tenant-1", "client_id": "client-1",
                       "scope": "https://cognitiveservices.azure.com/.default"}


async def test_workload_identity_sends_the_federated_token(pool, fake_identity, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(str(WORKLOAD.federated_token))
    source = pool.source(AzureIdentity(AzureAuthMode.WORKLOAD, tenant_id=WORKLOAD.tenant_id,
                                       client_id=WORKLOAD.client_id, token_file=str(token_file)))

    assert (await source.token()) == (await source.token())
    assert [r["kind"] for r in fake_identity.requests] == ["assertion"]


async def test_a_custom_scope_asks_for_that_audience(pool, fake_identity) -> None:
    await pool.source(AzureIdentity(AzureAuthMode.MANAGED, scope="https://ai.azure.com/.default")).token()

    assert fake_identity.requests[0]["resource"] == "https://ai.azure.com"


@pytest.mark.parametrize("identity", [MANAGED, ENTRA], ids=["managed", "entra"])
async def test_token_is_refreshed_shortly_before_it_expires(fake_identity, identity: AzureIdentity) -> None:
    """azure-identity would keep serving the old token (it waits 30 s between refreshes); the source starts over."""
    fake_identity.lifetime_s = 2
    pool = AzureIdentityPool(provider="azure-openai", tls_ca_file=str(fake_identity.ca_file), retry_total=0,
                             refresh_margin_s=0.5)
    try:
        source = pool.source(identity)
        first = await source.token()
        assert {await source.token() for _ in range(10)} == {first}
        expires_at = fake_identity.ledger.tokens[first].expires_at
        await asyncio.sleep(max(0.0, int(expires_at) - 0.5 - time.time()) + 0.1)

        second = await source.token()

        assert second != first
        assert fake_identity.fetches() == 2 and source.fetches == 2
        assert fake_identity.ledger.tokens[second].expires_at > expires_at
    finally:
        await pool.aclose()


async def test_a_rejected_token_is_replaced_once(pool, fake_identity) -> None:
    source = pool.source(MANAGED)
    rejected = await source.token()

    source.invalidate(rejected)
    source.invalidate(rejected)
    fresh = await source.token()
    source.invalidate(rejected)  # a late 401 for the old token changes nothing
    again = await source.token()

    assert fresh != rejected and again == fresh
    assert fake_identity.fetches("msi") == 2


async def test_a_refused_identity_is_a_401(pool, fake_identity, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-platform-secret")

    with pytest.raises(AzureIdentityError) as caught:
        await pool.source(MANAGED).token()

    assert caught.value.status == 401
    assert caught.value.message.startswith("azure-openai error: Entra refused a token (managed)")


async def test_a_failing_token_endpoint_is_a_retryable_502(pool, fake_identity) -> None:
    fake_identity.fail_with = 503

    with pytest.raises(AzureIdentityUnreachableError) as caught:
        await pool.source(ENTRA).token()

    assert caught.value.status == 502 and caught.value.retryable


async def test_an_unreachable_token_endpoint_is_a_502(pool, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{port}/msi/token")

    with pytest.raises(AzureIdentityUnreachableError) as caught:
        await pool.source(MANAGED).token()

    assert caught.value.status == 502
    assert caught.value.body()["provider"] == "azure-openai"


async def test_the_pool_keeps_a_bounded_number_of_identities(fake_identity) -> None:
    pool = AzureIdentityPool(provider="azure-openai", max_identities=2)
    sources = [pool.source(AzureIdentity(AzureAuthMode.MANAGED, client_id=f"uami-{i}")) for i in range(3)]

    assert pool.size == 2
    assert pool.source(AzureIdentity(AzureAuthMode.MANAGED, client_id="uami-2")) is sources[2]
    assert pool.source(AzureIdentity(AzureAuthMode.MANAGED, client_id="uami-0")) is not sources[0]
    await pool.aclose()


def test_identities_differing_only_in_secret_do_not_share_a_token() -> None:
    pool = AzureIdentityPool(provider="azure-openai")
    other = AzureIdentity(AzureAuthMode.ENTRA, tenant_id="tenant-1", client_id="client-1", client_secret="guess")

    assert pool.source(ENTRA) is not pool.source(other)
    assert "sp-secret-value-1" not in repr(ENTRA)


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, None),
    ({"AZURE_CLIENT_ID": "c"}, None),
    ({"IDENTITY_ENDPOINT": "http://127.0.0.1:1/msi", "IDENTITY_HEADER": "h", "AZURE_CLIENT_ID": "uami"},
     AzureIdentity(AzureAuthMode.MANAGED, client_id="uami")),
    ({"AZURE_FEDERATED_TOKEN_FILE": "/t", "AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c",
      "IDENTITY_ENDPOINT": "http://127.0.0.1:1/msi", "IDENTITY_HEADER": "h"},
     AzureIdentity(AzureAuthMode.WORKLOAD, tenant_id="t", client_id="c", token_file="/t")),
    ({"AZURE_CLIENT_SECRET": "s", "AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_FEDERATED_TOKEN_FILE": "/t"},
     AzureIdentity(AzureAuthMode.ENTRA, tenant_id="t", client_id="c", client_secret="s")),
])
def test_platform_identity_needs_an_explicit_signal(environ: dict[str, str], expected: AzureIdentity | None) -> None:
    """DefaultAzureCredential's order, minus the IMDS probe: nothing ambiguous delays a gateway outside Azure."""
    assert AzureIdentity.from_environment(environ) == expected


class ScriptedCredential:
    def __init__(self, script: list[AccessTokenInfo | Exception]) -> None:
        self.script = script

    async def get_token_info(self, *scopes: str) -> AccessTokenInfo:
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def scripted_source(clock: Clock, *script: AccessTokenInfo | Exception) -> tuple[AzureTokenCredential, list[Any]]:
    built: list[Any] = []
    items = list(script)

    async def factory(identity: AzureIdentity) -> ScriptedCredential:
        credential = ScriptedCredential(items)
        built.append(credential)
        return credential

    return AzureTokenCredential(MANAGED, factory, provider="azure-openai", clock=clock), built


async def test_a_long_lived_token_is_refreshed_at_its_suggested_refresh_time() -> None:
    clock = Clock()
    source, _ = scripted_source(clock, AccessTokenInfo("t1", int(clock.now) + 7200, refresh_on=int(clock.now) + 3600),
                                AccessTokenInfo("t2", int(clock.now) + 10800))
    assert await source.token() == "t1"

    clock.now += 3599
    assert await source.token() == "t1"
    clock.now += 2
    assert await source.token() == "t2"


async def test_a_failed_refresh_keeps_a_still_valid_token_for_a_short_grace() -> None:
    from azure.core.exceptions import ServiceRequestError

    clock = Clock()
    t1 = AccessTokenInfo("t1", int(clock.now) + 3600)
    source, built = scripted_source(clock, t1, t1, ServiceRequestError("connection refused"),
                                    AccessTokenInfo("t2", int(clock.now) + 7200))
    assert await source.token() == "t1"
    clock.now += 3600 - 200  # inside the 300 s refresh margin; the SDK answers from its cache, the retry fails

    assert await source.token() == "t1"
    assert len(built) == 2
    clock.now += 31
    assert await source.token() == "t2"


async def test_a_rejected_token_is_never_reused_even_if_refresh_fails() -> None:
    from azure.core.exceptions import ServiceRequestError

    clock = Clock()
    t1 = AccessTokenInfo("t1", int(clock.now) + 3600)
    source, _ = scripted_source(clock, t1, t1, ServiceRequestError("connection refused"))
    source.invalidate(await source.token())

    with pytest.raises(AzureIdentityUnreachableError):
        await source.token()


async def test_a_token_served_inside_the_margin_is_held_briefly_not_refetched_per_call() -> None:
    """An identity endpoint that keeps handing out its cached, nearly expired token (App Service caches tokens)
    costs one extra fetch per 30 s, not one per request."""
    clock = Clock()
    near_expiry = AccessTokenInfo("t1", int(clock.now) + 120)
    source, built = scripted_source(clock, near_expiry, near_expiry, near_expiry, near_expiry,
                                    AccessTokenInfo("t2", int(clock.now) + 3600))

    assert {await source.token() for _ in range(20)} == {"t1"}
    assert len(built) == 2
    clock.now += 31
    assert await source.token() == "t1"
    clock.now += 31
    assert await source.token() == "t2"
