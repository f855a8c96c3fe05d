"""Errors reported inside an Anthropic Messages stream (``event: error``), as an error the client sees."""

from __future__ import annotations

from typing import Any, ClassVar

from core.errors import SkyrelayError

#: Anthropic error types → the HTTP status the same error has outside a stream.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class MessagesStreamError(SkyrelayError):
    """The stream broke after it started: an ``error`` event, or the end came before ``message_stop``.

    Raised from the chunk iterator; the service turns it into an SSE ``data: {"error": ...}`` event, so the client
    never mistakes a failed stream for a finished answer.
    """

    error_type: ClassVar[str] = "api_error"
    default_code: ClassVar[str] = "upstream_stream_error"

    def __init__(self, message: str, *, provider: str, anthropic_type: str = "api_error",
                 code: str | None = None) -> None:
        super().__init__(message, code=code, status=ERROR_STATUS.get(anthropic_type, 502))
        self.provider = provider
        self.anthropic_type = anthropic_type

    def body(self) -> dict[str, Any]:
        return {
            "error": {"message": f"{self.provider} error: {self.message}", "type": self.anthropic_type,
                      "param": None, "code": self.code},
            "provider": self.provider,
        }
