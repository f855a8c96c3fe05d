"""The Portkey routing config (``x-portkey-config``), validated with Portkey 1.15.2's field names and messages.

Unknown keys pass through (as in Portkey's zod schema); credential fields for each provider family are kept as
target options. Validation errors are reported the way Portkey reports them — one string per problem,
``"path: strategy,mode, message: Invalid 'mode' value. Must be one of: ..."`` — inside a 400
``{"status": "failure", "message": "Invalid config passed", "errors": [...]}``.

The models build their validators on first use (``defer_build``), not at import: a request without a config never
validates one, so a cold start does not pay for them.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import InvalidConfigError

MODES = ("single", "loadbalance", "fallback", "conditional")
DEFAULT_RETRY_STATUS_CODES = (429, 500, 502, 503, 504)


class StrategyConfig(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    mode: str
    on_status_codes: list[int] | None = None
    conditions: list[dict[str, Any]] | None = None
    default: str | None = None

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in MODES:
            raise ValueError(f"Invalid 'mode' value. Must be one of: {', '.join(MODES)}")
        return value

    @model_validator(mode="after")
    def _conditional_needs_conditions(self) -> StrategyConfig:
        if self.mode == "conditional":
            if not self.conditions:
                raise ValueError("Conditional strategy requires 'conditions'")
            for i, condition in enumerate(self.conditions):
                if not isinstance(condition.get("query"), dict) or not isinstance(condition.get("then"), str):
                    raise ValueError(f"conditions[{i}] must have a 'query' object and a 'then' target name")
        return self


class RetryConfig(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    attempts: int = Field(ge=0)
    on_status_codes: list[int] | None = None
    use_retry_after_header: bool = False


class CacheConfig(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    mode: Literal["simple", "semantic"]
    max_age: float | None = Field(default=None, gt=0)


class TargetConfig(BaseModel):
    """One node of the config tree: a provider target, or a strategy over nested targets."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    strategy: StrategyConfig | None = None
    targets: list[TargetConfig] | None = None
    name: str | None = None
    provider: str | None = None
    api_key: str | None = None
    virtual_key: str | None = None
    gateway: str | None = None
    weight: float | None = Field(default=None, ge=0)
    retry: RetryConfig | None = None
    request_timeout: int | None = Field(default=None, gt=0)
    cache: CacheConfig | None = None
    override_params: dict[str, Any] | None = None
    custom_host: str | None = None
    forward_headers: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_legacy_options(cls, data: Any) -> Any:
        if isinstance(data, dict) and "options" in data:
            raise ValueError("This version of config is not supported in this route. Please migrate to the latest "
                             "version")
        return data

    @model_validator(mode="after")
    def _shape(self) -> TargetConfig:
        if self.targets is not None:
            if not self.targets:
                raise ValueError("'targets' must not be empty")
            if self.strategy is None:
                raise ValueError("'targets' needs a 'strategy'")
            weights = [t.weight if t.weight is not None else 1.0 for t in self.targets]
            if self.strategy.mode == "loadbalance" and sum(weights) <= 0:
                raise ValueError("loadbalance targets need at least one positive 'weight' (all are 0)")
        elif self.strategy is not None:
            raise ValueError("a 'strategy' needs 'targets'")
        if self.strategy is not None and self.strategy.mode == "conditional":
            names = {t.name for t in self.targets or []}
            wanted = [c["then"] for c in self.strategy.conditions or []]
            if self.strategy.default is not None:
                wanted.append(self.strategy.default)
            unknown = [n for n in wanted if n not in names]
            if unknown:
                raise ValueError(f"conditional targets reference unknown target names: {', '.join(unknown)}")
        return self

    @property
    def is_leaf(self) -> bool:
        return self.targets is None

    def extras(self) -> dict[str, Any]:
        """Fields outside the schema: provider options (aws_region, resource_name ...)."""
        return dict(self.model_extra or {})


def _format_error(error: Any) -> str:
    path = ",".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"path: {path}, message: {message}" if path else f"path: , message: {message}"


def parse_config(data: Any) -> TargetConfig:
    """A config object → the validated tree, or :class:`InvalidConfigError` listing every problem."""
    if not isinstance(data, dict):
        raise InvalidConfigError("Invalid config passed", ["path: , message: the config must be a JSON object"])
    if "options" in data:
        raise InvalidConfigError("This version of config is not supported in this route. Please migrate to the "
                                 "latest version")
    try:
        return TargetConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidConfigError("Invalid config passed", [_format_error(e) for e in exc.errors()]) from None
    except RecursionError:
        too_deep = ["path: , message: the config is nested too deeply"]
        raise InvalidConfigError("Invalid config passed", too_deep) from None


def parse_config_header(value: str) -> Any:
    """The header's JSON, or Portkey's 400 for text that is not JSON (the caller then tries a saved config id)."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise InvalidConfigError("Invalid config passed. You need to pass a valid json") from None
