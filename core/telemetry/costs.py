"""What a request cost, from its token usage and the `genai-prices` table (Pydantic's maintained price data).

Every record gets ``cost`` (US dollars, or ``null``), ``cost_status`` and ``cost_source``:

    ok               priced; ``cost_source`` names the table entry used ("openai/gpt-4o-mini")
    cache_hit        answered from the gateway's cache: no provider call, cost 0
    no_usage         the answer carried no token usage (errors, rejected requests): nothing to price
    unknown_model    the table has no price for this provider and model: ``null``, never a made-up 0
    no_price_table   the `genai-prices` package is not installed

Prices are the snapshot bundled with the installed `genai-prices` release (``cost_source`` carries its version);
upgrading the package refreshes them. Nothing is fetched at run time.

The table is loaded in a worker thread at start (about 0.4 s of imports and parsing that must not stall the event
loop). Most models are priced per token: for them the per-million prices are read once per model and applied with
plain arithmetic (a few microseconds); models with tiers or other units go through the library's own calculation
(about 130 µs), which the tests compare against the fast path for every model in the table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

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

#: Price keys the fast path understands; the last group has usage counts we never report (always zero).
_LINEAR_KEYS = frozenset({"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok"})
_UNUSED_KEYS = frozenset({"web_searches_kcount", "storage_searches_kcount"})
_MILLION = Decimal(1_000_000)


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
            return cls(prompt if isinstance(prompt, int) else 0, completion if isinstance(completion, int) else 0)
        cached, written = details.get("cached_tokens"), details.get("cache_creation_tokens")
        return cls(input=prompt if isinstance(prompt, int) else 0,
                   output=completion if isinstance(completion, int) else 0,
                   cache_read=cached if isinstance(cached, int) else 0,
                   cache_write=written if isinstance(written, int) else 0)


class _Entry(NamedTuple):
    table_provider: Any
    info: Any
    source: str  # "provider/model" in the table
    record_source: str  # a record's ``cost_source``: the table's version and the entry


_UNKNOWN: Any = object()  # not looked up yet (a looked-up model the table lacks is None)


@dataclass(frozen=True, slots=True)
class Cost:
    usd: float | None
    status: str
    source: str | None = None


class PriceTable:
    """Prices for (provider, model) pairs; call :meth:`load` (blocking) or :meth:`warm_up` before :meth:`cost`."""

    def __init__(self) -> None:
        self._snapshot: Any = None
        self.version: str | None = None
        self.available = True
        self._models: dict[tuple[str, str], Any] = {}
        self._linear: dict[int, tuple[float, Coefficients | None]] = {}
        self._entries: dict[tuple[str, tuple[str | None, ...]], _Entry | None] = {}

    def load(self) -> None:
        if self._snapshot is not None or not self.available:
            return
        try:
            import genai_prices
            from genai_prices.data_snapshot import get_snapshot
        except ImportError:
            self.available = False
            logger.warning("genai-prices is not installed: request costs are recorded as no_price_table")
            return
        self._snapshot = get_snapshot()
        self._snapshot.find_provider_model("gpt-4o-mini", None, "openai", None)  # builds the lookup structures
        self.version = genai_prices.__version__

    async def warm_up(self) -> None:
        await asyncio.to_thread(self.load)

    def cost(self, provider: str | None, models: tuple[str | None, ...], tokens: Tokens | None, *,
             cache_hit: bool = False, when: datetime | None = None) -> Cost:
        """``models``: names to try in order (the model the answer names, then the one requested)."""
        if cache_hit:
            return Cost(0.0, "cache_hit")
        if tokens is None:
            return Cost(None, "no_usage")
        if not self.available:
            return Cost(None, "no_price_table")
        found = self._entry(provider or "", models)
        if found is None:
            return Cost(None, "unknown_model")
        return Cost(self._usd(found, tokens, when), "ok", found.source)

    def record_cost(self, provider: str | None, models: tuple[str | None, ...], usage: Any, *,
                    cache_hit: bool = False) -> tuple[float | None, str, str | None]:
        """:meth:`cost` of a record's ``usage``, as its ``(cost, cost_status, cost_source)`` fields."""
        if cache_hit:
            return 0.0, "cache_hit", None
        tokens = Tokens.from_usage(usage)
        if tokens is None:
            return None, "no_usage", None
        if not self.available:
            return None, "no_price_table", None
        found = self._entry(provider or "", models)
        if found is None:
            return None, "unknown_model", None
        return self._usd(found, tokens, None), "ok", found.record_source

    def _usd(self, found: _Entry, tokens: Tokens, when: datetime | None) -> float:
        usd = linear_cost(self._coefficients(found.info, when), tokens)
        if usd is None:
            usd = float(self._library_cost(found.info, found.table_provider, tokens, when))
        return usd

    def _entry(self, provider: str, models: tuple[str | None, ...]) -> _Entry | None:
        """The table entry of the first of ``models`` the table knows. Memoised with the texts that name it: every
        record asks, and callers use a few providers and models."""
        key = (provider, models)
        found = self._entries.get(key, _UNKNOWN)
        if found is not _UNKNOWN:
            return found
        self.load()
        hit = next((f for m in models if m and (f := self._lookup(provider, m)) is not None), None)
        if hit is not None:
            table_provider, info = hit
            source = f"{table_provider.id}/{info.id}"
            found = _Entry(table_provider, info, source, f"genai-prices {self.version}: {source}")
        else:
            found = None
        if len(self._entries) < 10_000:
            self._entries[key] = found
        return found

    def _coefficients(self, info: Any, when: datetime | None) -> Coefficients | None:
        """Per-token prices of a model, re-read hourly (prices can change on a date)."""
        now = time.monotonic()
        cached = self._linear.get(id(info))
        if cached is not None and (cached[0] > now or when is not None):
            return cached[1]
        coefficients = linear_coefficients(info.get_prices(when or datetime.now(UTC)))
        if when is None:
            self._linear[id(info)] = (now + 3600.0, coefficients)
        return coefficients

    def _lookup(self, provider: str, model: str) -> Any:
        key = (provider, model)
        if key in self._models:
            return self._models[key]
        found = None
        if model:
            table_id = PROVIDER_IDS.get(provider, provider)
            for provider_id in (table_id, None):  # then by the model name alone (Azure deployments of OpenAI models)
                try:
                    found = self._snapshot.find_provider_model(model, None, provider_id, None)
                    break
                except LookupError:
                    continue
        if len(self._models) < 10_000:
            self._models[key] = found
        return found

    @staticmethod
    def _library_cost(info: Any, table_provider: Any, tokens: Tokens, when: datetime | None) -> Decimal:
        from genai_prices import Usage

        usage = Usage(input_tokens=tokens.input, output_tokens=tokens.output,
                      cache_read_tokens=tokens.cache_read, cache_write_tokens=tokens.cache_write)
        return Decimal(info.calc_price(usage, table_provider, genai_request_timestamp=when).total_price)


@dataclass(frozen=True, slots=True)
class Coefficients:
    """US dollars per token; ``None`` for a kind of token the model has no separate price for."""

    input: float
    output: float
    cache_read: float | None
    cache_write: float | None


def linear_coefficients(price: Any) -> Coefficients | None:
    """A model price as per-token dollars, or ``None`` when it has tiers or units this does not cover."""
    values = {k: v for k, v in vars(price).items() if v is not None and not k.startswith("_")}
    keys = values.keys() - _UNUSED_KEYS
    if not keys <= _LINEAR_KEYS or any(not isinstance(values[k], Decimal) for k in keys):
        return None

    def per_token(key: str) -> float | None:
        return float(values[key] / _MILLION) if key in values else None

    return Coefficients(input=per_token("input_mtok") or 0.0, output=per_token("output_mtok") or 0.0,
                        cache_read=per_token("cache_read_mtok"), cache_write=per_token("cache_write_mtok"))


def linear_cost(c: Coefficients | None, tokens: Tokens) -> float | None:
    """Dollars for ``tokens``; ``None`` when the library must decide (tiers, or cached tokens with no own price)."""
    if c is None:
        return None
    if (tokens.cache_read and c.cache_read is None) or (tokens.cache_write and c.cache_write is None):
        return None
    uncached = tokens.input - tokens.cache_read - tokens.cache_write
    if uncached < 0:
        return None
    return (uncached * c.input + tokens.output * c.output + tokens.cache_read * (c.cache_read or 0.0)
            + tokens.cache_write * (c.cache_write or 0.0))


def price_record(table: PriceTable, record: dict[str, Any], response: Any) -> None:
    """Adds ``cost``, ``cost_status`` and ``cost_source`` to a record (called by the pipeline's writer).
    ``response``: the parsed answer, whose ``model`` names the exact model version that served it."""
    model = response.get("model") if isinstance(response, dict) and isinstance(response.get("model"), str) else None
    record["cost"], record["cost_status"], record["cost_source"] = table.record_cost(
        record.get("provider"), (model, record.get("model")), record.get("usage"),
        cache_hit=record.get("cache_status") == "HIT")
