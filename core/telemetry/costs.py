"""What a request cost, from its token usage and the `genai-prices` table (Pydantic's maintained price data).

Every record gets ``cost`` (US dollars, or ``null``), ``cost_status`` and ``cost_source``:

    ok               priced; ``cost_source`` names the table entry used ("openai/gpt-4o-mini")
    cache_hit        answered from the gateway's cache: no provider call, cost 0
    no_usage         the answer carried no token usage (errors, rejected requests): nothing to price
    unknown_model    the table has no price for this provider and model: ``null``, never a made-up 0
    no_price_table   the `genai-prices` package is not installed (or its data could not be read)
    invalid_usage    the usage counts more cached than input tokens, which no price can apply to: ``null``

Prices are the snapshot bundled with the installed `genai-prices` release (``cost_source`` carries its version);
upgrading the package refreshes them. Nothing is fetched at run time.

Importing `genai_prices` costs a process about 17 MiB (pydantic and thousands of validated objects), so the table is
read from a compact JSON export of it instead (:mod:`core.telemetry.price_snapshot`: about 20 ms and 0.5 MiB, plus the
models of the providers asked about, parsed when first needed).
Exports are looked for first among those shipped with the code (``core/telemetry/price_exports``, written by the
bundle build), then in a cache directory (``$XDG_CACHE_HOME/skyrelay``, else ``~/.cache/skyrelay``, else a per-user
directory in the temporary directory). When neither has one, it is made (about 1 s) and kept in the cache: by a child
process with ``isolated_export`` (the log writer, which must not keep the library's memory), else in this process (a
serverless instance, where a child's interpreter would add its start-up to the cold start; this process then keeps
the library). :meth:`PriceTable.warm_up` loads in a worker thread at start, off the event loop.

Prices are read once per model and applied with plain arithmetic (a few microseconds), tiers included, exactly as the
library would for the four token counts a record has. Prices the export marks for the library (per-request prices)
go through its own calculation (about 130 µs), so a process that serves one imports `genai_prices` when it first
prices it; the tests compare both with the library for every model in the table.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from core.telemetry.price_snapshot import (
    LIBRARY_MARK,
    CompactModel,
    CompactSnapshot,
    DataSource,
    bundled_exports_dir,
    export_file_name,
    installed_source,
    read_export,
)

logger = logging.getLogger("skyrelay.logs")

#: Our provider ids → genai-prices provider ids (ids not listed are passed through unchanged).
PROVIDER_IDS = {
    "azure-openai": "azure",
    "bedrock": "aws",
    "vertex-ai": "google",
    "together-ai": "together",
    "mistral-ai": "mistral",
    "fireworks-ai": "fireworks",
    "perplexity-ai": "perplexity",
}

_MILLION = Decimal(1_000_000)
_EXPORT_TIMEOUT_S = 120.0


class Tokens(NamedTuple):
    """Token counts as OpenAI reports them: ``input`` includes ``cache_read`` and ``cache_write``.

    A named tuple rather than a frozen dataclass: one is made for every record, and this is the cheap immutable.
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @classmethod
    def from_usage(cls, usage: Any) -> Tokens | None:
        if not isinstance(usage, dict):
            return None
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not isinstance(prompt, int) and not isinstance(completion, int):
            return None
        details = usage.get("prompt_tokens_details")
        if not isinstance(details, dict):
            details = {}
        cached, written = details.get("cached_tokens"), details.get("cache_creation_tokens")
        if not isinstance(written, int):  # where our translations of Anthropic and Bedrock usage put cache writes
            written = usage.get("cache_creation_input_tokens")
        return cls(input=prompt if isinstance(prompt, int) else 0,
                   output=completion if isinstance(completion, int) else 0,
                   cache_read=cached if isinstance(cached, int) else 0,
                   cache_write=written if isinstance(written, int) else 0)


class _Entry(NamedTuple):
    provider_id: str  # the provider found in the table (the model may be listed by one it falls back to)
    model: CompactModel
    source: str  # "provider/model" in the table
    record_source: str  # a record's ``cost_source``: the table's version and the entry


_UNKNOWN: Any = object()  # not looked up yet (a looked-up model the table lacks is None)


@dataclass(frozen=True, slots=True)
class Cost:
    usd: float | None
    status: str
    source: str | None = None


class PriceTable:
    """Prices for (provider, model) pairs; call :meth:`load` (blocking) or :meth:`warm_up` before :meth:`cost`.

    ``cache_dir``: where exports of the price data are kept (default: the user's cache directory).
    ``isolated_export``: make a missing export in a child process, so the library's memory never stays in this one
    (for the log writer); else in this process, which is quicker to start.
    ``bundled_dir``: exports shipped with the code, read first (default :func:`bundled_exports_dir`)."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, *, isolated_export: bool = False,
                 bundled_dir: str | os.PathLike[str] | None = None) -> None:
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._bundled_dir = Path(bundled_dir) if bundled_dir is not None else bundled_exports_dir()
        self._isolated_export = isolated_export
        self._snapshot: CompactSnapshot | None = None
        self.version: str | None = None
        self.available = True
        self._loading = threading.Lock()
        self._models: dict[tuple[str, str], tuple[str, CompactModel] | None] = {}
        self._rates: dict[tuple[str, str], tuple[float, TokenRates | None]] = {}
        self._entries: dict[tuple[str, tuple[str | None, ...]], _Entry | None] = {}
        self._library_models: dict[tuple[str, str, str], tuple[Any, Any] | None] = {}

    def load(self) -> None:
        """Reads the price table: a shipped or cached export, else a new one (see the class)."""
        if self._snapshot is not None or not self.available:
            return
        with self._loading:
            if self._snapshot is None and self.available:
                snapshot = self._read_table()
                if snapshot is None:
                    self.available = False
                else:
                    self.version = snapshot.version
                    self._snapshot = snapshot

    async def warm_up(self) -> None:
        await asyncio.to_thread(self.load)

    def cost(self, provider: str | None, models: tuple[str | None, ...], tokens: Tokens | None, *,
             cache_hit: bool = False, when: datetime | None = None) -> Cost:
        """``models``: names to try in order (the model the answer names, then the one requested)."""
        if cache_hit:
            return Cost(0.0, "cache_hit")
        if tokens is None:
            return Cost(None, "no_usage")
        if self._snapshot is None:
            self.load()
        if not self.available:
            return Cost(None, "no_price_table")
        usd, status, found = self._priced(provider, models, tokens, when)
        return Cost(usd, status, found.source if found is not None else None)

    def record_cost(self, provider: str | None, models: tuple[str | None, ...], usage: Any, *,
                    cache_hit: bool = False) -> tuple[float | None, str, str | None]:
        """:meth:`cost` of a record's ``usage``, as its ``(cost, cost_status, cost_source)`` fields."""
        if cache_hit:
            return 0.0, "cache_hit", None
        tokens = Tokens.from_usage(usage)
        if tokens is None:
            return None, "no_usage", None
        if self._snapshot is None:
            self.load()
        if not self.available:
            return None, "no_price_table", None
        usd, status, found = self._priced(provider, models, tokens, None)
        return usd, status, found.record_source if found is not None else None

    def _priced(self, provider: str | None, models: tuple[str | None, ...], tokens: Tokens,
                when: datetime | None) -> tuple[float | None, str, _Entry | None]:
        found = self._entry(provider or "", models)
        if found is None:
            return None, "unknown_model", None
        try:
            usd = self._usd(found, tokens, when)
        except ValueError:  # cache counts over input (the library raises the same)
            return None, "invalid_usage", None
        return (None, "unknown_model", None) if usd is None else (usd, "ok", found)

    def _usd(self, found: _Entry, tokens: Tokens, when: datetime | None) -> float | None:
        rates = self._token_rates(found.model, when)
        if rates is not None:
            return token_cost(rates, tokens)
        exact = self._library_cost(found, tokens, when)
        return None if exact is None else float(exact)

    def _entry(self, provider: str, models: tuple[str | None, ...]) -> _Entry | None:
        """The table entry of the first of ``models`` the table knows. Memoised with the texts that name it: every
        record asks, and callers use a few providers and models."""
        key = (provider, models)
        found = self._entries.get(key, _UNKNOWN)
        if found is not _UNKNOWN:
            return found
        hit = next((f for m in models if m and (f := self._lookup(provider, m)) is not None), None)
        if hit is not None:
            provider_id, model = hit
            source = f"{provider_id}/{model.id}"
            found = _Entry(provider_id, model, source, f"genai-prices {self.version}: {source}")
        else:
            found = None
        if len(self._entries) < 10_000:
            self._entries[key] = found
        return found

    def _token_rates(self, model: CompactModel, when: datetime | None) -> TokenRates | None:
        """Per-token prices of a model now, re-read hourly (prices can change on a date); at ``when``, not kept."""
        if when is not None:
            return token_rates(model.get_prices(when))
        now = time.monotonic()
        key = (model.provider_id, model.id)
        cached = self._rates.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        rates = token_rates(model.get_prices(datetime.now(UTC)))
        self._rates[key] = (now + 3600.0, rates)
        return rates

    def _lookup(self, provider: str, model: str) -> tuple[str, CompactModel] | None:
        key = (provider, model)
        if key in self._models:
            return self._models[key]
        found = None
        if model and self._snapshot is not None:
            table_id = PROVIDER_IDS.get(provider, provider)
            for provider_id in (table_id, None):  # then by the model name alone (Azure deployments of OpenAI models)
                try:
                    found = self._snapshot.find_provider_model(model, provider_id)
                    break
                except LookupError:
                    continue
                except ValueError as e:  # the export's models of that provider are damaged: unpriced, and said once
                    logger.warning("price table export: %s; costs of %s/%s are null", e, provider, model)
                    break
        if len(self._models) < 10_000:
            self._models[key] = found
        return found

    def _library_cost(self, found: _Entry, tokens: Tokens, when: datetime | None) -> Decimal | None:
        """The library's own price, for prices the export marks for it (imports `genai_prices`)."""
        library = self._library_model(found)
        if library is None:
            return None
        from genai_prices import Usage

        table_provider, info = library
        usage = Usage(input_tokens=tokens.input, output_tokens=tokens.output,
                      cache_read_tokens=tokens.cache_read, cache_write_tokens=tokens.cache_write)
        return Decimal(info.calc_price(usage, table_provider, genai_request_timestamp=when).total_price)

    def _library_model(self, found: _Entry) -> tuple[Any, Any] | None:
        """The library's provider and model objects for an entry of the export (the same data: exports are named
        by the installed data's content)."""
        key = (found.provider_id, found.model.provider_id, found.model.id)
        if key in self._library_models:
            return self._library_models[key]
        try:
            from genai_prices.data_snapshot import get_snapshot
        except ImportError:
            library = None
        else:
            providers = get_snapshot().providers
            provider = next((p for p in providers if p.id == found.provider_id), None)
            owner = next((p for p in providers if p.id == found.model.provider_id), None)
            info = next((m for m in owner.models if m.id == found.model.id), None) if owner is not None else None
            library = (provider, info) if provider is not None and info is not None else None
        if library is None:
            logger.warning("genai-prices no longer has %s (was it changed while running?): its costs are null",
                           found.source)
        self._library_models[key] = library
        return library

    def _read_table(self) -> CompactSnapshot | None:
        source = installed_source()
        if source is None:
            logger.warning("genai-prices is not installed: request costs are recorded as no_price_table")
            return None
        name = export_file_name(source)
        directories = _cache_directories(self._cache_dir)
        for directory in (self._bundled_dir, *directories):
            trusted = directory == self._bundled_dir or _trusted(directory)
            if trusted and (snapshot := _read_cached(directory / name, source)) is not None:
                return snapshot
        writable = next((d for d in directories if _make_writable(d)), None)
        if not self._isolated_export:
            return _export_here(writable / name if writable is not None else None)
        if writable is not None:
            failure = _export_in_child(writable / name)
            if failure is None and (snapshot := _read_cached(writable / name, source)) is not None:
                return snapshot
            failure = failure or "its export does not match the installed data"
        else:
            failure = f"no writable cache directory ({', '.join(map(str, directories))})"
        logger.warning("Could not export the price table in a child process (%s): reading it here, which keeps "
                       "genai-prices (about 17 MiB) in this process", failure)
        return _export_here(writable / name if writable is not None else None)


def _cache_directories(configured: Path | None) -> list[Path]:
    """Where exports are kept, in order: the configured or user cache directory, then a per-user one in the temporary
    directory (for hosts whose home is read-only, like AWS Lambda)."""
    directories = []
    if configured is not None:
        directories.append(configured)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = xdg if os.path.isabs(xdg) else os.path.expanduser(os.path.join("~", ".cache"))
        if os.path.isabs(base):
            directories.append(Path(base) / "skyrelay")
    directories.append(_temporary_directory())
    return directories


def _temporary_directory() -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / f"skyrelay-{os.getuid()}"


def _trusted(directory: Path) -> bool:
    """Whether exports in ``directory`` may be read: anyone can create a directory in the shared temporary one, so
    there it must be ours and private."""
    if directory != _temporary_directory():
        return True
    try:
        status = os.lstat(directory)
    except OSError:
        return False
    return stat.S_ISDIR(status.st_mode) and status.st_uid == os.getuid() and not status.st_mode & 0o077


def _make_writable(directory: Path) -> bool:
    """Creates ``directory`` if needed; whether exports can be written (and then read) there."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return False
    return _trusted(directory) and os.access(directory, os.W_OK | os.X_OK)


def _read_cached(path: Path, source: DataSource) -> CompactSnapshot | None:
    """The export at ``path`` if it is one of the installed data; ``None`` when missing, damaged or stale."""
    try:
        snapshot = read_export(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as e:
        logger.info("Price table export %s is unreadable (%s): looking further", path, e)
        return None
    return snapshot if snapshot.source == source else None


def _export_in_child(path: Path) -> str | None:
    """Runs the exporter in a child process, so the library's memory goes when it exits; why it failed, or None."""
    import subprocess

    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # where `core` is, for hosts that run it from a directory
    paths = env.get("PYTHONPATH", "").split(os.pathsep) if env.get("PYTHONPATH") else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, root] if root not in paths else paths)
    command = [sys.executable, "-m", "core.telemetry.price_export", "--write", str(path)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, timeout=_EXPORT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{type(e).__name__}: {e}"
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        return f"exit status {done.returncode}: {detail[-1] if detail else 'no output'}"
    return None


def _export_here(path: Path | None) -> CompactSnapshot | None:
    """The export made in this process (importing the library); kept at ``path`` for the next process when that can
    be written."""
    from core.telemetry.price_export import export_snapshot, write_export  # the library's side: only here

    try:
        snapshot = CompactSnapshot(document := export_snapshot())
    except (ImportError, ValueError) as e:
        logger.warning("genai-prices' table could not be read (%s): request costs are recorded as no_price_table", e)
        return None
    if path is not None:
        try:
            write_export(document, path)
        except OSError as e:
            logger.info("Could not keep the price table export at %s: %s", path, e)
    return snapshot


class TieredRate(NamedTuple):
    """A tiered price in dollars per token: ``tiers`` are ``(start, rate)`` by ascending start."""

    base: float
    tiers: tuple[tuple[int, float], ...]

    def at(self, input_tokens: int) -> float:
        """The library's rule (``calc_unit_price``): the rate of the last tier whose start the request's input tokens
        (cache reads and writes included) exceed, else the base; it applies to the whole count, not the part above."""
        for start, rate in reversed(self.tiers):
            if input_tokens > start:
                return rate
        return self.base


Rate = float | TieredRate


@dataclass(frozen=True, slots=True)
class TokenRates:
    """Dollars per token of each count a record has; ``None`` for a count the price does not name (the library then
    charges cache reads and writes as input, and nothing for input or output)."""

    input: Rate | None
    output: Rate | None
    cache_read: Rate | None
    cache_write: Rate | None


def token_rates(price: Mapping[str, Any]) -> TokenRates | None:
    """An exported price as per-token dollars, or ``None`` when the export marks it for the library. Its other keys
    are for counts the gateway never reports, which the library counts as zero."""
    if price.get(LIBRARY_MARK):
        return None
    return TokenRates(input=_rate(price.get("input_mtok")), output=_rate(price.get("output_mtok")),
                      cache_read=_rate(price.get("cache_read_mtok")), cache_write=_rate(price.get("cache_write_mtok")))


def _rate(value: str | Mapping[str, Any] | None) -> Rate | None:
    if value is None:
        return None
    if isinstance(value, str):
        return float(Decimal(value) / _MILLION)
    return TieredRate(float(Decimal(value["base"]) / _MILLION),
                      tuple((tier["start"], float(Decimal(tier["price"]) / _MILLION)) for tier in value["tiers"]))


def token_cost(rates: TokenRates, tokens: Tokens) -> float:
    """Dollars for ``tokens``, as the library computes them: cache reads and writes with prices of their own are taken
    out of input, and every count is charged at the rate its tier gives for the request's input tokens.

    Raises ``ValueError`` when those cache counts exceed the input, as the library does."""
    n = tokens.input
    uncached, usd = n, 0.0
    if (rate := rates.cache_read) is not None:
        uncached -= tokens.cache_read
        usd += tokens.cache_read * (rate if isinstance(rate, float) else rate.at(n))
    if (rate := rates.cache_write) is not None:
        uncached -= tokens.cache_write
        usd += tokens.cache_write * (rate if isinstance(rate, float) else rate.at(n))
    if (rate := rates.input) is not None:
        if uncached < 0:
            raise ValueError(f"Invalid usage data: cache reads and writes ({n - uncached}) exceed input ({n})")
        usd += uncached * (rate if isinstance(rate, float) else rate.at(n))
    if (rate := rates.output) is not None:
        usd += tokens.output * (rate if isinstance(rate, float) else rate.at(n))
    return usd


def price_record(table: PriceTable, record: dict[str, Any], response: Any) -> None:
    """Adds ``cost``, ``cost_status`` and ``cost_source`` to a record (called by the pipeline's writer).
    ``response``: the parsed answer, whose ``model`` names the exact model version that served it."""
    model = response.get("model") if isinstance(response, dict) and isinstance(response.get("model"), str) else None
    record["cost"], record["cost_status"], record["cost_source"] = table.record_cost(
        record.get("provider"), (model, record.get("model")), record.get("usage"),
        cache_hit=record.get("cache_status") == "HIT")
