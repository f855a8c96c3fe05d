"""AWS identity for SigV4-signed provider calls: botocore's credential chain and signer, never hand-written signing.

Where an identity's credentials come from:

1. explicit keys (Portkey's ``aws_access_key_id`` / ``aws_secret_access_key`` / ``aws_session_token`` config fields
   and ``x-portkey-aws-*`` headers);
2. otherwise botocore's default chain, in botocore's order: environment (how a Lambda execution role arrives), the
   web identity token file (IRSA), shared config and profiles, container credentials (EKS Pod Identity, ECS), IMDS;
3. optionally an assumed role on top of either (``aws_role_arn``, ``aws_external_id``).

Temporary credentials are botocore ``RefreshableCredentials``: an identity resolves them once and keeps them, and
botocore refreshes them inside its advisory window (15 minutes before expiry) — one STS call per credential
lifetime, never one per request. Everything that may do I/O (STS, IMDS, the token file) runs in a worker thread; the
event loop only reads the already-fresh frozen copy and computes the HMAC signature.

:class:`AwsIdentityCache` keeps one identity per distinct set of parameters (bounded, least recently used out), so a
provider serving many callers' keys or roles keeps each one's refreshable credentials across requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from core.errors import GatewayInternalError

try:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import (
        AssumeRoleCredentialFetcher,
        Credentials,
        DeferredRefreshableCredentials,
        ReadOnlyCredentials,
        RefreshableCredentials,
        create_credential_resolver,
    )
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.session import Session
except ImportError:  # pragma: no cover - exercised only without the extra installed
    raise GatewayInternalError(
        "AWS providers need botocore: install the `[aws]` extra (pip install 'skyrelay[aws]')"
    ) from None

#: STS calls fail fast: they run in a worker thread while a request waits for them.
_STS_CONFIG = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"})
#: A failed default-chain lookup is remembered this long, so requests without any AWS identity fail at once
#: instead of each probing IMDS again.
_CHAIN_FAILURE_TTL_S = 10.0
ROLE_SESSION_NAME = "skyrelay"


class AwsCredentialError(Exception):
    """No usable credentials. ``status`` is what the client should see; ``message`` never contains a secret."""

    def __init__(self, message: str, *, status: int, retryable: bool, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.code = code


@dataclass(frozen=True, slots=True)
class AwsIdentityParams:
    """Everything that makes one identity distinct. Secrets are kept out of ``repr``."""

    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    sts_region: str = "us-east-1"

    @property
    def explicit(self) -> bool:
        return bool(self.access_key_id and self.secret_access_key)

    def cache_key(self) -> tuple[str, ...]:
        secret = hashlib.sha256(
            f"{self.secret_access_key or ''}\0{self.session_token or ''}\0{self.external_id or ''}".encode()
        ).hexdigest()
        source = f"keys:{self.access_key_id}:{secret}" if self.explicit else "chain"
        if not self.role_arn:
            return (source,)
        return (source, self.role_arn, secret, self.sts_region)


class AwsIdentity:
    """One identity's botocore credentials, resolved once and refreshed before expiry in a worker thread."""

    def __init__(
        self,
        resolve: Callable[[], Credentials],
        *,
        refreshable: bool,
        reset: Callable[[], None] | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self._resolve = resolve
        self._reset = reset
        self._credentials = credentials
        self._lock = asyncio.Lock()
        #: Whether dropping the credentials can yield different ones (a chain or a role, not fixed keys).
        self.refreshable = refreshable

    async def frozen(self) -> ReadOnlyCredentials:
        """Credentials to sign one request with; fetched or refreshed off the event loop when needed."""
        credentials = self._credentials
        if credentials is not None and not _needs_refresh(credentials):
            return credentials.get_frozen_credentials()
        async with self._lock:  # one fetch in flight; concurrent requests wait for it
            try:
                current: Credentials = self._credentials
                if current is None:
                    current = await asyncio.to_thread(self._resolve)
                    self._credentials = current
                if _needs_refresh(current):
                    return await asyncio.to_thread(current.get_frozen_credentials)
                return current.get_frozen_credentials()
            except (BotoCoreError, ClientError, RuntimeError) as exc:
                self._credentials = None
                raise credential_error(exc) from None

    def invalidate(self) -> None:
        """The provider rejected the credentials (expired, revoked): resolve them anew on the next call."""
        if not self.refreshable:
            return
        self._credentials = None
        if self._reset is not None:
            self._reset()


def _needs_refresh(credentials: Credentials) -> bool:
    return isinstance(credentials, RefreshableCredentials) and bool(credentials.refresh_needed())


class AwsIdentityCache:
    """Identities by distinct parameters, least recently used evicted past ``max_entries``.

    The default chain is resolved once per cache and shared by every identity that builds on it.
    """

    def __init__(self, *, default_region: str, max_entries: int = 256, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._default_region = default_region
        self._max_entries = max_entries
        self._clock = clock
        self._identities: OrderedDict[tuple[str, ...], AwsIdentity] = OrderedDict()
        self._session: Session | None = None
        self._session_lock = threading.Lock()
        self._chain: Credentials | None = None
        self._chain_failed: tuple[float, AwsCredentialError] | None = None
        self._chain_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._identities)

    def identity(self, params: AwsIdentityParams) -> AwsIdentity:
        key = params.cache_key()
        identity = self._identities.get(key)
        if identity is None:
            identity = self._build(params)
            self._identities[key] = identity
            if len(self._identities) > self._max_entries:
                self._identities.popitem(last=False)
        else:
            self._identities.move_to_end(key)
        return identity

    def _build(self, params: AwsIdentityParams) -> AwsIdentity:
        static = (
            Credentials(params.access_key_id, params.secret_access_key, params.session_token or None)
            if params.explicit
            else None
        )
        if params.role_arn:
            role_arn = params.role_arn

            def assume() -> Credentials:
                source = static if static is not None else self._chain_credentials()
                return self._assumed_role(source, role_arn, params.external_id, params.sts_region)

            return AwsIdentity(assume, refreshable=True)
        if static is not None:
            return AwsIdentity(lambda: static, refreshable=False, credentials=static)
        return AwsIdentity(self._chain_credentials, refreshable=True, reset=self._forget_chain)

    # --- worker-thread side ------------------------------------------------------------------------------
    def _botocore_session(self) -> Session:
        with self._session_lock:
            if self._session is None:
                self._session = Session()
            return self._session

    def _chain_credentials(self) -> Credentials:
        """botocore's default chain, resolved once (runs in a worker thread: it may read files or call IMDS)."""
        with self._chain_lock:
            if self._chain is not None:
                return self._chain
            if self._chain_failed is not None and self._clock() - self._chain_failed[0] < _CHAIN_FAILURE_TTL_S:
                raise self._chain_failed[1]
            session = self._botocore_session()
            credentials = create_credential_resolver(session, region_name=self._default_region).load_credentials()
            if credentials is None:
                error = AwsCredentialError(
                    "no AWS credentials found: pass aws_access_key_id and aws_secret_access_key, or run the "
                    "gateway with an AWS identity (environment, IRSA web identity, EKS Pod Identity, profile, "
                    "instance role)",
                    status=401, retryable=False, code="aws_credentials_missing",
                )
                self._chain_failed = (self._clock(), error)
                raise error
            self._chain_failed = None
            self._chain = credentials
            return credentials

    def _forget_chain(self) -> None:
        with self._chain_lock:
            self._chain = None

    def _assumed_role(self, source: Credentials, role_arn: str, external_id: str | None, region: str
                      ) -> Credentials:
        session = self._botocore_session()

        def sts_client(service_name: str, **kwargs: Any) -> Any:
            with self._session_lock:  # botocore sessions are not thread-safe while creating clients
                return session.create_client(service_name, region_name=region, config=_STS_CONFIG, **kwargs)

        extra_args: dict[str, Any] = {"RoleSessionName": ROLE_SESSION_NAME}
        if external_id:
            extra_args["ExternalId"] = external_id
        fetcher = AssumeRoleCredentialFetcher(sts_client, source, role_arn, extra_args=extra_args)
        return DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")


def credential_error(exc: BaseException) -> AwsCredentialError:
    """botocore's failures while getting credentials, as a status and a message without secrets."""
    if isinstance(exc, AwsCredentialError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)
        code = str(error.get("Code") or "ClientError")
        message = f"{exc.operation_name} failed: {code}: {error.get('Message') or ''}".rstrip(": ")
        if status >= 500 or code in ("Throttling", "ThrottlingException", "RequestLimitExceeded"):
            return AwsCredentialError(message, status=503, retryable=True, code="aws_sts_unavailable")
        return AwsCredentialError(message, status=403 if status in (401, 403) else status, retryable=False,
                                  code="aws_credentials_rejected")
    if isinstance(exc, BotoConnectionError):
        return AwsCredentialError(f"could not reach the AWS credential endpoint: {exc}", status=502, retryable=True,
                                  code="aws_sts_unreachable")
    return AwsCredentialError(f"could not load AWS credentials: {exc}", status=401, retryable=False,
                              code="aws_credentials_unavailable")


def host_header(url: str) -> str:
    """The Host header value for ``url``: lowercase, without userinfo or the scheme's default port."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


class SigV4Signer:
    """A :class:`~core.credentials.base.CredentialSource` that signs with botocore's SigV4 for one service and region.

    The headers passed in are the ones that will be sent; ``host`` is added (and returned) when absent, so the host
    signed is the host sent. Returns ``authorization``, ``x-amz-date`` and, for temporary credentials,
    ``x-amz-security-token``.
    """

    def __init__(self, identity: AwsIdentity, *, service: str, region: str) -> None:
        self._identity = identity
        self._service = service
        self._region = region

    async def authorize(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        credentials = await self._identity.frozen()
        to_sign = dict(headers)
        added: dict[str, str] = {}
        if not any(name.lower() == "host" for name in to_sign):
            added["host"] = to_sign["host"] = host_header(url)
        request = AWSRequest(method=method, url=url, headers=to_sign, data=body)
        SigV4Auth(credentials, self._service, self._region).add_auth(request)
        added["authorization"] = request.headers["Authorization"]
        added["x-amz-date"] = request.headers["X-Amz-Date"]
        token = request.headers.get("X-Amz-Security-Token")
        if token:
            added["x-amz-security-token"] = token
        return added

    @property
    def refreshable(self) -> bool:
        """Whether :meth:`invalidate` can lead to different credentials (not for fixed keys)."""
        return self._identity.refreshable

    def invalidate(self) -> None:
        self._identity.invalidate()
