"""Redaction applied while a log record is built, so no secret ever exists in a record.

Headers: credentials (Authorization, api keys, cookies, SigV4 tokens) and every ``x-portkey-*`` header whose name
says key, secret, token or service-account. Config JSON in ``x-portkey-config``: every credential-like field at any
depth. Bodies: the fields named in settings, at any depth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

REDACTED = "[REDACTED]"

_SECRET_HEADERS = frozenset(
    {
        "authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "set-cookie",
        "x-amz-security-token", "x-goog-api-key", "ocp-apim-subscription-key",
    }
)
_SECRET_WORDS = ("key", "secret", "token", "password", "service-account", "credential", "signature")
_SECRET_FIELD_WORDS = ("api_key", "apikey", "secret", "token", "password", "service_account", "credential",
                       "private_key", "access_key")
_NOT_SECRET_FIELDS = frozenset({"virtual_key", "max_tokens", "max_completion_tokens", "cache_key"})


def is_secret_header(name: str) -> bool:
    name = name.lower()
    if name in _SECRET_HEADERS:
        return True
    for prefix in ("x-portkey-", "x-skyrelay-"):
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            return rest != "virtual-key" and any(word in rest for word in _SECRET_WORDS)
    return False


def is_secret_field(name: str) -> bool:
    name = name.lower()
    if name in _NOT_SECRET_FIELDS:
        return False
    return any(word in name for word in _SECRET_FIELD_WORDS)


def redact_secret_fields(value: Any) -> Any:
    """A copy of a JSON value with credential-like fields replaced, at any depth."""
    if isinstance(value, dict):
        return {k: (REDACTED if is_secret_field(k) else redact_secret_fields(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secret_fields(v) for v in value]
    return value


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        lower = name.lower()
        if is_secret_header(lower):
            out[lower] = REDACTED
        elif lower == "x-portkey-config":
            out[lower] = _redact_config_header(value)
        else:
            out[lower] = value
    return out


def _redact_config_header(value: str) -> str:
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value if len(value) < 128 and value.replace("-", "").replace("_", "").isalnum() else REDACTED
    return orjson.dumps(redact_secret_fields(parsed)).decode()


class BodyRedactor:
    """Replaces configured field names anywhere in a body, plus credential-like fields."""

    def __init__(self, fields: Iterable[str]) -> None:
        self._fields = frozenset(f.lower() for f in fields)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: (REDACTED if k.lower() in self._fields or is_secret_field(k) else self(v))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self(v) for v in value]
        return value
