"""The SSRF guard: literal forms, encoded IPs, metadata names and resolved addresses."""

from __future__ import annotations

import ipaddress

import pytest

from core.security.ssrf import InvalidCustomHostError, SsrfGuard

DEFAULT_ALLOW = ["localhost", "127.0.0.0/8", "::1"]


@pytest.fixture
def guard() -> SsrfGuard:
    return SsrfGuard(DEFAULT_ALLOW)


@pytest.mark.parametrize("url", [
    "https://api.openai.com/v1",
    "https://my-vllm.example.com:8443/v1/",
    "http://127.0.0.1:8000/v1",
    "http://localhost:11434/v1",
    "http://[::1]:9000/v1",
    "https://8.8.8.8/v1",
])
def test_accepted(guard: SsrfGuard, url: str) -> None:
    assert guard.check_url(url) == url.rstrip("/")


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://example.com/", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://example.com/", "scheme"),
    ("http://user:pass@example.com/", "credentials"),
    ("http://example.com@10.0.0.1/", "credentials"),
    ("http://169.254.169.254/latest/meta-data", "not a public address"),
    ("http://[fd00:ec2::254]/", "not a public address"),
    ("http://metadata.google.internal/computeMetadata/v1", "metadata"),
    ("http://metadata/", "metadata"),
    ("http://10.1.2.3/v1", "not a public address"),
    ("http://172.16.0.1/", "not a public address"),
    ("http://192.168.1.1/", "not a public address"),
    ("http://100.64.0.1/", "not a public address"),
    ("http://0.0.0.0/", "not a public address"),
    ("http://224.0.0.1/", "not a public address"),
    ("http://[fe80::1]/", "not a public address"),
    ("http://[::ffff:10.0.0.1]/", "not a public address"),
    ("http://[::ffff:169.254.169.254]/", "not a public address"),
    ("http://[2002:a9fe:a9fe::]/", "not a public address"),
    ("http://2852039166/", "encoded IP"),
    ("http://0xa9fea9fe/", "encoded IP"),
    ("http://0251.0376.0251.0376/", "encoded IP"),
    ("http://169.254.43518/", "encoded IP"),
    ("http://0x7f.1/", "encoded IP"),
    ("http://127.1/", "encoded IP"),
    ("http://example.com%2f@evil/", "'%'"),
    ("http://exa mple.com/", "control characters"),
    ("http://example.com./", "not a valid DNS name"),
    ("http://ex_ample.com/", "not a valid DNS name"),
    ("http:///nohost", "no host"),
    ("http://example.com/?x=1", "query"),
])
def test_refused(guard: SsrfGuard, url: str, reason: str) -> None:
    with pytest.raises(InvalidCustomHostError) as caught:
        guard.check_url(url)
    assert reason in caught.value.message
    assert caught.value.status == 400


def test_refused_hosts_are_not_cached_as_approved(guard: SsrfGuard) -> None:
    for _ in range(2):
        with pytest.raises(InvalidCustomHostError):
            guard.check_url("http://10.0.0.1/")


def test_allow_list_admits_private_networks_and_names() -> None:
    guard = SsrfGuard([*DEFAULT_ALLOW, "10.20.0.0/16", "vllm.internal", "*.corp.example"])
    assert guard.check_url("http://10.20.3.4:8000/v1")
    assert guard.check_url("http://vllm.internal:8000/v1")
    assert guard.check_url("http://gpu.corp.example/v1")
    with pytest.raises(InvalidCustomHostError):
        guard.check_url("http://10.21.0.1/v1")


def test_resolved_addresses_are_checked_not_only_the_name(guard: SsrfGuard) -> None:
    """A public-looking name that resolves to a private address (rebinding-style) is refused."""
    guard.check_url("https://rebind.attacker.example/v1")
    assert guard.is_guarded("rebind.attacker.example")
    with pytest.raises(InvalidCustomHostError) as caught:
        guard.check_addresses("rebind.attacker.example", ["93.184.216.34", "169.254.169.254"])
    assert "non-public address" in caught.value.message
    guard.check_addresses("rebind.attacker.example", ["93.184.216.34"])


async def test_check_resolution_uses_real_dns(guard: SsrfGuard) -> None:
    await guard.check_resolution("http://localhost:8000/v1")  # allow-listed by name
    strict = SsrfGuard([])
    with pytest.raises(InvalidCustomHostError):
        await strict.check_resolution("http://localhost:8000/v1")


async def test_guarded_resolver_refuses_private_answers_for_custom_hosts() -> None:
    from core.security.guarded_resolver import GuardedResolver

    strict = SsrfGuard([])
    strict.check_url("http://localhost.example.test/")
    resolver = GuardedResolver(strict)
    strict._guarded_hosts["localhost"] = None
    with pytest.raises(OSError, match="non-public"):
        await resolver.resolve("localhost", 80)
    assert await resolver.resolve("127.0.0.1", 80)  # not a custom host: resolved normally
    await resolver.close()


def test_ipv4_mapped_addresses_are_judged_by_their_ipv4(guard: SsrfGuard) -> None:
    assert not guard.address_allowed(ipaddress.ip_address("::ffff:192.168.0.1"))
    assert guard.address_allowed(ipaddress.ip_address("::ffff:8.8.8.8"))
