"""The config store file (``skyrelay serve --config FILE``, ``SKYRELAY_CONFIG``): YAML or JSON.

    gateway_keys:                 # callers; only SHA-256 digests are stored (`skyrelay keys create`)
      - id: team-search
        sha256: 9f86d081884c7d65...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class GatewayKeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=128)
    sha256: str
    configs: list[str] | None = None
    virtual_keys: list[str] | None = None

    @field_validator("sha256")
    @classmethod
    def _digest(cls, value: str) -> str:
        value = value.strip().lower()
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ValueError("must be a SHA-256 hex digest (64 hex characters); see `skyrelay keys create`")
        return value


class StoreDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gateway_keys: list[GatewayKeyEntry] = Field(default_factory=list)


class StoreFileError(Exception):
    """The file could not be read or failed validation; ``errors`` lists each problem with its path."""

    def __init__(self, source: str, errors: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(errors))
        self.source = source
        self.errors = errors


def parse_document(data: Any, source: str) -> StoreDocument:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise StoreFileError(source, ["the document must be a mapping"])
    try:
        return StoreDocument.model_validate(data)
    except ValidationError as exc:
        raise StoreFileError(source, [
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        ]) from None


def load_store_file(path: str | Path) -> StoreDocument:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StoreFileError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StoreFileError(str(path), [f"not valid YAML/JSON: {exc}"]) from None
    return parse_document(data, str(path))
