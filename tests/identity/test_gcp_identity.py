"""Google identity through real google-auth flows against fake Google endpoints on loopback.

Service-account keys signed by a test RSA key (the fake token endpoint verifies each JWT assertion), the GCE/Cloud
Run metadata server (it refuses requests without ``Metadata-Flavor: Google``), and workload identity federation
from an ``external_account`` file (STS exchange + service-account impersonation). Every test counts token fetches:
one fetch serves many requests, and a token near expiry is replaced.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.credentials.gcp import (
    CLOUD_PLATFORM_SCOPE,
    GcpCredentialsError,
    GcpIdentity,
    GcpTokenUnavailableError,
)
from core.errors import InvalidRequestError
from tests.fakes.gcp_identity import FakeGoogleOAuth, FakeMetadataServer, IssuedTokens, make_service_account_key

GCP_VARIABLES = ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "GCE_METADATA_HOST",
                 "GCE_METADATA_IP", "GCE_METADATA_ROOT")


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def _any_url(url: str) -> None:
    """The composition root's SSRF check; loopback fakes are acceptable here."""


@pytest.fixture(autouse=True)
def no_ambient_google_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in GCP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud user credentials


@pytest.fixture(scope="module")
def tokens() -> IssuedTokens:
    return IssuedTokens()


@pytest.fixture(scope="module")
def oauth(tokens: IssuedTokens) -> Iterator[FakeGoogleOAuth]:
    fake = FakeGoogleOAuth(tokens).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def metadata(tokens: IssuedTokens) -> Iterator[FakeMetadataServer]:
    fake = FakeMetadataServer(tokens).start()
    yield fake
    fake.stop()


@pytest.fixture
def key(oauth: FakeGoogleOAuth) -> dict[str, Any]:
    info, public_key = make_service_account_key(oauth.token_uri)
    oauth.register(info["client_email"], public_key)
    return info


@pytest.fixture
def on_gce(metadata: FakeMetadataServer, monkeypatch: pytest.MonkeyPatch) -> FakeMetadataServer:
    """Point google-auth at the fake metadata server, as GCE_METADATA_HOST / GCE_METADATA_IP do in a fresh process
    (google-auth reads GCE_METADATA_HOST once at import, so the already-imported module is patched as well)."""
    from google.auth.compute_engine import _metadata

    monkeypatch.setenv("GCE_METADATA_HOST", metadata.host)
    monkeypatch.setenv("GCE_METADATA_IP", metadata.host)
    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", metadata.host)
    metadata.token_requests = 0
    metadata.expires_in = 3599
    return metadata


# --- service-account keys ------------------------------------------------------------------------------------------
async def test_one_key_token_serves_many_concurrent_requests(oauth: FakeGoogleOAuth, key: dict[str, Any]) -> None:
    identity = GcpIdentity(check_token_uri=_any_url)
    before = oauth.jwt_grants
    sources = await asyncio.gather(*(identity.service_account(dict(key)) for _ in range(10)))
    headers = await asyncio.gather(*(s.authorize("POST", "https://x", {}, b"") for s in sources for _ in range(5)))

    assert len({id(s) for s in sources}) == 1
    assert len({h["authorization"] for h in headers}) == 1
    assert headers[0]["authorization"].startswith("Bearer ya29.fake-sa-")
    assert oauth.jwt_grants - before == 1
    assert sources[0].project_id == "key-project"


async def test_a_key_token_near_expiry_is_refreshed(oauth: FakeGoogleOAuth, key: dict[str, Any]) -> None:
    clock = FakeClock()
    source = await GcpIdentity(check_token_uri=_any_url, clock=clock).service_account(key)
    first = await source.token()

    clock.advance(3600 - 121)  # still more than the 120 s margin left
    assert await source.token() == first
    clock.advance(2)
    second = await source.token()

    assert second != first
    assert source.fetches == 2


async def test_short_lived_tokens_are_reused_for_half_their_life(oauth: FakeGoogleOAuth, key: dict[str, Any]
                                                                 ) -> None:
    oauth.expires_in = 100
    try:
        clock = FakeClock()
        source = await GcpIdentity(check_token_uri=_any_url, clock=clock).service_account(key)
        tokens = [await source.token() for _ in range(5)]
        clock.advance(49)
        tokens.append(await source.token())
        assert len(set(tokens)) == 1 and source.fetches == 1
        clock.advance(2)
        assert await source.token() != tokens[0]
    finally:
        oauth.expires_in = 3600


async def test_an_assertion_signed_by_another_key_is_rejected(oauth: FakeGoogleOAuth) -> None:
    info, _ = make_service_account_key(oauth.token_uri, client_email="impostor@key-project.iam.gserviceaccount.com")
    _, other_public_key = make_service_account_key(oauth.token_uri)
    oauth.register(info["client_email"], other_public_key)
    source = await GcpIdentity(check_token_uri=_any_url).service_account(info)

    with pytest.raises(GcpCredentialsError) as caught:
        await source.token()
    assert caught.value.status == 401
    assert "Invalid JWT Signature" in caught.value.message
    assert "PRIVATE KEY" not in json.dumps(caught.value.body())


async def test_an_unreachable_token_endpoint_is_a_retryable_503(key: dict[str, Any]) -> None:
    source = await GcpIdentity(check_token_uri=_any_url).service_account({**key, "token_uri": "http://127.0.0.1:9/t"})

    with pytest.raises(GcpTokenUnavailableError) as caught:
        await source.token()
    assert caught.value.status == 503 and caught.value.retryable


async def test_without_a_url_check_only_google_token_uris_are_accepted(key: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError, match=r"googleapis\.com"):
        await GcpIdentity().service_account(key)


async def test_the_key_cache_is_bounded(oauth: FakeGoogleOAuth) -> None:
    identity = GcpIdentity(check_token_uri=_any_url, max_keys=2)
    keys = []
    for n in range(3):
        info, public_key = make_service_account_key(oauth.token_uri, client_email=f"k{n}@p.iam.gserviceaccount.com")
        oauth.register(info["client_email"], public_key)
        keys.append(info)
    first = await identity.service_account(keys[0])
    assert await identity.service_account(keys[0]) is first
    await identity.service_account(keys[1])
    await identity.service_account(keys[2])

    assert await identity.service_account(keys[0]) is not first  # the least recently used key was dropped


# --- Application Default Credentials --------------------------------------------------------------------------------
async def test_the_metadata_server_identity_is_fetched_once(on_gce: FakeMetadataServer) -> None:
    identity = GcpIdentity()
    sources = await asyncio.gather(*(identity.application_default() for _ in range(5)))
    headers = await asyncio.gather(*(sources[0].authorize("POST", "https://x", {}, b"") for _ in range(20)))

    assert len({id(s) for s in sources}) == 1
    assert sources[0].project_id == "metadata-project"
    assert len({h["authorization"] for h in headers}) == 1
    assert headers[0]["authorization"].startswith("Bearer ya29.fake-metadata-")
    assert on_gce.token_requests == 1
    assert on_gce.refused == 0, "google-auth sent a request without Metadata-Flavor: Google"
    assert CLOUD_PLATFORM_SCOPE in on_gce.scopes_requested[0]


async def test_a_metadata_token_near_expiry_is_refreshed(on_gce: FakeMetadataServer) -> None:
    clock = FakeClock()
    source = await GcpIdentity(clock=clock).application_default()
    first = await source.token()
    clock.advance(3599 - 100)

    assert await source.token() != first
    assert on_gce.token_requests == 2


async def test_workload_identity_federation_from_an_external_account_file(
    oauth: FakeGoogleOAuth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The AWS/Azure-federated setup: a subject token file exchanged at STS, then a service account impersonated."""
    subject = tmp_path / "subject-token"
    subject.write_text(oauth.subject_token)
    config = tmp_path / "external-account.json"
    config.write_text(json.dumps({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/pool/providers/aws",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": f"{oauth.url}/v1/token",
        "service_account_impersonation_url":
            f"{oauth.url}/v1/projects/-/serviceAccounts/gateway@wif-project.iam.gserviceaccount.com:generateAccessToken",
        "credential_source": {"file": str(subject)},
    }))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(config))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "wif-project")
    exchanges, impersonations = oauth.exchanges, oauth.impersonations

    source = await GcpIdentity().application_default()
    tokens = {await source.token() for _ in range(10)}

    assert source.project_id == "wif-project"
    assert len(tokens) == 1 and tokens.pop().startswith("ya29.fake-impersonated-")
    assert (oauth.exchanges - exchanges, oauth.impersonations - impersonations) == (1, 1)


async def test_no_gateway_identity_is_a_clear_401(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))

    with pytest.raises(GcpCredentialsError) as caught:
        await GcpIdentity().application_default()
    assert caught.value.status == 401
    assert "no Google credentials" in caught.value.message


async def test_a_failed_discovery_is_not_repeated_by_every_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    clock = FakeClock()
    identity = GcpIdentity(clock=clock)
    with pytest.raises(GcpCredentialsError):
        await identity.application_default()
    (tmp_path / "missing.json").write_text("{}")  # a discovery now would fail differently

    with pytest.raises(GcpCredentialsError, match="was not found"):
        await identity.application_default()
    clock.advance(31)
    with pytest.raises(GcpCredentialsError, match=r"unusable|no Google credentials") as caught:
        await identity.application_default()
    assert "was not found" not in caught.value.message
