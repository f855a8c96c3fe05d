"""Native AWS identity for Bedrock against moto's STS (behind a counting proxy) and the signature-checking fake
Bedrock runtime: IRSA's AssumeRoleWithWebIdentity from a token file, AssumeRole with an external id (on explicit
keys and on top of the web identity), one STS call per credential lifetime however many requests, a refresh when
the credentials near expiry, and a single refresh-and-retry when Bedrock says the token expired.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config.target import Target
from core.credentials import aws
from core.credentials.aws import AwsIdentityCache, AwsIdentityParams, SigV4Signer, host_header
from core.errors import SkyrelayError
from core.providers.bedrock.provider import BedrockProvider
from core.providers.registry import ProviderDeps
from core.security.ssrf import SsrfGuard
from core.settings import Settings
from core.transport.aiohttp_client import AiohttpUpstreamClient
from tests.fakes.bedrock_upstream import FakeBedrock
from tests.identity.sts import CountingStsProxy, IssuedCredentials, moto_sts
from tests.providers.bedrock.support import chat_request, isolate_aws_env

MODEL = "amazon.nova-lite-v1:0"
GATEWAY_ROLE = "arn:aws:iam::123456789012:role/skyrelay-gateway"
TARGET_ROLE = "arn:aws:iam::210987654321:role/bedrock-invoker"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
#: botocore refreshes temporary credentials this long before they expire (its advisory window).
ADVISORY_WINDOW_S = 15 * 60


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrock]:
    server = FakeBedrock().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sts_server(fake: FakeBedrock) -> Iterator[CountingStsProxy]:
    def allow(issued: IssuedCredentials) -> None:
        fake.allow(issued.access_key_id, issued.secret_access_key, issued.session_token)

    with moto_sts() as moto_url:
        proxy = CountingStsProxy(moto_url, allow).start()
        yield proxy
        proxy.stop()


@pytest.fixture
def sts(sts_server: CountingStsProxy, fake: FakeBedrock, monkeypatch: pytest.MonkeyPatch) -> CountingStsProxy:
    sts_server.reset()
    fake.reset()
    isolate_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts_server.url)
    return sts_server


@pytest.fixture
def web_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """What EKS injects for IRSA: a projected service-account token file and the role to assume with it."""
    token = "eyJhbGciOiJSUzI1NiJ9.irsa-service-account-token.signature"
    path = tmp_path / "eks.amazonaws.com" / "serviceaccount" / "token"
    path.parent.mkdir(parents=True)
    path.write_text(token)
    monkeypatch.setenv("AWS_ROLE_ARN", GATEWAY_ROLE)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(path))
    return token


@pytest.fixture
async def provider() -> AsyncIterator[BedrockProvider]:
    upstream = AiohttpUpstreamClient(max_connections=20, connect_timeout_s=5, read_timeout_s=10)
    deps = ProviderDeps(upstream=upstream, guard=SsrfGuard(["127.0.0.0/8"]), settings=Settings())
    yield BedrockProvider(provider_id="bedrock", deps=deps, environ={"AWS_REGION": "us-east-1"})
    await upstream.aclose()


def _target(fake: FakeBedrock, **options: str) -> Target:
    return Target(provider="bedrock", custom_host=fake.url, options={"aws_region": "us-east-1", **options})


async def _call(provider: BedrockProvider, target: Target) -> None:
    result = await provider.chat(chat_request(target, BODY))
    assert result.status == 200, result.body


async def test_irsa_web_identity_one_sts_call_for_many_requests(
    provider: BedrockProvider, sts: CountingStsProxy, fake: FakeBedrock, web_identity: str
) -> None:
    target = _target(fake)

    await asyncio.gather(*(_call(provider, target) for _ in range(8)))  # a cold start under concurrent load
    for _ in range(12):
        await _call(provider, target)

    assert sts.count("AssumeRoleWithWebIdentity") == 1
    assert len(sts.calls) == 1
    call = sts.calls[0].params
    assert call["RoleArn"] == GATEWAY_ROLE and call["WebIdentityToken"] == web_identity
    issued = sts.issued[0]
    assert len(fake.received) == 20 and fake.rejected == []
    assert all(r.headers["x-amz-security-token"] == issued.session_token for r in fake.received)
    assert all(f"Credential={issued.access_key_id}/" in r.headers["authorization"] for r in fake.received)


async def test_assume_role_with_external_id_on_explicit_keys(
    provider: BedrockProvider, sts: CountingStsProxy, fake: FakeBedrock
) -> None:
    target = _target(fake, aws_access_key_id="AKIASOURCEKEY0000001", aws_secret_access_key="source-secret",
                     aws_role_arn=TARGET_ROLE, aws_external_id="partner-ext-42", aws_auth_type="assumedRole")

    for _ in range(10):
        await _call(provider, target)

    assert sts.count("AssumeRole") == 1 and len(sts.calls) == 1
    params = sts.calls[0].params
    assert params["RoleArn"] == TARGET_ROLE
    assert params["ExternalId"] == "partner-ext-42"
    assert params["RoleSessionName"] == "skyrelay"
    assumed = sts.issued[0].access_key_id
    assert all(f"Credential={assumed}/" in r.headers["authorization"] for r in fake.received)
    assert not any("AKIASOURCEKEY0000001" in r.headers["authorization"] for r in fake.received)


async def test_assumed_role_on_top_of_the_gateways_web_identity(
    provider: BedrockProvider, sts: CountingStsProxy, fake: FakeBedrock, web_identity: str
) -> None:
    target = _target(fake, aws_role_arn=TARGET_ROLE, aws_external_id="ext-1")

    for _ in range(6):
        await _call(provider, target)

    assert [c.action for c in sts.calls] == ["AssumeRoleWithWebIdentity", "AssumeRole"]
    assert fake.received[-1].headers["x-amz-security-token"] == sts.issued[1].session_token


async def test_each_distinct_role_keeps_its_own_credentials(
    provider: BedrockProvider, sts: CountingStsProxy, fake: FakeBedrock
) -> None:
    keys = {"aws_access_key_id": "AKIASOURCEKEY0000001", "aws_secret_access_key": "source-secret"}
    first = _target(fake, aws_role_arn=TARGET_ROLE, **keys)
    second = _target(fake, aws_role_arn="arn:aws:iam::210987654321:role/other", **keys)

    for _ in range(4):
        await _call(provider, first)
        await _call(provider, second)

    assert sts.count("AssumeRole") == 2
    assert len(provider.identities) == 2


async def test_credentials_near_expiry_are_refreshed_once(
    provider: BedrockProvider, sts: CountingStsProxy, fake: FakeBedrock
) -> None:
    margin_s = 3.0
    sts.expires_in.append(ADVISORY_WINDOW_S + margin_s)  # the first credentials enter the window in 3 s
    target = _target(fake, aws_access_key_id="AKIASOURCEKEY0000001", aws_secret_access_key="source-secret",
                     aws_role_arn=TARGET_ROLE)

    for _ in range(3):
        await _call(provider, target)
    assert sts.count("AssumeRole") == 1
    await asyncio.sleep(margin_s + 0.5)
    for _ in range(5):
        await _call(provider, target)

    assert sts.count("AssumeRole") == 2, "one refresh when the credentials near expiry, not one per request"
    first, second = sts.issued
    assert f"Credential={first.access_key_id}/" in fake.received[2].headers["authorization"]
    assert all(f"Credential={second.access_key_id}/" in r.headers["authorization"] for r in fake.received[3:])


async def test_an_expired_token_answer_refreshes_once_and_retries(
    provider: BedrockProvider, sts: CountingStsProxy, fake: FakeBedrock, web_identity: str
) -> None:
    target = _target(fake)
    await _call(provider, target)
    fake.expired.add(sts.issued[0].access_key_id)  # e.g. revoked sessions, or a clock that ran ahead

    await _call(provider, target)
    await _call(provider, target)

    assert fake.rejected == [("ExpiredTokenException", "The security token included in the request is expired")]
    assert sts.count("AssumeRoleWithWebIdentity") == 2


async def test_a_denied_assume_role_is_a_clear_403_without_secrets(
    provider: BedrockProvider, sts: CountingStsProxy, fake: FakeBedrock
) -> None:
    sts.deny.append("AccessDenied")
    target = _target(fake, aws_access_key_id="AKIASOURCEKEY0000001", aws_secret_access_key="source-secret-xyz",
                     aws_role_arn=TARGET_ROLE, aws_external_id="wrong-ext")

    with pytest.raises(SkyrelayError) as raised:
        await provider.chat(chat_request(target, BODY))

    assert raised.value.status == 403
    body = raised.value.body()
    assert body["provider"] == "bedrock"
    assert "AssumeRole failed: AccessDenied" in body["error"]["message"]
    assert "source-secret-xyz" not in str(body)
    assert fake.received == []
    await _call(provider, target)  # the failure is not cached: the next request assumes the role again
    assert sts.count("AssumeRole") == 2


# --- the credential source on its own ---------------------------------------------------------------------------
async def test_the_signer_signs_the_host_it_adds() -> None:
    cache = AwsIdentityCache(default_region="us-east-1")
    signer = SigV4Signer(cache.identity(AwsIdentityParams("AKIAEXAMPLE000000001", "secret")), service="bedrock",
                         region="eu-west-1")

    headers = await signer.authorize("POST", "https://bedrock-runtime.eu-west-1.amazonaws.com/model/m/converse",
                                     {"content-type": "application/json"}, b"{}")

    assert headers["host"] == "bedrock-runtime.eu-west-1.amazonaws.com"
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE000000001/")
    assert "SignedHeaders=content-type;host;x-amz-date," in headers["authorization"]
    assert "x-amz-security-token" not in headers
    assert not signer.refreshable


def test_host_header_keeps_only_non_default_ports() -> None:
    assert host_header("https://Bedrock-Runtime.us-east-1.amazonaws.com:443/x") == \
        "bedrock-runtime.us-east-1.amazonaws.com"
    assert host_header("http://127.0.0.1:8080/model") == "127.0.0.1:8080"
    assert host_header("http://[::1]:9000/") == "[::1]:9000"


def test_identities_are_cached_per_parameters_and_bounded() -> None:
    cache = AwsIdentityCache(default_region="us-east-1", max_entries=3)
    first = cache.identity(AwsIdentityParams("AKIA1", "s1"))

    assert cache.identity(AwsIdentityParams("AKIA1", "s1")) is first
    assert cache.identity(AwsIdentityParams("AKIA1", "other-secret")) is not first
    for i in range(5):
        cache.identity(AwsIdentityParams(f"AKIA{i + 2}", "s"))
    assert len(cache) == 3
    assert "s1" not in repr(AwsIdentityParams("AKIA1", "s1", "token", external_id="ext"))


async def test_a_missing_identity_is_remembered_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without any AWS identity, requests fail at once for a while instead of each searching the chain (IMDS)."""
    isolate_aws_env(monkeypatch)
    searches: list[float] = []
    real_resolver = aws.create_credential_resolver

    def counting_resolver(*args: Any, **kwargs: Any) -> Any:
        searches.append(now[0])
        return real_resolver(*args, **kwargs)

    monkeypatch.setattr(aws, "create_credential_resolver", counting_resolver)
    now = [1000.0]
    identity = AwsIdentityCache(default_region="us-east-1", clock=lambda: now[0]).identity(AwsIdentityParams())

    for _ in range(3):
        with pytest.raises(aws.AwsCredentialError, match="no AWS credentials found"):
            await identity.frozen()
    assert len(searches) == 1
    now[0] += 11
    with pytest.raises(aws.AwsCredentialError):
        await identity.frozen()
    assert len(searches) == 2
