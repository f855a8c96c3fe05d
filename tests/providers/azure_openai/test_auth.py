"""How the azure-openai provider authorizes calls, against a fake Azure resource that checks every credential and
fake identity endpoints that count every token they issue.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.credentials.azure import AzureIdentityError, AzureIdentityPool
from core.errors import InvalidRequestError, PermissionDeniedError
from core.transport.aiohttp_client import AiohttpUpstreamClient
from tests.fakes.azure_openai_upstream import FakeAzureOpenAI
from tests.providers.azure_openai.conftest import SERVICE_PRINCIPAL, WORKLOAD
from tests.providers.azure_openai.support import make_provider, make_request, make_target

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
DEPLOYMENT = {"deployment_id": "gpt-4o", "api_version": "2024-10-21"}


async def chat(upstream: AiohttpUpstreamClient, identities: AzureIdentityPool, azure: FakeAzureOpenAI,
               options: dict[str, Any], api_key: str | None = None) -> Any:
    provider = make_provider(upstream, identities)
    target = make_target({**DEPLOYMENT, **options}, api_key=api_key, custom_host=azure.url)
    return await provider.chat(make_request(target, CHAT))


def answer(result: Any) -> str:
    assert result.status == 200, result.body
    return str(orjson.loads(result.body)["choices"][0]["message"]["content"])


async def test_api_key_is_sent_as_api_key_header(upstream, identities, fake_azure) -> None:
    result = await chat(upstream, identities, fake_azure, {}, api_key=fake_azure.api_key)

    assert answer(result) == "Hello from Azure."
    sent = fake_azure.received[-1].headers
    assert sent["api-key"] == fake_azure.api_key
    assert "authorization" not in sent


async def test_wrong_api_key_is_azures_401_in_provider_shape(upstream, identities, fake_azure) -> None:
    result = await chat(upstream, identities, fake_azure, {}, api_key="not-the-key")

    assert result.status == 401
    body = orjson.loads(result.body)
    assert body["provider"] == "azure-openai"
    assert body["error"]["message"].startswith("azure-openai error: Access denied due to invalid subscription key")
    assert len(fake_azure.received) == 1, "a rejected api key is not retried"


async def test_managed_identity_token_is_fetched_once_for_many_requests(
    upstream, identities, fake_azure, fake_identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", fake_identity.msi_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", fake_identity.identity_header)

    results = await asyncio.gather(*(chat(upstream, identities, fake_azure, {"azure_auth_mode": "managed"})
                                     for _ in range(20)))
    results += [await chat(upstream, identities, fake_azure, {"azure_auth_mode": "managed"}) for _ in range(10)]

    assert {answer(r) for r in results} == {"Hello from Azure."}
    assert fake_identity.fetches("msi") == 1
    tokens = {r.headers["authorization"] for r in fake_azure.received}
    assert len(tokens) == 1 and next(iter(tokens)).startswith("Bearer fake-entra-token-msi-")
    assert all("api-key" not in r.headers for r in fake_azure.received)


async def test_user_assigned_managed_identity_asks_for_its_client_id(
    upstream, identities, fake_azure, fake_identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", fake_identity.msi_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", fake_identity.identity_header)

    await chat(upstream, identities, fake_azure, {"azure_auth_mode": "managed", "azure_managed_client_id": "uami-7"})

    assert [r["client_id"] for r in fake_identity.requests] == ["uami-7"]


async def test_managed_identity_outside_app_service_uses_imds(
    upstream, identities, fake_azure, fake_identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", fake_identity.imds_host)

    result = await chat(upstream, identities, fake_azure, {"azure_auth_mode": "managed"})

    assert answer(result) == "Hello from Azure."
    assert fake_identity.fetches("imds") == 1


async def test_entra_service_principal_of_the_caller(
    upstream, identities, fake_azure, fake_identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", fake_identity.authority)
    options = {"azure_auth_mode": "entra", "azure_entra_tenant_id": SERVICE_PRINCIPAL.tenant_id,
               "azure_entra_client_id": SERVICE_PRINCIPAL.client_id,
               "azure_entra_client_secret": SERVICE_PRINCIPAL.client_secret}

    for _ in range(5):
        assert answer(await chat(upstream, identities, fake_azure, options)) == "Hello from Azure."

    assert fake_identity.fetches("secret") == 1


async def test_entra_with_a_wrong_secret_is_a_401_and_nothing_reaches_azure(
    upstream, identities, fake_azure, fake_identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", fake_identity.authority)
    options = {"azure_auth_mode": "entra", "azure_entra_tenant_id": "tenant-1", "azure_entra_client_id": "client-1",
               "azure_entra_client_secret": "guessed-secret-xyz"}

    with pytest.raises(AzureIdentityError) as caught:
        await chat(upstream, identities, fake_azure, options)

    assert caught.value.status == 401
    assert "AADSTS7000215" in caught.value.message
    assert "guessed-secret-xyz" not in orjson.dumps(caught.value.body()).decode()
    assert fake_azure.received == []


async def test_workload_identity_exchanges_the_federated_token(
    upstream, identities, fake_azure, fake_identity, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(str(WORKLOAD.federated_token))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", fake_identity.authority)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AZURE_TENANT_ID", WORKLOAD.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", "some-other-client")

    for _ in range(3):
        result = await chat(upstream, identities, fake_azure,
                            {"azure_auth_mode": "workload", "azure_workload_client_id": WORKLOAD.client_id})
        assert answer(result) == "Hello from Azure."

    assert [(r["kind"], r["client_id"]) for r in fake_identity.requests] == [("assertion", WORKLOAD.client_id)]


async def test_without_key_or_mode_the_platform_identity_is_used(
    upstream, fake_azure, fake_identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", fake_identity.msi_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", fake_identity.identity_header)
    pool = AzureIdentityPool(provider="azure-openai", retry_total=0)
    try:
        assert answer(await chat(upstream, pool, fake_azure, {})) == "Hello from Azure."
    finally:
        await pool.aclose()
    assert fake_identity.fetches("msi") == 1


async def test_without_any_credential_the_call_fails_with_401_before_reaching_azure(
    upstream, identities, fake_azure, fake_identity
) -> None:
    with pytest.raises(AzureIdentityError) as caught:
        await chat(upstream, identities, fake_azure, {})

    assert caught.value.status == 401
    assert caught.value.body()["provider"] == "azure-openai"
    assert fake_azure.received == [] and fake_identity.requests == []


async def test_azure_401_drops_the_token_and_retries_once_with_a_fresh_one(
    upstream, identities, fake_azure, fake_identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", fake_identity.msi_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", fake_identity.identity_header)
    await chat(upstream, identities, fake_azure, {"azure_auth_mode": "managed"})
    fake_azure.ledger.revoke_all()
    fake_azure.reset()

    result = await chat(upstream, identities, fake_azure, {"azure_auth_mode": "managed"})

    assert answer(result) == "Hello from Azure."
    assert fake_identity.fetches("msi") == 2
    first, second = (r.headers["authorization"] for r in fake_azure.received)
    assert first != second


async def test_a_token_azure_keeps_refusing_is_retried_only_once(
    upstream, identities, fake_azure, fake_identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token for the wrong audience (azure_entra_scope) is refused every time: one retry, then Azure's 401."""
    monkeypatch.setenv("IDENTITY_ENDPOINT", fake_identity.msi_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", fake_identity.identity_header)

    result = await chat(upstream, identities, fake_azure, {
        "azure_auth_mode": "managed", "azure_entra_scope": "https://management.azure.com/.default"})

    assert result.status == 401
    assert len(fake_azure.received) == 2
    assert [r["resource"] for r in fake_identity.requests] == ["https://management.azure.com"] * 2


async def test_ad_token_wins_over_mode_and_key(upstream, identities, fake_azure, fake_identity) -> None:
    token, _ = fake_azure.ledger.issue("https://cognitiveservices.azure.com", 600, "caller", None)

    result = await chat(upstream, identities, fake_azure,
                        {"azure_ad_token": f"Bearer {token}", "azure_auth_mode": "managed"}, api_key="not-used")

    assert answer(result) == "Hello from Azure."
    assert fake_azure.received[-1].headers["authorization"] == f"Bearer {token}"
    assert fake_identity.requests == []


async def test_gateway_identity_is_never_sent_to_an_arbitrary_custom_host(
    upstream, identities, fake_identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", fake_identity.msi_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", fake_identity.identity_header)
    provider = make_provider(upstream, identities)
    target = make_target({**DEPLOYMENT, "azure_auth_mode": "managed"}, custom_host="https://collector.example.net")

    with pytest.raises(PermissionDeniedError) as caught:
        await provider.chat(make_request(target, CHAT))

    assert "collector.example.net" in caught.value.message
    assert fake_identity.requests == [], "no token is even fetched"


@pytest.mark.parametrize(("options", "message"), [
    ({"azure_auth_mode": "kerberos"}, "azure_auth_mode must be one of entra, managed, workload"),
    ({"azure_auth_mode": "entra", "azure_entra_client_id": "c"},
     "needs azure_entra_tenant_id, azure_entra_client_secret as well"),
])
async def test_invalid_auth_options_are_a_400(upstream, identities, fake_azure, options, message) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await chat(upstream, identities, fake_azure, options, api_key="k")

    assert message in caught.value.message
    assert fake_azure.received == []


async def test_workload_mode_without_a_federated_token_is_a_clear_401(upstream, identities, fake_azure) -> None:
    with pytest.raises(AzureIdentityError) as caught:
        await chat(upstream, identities, fake_azure, {"azure_auth_mode": "workload"})

    assert "AZURE_FEDERATED_TOKEN_FILE" in caught.value.message
