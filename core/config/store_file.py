"""The config store document (``skyrelay serve --config FILE``, ``SKYRELAY_CONFIG``): YAML or JSON.

    gateway_keys:                       # callers; only SHA-256 digests are stored (`skyrelay keys create`)
      - id: team-search
        sha256: 9f86d081884c7d65...
        configs: [pc-main]              # optional: the saved configs this key may use
        virtual_keys: [openai-prod]     # optional: the virtual keys this key may use
    configs:                            # saved Portkey configs, referenced by id in x-portkey-config
      pc-main: {strategy: {mode: fallback}, targets: [{virtual_key: openai-prod}, {virtual_key: bedrock-us}]}
    virtual_keys:                       # provider profiles; secrets only as references (see core.config.secrets)
      openai-prod: {provider: openai, api_key: {env: OPENAI_API_KEY}}
      bedrock-us: {provider: bedrock, aws_region: us-east-1}          # the gateway's own AWS identity

Every problem is reported with its path, so ``skyrelay config validate`` can list them all at once. The models
build their validators, and PyYAML is imported, only when a document is read: a gateway without a config store
never pays for either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.config.schema import TargetConfig, parse_config
from core.config.secrets import SECRET_REF_KINDS, is_secret_ref
from core.errors import InvalidConfigError
from core.ratelimit.base import Limits
from core.telemetry.redaction import is_secret_field


class RateLimitsEntry(BaseModel):
    """Requests and tokens per minute; absent = unlimited."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)

    def limits(self) -> Limits:
        return Limits(rpm=self.rpm, tpm=self.tpm)


class GatewayKeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: str = Field(min_length=1, max_length=128)
    sha256: str
    configs: list[str] | None = None
    virtual_keys: list[str] | None = None
    rate_limits: RateLimitsEntry | None = None

    @field_validator("sha256")
    @classmethod
    def _digest(cls, value: str) -> str:
        value = value.strip().lower()
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ValueError("must be a SHA-256 hex digest (64 hex characters); see `skyrelay keys create`")
        return value


class VirtualKeyEntry(BaseModel):
    """A named provider profile. Extra fields are provider options (aws_region, resource_name, ...)."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    provider: str = Field(min_length=1)
    api_key: dict[str, Any] | None = None
    custom_host: str | None = None
    description: str | None = None
    rate_limits: RateLimitsEntry | None = None

    @field_validator("api_key")
    @classmethod
    def _api_key_is_a_reference(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not is_secret_ref(value):
            raise ValueError(f"must be a secret reference with one of {', '.join(SECRET_REF_KINDS)}")
        return value

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RemoteGatewayEntry(BaseModel):
    """Another Skyrelay this one may forward to (edge routing); its gateway key only as a secret reference."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    url: str = Field(pattern=r"^https?://")
    api_key: dict[str, Any] | None = None
    health_url: str | None = Field(default=None, pattern=r"^https?://")
    providers: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)

    @field_validator("api_key")
    @classmethod
    def _api_key_is_a_reference(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not is_secret_ref(value):
            raise ValueError(f"must be a secret reference with one of {', '.join(SECRET_REF_KINDS)}")
        return value


class StoreDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    gateway_keys: list[GatewayKeyEntry] = Field(default_factory=list)
    configs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    virtual_keys: dict[str, VirtualKeyEntry] = Field(default_factory=dict)
    remote_gateways: dict[str, RemoteGatewayEntry] = Field(default_factory=dict)

    def parsed_configs(self) -> dict[str, TargetConfig]:
        return {config_id: parse_config(data) for config_id, data in self.configs.items()}


class StoreFileError(Exception):
    """The document could not be read or failed validation; ``errors`` lists each problem with its path."""

    def __init__(self, source: str, errors: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(errors))
        self.source = source
        self.errors = errors


def _semantic_errors(document: StoreDocument, provider_ids: set[str] | None) -> list[str]:
    errors: list[str] = []
    for name, vk in document.virtual_keys.items():
        if provider_ids is not None and vk.provider not in provider_ids:
            errors.append(f"virtual_keys.{name}.provider: unknown provider {vk.provider!r}")
        for field, value in vk.options().items():
            if is_secret_field(field) and not is_secret_ref(value):
                errors.append(f"virtual_keys.{name}.{field}: secrets must be references "
                              f"({', '.join(SECRET_REF_KINDS)}), never inline values")
    for config_id, data in document.configs.items():
        try:
            config = parse_config(data)
        except InvalidConfigError as exc:
            errors.extend(f"configs.{config_id}: {e}" for e in (exc.errors or [exc.message]))
            continue
        for path, node in _walk(config, "config"):
            if node.virtual_key and not node.gateway and node.virtual_key not in document.virtual_keys:
                errors.append(f"configs.{config_id}: {path}.virtual_key: unknown virtual key {node.virtual_key!r}")
            if provider_ids is not None and node.provider and node.provider not in provider_ids:
                errors.append(f"configs.{config_id}: {path}.provider: unknown provider {node.provider!r}")
            if node.gateway and node.gateway not in document.remote_gateways:
                errors.append(f"configs.{config_id}: {path}.gateway: unknown remote gateway {node.gateway!r}")
    for i, key in enumerate(document.gateway_keys):
        errors.extend(f"gateway_keys.{i}.configs: unknown config {c!r}" for c in key.configs or []
                      if c not in document.configs)
        errors.extend(f"gateway_keys.{i}.virtual_keys: unknown virtual key {v!r}" for v in key.virtual_keys or []
                      if v not in document.virtual_keys)
    if len({k.id for k in document.gateway_keys}) != len(document.gateway_keys):
        errors.append("gateway_keys: ids must be unique")
    return errors


def _walk(node: TargetConfig, path: str) -> list[tuple[str, TargetConfig]]:
    found = [(path, node)]
    for i, child in enumerate(node.targets or []):
        found.extend(_walk(child, f"{path}.targets[{i}]"))
    return found


def parse_document(data: Any, source: str, provider_ids: set[str] | None = None) -> StoreDocument:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise StoreFileError(source, ["<root>: the document must be a mapping"])
    try:
        document = StoreDocument.model_validate(data)
    except ValidationError as exc:
        raise StoreFileError(source, [
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        ]) from None
    errors = _semantic_errors(document, provider_ids)
    if errors:
        raise StoreFileError(source, errors)
    return document


def parse_document_text(text: str, source: str, provider_ids: set[str] | None = None) -> StoreDocument:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StoreFileError(source, [f"<root>: not valid YAML/JSON: {exc}"]) from None
    return parse_document(data, source, provider_ids)


def load_store_file(path: str | Path, provider_ids: set[str] | None = None) -> StoreDocument:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StoreFileError(str(path), [f"<root>: cannot read the file: {exc.strerror}"]) from None
    return parse_document_text(text, str(path), provider_ids)
