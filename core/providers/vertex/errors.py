"""Google API errors → the provider error shape, with the HTTP status a client and the router should act on.

Vertex answers ``{"error": {"code", "message", "status", "details"}}`` (a one-element list of that from some stream
endpoints); Claude on Vertex may answer Anthropic's ``{"type": "error", "error": {"type", "message"}}``. The
canonical ``status`` decides the HTTP status we return, so ``RESOURCE_EXHAUSTED`` is always a retryable 429 and
``UNAVAILABLE`` a retryable 503 whatever status line carried it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from core.errors import SkyrelayError
from core.providers.base import ProviderResult, provider_error_body
from core.providers.http import error_message_from, passthrough_headers
from core.transport.base import UpstreamResponse

PROVIDER = "vertex-ai"

#: google.rpc.Code names → the HTTP status Google's own HTTP mapping gives them.
GOOGLE_STATUS_HTTP: dict[str, int] = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ABORTED": 409,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def parse_google_error(raw: bytes, fallback_status: int) -> tuple[int, bytes]:
    """(HTTP status, provider error body) for a Vertex error body of any known shape."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("status"), str):
        status_name = error["status"]
        status = GOOGLE_STATUS_HTTP.get(status_name, fallback_status)
        code = error.get("code")
        body = provider_error_body(
            PROVIDER, str(error.get("message") or status_name), error_type=status_name,
            code=str(code) if code is not None else None,
        )
        return status, body
    message, error_type, param, code = error_message_from(raw)
    return fallback_status, provider_error_body(PROVIDER, message, error_type=error_type, param=param, code=code)


async def vertex_error_result(response: UpstreamResponse) -> ProviderResult:
    """A non-2xx Vertex answer as a ProviderResult in the provider error shape."""
    status, body = parse_google_error(await response.read(), response.status)
    return ProviderResult(status=status, headers=passthrough_headers(response.headers), provider=PROVIDER, body=body)


class VertexStreamError(SkyrelayError):
    """Vertex reported an error inside a stream that had already started; the client gets it as an SSE event."""

    error_type: ClassVar[str] = "api_error"
    default_code: ClassVar[str] = "upstream_stream_error"

    def __init__(self, message: str, *, status_name: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code, status=GOOGLE_STATUS_HTTP.get(status_name or "", 502))
        self.status_name = status_name

    @classmethod
    def from_payload(cls, error: Any) -> VertexStreamError:
        if isinstance(error, dict):
            code = error.get("code")
            return cls(str(error.get("message") or "stream error"), status_name=error.get("status"),
                       code=str(code) if code is not None else None)
        return cls(f"stream error: {error!r}"[:2000])

    def body(self) -> dict[str, Any]:
        return {
            "error": {"message": f"{PROVIDER} error: {self.message}", "type": self.status_name or self.error_type,
                      "param": None, "code": self.code},
            "provider": PROVIDER,
        }
