"""One error tree for the whole gateway.

Every failure a client can see is a :class:`SkyrelayError`. Each subclass knows its HTTP status, its OpenAI error
``type``, a stable ``code`` and whether a retry of the same request could succeed. Low-level errors (network,
JSON, SDK) are mapped to this tree at exactly one boundary each — the transport, the request parser, a provider's
error mapper — and nowhere else.

    SkyrelayError                      500 api_error
    ├── InvalidRequestError            400 invalid_request_error
    │   ├── InvalidConfigError         400 (Portkey's "Invalid config passed" shape, with ``errors``)
    │   ├── UnsupportedOperationError  400 an endpoint the chosen provider does not serve
    │   └── NoRouteError               400 a conditional router matched nothing
    ├── AuthenticationError            401 authentication_error
    ├── PermissionDeniedError          403 permission_error
    ├── NotFoundError                  404 not_found_error
    ├── RequestTimeoutError            408 timeout_error         (retryable: per attempt)
    ├── PayloadTooLargeError           413 invalid_request_error
    ├── RateLimitedError               429 rate_limit_error      (retryable)
    ├── LoopDetectedError              508 loop_detected
    ├── UpstreamConnectionError        502/503/504 upstream_error (retryable)
    └── GatewayInternalError           500 api_error             (a bug: never retried, stops a fallback)

Bodies are OpenAI's error shape ``{"error": {"message", "type", "param", "code"}}``; gateway-side errors also carry
Portkey's ``{"status": "failure", "message": ...}`` keys so clients of either gateway read them unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SkyrelayError(Exception):
    """Base of every error a client can see."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "api_error"
    default_code: ClassVar[str] = "internal_error"
    retryable: ClassVar[bool] = False
    #: Portkey marks internal exceptions with ``x-portkey-gateway-exception: true``; a fallback stops on them.
    gateway_exception: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.headers = headers or {}
        if status is not None:
            self.status = status  # type: ignore[misc]

    def body(self) -> dict[str, Any]:
        """The JSON body a client receives."""
        return {
            "error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code},
            "status": "failure",
            "message": self.message,
        }


class InvalidRequestError(SkyrelayError):
    status = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"


class InvalidConfigError(InvalidRequestError):
    """A routing config failed validation; ``errors`` lists each problem with its path, as Portkey does."""

    default_code = "invalid_config"

    def __init__(self, message: str = "Invalid config passed", errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.errors:
            body["errors"] = self.errors
            body["error"]["message"] = f"{self.message}: " + "; ".join(self.errors)
        return body


class UnsupportedOperationError(InvalidRequestError):
    default_code = "unsupported_operation"


class NoRouteError(InvalidRequestError):
    default_code = "no_route"


class AuthenticationError(SkyrelayError):
    status = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(SkyrelayError):
    status = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class NotFoundError(SkyrelayError):
    status = 404
    error_type = "not_found_error"
    default_code = "not_found"


class RequestTimeoutError(SkyrelayError):
    """One attempt exceeded ``request_timeout``; the body matches Portkey's 408 exactly (no provider field)."""

    status = 408
    error_type = "timeout_error"
    default_code = "request_timeout"
    retryable = True

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(f"Request exceeded the timeout sent in the request: {timeout_ms}ms")
        self.timeout_ms = timeout_ms

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.error_type, "param": None, "code": None}}


class PayloadTooLargeError(SkyrelayError):
    status = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"


class RateLimitedError(SkyrelayError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    retryable = True


class LoopDetectedError(SkyrelayError):
    status = 508
    error_type = "invalid_request_error"
    default_code = "loop_detected"


class UpstreamConnectionError(SkyrelayError):
    """The provider could not be reached or broke the connection; ``provider`` names it in the body."""

    status = 502
    error_type = "upstream_error"
    default_code = "upstream_unreachable"
    retryable = True

    def __init__(self, message: str, *, provider: str, status: int = 502, code: str | None = None) -> None:
        super().__init__(message, status=status, code=code)
        self.provider = provider

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["provider"] = self.provider
        return body


class GatewayInternalError(SkyrelayError):
    """A defect inside the gateway. Never retried; stops a fallback chain like Portkey's gateway exception."""

    gateway_exception = True
