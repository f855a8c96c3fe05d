"""Portkey's request headers → a :class:`Target` (the no-config path) and the per-request context values.

Provider header groups (``x-portkey-aws-region``, ``x-portkey-vertex-project-id``, ``x-portkey-azure-*`` ...) become
target options under Portkey's config field names, so a provider reads one vocabulary whichever way a value came.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from core.errors import InvalidRequestError

PREFIX = "x-portkey-"

#: Headers with a meaning of their own; everything else under x-portkey- is a provider option.
GENERAL_HEADERS = frozenset(
    {
        "x-portkey-provider", "x-portkey-config", "x-portkey-api-key", "x-portkey-virtual-key",
        "x-portkey-custom-host", "x-portkey-forward-headers", "x-portkey-request-timeout", "x-portkey-trace-id",
        "x-portkey-metadata", "x-portkey-cache-force-refresh", "x-portkey-strict-open-ai-compliance",
        "x-portkey-cache", "x-portkey-mode", "x-portkey-retry-count", "x-portkey-openai-beta",
        "x-portkey-default-input-guardrails", "x-portkey-default-output-guardrails", "x-portkey-gateway-hops",
        "x-portkey-cache-namespace",
    }
)

#: Header names whose config field is not simply the header without prefix in snake_case.
_RENAMED_OPTIONS = {
    "azure-resource-name": "resource_name",
    "azure-deployment-id": "deployment_id",
    "azure-api-version": "api_version",
}

_MAX_TRACE_ID = 256


def provider_options(headers: Mapping[str, str]) -> dict[str, Any]:
    """Provider header groups as config-field options (``x-portkey-aws-region`` → ``aws_region``)."""
    options: dict[str, Any] = {}
    for name, value in headers.items():
        if not name.startswith(PREFIX) or name in GENERAL_HEADERS:
            continue
        short = name[len(PREFIX) :]
        options[_RENAMED_OPTIONS.get(short, short.replace("-", "_"))] = value
    return options


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else value.strip()


def forward_header_names(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    names = tuple(n.strip().lower() for n in value.split(",") if n.strip())
    if any(n.startswith(PREFIX) for n in names):
        raise InvalidRequestError(
            "x-portkey-forward-headers may not name x-portkey-* headers", param="x-portkey-forward-headers"
        )
    return names


def request_timeout_ms(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        timeout = int(value)
    except ValueError:
        raise InvalidRequestError(
            "x-portkey-request-timeout must be a whole number of milliseconds", param="x-portkey-request-timeout"
        ) from None
    if timeout <= 0:
        raise InvalidRequestError("x-portkey-request-timeout must be positive", param="x-portkey-request-timeout")
    return timeout


def metadata(value: str | None) -> dict[str, Any] | None:
    if not value:
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise InvalidRequestError("x-portkey-metadata must be a JSON object", param="x-portkey-metadata") from None
    if not isinstance(parsed, dict):
        raise InvalidRequestError("x-portkey-metadata must be a JSON object", param="x-portkey-metadata")
    return parsed


def check_trace_id(value: str) -> None:
    """A caller's trace id is echoed in headers and logs: it must be a short printable string."""
    if len(value) > _MAX_TRACE_ID or not value.isprintable():
        raise InvalidRequestError(
            f"x-portkey-trace-id must be printable and at most {_MAX_TRACE_ID} characters",
            param="x-portkey-trace-id",
        )
