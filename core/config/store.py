"""The config store at run time: an immutable snapshot (gateway keys, saved configs, virtual keys) swapped whole
when a new, valid document arrives. A bad or unreachable update never replaces the last good snapshot.

The code that reads a document (its pydantic models, PyYAML, secret references) is imported with the first document:
a gateway without a config store — many serverless deployments — never loads it on its cold start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.auth.gateway_keys import GatewayKey, GatewayKeyStore
from core.ratelimit.base import UNLIMITED, Limits
from core.routing.remote import RemoteGateway

if TYPE_CHECKING:
    from core.config.schema import TargetConfig
    from core.config.sources import ConfigSource
    from core.config.store_file import StoreDocument

logger = logging.getLogger("skyrelay.config")


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """A provider profile with its secrets resolved (never logged: only ``name`` appears in records)."""

    name: str
    provider: str
    api_key: str | None = None
    custom_host: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    limits: Limits = UNLIMITED


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    keys: GatewayKeyStore
    configs: Mapping[str, TargetConfig] = field(default_factory=dict)
    virtual_keys: Mapping[str, VirtualKey] = field(default_factory=dict)
    remote_gateways: Mapping[str, RemoteGateway] = field(default_factory=dict)
    version: str | None = None


def build_snapshot(document: StoreDocument, extra_keys: Iterable[GatewayKey] = (), version: str | None = None,
                   source: str = "config") -> StoreSnapshot:
    """Resolve every secret reference now (not per request); any failure rejects the whole document."""
    from core.config.secrets import SecretResolutionError, describe_ref, is_secret_ref, resolve_secret
    from core.config.store_file import StoreFileError

    errors: list[str] = []

    def resolve(value: Any, where: str) -> Any:
        if not is_secret_ref(value):
            return value
        try:
            return resolve_secret(value)
        except SecretResolutionError as exc:
            errors.append(f"{where}: {describe_ref(value)}: {exc}")
            return None

    virtual_keys: dict[str, VirtualKey] = {}
    for name, entry in document.virtual_keys.items():
        options = {k: resolve(v, f"virtual_keys.{name}.{k}") for k, v in entry.options().items()}
        api_key = resolve(entry.api_key, f"virtual_keys.{name}.api_key") if entry.api_key else None
        limits = entry.rate_limits.limits() if entry.rate_limits else Limits()
        virtual_keys[name] = VirtualKey(name=name, provider=entry.provider, api_key=api_key,
                                        custom_host=entry.custom_host, options=options, limits=limits)
    remotes: dict[str, RemoteGateway] = {}
    for name, remote in document.remote_gateways.items():
        remote_key = resolve(remote.api_key, f"remote_gateways.{name}.api_key") if remote.api_key else None
        remotes[name] = RemoteGateway(name=name, url=remote.url.rstrip("/"), api_key=remote_key,
                                      health_url=remote.health_url, providers=tuple(remote.providers),
                                      regions=tuple(remote.regions))
    if errors:
        raise StoreFileError(source, errors)
    keys = [*extra_keys, *(GatewayKey.from_hex(k.id, k.sha256, k.configs, k.virtual_keys,
                                               k.rate_limits.limits() if k.rate_limits else None)
                           for k in document.gateway_keys)]
    return StoreSnapshot(keys=GatewayKeyStore(keys), configs=document.parsed_configs(),
                         virtual_keys=virtual_keys, remote_gateways=remotes, version=version)


@dataclass(slots=True)
class StoreStats:
    reloads: int = 0
    failures: int = 0
    last_error: str | None = None


class ConfigStore:
    """Holds the current snapshot; ``start`` polls the source (owned task, cancelled by ``aclose``)."""

    def __init__(self, source: ConfigSource | None, *, extra_keys: Iterable[GatewayKey] = (),
                 provider_ids: set[str] | None = None, poll_interval_s: float = 30.0) -> None:
        self._source = source
        self._extra_keys = tuple(extra_keys)
        self._provider_ids = provider_ids
        self._poll_interval_s = poll_interval_s
        self._version: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.stats = StoreStats()
        self._snapshot = StoreSnapshot(keys=GatewayKeyStore(self._extra_keys))
        #: Bumped on every installed snapshot: caches derived from the snapshot (plans) key on it.
        self.generation = 0

    @property
    def snapshot(self) -> StoreSnapshot:
        return self._snapshot

    @snapshot.setter
    def snapshot(self, value: StoreSnapshot) -> None:
        self._snapshot = value
        self.generation += 1

    @property
    def source(self) -> ConfigSource | None:
        return self._source

    async def load_initial(self) -> None:
        """The first load: with no last good document to fall back on, any failure is raised (start-up fails)."""
        if self._source is None:
            return
        text, version = await self._source.fetch(None)
        assert text is not None
        self.snapshot = await self._snapshot_of(self._source, text, version)
        self._version = version

    async def refresh(self) -> bool:
        """Fetch once; True when a new document was installed. Failures keep the last good snapshot."""
        if self._source is None:
            return False
        from core.config.sources import ConfigSourceError
        from core.config.store_file import StoreFileError

        try:
            text, version = await self._source.fetch(self._version)
            if text is None:
                return False
            snapshot = await self._snapshot_of(self._source, text, version)
        except (ConfigSourceError, StoreFileError) as exc:
            self.stats.failures += 1
            self.stats.last_error = str(exc)
            logger.warning("config store not updated, keeping version %s: %s", self._version, exc)
            return False
        self.snapshot, self._version = snapshot, version
        self.stats.reloads += 1
        self.stats.last_error = None
        logger.info("config store updated from %s (version %s)", self._source.describe(), version)
        return True

    async def _snapshot_of(self, source: ConfigSource, text: str, version: str | None) -> StoreSnapshot:
        from core.config.store_file import parse_document_text

        document = parse_document_text(text, source.describe(), self._provider_ids)
        return await asyncio.to_thread(build_snapshot, document, self._extra_keys, version, source.describe())

    def start(self) -> None:
        if self._source is not None and self._poll_interval_s > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll(), name="skyrelay-config-poller")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            await self.refresh()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
