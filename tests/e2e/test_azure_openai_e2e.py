"""The official openai SDK → a real `skyrelay serve` → a fake Azure OpenAI resource, with api keys and with Entra
tokens the gateway gets from fake identity endpoints (App Service managed identity, Entra over https, AKS workload
identity) configured the way the platforms configure them: environment variables of the gateway process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.azure_identity import AZURE_IDENTITY_VARIABLES, FakeAzureIdentity, ServicePrincipal, TokenLedger
from tests.fakes.azure_openai_upstream import FakeAzureOpenAI
from tests.support.gateway_process import GatewayProcess

SERVICE_PRINCIPAL = ServicePrincipal("tenant-1", "client-1", client_secret="sp-secret-value-e2e")
WORKLOAD = ServicePrincipal("tenant-1", "workload-client", federated_token="k8s-service-account-jwt")
TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
Servers = tuple[FakeAzureIdentity, FakeAzureOpenAI, GatewayProcess]


@pytest.fixture(scope="module")
def azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("azure-e2e")
    ledger = TokenLedger()
    identity = FakeAzureIdentity(root, ledger).start()
    identity.add_principal(SERVICE_PRINCIPAL)
    identity.add_principal(WORKLOAD)
    fake = FakeAzureOpenAI(ledger=ledger).start()
    (root / "federated-token").write_text(str(WORKLOAD.federated_token))
    env = {name: "" for name in AZURE_IDENTITY_VARIABLES}
    env.update({
        "IDENTITY_ENDPOINT": identity.msi_endpoint, "IDENTITY_HEADER": identity.identity_header,
        "AZURE_AUTHORITY_HOST": identity.authority, "SSL_CERT_FILE": str(identity.ca_file),
        "AZURE_FEDERATED_TOKEN_FILE": str(root / "federated-token"), "AZURE_TENANT_ID": WORKLOAD.tenant_id,
        "AZURE_CLIENT_ID": WORKLOAD.client_id, "AZURE_POD_IDENTITY_AUTHORITY_HOST": identity.imds_host,
    })
    gateway = GatewayProcess(root / "logs", env=env).start()
    yield identity, fake, gateway
    gateway.stop()
    fake.stop()
    identity.stop()


@pytest.fixture
def servers(azure: Servers) -> Servers:
    azure[0].reset()
    azure[1].reset()
    return azure


def client(servers: Servers, api_key: str | None = None,
           deployment: str = "gpt-4o", **headers: str) -> openai.OpenAI:
    _, fake, gateway = servers
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key or fake.api_key, max_retries=0,
                         default_headers={"x-portkey-provider": "azure-openai", "x-portkey-custom-host": fake.url,
                                          "x-portkey-azure-deployment-id": deployment,
                                          "x-portkey-azure-api-version": "2024-10-21", **headers})


def test_chat_with_the_resource_key(servers) -> None:
    _, fake, _ = servers
    raw = client(servers).chat.completions.with_raw_response.create(model="gpt-4o", messages=ASK)
    response = raw.parse()

    assert response.choices[0].message.content == "Hello from Azure."
    assert response.model == "gpt-4o-2024-11-20"
    assert raw.headers["x-portkey-provider"] == "azure-openai"
    sent = fake.received[-1]
    assert (sent.path, sent.query) == ("/openai/deployments/gpt-4o/chat/completions", {"api-version": "2024-10-21"})
    assert sent.headers["api-key"] == fake.api_key and "authorization" not in sent.headers
    assert not any(name.startswith("x-portkey-") for name in sent.headers)


def test_streaming_yields_text_and_usage(servers) -> None:
    chunks = list(client(servers).chat.completions.create(
        model="gpt-4o", messages=ASK, stream=True, stream_options={"include_usage": True}))

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from Azure."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 17


async def test_async_client_streams(servers) -> None:
    _, fake, gateway = servers
    async with openai.AsyncOpenAI(
        base_url=f"{gateway.url}/v1", api_key=fake.api_key, max_retries=0,
        default_headers={"x-portkey-provider": "azure-openai", "x-portkey-custom-host": fake.url,
                         "x-portkey-azure-deployment-id": "gpt-4o", "x-portkey-azure-api-version": "2024-10-21"},
    ) as async_client:
        stream = await async_client.chat.completions.create(model="gpt-4o", messages=ASK, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert text == "Hello from Azure."


def test_tool_call_round_trip(servers) -> None:
    c = client(servers)
    first = c.chat.completions.create(model="gpt-4o", messages=ASK, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})

    second = c.chat.completions.create(model="gpt-4o", tools=TOOLS, messages=[
        *ASK, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "clear"}'}])

    assert second.choices[0].message.content == "It is sunny in Paris."


@pytest.mark.parametrize("deployment", ["gpt-4o", "gpt-4o-async"])
def test_streamed_tool_call_through_the_sdk_stream_helper(servers, deployment: str) -> None:
    """The helper accumulates chunks; Azure's delta-less annotation chunks (async filter) would break it."""
    with client(servers, deployment=deployment).chat.completions.stream(
            model="gpt-4o", messages=ASK, tools=TOOLS) as stream:
        final = stream.get_final_completion()

    call = final.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("deployment", ["gpt-4o", "gpt-4o-async"])
def test_filtered_output_finishes_with_content_filter(servers, deployment: str) -> None:
    c = client(servers, deployment=deployment)
    violent = [{"role": "user", "content": "Write something violent"}]

    buffered = c.chat.completions.create(model="gpt-4o", messages=violent)
    streamed = list(c.chat.completions.create(model="gpt-4o", messages=violent, stream=True))

    assert buffered.choices[0].finish_reason == "content_filter"
    assert [ch.choices[0].finish_reason for ch in streamed if ch.choices][-1] == "content_filter"


def test_prompt_refused_by_the_content_filter_is_a_400(servers) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(servers).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "jailbreak"}])

    assert caught.value.code == "content_filter"
    assert caught.value.response.json()["provider"] == "azure-openai"


def test_completions_embeddings_and_the_v1_api(servers) -> None:
    _, fake, _ = servers
    assert client(servers, deployment="instruct").completions.create(
        model="gpt-35-turbo-instruct", prompt="Hello").choices[0].text == " world"
    assert len(client(servers, deployment="embed").embeddings.create(
        model="text-embedding-3-small", input=["a", "b"]).data) == 2
    v1 = client(servers, **{"x-portkey-azure-api-version": "v1"})

    assert v1.chat.completions.create(model="anything", messages=ASK).choices[0].message.content == "Hello from Azure."
    assert (fake.received[-1].path, fake.received[-1].body["model"]) == ("/openai/v1/chat/completions", "gpt-4o")


def test_managed_identity_token_is_reused_by_the_gateway(servers) -> None:
    identity, fake, _ = servers
    c = client(servers, api_key="ignored-when-a-mode-is-set", **{"x-portkey-azure-auth-mode": "managed"})

    for _ in range(8):
        assert c.chat.completions.create(model="gpt-4o", messages=ASK).choices[0].message.content
    stream = c.chat.completions.create(model="gpt-4o", messages=ASK, stream=True)
    assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices) == "Hello from Azure."

    assert identity.fetches("msi") <= 1, "the gateway fetched a managed identity token more than once"
    assert len({r.headers["authorization"] for r in fake.received}) == 1
    assert all(r.headers["authorization"].startswith("Bearer fake-entra-token-msi-") for r in fake.received)


def test_entra_service_principal_from_portkey_headers(servers) -> None:
    """Tokens are reused, and neither the secret header nor a token reaches the request logs."""
    identity, _, gateway = servers
    c = client(servers, **{"x-portkey-azure-auth-mode": "entra",
                           "x-portkey-azure-entra-tenant-id": SERVICE_PRINCIPAL.tenant_id,
                           "x-portkey-azure-entra-client-id": SERVICE_PRINCIPAL.client_id,
                           "x-portkey-azure-entra-client-secret": str(SERVICE_PRINCIPAL.client_secret)})

    for _ in range(5):
        assert c.chat.completions.create(model="gpt-4o", messages=ASK).choices[0].message.content

    assert identity.fetches("secret") <= 1
    records = [r for r in gateway.wait_for_records(5) if "sp-secret-value-e2e" in json.dumps(r)
               or r.get("provider") == "azure-openai"]
    assert records, "the gateway wrote no request log records"
    logged = json.dumps(records)
    assert str(SERVICE_PRINCIPAL.client_secret) not in logged
    assert "fake-entra-token-" not in logged


def test_workload_identity(servers) -> None:
    identity, fake, _ = servers

    for _ in range(3):
        response = client(servers, **{"x-portkey-azure-auth-mode": "workload"}).chat.completions.create(
            model="gpt-4o", messages=ASK)
        assert response.choices[0].message.content == "Hello from Azure."

    assert identity.fetches("assertion") <= 1
    assert fake.received[-1].headers["authorization"].startswith("Bearer fake-entra-token-assertion-")


def test_a_refused_identity_is_a_401_and_azure_is_not_called(servers) -> None:
    _, fake, gateway = servers
    c = client(servers, **{"x-portkey-azure-auth-mode": "entra", "x-portkey-azure-entra-tenant-id": "tenant-1",
                           "x-portkey-azure-entra-client-id": "client-1",
                           "x-portkey-azure-entra-client-secret": "a-wrong-secret"})

    with pytest.raises(openai.AuthenticationError) as caught:
        c.chat.completions.create(model="gpt-4o", messages=ASK)

    body: dict[str, Any] = caught.value.response.json()
    assert body["provider"] == "azure-openai"
    assert "AADSTS7000215" in body["error"]["message"]
    assert "a-wrong-secret" not in caught.value.response.text
    assert fake.received == []
    assert "AADSTS7000215" in gateway.stderr(), "the refusal is logged..."
    assert "a-wrong-secret" not in gateway.stderr(), "...without the secret"


def test_a_routing_config_with_azure_fields_and_a_fallback(servers) -> None:
    """Portkey config field names reach the provider; a failing api-key target falls back to managed identity."""
    _, fake, gateway = servers
    azure_fields = {"provider": "azure-openai", "custom_host": fake.url, "deployment_id": "gpt-4o",
                    "api_version": "2024-10-21"}
    config = {"strategy": {"mode": "fallback"}, "targets": [
        {**azure_fields, "api_key": "revoked-key"},
        {**azure_fields, "azure_auth_mode": "managed"},
    ]}
    c = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0,
                      default_headers={"x-portkey-config": json.dumps(config)})

    raw = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=ASK)

    assert raw.parse().choices[0].message.content == "Hello from Azure."
    assert raw.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert [r.headers.get("api-key") for r in fake.received] == ["revoked-key", None]
    assert fake.received[1].headers["authorization"].startswith("Bearer fake-entra-token-msi-")
