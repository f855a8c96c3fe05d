"""A *target*: one provider endpoint with everything needed to call it, resolved from headers or a config leaf."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.ratelimit.base import UNLIMITED, Limits


@dataclass(frozen=True, slots=True)
class Target:
    """One place a request can be sent.

    ``options`` holds the provider-specific fields in Portkey's snake_case names (``aws_region``,
    ``vertex_project_id``, ``resource_name``, ``deployment_id`` ...); each provider reads the ones it knows.
    ``path`` is the JSON path reported in ``x-portkey-last-used-option-index``.
    """

    provider: str
    api_key: str | None = None
    custom_host: str | None = None
    forward_headers: tuple[str, ...] = ()
    request_timeout_ms: int | None = None
    override_params: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    virtual_key: str | None = None
    path: str = "config"
    rate_limits: Limits = UNLIMITED
    #: A remote Skyrelay gateway that serves this target (edge routing); None = call the provider here.
    gateway: str | None = None

    def option(self, name: str, default: Any = None) -> Any:
        value = self.options.get(name)
        return default if value is None or value == "" else value
