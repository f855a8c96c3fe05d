"""Helpers shared by adapters that speak HTTP to their vendor: header filtering and response wrapping."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import orjson

from core.errors import UpstreamConnectionError
from core.providers.base import ProviderResult, provider_error_body
from core.transport.base import TransportError, UpstreamResponse

#: Never copied from an upstream response to the client: hop-by-hop, and headers the gateway recomputes.
DROPPED_RESPONSE_HEADERS = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
        "transfer-encoding", "upgrade", "content-length", "content-encoding", "date", "server", "set-cookie",
    }
)


def passthrough_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in DROPPED_RESPONSE_HEADERS]


def forwarded_headers(names: tuple[str, ...], client_headers: Mapping[str, str]) -> dict[str, str]:
    """Client headers named in ``forward_headers`` (never the gateway's own ``x-portkey-*`` ones)."""
    out: dict[str, str] = {}
    for name in names:
        key = name.strip().lower()
        if key and not key.startswith("x-portkey-") and key in client_headers:
            out[key] = client_headers[key]
    return out


def error_message_from(body: bytes) -> tuple[str, str | None, str | None, str | int | None]:
    """Best-effort (message, type, param, code) out of a vendor error body of unknown shape."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return (text[:2000] or "empty response body", None, None, None)
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            message = err.get("message") or err.get("Message") or orjson.dumps(err).decode()
            return (str(message), err.get("type") or err.get("status"), err.get("param"), err.get("code"))
        if isinstance(err, str):
            return (err, data.get("type"), None, data.get("code"))
        if isinstance(data.get("message"), str):
            return (data["message"], None, None, None)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return error_message_from(orjson.dumps(data[0]))
    return (orjson.dumps(data).decode()[:2000], None, None, None)


async def error_result(
    provider: str, response: UpstreamResponse, mapper: Callable[[bytes], bytes] | None = None
) -> ProviderResult:
    """Read a non-2xx upstream response and wrap it in the provider error shape, keeping its status."""
    raw = await response.read()
    if mapper is not None:
        body = mapper(raw)
    else:
        message, error_type, param, code = error_message_from(raw)
        body = provider_error_body(provider, message, error_type=error_type, param=param, code=code)
    return ProviderResult(
        status=response.status,
        headers=passthrough_headers(response.headers),
        provider=provider,
        body=body,
    )


async def _mapped_chunks(provider: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    except TransportError as exc:
        raise UpstreamConnectionError(str(exc), provider=provider, code="upstream_stream_broken") from None


def streamed_result(provider: str, response: UpstreamResponse, chunks: AsyncIterator[bytes]) -> ProviderResult:
    """A streaming result; a connection that breaks mid-stream surfaces as :class:`UpstreamConnectionError`."""
    return ProviderResult(
        status=response.status,
        headers=passthrough_headers(response.headers),
        provider=provider,
        chunks=_mapped_chunks(provider, chunks),
        media_type="text/event-stream",
        _closer=response.aclose,
    )
