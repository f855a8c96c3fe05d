"""Which credential authorizes an Azure OpenAI call — Portkey's precedence (wire reference §8) without bug B13:

1. ``azure_ad_token``                → ``Authorization: Bearer <token>`` (a leading "Bearer " is accepted)
2. ``azure_auth_mode: entra``        → the service principal in ``azure_entra_tenant_id/_client_id/_client_secret``,
                                       else the gateway's own (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET),
                                       else the caller's key as in Portkey
3. ``azure_auth_mode: managed``      → the gateway's managed identity (``azure_managed_client_id``: user-assigned)
4. ``azure_auth_mode: workload``     → AKS workload identity (``azure_workload_client_id`` overrides AZURE_CLIENT_ID)
5. the caller's key                  → ``api-key``
6. nothing at all                    → the identity the platform clearly gives the gateway, else a 401

Tokens are for ``azure_entra_scope`` or https://cognitiveservices.azure.com/.default. A token of the *gateway's*
identity is a credential the caller does not own, so it is only sent to Azure endpoints or to hosts the operator
allow-listed (``SKYRELAY_SSRF_ALLOW``, loopback by default): a custom host cannot be used to collect it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from core.config.target import Target
from core.credentials.azure import (
    COGNITIVE_SERVICES_SCOPE,
    AzureAuthMode,
    AzureIdentity,
    AzureIdentityError,
    AzureIdentityPool,
    AzureTokenCredential,
)
from core.errors import InvalidRequestError, PermissionDeniedError
from core.security.ssrf import SsrfGuard

#: Hosts that are Azure AI services themselves (commercial, US Gov and China clouds).
AZURE_SERVICE_SUFFIXES = (
    ".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com",
    ".openai.azure.us", ".cognitiveservices.azure.us", ".openai.azure.cn", ".cognitiveservices.azure.cn",
)

_ENTRA_OPTIONS = ("azure_entra_tenant_id", "azure_entra_client_id", "azure_entra_client_secret")


@dataclass(frozen=True, slots=True)
class AzureAuth:
    """The headers for one call; ``source`` and ``token`` are set for identity tokens (a 401 invalidates them)."""

    headers: dict[str, str] = field(repr=False)
    source: AzureTokenCredential | None = None
    token: str | None = field(default=None, repr=False)


class AzureAuthResolver:
    def __init__(self, provider: str, pool: AzureIdentityPool, guard: SsrfGuard) -> None:
        self._provider = provider
        self._pool = pool
        self._guard = guard

    async def resolve(self, target: Target, url: str) -> AzureAuth:
        ad_token = target.option("azure_ad_token")
        if ad_token:
            token = str(ad_token).strip()
            token = token[7:].strip() if token[:7].lower() == "bearer " else token
            return AzureAuth({"authorization": f"Bearer {token}"})
        chosen = self._identity(target)
        if chosen is None:
            if target.api_key:
                return AzureAuth({"api-key": target.api_key})
            raise AzureIdentityError(
                "no credentials: send the resource's api key (Authorization), azure_ad_token or azure_auth_mode, "
                "or run the gateway with an Azure identity", provider=self._provider)
        identity, gateway_owned = chosen
        if gateway_owned:
            self._check_destination(url)
        source = self._pool.source(identity)
        token = await source.token()
        return AzureAuth({"authorization": f"Bearer {token}"}, source, token)

    def _identity(self, target: Target) -> tuple[AzureIdentity, bool] | None:
        """The identity to get a token for and whether it is the gateway's own; None → use the caller's key."""
        scope = str(target.option("azure_entra_scope", COGNITIVE_SERVICES_SCOPE))
        mode = target.option("azure_auth_mode")
        if mode is None:
            if target.api_key:
                return None
            env_identity = self._pool.environment_identity(scope)
            return (env_identity, True) if env_identity else None
        try:
            auth_mode = AzureAuthMode(str(mode).strip().lower())
        except ValueError:
            raise InvalidRequestError("azure_auth_mode must be one of entra, managed, workload",
                                      param="x-portkey-azure-auth-mode") from None
        if auth_mode is AzureAuthMode.ENTRA:
            return self._entra(target, scope)
        if auth_mode is AzureAuthMode.MANAGED:
            client_id = target.option("azure_managed_client_id")
            return AzureIdentity(AzureAuthMode.MANAGED, scope, client_id=client_id and str(client_id)), True
        return self._workload(target, scope), True

    def _entra(self, target: Target, scope: str) -> tuple[AzureIdentity, bool] | None:
        given = {name: target.option(name) for name in _ENTRA_OPTIONS}
        if all(given.values()):
            tenant, client, secret = (str(given[name]) for name in _ENTRA_OPTIONS)
            return AzureIdentity(AzureAuthMode.ENTRA, scope, tenant, client, secret), False
        if any(given.values()):
            missing = ", ".join(name for name, value in given.items() if not value)
            raise InvalidRequestError(f"azure_auth_mode entra needs {missing} as well",
                                      param="x-portkey-azure-auth-mode")
        env_tenant, env_client, env_secret = (self._pool.env(n) for n in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID",
                                                                             "AZURE_CLIENT_SECRET"))
        if env_tenant and env_client and env_secret:
            return AzureIdentity(AzureAuthMode.ENTRA, scope, env_tenant, env_client, env_secret), True
        if target.api_key:
            return None
        raise AzureIdentityError("azure_auth_mode entra needs azure_entra_tenant_id, azure_entra_client_id and "
                                 "azure_entra_client_secret (or a service principal in the gateway's environment)",
                                 provider=self._provider)

    def _workload(self, target: Target, scope: str) -> AzureIdentity:
        tenant = target.option("azure_entra_tenant_id") or self._pool.env("AZURE_TENANT_ID")
        client = target.option("azure_workload_client_id") or self._pool.env("AZURE_CLIENT_ID")
        token_file = self._pool.env("AZURE_FEDERATED_TOKEN_FILE")
        missing = [name for name, value in (("AZURE_FEDERATED_TOKEN_FILE", token_file),
                                            ("AZURE_TENANT_ID", tenant), ("AZURE_CLIENT_ID", client)) if not value]
        if missing:
            raise AzureIdentityError(f"the gateway has no workload identity ({', '.join(missing)} not set)",
                                     provider=self._provider)
        return AzureIdentity(AzureAuthMode.WORKLOAD, scope, str(tenant), str(client), token_file=token_file)

    def _check_destination(self, url: str) -> None:
        host = (urlsplit(url).hostname or "").lower()
        if host.endswith(AZURE_SERVICE_SUFFIXES) or self._guard.name_allowed(host):
            return
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None and not address.is_global and self._guard.address_allowed(address):
            return
        raise PermissionDeniedError(
            f"{self._provider} error: the gateway's Azure identity is only sent to Azure endpoints or hosts "
            f"allow-listed in SKYRELAY_SSRF_ALLOW; {host or url!r} is neither",
            code="azure_identity_destination", param="x-portkey-custom-host")
