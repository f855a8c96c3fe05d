"""Google Cloud identity for outgoing calls: OAuth bearer tokens from google-auth, cached until shortly before expiry.

Two kinds of identity:

- The gateway's own, found once per process through Application Default Credentials: the Cloud Run / GKE / GCE
  service account from the metadata server (``GCE_METADATA_HOST`` / ``GCE_METADATA_IP`` honoured), an
  ``external_account`` file for workload identity federation from AWS or Azure, or a service-account key file
  (``GOOGLE_APPLICATION_CREDENTIALS``).
- Service-account keys that arrive with a request (``vertex_service_account_json`` from a header, a config or a
  virtual key), one cached token source per key, at most ``max_keys`` of them (least recently used dropped).

google-auth is synchronous and talks HTTP through ``requests``: every refresh runs in a worker thread, one at a time
per identity (:class:`~core.credentials.base.TokenCache`), so one token serves every request until it is close to
expiry — never minted per request (Portkey's B9). The margin is below the five minutes of remaining life at which the
metadata server itself stops handing out a cached token, so a metadata token is never stale on arrival.

Keys sent by callers are only accepted as ``service_account`` keys: an ``external_account`` or ``authorized_user``
document from a caller could make the gateway read local files or call arbitrary URLs. Their ``token_uri`` must be
Google's or pass the caller-URL (SSRF) check the composition root hands in.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from core.credentials.base import ExpiringToken, TokenCache
from core.errors import AuthenticationError, InvalidRequestError, SkyrelayError

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
REFRESH_MARGIN_S = 120.0
#: When google-auth reports no expiry, assume this much life so the token is still replaced periodically.
_ASSUMED_LIFETIME_S = 1800.0
#: A failed ADC discovery is remembered this long: off Google Cloud it can take seconds (metadata server probes),
#: and a burst of requests must not repeat it one after another.
ADC_FAILURE_TTL_S = 30.0


class GcpCredentialsError(AuthenticationError):
    """No usable Google identity, or Google refused it (missing ADC, invalid key, rejected assertion)."""

    default_code = "gcp_credentials"


class GcpTokenUnavailableError(SkyrelayError):
    """The token endpoint or metadata server could not be reached or failed transiently; a retry may succeed."""

    status = 503
    error_type = "upstream_error"
    default_code = "gcp_token_unavailable"
    retryable = True


def _describe(exc: BaseException) -> str:
    """google-auth exception text without echoing anything but its first argument (never a token or key)."""
    first = exc.args[0] if exc.args else type(exc).__name__
    return str(first)[:300]


def _refresh(credentials: Any, request: Any) -> tuple[str, datetime | None]:
    credentials.refresh(request)
    return credentials.token, credentials.expiry


class GoogleCredentialSource:
    """A :class:`~core.credentials.base.CredentialSource` over one google-auth ``Credentials`` object."""

    def __init__(self, credentials: Any, *, project_id: str | None = None,
                 refresh_margin_s: float = REFRESH_MARGIN_S, clock: Callable[[], float] = time.time) -> None:
        self.credentials = credentials
        self.project_id = project_id
        self._clock = clock
        self._margin = refresh_margin_s
        self._request: Any = None
        # The margin is applied per token in _fetch (capped at half its lifetime), so a short-lived token is still
        # reused for a while instead of being refetched on every request.
        self._cache = TokenCache(self._fetch, refresh_margin_s=0.0, clock=clock)

    @property
    def fetches(self) -> int:
        """How many tokens this source has fetched (tests prove reuse with it)."""
        return self._cache.fetches

    async def token(self) -> str:
        return await self._cache.get()

    async def authorize(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        return {"authorization": f"Bearer {await self._cache.get()}"}

    def invalidate(self) -> None:
        self._cache.invalidate()

    def close(self) -> None:
        """Release the HTTP session google-auth refreshes through."""
        session = getattr(self._request, "session", None)
        if session is not None:
            session.close()

    async def _fetch(self) -> ExpiringToken:
        from google.auth import exceptions

        if self._request is None:
            import google.auth.transport.requests

            self._request = google.auth.transport.requests.Request()
        try:
            token, expiry = await asyncio.to_thread(_refresh, self.credentials, self._request)
        except exceptions.RefreshError as exc:
            if getattr(exc, "retryable", False):
                raise GcpTokenUnavailableError(f"Google token refresh failed: {_describe(exc)}") from None
            raise GcpCredentialsError(f"Google rejected the credentials: {_describe(exc)}") from None
        except exceptions.TransportError as exc:
            raise GcpTokenUnavailableError(f"Google token endpoint unreachable: {_describe(exc)}") from None
        except exceptions.GoogleAuthError as exc:
            raise GcpCredentialsError(f"Google credentials unusable: {_describe(exc)}") from None
        if not token:
            raise GcpCredentialsError("Google returned no access token")
        now = self._clock()
        expires_at = expiry.replace(tzinfo=UTC).timestamp() if expiry is not None else now + _ASSUMED_LIFETIME_S
        return ExpiringToken(str(token), expires_at - min(self._margin, max(expires_at - now, 0.0) / 2))


def parse_service_account(value: Any, *, param: str = "vertex_service_account_json") -> dict[str, Any]:
    """A caller's service-account key (a JSON string or an object) checked for the fields the JWT flow needs."""
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise InvalidRequestError(f"{param} is not valid JSON", param=param) from None
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{param} must be a service-account key object", param=param)
    if value.get("type") != "service_account":
        raise InvalidRequestError(f"{param} must be a key of type service_account", param=param)
    for field in ("client_email", "private_key"):
        if not isinstance(value.get(field), str) or not value[field]:
            raise InvalidRequestError(f"{param} lacks {field}", param=param)
    return value


def is_google_token_uri(uri: str) -> bool:
    parts = urlsplit(uri)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (host == "googleapis.com" or host.endswith(".googleapis.com"))


class GcpIdentity:
    """Token sources for the gateway's Application Default Credentials and for callers' service-account keys."""

    def __init__(
        self,
        *,
        check_token_uri: Callable[[str], Awaitable[None]] | None = None,
        max_keys: int = 128,
        refresh_margin_s: float = REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._check_token_uri = check_token_uri
        self._max_keys = max_keys
        self._margin = refresh_margin_s
        self._clock = clock
        self._adc: GoogleCredentialSource | None = None
        self._adc_failure: tuple[float, str] | None = None
        self._adc_lock = asyncio.Lock()
        self._keys: OrderedDict[str, GoogleCredentialSource] = OrderedDict()

    async def application_default(self) -> GoogleCredentialSource:
        """The gateway's own identity, discovered once (google.auth.default in a worker thread)."""
        if self._adc is not None:
            return self._adc
        async with self._adc_lock:
            if self._adc is None:
                if self._adc_failure is not None and self._adc_failure[0] > self._clock():
                    raise GcpCredentialsError(self._adc_failure[1])
                try:
                    credentials, project = await asyncio.to_thread(_application_default)
                except GcpCredentialsError as error:
                    self._adc_failure = (self._clock() + ADC_FAILURE_TTL_S, error.message)
                    raise
                self._adc = GoogleCredentialSource(credentials, project_id=project, refresh_margin_s=self._margin,
                                                   clock=self._clock)
        return self._adc

    async def service_account(self, info: Mapping[str, Any]) -> GoogleCredentialSource:
        """The token source for one service-account key; the same key always gets the same (cached) source."""
        token_uri = str(info.get("token_uri") or GOOGLE_TOKEN_URI)
        key = hashlib.sha256(orjson.dumps([info.get("client_email"), info.get("private_key_id"),
                                           info.get("private_key"), token_uri])).hexdigest()
        source = self._cached(key)
        if source is not None:
            return source
        if not is_google_token_uri(token_uri):
            if self._check_token_uri is None:
                raise InvalidRequestError("the service-account key's token_uri must be a googleapis.com URL",
                                          param="vertex_service_account_json")
            await self._check_token_uri(token_uri)
        credentials = await asyncio.to_thread(_service_account_credentials, {**info, "token_uri": token_uri})
        source = self._cached(key)
        if source is None:
            source = GoogleCredentialSource(credentials, project_id=info.get("project_id"),
                                            refresh_margin_s=self._margin, clock=self._clock)
            self._keys[key] = source
            if len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)  # an in-flight request may still use it; GC closes its session
        return source

    async def aclose(self) -> None:
        for source in [*self._keys.values(), *([self._adc] if self._adc else [])]:
            source.close()
        self._keys.clear()

    def _cached(self, key: str) -> GoogleCredentialSource | None:
        source = self._keys.get(key)
        if source is not None:
            self._keys.move_to_end(key)
        return source


def _application_default() -> tuple[Any, str | None]:
    import google.auth
    from google.auth import exceptions

    try:
        credentials, project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    except exceptions.DefaultCredentialsError as exc:
        raise GcpCredentialsError(
            "the gateway has no Google credentials (Application Default Credentials: metadata server, "
            f"GOOGLE_APPLICATION_CREDENTIALS); send a bearer token or a service-account key: {_describe(exc)}"
        ) from None
    except exceptions.GoogleAuthError as exc:
        raise GcpCredentialsError(f"Application Default Credentials unusable: {_describe(exc)}") from None
    return credentials, project


def _service_account_credentials(info: Mapping[str, Any]) -> Any:
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_info(info, scopes=[CLOUD_PLATFORM_SCOPE])
    except (ValueError, TypeError, KeyError):
        # The exception text may quote key material: say what is wrong without it.
        raise InvalidRequestError("vertex_service_account_json does not hold a usable private key",
                                  param="vertex_service_account_json") from None
