"""httpx behind the same seam: used where its MockTransport and Auth flows pay off (tests, token endpoints)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

import httpx

from core.transport.base import TransportConnectError, TransportError, TransportTimeout


class HttpxResponse:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers: Sequence[tuple[str, str]] = list(response.headers.multi_items())

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    async def read(self) -> bytes:
        try:
            return await self._response.aread()
        except httpx.TimeoutException as exc:
            raise TransportTimeout("timed out reading the response body") from exc
        except httpx.HTTPError as exc:
            raise TransportError(f"connection broke while reading the response: {exc}") from exc
        finally:
            await self._response.aclose()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes():
                yield chunk
        except httpx.TimeoutException as exc:
            raise TransportTimeout("timed out waiting for the next chunk") from exc
        except httpx.HTTPError as exc:
            raise TransportError(f"connection broke mid-stream: {exc}") from exc
        finally:
            await self._response.aclose()

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxUpstreamClient:
    def __init__(
        self,
        *,
        max_connections: int = 100,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 600.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(connect=connect_timeout_s, read=read_timeout_s, write=read_timeout_s, pool=None),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
        )

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> HttpxResponse:
        request = self._client.build_request(method, url, headers=dict(headers), content=body)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise TransportTimeout(f"timed out connecting to {request.url.host}") from exc
        except httpx.ConnectError as exc:
            raise TransportConnectError(f"could not connect to {request.url.host}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise TransportError(f"request to {request.url.host} failed: {exc}") from exc
        return HttpxResponse(response)

    async def aclose(self) -> None:
        await self._client.aclose()
