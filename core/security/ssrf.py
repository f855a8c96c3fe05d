"""SSRF guard for caller-chosen upstream hosts (``x-portkey-custom-host``, config ``custom_host``).

A custom host must be an http(s) URL without credentials whose host is a plain DNS name or a canonical IP literal,
and every address it resolves to must be public — unless the name or the address is allow-listed in settings
(loopback is, by default, for local development). Encoded IPv4 forms (``2130706433``, ``0x7f.1``, ``0177.0.0.1``,
``127.1``) are refused outright: they exist to slip past string checks. IPv4-mapped and 6to4 IPv6 addresses are
judged by the IPv4 address they carry.

Checking the resolution once is not enough against DNS rebinding (a name that answers public, then private):
:class:`core.security.guarded_resolver.GuardedResolver` re-checks the addresses the HTTP client actually connects
to, for every host this guard has approved.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from core.errors import InvalidRequestError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Names that reach cloud instance metadata services whatever they resolve to.
BLOCKED_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "metadata.azure.com", "instance-data",
     "instance-data.ec2.internal"}
)
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
_RESOLUTION_TTL_S = 5.0
_CACHE_SIZE = 4096


class InvalidCustomHostError(InvalidRequestError):
    default_code = "invalid_custom_host"

    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid custom host: {reason}", param="x-portkey-custom-host")


def _unwrap(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def _is_encoded_ipv4(host: str) -> bool:
    """True for numeric host forms the C resolver accepts but that are not a canonical dotted quad."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    try:
        return str(ipaddress.IPv4Address(host)) != host
    except ValueError:
        return True


class SsrfGuard:
    """Validates custom-host URLs and the addresses they resolve to."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self._allowed_names: set[str] = set()
        self._allowed_suffixes: list[str] = []
        self._allowed_networks: list[IPNetwork] = []
        for entry in allow:
            item = entry.strip().lower()
            if not item:
                continue
            try:
                self._allowed_networks.append(ipaddress.ip_network(item, strict=False))
                continue
            except ValueError:
                pass
            if item.startswith("*."):
                self._allowed_suffixes.append(item[1:])
            else:
                self._allowed_names.add(item)
        self._approved_urls: OrderedDict[str, str] = OrderedDict()
        self._guarded_hosts: OrderedDict[str, None] = OrderedDict()
        self._resolved_ok: OrderedDict[tuple[str, int], float] = OrderedDict()
        self._resolved_urls: OrderedDict[str, float] = OrderedDict()

    # --- policy ------------------------------------------------------------------------------------------
    def name_allowed(self, host: str) -> bool:
        host = host.lower()
        return host in self._allowed_names or any(host.endswith(s) for s in self._allowed_suffixes)

    def address_allowed(self, address: IPAddress) -> bool:
        """Public addresses pass; others only when inside an allow-listed network."""
        plain = _unwrap(address)
        if any(plain in net or address in net for net in self._allowed_networks):
            return True
        return plain.is_global and not plain.is_multicast

    def is_guarded(self, host: str) -> bool:
        """Whether connections to ``host`` must be re-checked at resolve time (it came from a caller)."""
        return host.lower() in self._guarded_hosts

    # --- checks ------------------------------------------------------------------------------------------
    def check_url(self, url: str) -> str:
        """Static checks; returns the URL without a trailing slash. Raises :class:`InvalidCustomHostError`."""
        cached = self._approved_urls.get(url)
        if cached is not None:
            return cached
        normalized, host = self._check_url(url)
        self._remember(self._approved_urls, url, normalized)
        if not self.name_allowed(host):
            self._remember(self._guarded_hosts, host, None)
        return normalized

    def _check_url(self, url: str) -> tuple[str, str]:
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url) or "%" in url or "\\" in url:
            raise InvalidCustomHostError("control characters, spaces, '%' and '\\' are not allowed")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InvalidCustomHostError(f"not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https"):
            raise InvalidCustomHostError("the scheme must be http or https")
        if "@" in parts.netloc or parts.username is not None:
            raise InvalidCustomHostError("credentials in the URL are not allowed")
        host = (parts.hostname or "").lower()
        if not host:
            raise InvalidCustomHostError("the URL has no host")
        if parts.query or parts.fragment:
            raise InvalidCustomHostError("query strings and fragments are not allowed")
        del port
        if not self.name_allowed(host):
            self._check_host_literal(host)
        return url.rstrip("/"), host

    def _check_host_literal(self, host: str) -> None:
        if host in BLOCKED_NAMES:
            raise InvalidCustomHostError(f"{host} is a cloud metadata endpoint")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            if not self.address_allowed(address):
                raise InvalidCustomHostError(f"{host} is not a public address")
            return
        if _is_encoded_ipv4(host):
            raise InvalidCustomHostError(f"{host} is an encoded IP address form")
        if host.endswith(".") or not set(host) <= _HOST_CHARS or ".." in host or host.startswith((".", "-")):
            raise InvalidCustomHostError(f"{host} is not a valid DNS name")

    async def check_resolution(self, url: str) -> None:
        """Resolve the URL's host and refuse it if any address is not allowed. Results are cached briefly."""
        fresh_until = self._resolved_urls.get(url)
        if fresh_until is not None and fresh_until > time.monotonic():
            return
        await self._check_resolution(url)
        self._remember(self._resolved_urls, url, time.monotonic() + _RESOLUTION_TTL_S)

    async def _check_resolution(self, url: str) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host or self.name_allowed(host):
            return
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (host, port)
        now = time.monotonic()
        expires = self._resolved_ok.get(key)
        if expires is not None and expires > now:
            return
        addresses = await resolve_addresses(host, port)
        self.check_addresses(host, addresses)
        self._remember(self._resolved_ok, key, now + _RESOLUTION_TTL_S)

    def check_addresses(self, host: str, addresses: Sequence[str]) -> None:
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not self.address_allowed(address):
                raise InvalidCustomHostError(f"{host} resolves to a non-public address ({address})")

    @staticmethod
    def _remember(cache: OrderedDict, key: object, value: object) -> None:
        cache[key] = value
        cache.move_to_end(key)
        if len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)


async def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to; an unresolvable name yields none (the call then fails to connect)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return [str(info[4][0]) for info in infos]
