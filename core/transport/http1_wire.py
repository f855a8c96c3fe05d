"""The HTTP/1.1 wire format of :mod:`core.transport.http1_client`: URLs as request targets, request heads, and
Content-Encoding decoding. Pure functions and one small decoder, kept apart from the connection pool."""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from core.transport.base import TransportError

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Characters that may appear in a request target as sent; anything else is percent-encoded.
_UNSAFE_TARGET = re.compile(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")
#: Headers the client writes itself; a caller's value would duplicate or contradict them.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


@functools.lru_cache(maxsize=4096)
def split_url(url: str) -> tuple[Origin, str, str]:
    """(origin, request target, Host header) of an absolute http(s) URL; memoised — providers reuse few URLs."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise TransportError(f"unsupported upstream URL {origin_text(url)!r}: only absolute http(s) URLs")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise TransportError(f"invalid port in upstream URL {origin_text(url)!r}") from None
    host = parts.hostname
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    if _UNSAFE_TARGET.search(target):
        target = quote(target, safe="-._~:/?#[]@!$&'()*+,;=%")
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    return Origin(scheme, host, port), target, host_header


def origin_text(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}"



class BodyDecoder:
    """Incremental Content-Encoding decoding (gzip, deflate with or without the zlib wrapper)."""

    def __init__(self, encoding: str) -> None:
        self._raw_deflate = False
        self._inner = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        self._deflate = encoding == "deflate"
        self._started = False

    def feed(self, data: bytes) -> bytes:
        try:
            out = self._inner.decompress(data)
        except zlib.error:
            if not (self._deflate and not self._started):
                raise
            # "deflate" without the zlib header, as some servers send it.
            self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._inner.decompress(data)
        self._started = True
        return out

    def flush(self) -> bytes:
        return self._inner.flush()



def encode_request(method: str, target: str, host_header: str, headers: Mapping[str, str],
                    body: bytes | None) -> bytes:
    if method == "HEAD":
        raise TransportError("HEAD requests are not supported by the upstream client")
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {host_header}\r\n"]
    has_encoding = False
    for name, value in headers.items():
        lower = name.lower()
        if lower in _OWN_HEADERS:
            continue
        if lower == "accept-encoding":
            has_encoding = True
        lines.append(f"{name}: {value}\r\n")
    if not has_encoding:
        lines.append("accept-encoding: gzip, deflate\r\n")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {len(body) if body else 0}\r\n")
    head = "".join(lines)
    expected = len(lines) + 1  # the first entry holds the request line and Host
    if head.count("\n") != expected or head.count("\r") != expected:
        raise TransportError("a request header contains a line break")  # header injection, refused
    encoded = head.encode("utf-8") + b"\r\n"
    return encoded + body if body else encoded


def describe_origin(origin: Origin) -> str:
    host = f"[{origin.host}]" if ":" in origin.host else origin.host
    return f"{origin.scheme}://{host}:{origin.port}"
