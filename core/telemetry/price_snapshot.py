r"""The `genai-prices` table as plain JSON, and model lookup over it without the library.

Importing `genai_prices` loads pydantic and builds several thousand validated objects: about 17 MiB of a log writer
that otherwise needs 27. The gateway only needs each model's match rules and prices, so they are exported (by
:mod:`core.telemetry.price_export`) to a compact document that :class:`CompactSnapshot` reads with orjson and answers
from, as the library would:

    {"format": 3,
     "genai_prices": {"version": "0.2.3", "data_sha256": "9c0f..."},
     "providers": [{"id": "openai", "provider_match": {"contains": "openai"}, "model_match": {...},
                    "fallback_model_providers": [...],
                    "models": "[{\"id\":\"gpt-4o-mini\",\"match\":{\"or\":[{\"equals\":\"gpt-4o-mini\"},...]},
                                \"prices\":{\"input_mtok\":\"0.15\",\"output_mtok\":\"0.6\",...}},...]"}]}

A provider's ``models`` is JSON text in the document, its list of models: ``[{"id": "gpt-4o-mini", "match": {"or":
[{"equals": "gpt-4o-mini"}, ...]}, "prices": {"input_mtok": "0.15", "output_mtok": "0.6", "cache_read_mtok":
"0.075"}}, ...]``. A gateway asks about a handful of providers, so the others' models (most of the table) are never
made into Python objects: :meth:`CompactSnapshot.models_of` parses (and checks) a provider's models when a lookup
first needs them. Reading an export checks the rest of it, so a truncated or foreign file is refused when it is read.
:mod:`core.telemetry.price_export` writes exports; this module never imports the library.

An export is named after what it was made from (:func:`export_file_name`): the content of the installed ``data.py``,
the library's version and :data:`EXPORT_FORMAT`, never a path or a file date. So one made at build time
(``python -m core.telemetry.price_export --write-dir core/telemetry/price_exports``) is found by the same code
unpacked elsewhere, with other dates, from a Lambda zip or a container image.

Match rules keep the library's own JSON shape (``starts_with``, ``ends_with``, ``contains``, ``regex``, ``equals``,
``or``, ``and``), their texts lower-cased (matching ignores case). ``prices`` is one price, or a list of
``{"constraint": ..., "prices": ...}`` whose constraint is ``null``, a ``{"start_date": "2025-01-01"}`` or a
``{"start_time": "00:30:00+00:00", "end_time": "16:30:00+00:00"}``. A price maps the library's price keys to decimal
strings, or to ``{"base": "1.25", "tiers": [{"start": 200000, "price": "2.5"}]}`` for tiered ones. Keys starting with
``_`` are never prices, in the library either.

The gateway reports four token counts (input, output, cache read, cache write). For such usage the library counts
every other unit but requests as zero (:func:`zero_count_price_keys`: audio, image and 1-hour cache-write tokens,
searches, pages...), so a price whose other keys are all of those is priced by the gateway's own arithmetic
(:mod:`core.telemetry.costs`), tiers included. A price that also charges per request (the library counts each
calculation as one), or that the library would refuse, carries ``"_library": true``: the caller prices it with the
library instead.

Lookups follow ``DataSnapshot.find_provider_model(model_ref, None, provider_id, None)`` and ``ModelInfo.get_prices``
(without a price context) of genai-prices 0.2; the tests compare both with the library across its whole table.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, NamedTuple

import orjson

#: Bumped whenever the document's shape or the ``_library`` rule changes, so older exports are not read.
EXPORT_FORMAT = 3

#: The token counts the gateway reports (its ``Tokens``), as the library's usage key → price key (per million).
GATEWAY_UNITS = {"input_tokens": "input_mtok", "output_tokens": "output_mtok",
                 "cache_read_tokens": "cache_read_mtok", "cache_write_tokens": "cache_write_mtok"}
TOKEN_PRICE_KEYS = frozenset(GATEWAY_UNITS.values())
LIBRARY_MARK = "_library"

_MATCH_KINDS = ("starts_with", "ends_with", "contains", "regex", "equals", "or", "and")
_COMPACT_DATE = re.compile(r"(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")
_DIST_INFO = ("genai_prices-", ".dist-info")


class DataSource(NamedTuple):
    """What identifies an installed genai-prices' price data, found without importing the package."""

    version: str
    data_sha256: str  # of its ``data.py``, the bundled prices


def export_file_name(source: DataSource) -> str:
    """The file name of the export of ``source``: other data, another release or another format get another file."""
    import hashlib

    identity = hashlib.sha256(f"{EXPORT_FORMAT}\0{source.version}\0{source.data_sha256}".encode()).hexdigest()
    return f"genai-prices-{re.sub(r'[^0-9A-Za-z.+-]', '_', source.version)}-{identity[:20]}.json"


def bundled_exports_dir() -> Path:
    """Where a build step puts exports shipped with the code (read only at run time; may not exist)."""
    return Path(__file__).parent / "price_exports"


def installed_source() -> DataSource | None:
    """The installed package's data, or ``None`` when genai-prices is not installed.

    ``find_spec`` of a top-level name reads the import path only; the package itself is not imported."""
    from importlib.util import find_spec

    spec = find_spec("genai_prices")
    if spec is None or not spec.submodule_search_locations:
        return None
    return package_source(next(iter(spec.submodule_search_locations)))


def package_source(package_dir: str | os.PathLike[str]) -> DataSource | None:
    """The data of the genai-prices package in ``package_dir``, or ``None`` when it has no ``data.py`` or version.

    Hashing ``data.py`` (1.6 MB) takes about 2 ms; the version is read from the name of the ``.dist-info`` directory
    beside the package (``importlib.metadata`` would cost 50 ms and 1 MiB), or from ``importlib.metadata`` when that
    is missing or ambiguous."""
    import hashlib

    try:
        with open(os.path.join(package_dir, "data.py"), "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None
    version = _installed_version(Path(package_dir))
    return None if version is None else DataSource(version, digest)


def _installed_version(package_dir: Path) -> str | None:
    prefix, suffix = _DIST_INFO
    try:
        names = [n for n in os.listdir(package_dir.absolute().parent) if n.startswith(prefix) and n.endswith(suffix)]
    except OSError:
        names = []
    if len(names) == 1:
        return names[0][len(prefix):-len(suffix)]
    from importlib import metadata

    try:
        return metadata.version("genai_prices")
    except metadata.PackageNotFoundError:
        return None


# --- lookups ------------------------------------------------------------------------------------------------------


def is_match(clause: Mapping[str, Any], text: str) -> bool:
    """Whether ``text`` satisfies a match clause. Texts are compared ignoring case (the export stores them
    lower-cased, callers lower-case ``text``); a regex is searched in the text as given.

    Clauses are read as stored, not compiled: lookups are few (callers memoise them), and compiled copies would add
    to the memory the document takes."""
    for kind, arg in clause.items():
        if kind == "equals":
            return text == arg
        if kind == "or":
            for c in arg:
                if is_match(c, text):
                    return True
            return False
        if kind == "starts_with":
            return text.startswith(arg)
        if kind == "contains":
            return arg in text
        if kind == "ends_with":
            return text.endswith(arg)
        if kind == "regex":
            return re.search(arg, text) is not None
        if kind == "and":
            return all(is_match(c, text) for c in arg)
    raise ValueError(f"not a match clause: {clause!r}")


class CompactModel(NamedTuple):
    """A model found in the table: ``provider_id`` is the provider that lists it (another one than the provider
    asked for when that one falls back to it), ``prices`` its exported ``prices``."""

    provider_id: str
    id: str
    prices: Any

    def get_prices(self, when: datetime) -> dict[str, Any]:
        """The price in force at ``when``: conditional prices are tried last to first, and the first one applies
        when none is active (a naive ``when`` is UTC)."""
        if isinstance(self.prices, dict):
            return self.prices
        for conditional in reversed(self.prices):
            constraint = conditional["constraint"]
            if constraint is None or constraint_active(constraint, when):
                return conditional["prices"]
        return self.prices[0]["prices"]


def constraint_active(constraint: Mapping[str, str], when: datetime) -> bool:
    """Whether a start-date or time-of-day constraint holds at ``when``. Dates are UTC dates; times of day are
    compared in UTC (a naive timestamp or constraint time is UTC), and a window whose end precedes its start wraps
    past midnight."""
    if "start_date" in constraint:
        if when.tzinfo is not None:
            when = when.astimezone(UTC)
        return when.date() >= date.fromisoformat(constraint["start_date"])
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = when.astimezone(UTC).timetz()
    start = _utc_time(time.fromisoformat(constraint["start_time"]))
    end = _utc_time(time.fromisoformat(constraint["end_time"]))
    if end < start:
        return now >= start or now < end
    return start <= now < end


def _utc_time(value: time) -> time:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return datetime.combine(date(1970, 1, 1), value).astimezone(UTC).timetz()


def normalize_compact_date(model_ref: str) -> str:
    """``gpt-5.2-20251211`` → ``gpt-5.2-2025-12-11`` (LiteLLM and OpenRouter write dates without dashes); suffixes
    that are not real dates are left alone."""

    def dashed(m: re.Match[str]) -> str:
        year, month, day = int(m[2]), int(m[3]), int(m[4])
        try:
            date(year, month, day)
        except ValueError:
            return m[0]
        return f"{m[1]}{year:04d}-{month:02d}-{day:02d}"

    return _COMPACT_DATE.sub(dashed, model_ref)


class CompactSnapshot:
    """The price table of one export: finds a request's provider and model, as genai-prices would.

    ``providers`` are the export's providers, their ``models`` still JSON text: :meth:`models_of` parses a provider's
    models when a lookup first needs them, and keeps them."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        """Raises ``ValueError`` when ``document`` is not a complete export of this format."""
        try:
            if document["format"] != EXPORT_FORMAT:
                raise ValueError(f"export format {document['format']!r}, expected {EXPORT_FORMAT}")
            meta = document["genai_prices"]
            self.source = DataSource(meta["version"], meta["data_sha256"])
            if not all(isinstance(part, str) for part in self.source):
                raise ValueError(f"not a price data source: {meta!r}")
            self.version: str = self.source.version
            self.providers: list[dict[str, Any]] = document["providers"]
            for provider in self.providers:
                _check_provider(provider)
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"not a complete price export ({e!r})") from e
        self._by_id = {p["id"]: p for p in reversed(self.providers)}  # the first provider with an id wins
        self._models: dict[str, list[dict[str, Any]]] = {}

    def models_of(self, provider: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The parsed models of one of :attr:`providers`, kept after the first call; ``ValueError`` when the export's
        text of them is damaged."""
        if self._by_id.get(provider["id"]) is not provider:  # shadowed by an earlier provider with its id
            return _parse_models(provider["id"], provider["models"])
        models = self._models.get(provider["id"])
        if models is None:
            models = self._models[provider["id"]] = _parse_models(provider["id"], provider["models"])
        return models

    def provider_by_id(self, provider_id: str) -> dict[str, Any] | None:
        """By exact id (after lower-casing and trimming), else the first whose ``provider_match`` accepts it."""
        wanted = provider_id.lower().strip()
        if (found := self._by_id.get(wanted)) is not None:
            return found
        return next((p for p in self.providers if "provider_match" in p and is_match(p["provider_match"], wanted)),
                    None)

    def find_provider_model(self, model_ref: str, provider_id: str | None) -> tuple[str, CompactModel]:
        """The provider's id and the model for ``model_ref``; raises ``LookupError`` when there is none.

        The provider is the one ``provider_id`` names, or with ``None`` (or "litellm") the first whose
        ``model_match`` accepts the model; with "litellm", a ``provider/model`` reference names its provider when
        that one exists. A model not listed by the provider is looked for in its ``fallback_model_providers``."""
        model_ref = model_ref.lower()
        if provider_id and provider_id.lower() == "litellm" and "/" in model_ref:
            prefix, rest = model_ref.split("/", 1)
            if prefix and self.provider_by_id(prefix) is not None:
                provider_id, model_ref = prefix, rest
        provider = self._provider(model_ref, provider_id)
        found = self._match_model(provider, model_ref, fallback=True)
        if found is None and (dashed := normalize_compact_date(model_ref)) != model_ref:
            found = self._match_model(provider, dashed, fallback=True)
        if found is None:
            raise LookupError(f"no model {model_ref!r} in provider {provider['id']!r}")
        owner, model = found
        return provider["id"], CompactModel(owner["id"], model["id"], model["prices"])

    def _provider(self, model_ref: str, provider_id: str | None) -> dict[str, Any]:
        if provider_id is not None:
            if (provider := self.provider_by_id(provider_id)) is not None:
                return provider
            if provider_id.lower() != "litellm":
                raise LookupError(f"no provider {provider_id!r}")
        if model_ref:
            for provider in self.providers:
                if "model_match" in provider and is_match(provider["model_match"], model_ref):
                    return provider
        raise LookupError(f"no provider for model {model_ref!r}")

    def _match_model(self, provider: dict[str, Any], model_ref: str, *,
                     fallback: bool) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The provider's first matching model, else (one step only) the first match among its fallback providers."""
        for model in self.models_of(provider):
            if is_match(model["match"], model_ref):
                return provider, model
        if fallback:
            for other_id in provider.get("fallback_model_providers", ()):
                other = self._by_id.get(other_id)
                if other is not None and (found := self._match_model(other, model_ref, fallback=False)) is not None:
                    return found
        return None


def _check_provider(provider: Mapping[str, Any]) -> None:
    """Raises on a provider whose parts do not have the exported shape, so a damaged export fails when it is read.

    Its models stay text here: they are checked when :func:`_parse_models` first reads them. Checking them all at
    read time would parse the whole table once, and the allocator keeps most of that memory afterwards (measured:
    1.8 MiB of a log writer's 20)."""
    if not isinstance(provider["id"], str) or not all(isinstance(p, str) for p in
                                                      provider.get("fallback_model_providers", ())):
        raise ValueError(f"not a provider: {provider['id']!r}")
    for key in ("provider_match", "model_match"):
        if key in provider:
            _check_clause(provider[key])
    if not isinstance(provider["models"], str):
        raise ValueError(f"the models of {provider['id']!r} are not JSON text")


def _parse_models(provider_id: str, text: str) -> list[dict[str, Any]]:
    """A provider's exported ``models`` text as its checked list of models; ``ValueError`` when it is damaged."""
    try:
        models = orjson.loads(text)
        if not isinstance(models, list):
            raise ValueError(f"not a list: {type(models).__name__}")
        for model in models:
            if not isinstance(model["id"], str):
                raise ValueError(f"not a model id: {model['id']!r}")
            _check_clause(model["match"])
            prices = model["prices"]
            if isinstance(prices, list):
                if not all(isinstance(c["constraint"], dict | None) and _is_price(c["prices"]) for c in prices):
                    raise ValueError(f"not a conditional price: {model['id']!r}")
            elif not _is_price(prices):
                raise ValueError(f"not a price: {model['id']!r}")
    except orjson.JSONDecodeError as e:
        raise ValueError(f"the models of {provider_id!r} are not JSON ({e})") from e
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"the models of {provider_id!r} are incomplete ({e!r})") from e
    return models


def _is_price(price: Any) -> bool:
    """Whether ``price`` is a price whose token prices (the ones the gateway reads) have the exported shape."""
    if not isinstance(price, dict):
        return False
    if price.get(LIBRARY_MARK):
        return True
    for key in TOKEN_PRICE_KEYS & price.keys():
        value = price[key]
        if isinstance(value, dict):
            tiers = value.get("tiers")
            if not isinstance(value.get("base"), str) or not isinstance(tiers, list) or not all(
                    isinstance(t, dict) and type(t.get("start")) is int and isinstance(t.get("price"), str)
                    for t in tiers):
                return False
        elif not isinstance(value, str):
            return False
    return True


def _check_clause(clause: Any) -> None:
    if not isinstance(clause, dict) or len(clause) != 1:
        raise ValueError(f"not a match clause: {clause!r}")
    ((kind, arg),) = clause.items()
    if kind in ("or", "and") and isinstance(arg, list):
        for c in arg:
            _check_clause(c)
    elif kind not in _MATCH_KINDS or not isinstance(arg, str):
        raise ValueError(f"not a match clause: {clause!r}")


def read_export(path: str | os.PathLike[str]) -> CompactSnapshot:
    """An export file as a snapshot; raises ``OSError`` or ``ValueError`` (also for a damaged or partial file)."""
    with open(path, "rb") as f:
        document = orjson.loads(f.read())
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a price export")
    return CompactSnapshot(document)

