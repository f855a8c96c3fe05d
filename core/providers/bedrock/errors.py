"""Bedrock's errors mapped to the gateway's: the one place where Bedrock exception names become statuses.

Bedrock names its exception in the ``x-amzn-ErrorType`` header (``ThrottlingException:http://internal...``) and puts
``{"message": ...}`` in the body; mid-stream it sends an event-stream frame with ``:message-type: exception`` and
``:exception-type: throttlingException``. Both land here. Statuses follow what a retrying client needs rather than
Bedrock's own codes where those mislead: ``ModelTimeoutException`` (Bedrock: 408) becomes 504,
``ModelNotReadyException`` (Bedrock: 429) 503, ``ModelErrorException`` (Bedrock: 424) 502 — each retryable by the
default ``retry.on_status_codes`` — and ``ThrottlingException`` stays 429.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.credentials.aws import AwsCredentialError
from core.errors import (
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    SkyrelayError,
    UpstreamConnectionError,
)
from core.providers.base import provider_error_body

PROVIDER = "bedrock"

#: Exception name → (status the client sees, OpenAI error type).
_STATUS: dict[str, tuple[int, str]] = {
    "ThrottlingException": (429, "rate_limit_error"),
    "ServiceQuotaExceededException": (429, "rate_limit_error"),
    "ModelTimeoutException": (504, "api_error"),
    "ServiceUnavailableException": (503, "api_error"),
    "ModelNotReadyException": (503, "api_error"),
    "InternalServerException": (500, "api_error"),
    "ModelErrorException": (502, "api_error"),
    "ModelStreamErrorException": (502, "api_error"),
    "ValidationException": (400, "invalid_request_error"),
    "AccessDeniedException": (403, "permission_error"),
    "ResourceNotFoundException": (404, "not_found_error"),
    "UnrecognizedClientException": (403, "authentication_error"),
    "InvalidSignatureException": (403, "authentication_error"),
    "ExpiredTokenException": (403, "authentication_error"),
    "IncompleteSignatureException": (403, "authentication_error"),
    "MissingAuthenticationTokenException": (403, "authentication_error"),
}

#: Rejections that fresh credentials could fix (expired or rotated); anything else is about permissions or input.
CREDENTIAL_REJECTIONS = frozenset(
    {"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException"}
)


def exception_name(error_type_header: str | None, body: Any = None) -> str | None:
    """Bedrock's exception name from the ``x-amzn-ErrorType`` header or a JSON body's ``__type``."""
    if error_type_header:
        return error_type_header.split(":", 1)[0].strip() or None
    if isinstance(body, dict) and isinstance(body.get("__type"), str):
        return body["__type"].rsplit("#", 1)[-1] or None
    return None


def _message(body: Any, raw: bytes) -> str:
    if isinstance(body, dict):
        for key in ("message", "Message"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    text = raw.decode("utf-8", "replace").strip()
    return text[:2000] or "empty response body"


def _decode(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


def map_http_error(status: int, error_type_header: str | None, raw: bytes) -> tuple[int, bytes]:
    """A non-2xx Bedrock answer → (status for the client, provider-shaped error body)."""
    body = _decode(raw)
    name = exception_name(error_type_header, body)
    mapped_status, error_type = _STATUS.get(name or "", (status, _type_for(status)))
    return mapped_status, provider_error_body(PROVIDER, _message(body, raw), error_type=error_type, code=name)


def _type_for(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status == 404:
        return "not_found_error"
    if status in (401, 403):
        return "permission_error"
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


class _WithProvider(SkyrelayError):
    """Errors raised on Bedrock's behalf name it in the body, like provider error results do."""

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["provider"] = PROVIDER
        return body


class BedrockRateLimitedError(_WithProvider, RateLimitedError):
    pass


class BedrockInvalidRequestError(_WithProvider, InvalidRequestError):
    pass


class BedrockPermissionError(_WithProvider, PermissionDeniedError):
    pass


class BedrockNotFoundError(_WithProvider, NotFoundError):
    pass


class BedrockAuthenticationError(_WithProvider, SkyrelayError):
    status = 401
    error_type = "authentication_error"
    default_code = "aws_credentials_missing"


class BedrockUpstreamError(UpstreamConnectionError):
    """Bedrock failed mid-answer (a 5xx-class exception event, a broken frame) or answered something unusable:
    retryable, with the provider in the body."""

    def __init__(self, message: str, *, status: int = 502, code: str = "upstream_error") -> None:
        super().__init__(f"{PROVIDER} error: {message}", provider=PROVIDER, status=status, code=code)


def raised_error(name: str, message: str) -> SkyrelayError:
    """An exception Bedrock reported (e.g. an event-stream exception frame) as an error to raise."""
    status, _ = _STATUS.get(name, (502, "api_error"))
    text = f"{PROVIDER} error: {message}"
    if status == 429:
        return BedrockRateLimitedError(text, code=name)
    if status == 400:
        return BedrockInvalidRequestError(text, code=name)
    if status == 403:
        return BedrockPermissionError(text, code=name)
    if status == 404:
        return BedrockNotFoundError(text, code=name)
    return BedrockUpstreamError(message, status=status if status >= 500 else 502, code=name)


def stream_exception(exception_type: str, payload: bytes) -> SkyrelayError:
    """An event-stream exception frame (``:exception-type: throttlingException``) as an error to raise."""
    name = exception_type[:1].upper() + exception_type[1:]
    body = _decode(payload)
    return raised_error(name, _message(body, payload))


def credential_failure(error: AwsCredentialError) -> SkyrelayError:
    """No credentials could be had for the call: a clear error naming the provider, never a secret."""
    text = f"{PROVIDER} error: {error.message}"
    if error.retryable:
        return UpstreamConnectionError(text, provider=PROVIDER, status=error.status, code=error.code)
    if error.status == 401:
        return BedrockAuthenticationError(text, code=error.code)
    if error.status == 403:
        return BedrockPermissionError(text, code=error.code)
    return BedrockInvalidRequestError(text, code=error.code)
