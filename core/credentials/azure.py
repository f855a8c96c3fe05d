"""Entra ID access tokens for Azure services, from azure-identity's async credentials, cached per identity.

Three kinds of identity (Portkey's ``azure_auth_mode``):

    entra     a service principal's client secret       → ClientSecretCredential
    managed   the host's managed identity                → ManagedIdentityCredential: App Service / Functions
              (IDENTITY_ENDPOINT + IDENTITY_HEADER), IMDS on VMs, AKS and Container Apps
    workload  AKS workload identity (a federated token)  → WorkloadIdentityCredential: AZURE_FEDERATED_TOKEN_FILE,
              AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_AUTHORITY_HOST

Why the layering: a token is fetched once per identity and reused until shortly before it expires (never per request,
Portkey bug B13), concurrent callers share one fetch (:class:`~core.credentials.base.TokenCache`), and a token the
service rejected is dropped once. azure-identity keeps a cache of its own that would hand back a rejected token, or a
token inside its 30 s "recently refreshed" window; when that happens the source starts over with a new credential
object, whose cache is empty.

Every SDK credential shares one aiohttp session owned by the :class:`AzureIdentityPool`, so credentials hold no
connections and an evicted one needs no closing. The SDK is imported on first use only (cold start: ~0.4 s). Failures
are mapped here, once: a refused or unavailable identity is a 401 :class:`AzureIdentityError`, an unreachable token
endpoint a 502 :class:`AzureIdentityUnreachableError`; neither message carries a secret or a token.
"""

from __future__ import annotations

import enum
import logging
import os
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.credentials.base import ExpiringToken, TokenCache
from core.errors import AuthenticationError, UpstreamConnectionError

logger = logging.getLogger("skyrelay.credentials.azure")

#: Azure OpenAI's token audience.
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"

_FAILURE_GRACE_S = 30.0
_MIN_USEFUL_LIFETIME_S = 60.0
_EXPIRY_SAFETY_S = 5.0


class AzureAuthMode(enum.StrEnum):
    ENTRA = "entra"
    MANAGED = "managed"
    WORKLOAD = "workload"


@dataclass(frozen=True, slots=True)
class AzureIdentity:
    """Who asks for a token, for which scope. Equal identities share one credential and one cached token.

    The secret is part of equality on purpose: a caller who knows a tenant and client id but not the secret must
    not be served another caller's cached token.
    """

    mode: AzureAuthMode
    scope: str = COGNITIVE_SERVICES_SCOPE
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    token_file: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], scope: str = COGNITIVE_SERVICES_SCOPE
                         ) -> AzureIdentity | None:
        """The identity the platform clearly gives this process, in DefaultAzureCredential's order, or None.

        Only explicit signals count (a service principal in AZURE_CLIENT_SECRET, a federated token file, an App
        Service identity endpoint): IMDS is never probed here, so a gateway outside Azure answers at once instead
        of waiting on a link-local timeout. IMDS is used when a target asks for ``managed`` explicitly.
        """
        tenant, client = environ.get("AZURE_TENANT_ID"), environ.get("AZURE_CLIENT_ID")
        if environ.get("AZURE_CLIENT_SECRET") and tenant and client:
            return cls(AzureAuthMode.ENTRA, scope, tenant, client, environ["AZURE_CLIENT_SECRET"])
        if environ.get("AZURE_FEDERATED_TOKEN_FILE") and tenant and client:
            return cls(AzureAuthMode.WORKLOAD, scope, tenant, client, token_file=environ["AZURE_FEDERATED_TOKEN_FILE"])
        if environ.get("IDENTITY_ENDPOINT") and environ.get("IDENTITY_HEADER"):
            return cls(AzureAuthMode.MANAGED, scope, client_id=client)
        return None

    def describe(self) -> str:
        """For logs and error messages: never the secret."""
        parts = [self.mode.value]
        if self.client_id:
            parts.append(f"client {self.client_id}")
        if self.tenant_id:
            parts.append(f"tenant {self.tenant_id}")
        return ", ".join(parts)


class AzureIdentityError(AuthenticationError):
    """The identity could not get a token (refused, misconfigured, not available on this host)."""

    default_code = "azure_identity_failed"

    def __init__(self, message: str, *, provider: str) -> None:
        super().__init__(f"{provider} error: {message}")
        self.provider = provider

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["provider"] = self.provider
        return body


class AzureIdentityUnreachableError(UpstreamConnectionError):
    """The token endpoint could not be reached or failed; retryable like any upstream outage."""

    default_code = "azure_identity_unreachable"


class TokenCredentialLike(Protocol):
    """The part of azure-identity's AsyncSupportsTokenInfo this module uses (a stub in unit tests)."""

    async def get_token_info(self, *scopes: str) -> Any: ...


CredentialFactory = Callable[[AzureIdentity], Awaitable[TokenCredentialLike]]


class AzureTokenCredential:
    """A :class:`~core.credentials.base.CredentialSource` that authorizes with a cached token for one identity."""

    def __init__(self, identity: AzureIdentity, factory: CredentialFactory, *, provider: str,
                 refresh_margin_s: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self.identity = identity
        self._factory = factory
        self._provider = provider
        self._margin = refresh_margin_s
        self._clock = clock
        self._credential: TokenCredentialLike | None = None
        self._current: str | None = None
        self._rejected: str | None = None
        self._cache = TokenCache(self._fetch, refresh_margin_s, clock)

    @property
    def fetches(self) -> int:
        """How many tokens this source has taken from azure-identity (tests prove reuse with it)."""
        return self._cache.fetches

    async def token(self) -> str:
        return await self._cache.get()

    async def authorize(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        return {"authorization": f"Bearer {await self.token()}"}

    def invalidate(self, rejected: str | None = None) -> None:
        """The service refused ``rejected`` (or the current token): the next call fetches a new one.

        A token that is no longer the current one is ignored, so many requests failing with the same stale token
        cause one refresh, not one each.
        """
        if rejected is not None and rejected != self._current:
            return
        self._rejected = self._current
        self._cache.invalidate()

    async def _fetch(self) -> ExpiringToken:
        info = await self._request()
        if info.token == self._rejected or self._due(info):
            # azure-identity answered from its own cache with a token we will not use: start over.
            stale, self._credential = info, None
            try:
                info = await self._request()
            except (AzureIdentityError, AzureIdentityUnreachableError):
                if stale.token == self._rejected or stale.expires_on - self._clock() < _MIN_USEFUL_LIFETIME_S:
                    raise
                logger.warning("token refresh for %s failed; the current token stays in use for now",
                               self.identity.describe())
                info = stale
        self._current, self._rejected = info.token, None
        logger.info("Entra token for %s (%s), valid for %ss", self.identity.describe(), self.identity.scope,
                    int(info.expires_on - self._clock()))
        return ExpiringToken(info.token, self._hold_until(info))

    def _due(self, info: Any) -> bool:
        return bool(self._expires_at(info) - self._margin <= self._clock())

    def _hold_until(self, info: Any) -> float:
        """The expiry to cache under. A token already inside the refresh margin (a refresh failed, or the service
        hands out short-lived tokens) is kept for a short while rather than re-fetched on every request — never
        past its own expiry.
        """
        if not self._due(info):
            return self._expires_at(info)
        now = self._clock()
        return min(now + _FAILURE_GRACE_S, info.expires_on - _EXPIRY_SAFETY_S) + self._margin

    def _expires_at(self, info: Any) -> float:
        """When to stop using a token: its expiry, or the service's suggested refresh time plus the margin."""
        refresh_on = getattr(info, "refresh_on", None)
        if refresh_on:
            return float(min(info.expires_on, refresh_on + self._margin))
        return float(info.expires_on)

    async def _request(self) -> Any:
        if self._credential is None:
            self._credential = await self._build()
        try:
            return await self._credential.get_token_info(self.identity.scope)
        except Exception as exc:  # noqa: BLE001 - mapped to the error tree right here, the SDK's one boundary
            raise map_identity_error(exc, self.identity, self._provider) from None

    async def _build(self) -> TokenCredentialLike:
        try:
            return await self._factory(self.identity)
        except ValueError as exc:  # azure-identity validates its arguments in constructors
            raise AzureIdentityError(f"the {self.identity.mode.value} identity is not configured: {_short(exc)}",
                                     provider=self._provider) from None


def map_identity_error(exc: Exception, identity: AzureIdentity, provider: str) -> Exception:
    """azure-identity / azure-core exceptions → the error tree; unknown exceptions pass through as they are."""
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        ServiceRequestError,
        ServiceRequestTimeoutError,
        ServiceResponseError,
        ServiceResponseTimeoutError,
    )
    from azure.identity import CredentialUnavailableError

    who = identity.describe()
    if isinstance(exc, CredentialUnavailableError):
        return AzureIdentityError(f"no Azure identity available ({who}): {_short(exc)}", provider=provider)
    if isinstance(exc, ClientAuthenticationError):
        status = exc.status_code
        if status is not None and status >= 500:
            return AzureIdentityUnreachableError(f"the token endpoint failed with {status} ({who})", provider=provider)
        return AzureIdentityError(f"Entra refused a token ({who}): {_short(exc)}", provider=provider)
    if isinstance(exc, ServiceRequestTimeoutError | ServiceResponseTimeoutError):
        return AzureIdentityUnreachableError(f"the token endpoint timed out ({who})", provider=provider, status=504,
                                             code="azure_identity_timeout")
    if isinstance(exc, ServiceRequestError | ServiceResponseError | AzureError):
        return AzureIdentityUnreachableError(f"could not reach the token endpoint ({who}): {_short(exc)}",
                                             provider=provider)
    if isinstance(exc, ValueError):
        return AzureIdentityError(f"the {identity.mode.value} identity is not configured: {_short(exc)}",
                                  provider=provider)
    return exc


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


class AzureIdentityPool:
    """One :class:`AzureTokenCredential` per distinct identity (least recently used evicted past ``max_identities``)
    and the aiohttp session all of their SDK credentials share.

    ``environ`` is where the platform's identity is looked up (tests pass their own); ``tls_ca_file`` trusts an extra
    CA for token endpoints (a local fake); ``credential_factory`` replaces azure-identity (unit tests).
    """

    def __init__(
        self,
        *,
        provider: str,
        max_identities: int = 64,
        refresh_margin_s: float = 300.0,
        environ: Mapping[str, str] | None = None,
        tls_ca_file: str | None = None,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 30.0,
        retry_total: int = 2,
        clock: Callable[[], float] = time.time,
        credential_factory: CredentialFactory | None = None,
    ) -> None:
        self._provider = provider
        self._max = max_identities
        self._margin = refresh_margin_s
        self._environ = os.environ if environ is None else environ
        self._tls_ca_file = tls_ca_file
        self._timeouts = (connect_timeout_s, read_timeout_s)
        self._retry_total = retry_total
        self._clock = clock
        self._factory = credential_factory or self._sdk_credential
        self._sources: OrderedDict[AzureIdentity, AzureTokenCredential] = OrderedDict()
        self._session: Any = None
        self._transport: Any = None

    def source(self, identity: AzureIdentity) -> AzureTokenCredential:
        source = self._sources.get(identity)
        if source is not None:
            self._sources.move_to_end(identity)
            return source
        source = AzureTokenCredential(identity, self._factory, provider=self._provider,
                                      refresh_margin_s=self._margin, clock=self._clock)
        self._sources[identity] = source
        while len(self._sources) > self._max:
            self._sources.popitem(last=False)
        return source

    def environment_identity(self, scope: str = COGNITIVE_SERVICES_SCOPE) -> AzureIdentity | None:
        return AzureIdentity.from_environment(self._environ, scope)

    def env(self, name: str) -> str | None:
        return self._environ.get(name) or None

    @property
    def size(self) -> int:
        """Identities held (bounded by ``max_identities``)."""
        return len(self._sources)

    async def _shared_transport(self) -> Any:
        if self._transport is None:
            import aiohttp
            from azure.core.pipeline.transport import AioHttpTransport

            ssl_context = ssl.create_default_context(cafile=self._tls_ca_file) if self._tls_ca_file else True
            # azure-core decompresses itself and reads proxies from the environment; keep its session defaults.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ssl_context, limit=32),
                trust_env=True,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            connect_s, read_s = self._timeouts
            self._transport = AioHttpTransport(session=self._session, session_owner=False,
                                               connection_timeout=connect_s, read_timeout=read_s)
        return self._transport

    async def _sdk_credential(self, identity: AzureIdentity) -> TokenCredentialLike:
        from azure.identity.aio import ClientSecretCredential, ManagedIdentityCredential, WorkloadIdentityCredential

        common: dict[str, Any] = {"transport": await self._shared_transport(), "retry_total": self._retry_total}
        if identity.mode is AzureAuthMode.MANAGED and not os.environ.get("IDENTITY_ENDPOINT"):
            del common["retry_total"]  # IMDS keeps the SDK's own schedule: it rides out 410s while IMDS upgrades
        if identity.mode is AzureAuthMode.ENTRA:
            return ClientSecretCredential(identity.tenant_id or "", identity.client_id or "",
                                          identity.client_secret or "", **common)
        if identity.mode is AzureAuthMode.WORKLOAD:
            return WorkloadIdentityCredential(tenant_id=identity.tenant_id, client_id=identity.client_id,
                                              token_file_path=identity.token_file, **common)
        return ManagedIdentityCredential(client_id=identity.client_id, **common)

    async def aclose(self) -> None:
        self._sources.clear()
        self._transport = None
        if self._session is not None:
            await self._session.close()
            self._session = None
