"""Writes the compact export of the installed `genai-prices` table that :mod:`core.telemetry.price_snapshot` reads.

    python -m core.telemetry.price_export [--write PATH | --write-dir DIR | --write-shipped]

Only this module imports the library (pydantic and the whole table: about 17 MiB and a second of CPU), so it runs
where that does not matter: in a child process of the log writer, in ``skyrelay bundle`` and the container image
build (which ship the export in ``core/telemetry/price_exports``), or once in a serverless process that found none.
The document it writes, and why each price is or is not left to the library, is described in
:mod:`core.telemetry.price_snapshot`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from core.telemetry.price_snapshot import (
    EXPORT_FORMAT,
    GATEWAY_UNITS,
    LIBRARY_MARK,
    TOKEN_PRICE_KEYS,
    DataSource,
    bundled_exports_dir,
    export_file_name,
    installed_source,
)


def export_snapshot() -> dict[str, Any]:
    """The bundled genai-prices snapshot as a compact document (raises ``ImportError`` when it is not installed,
    ``ValueError`` for data this exporter does not know how to represent)."""
    from genai_prices.data_snapshot import get_snapshot

    source = installed_source()
    if source is None:
        raise ImportError("genai-prices is not installed")
    zero_count = zero_count_price_keys()
    return {
        "format": EXPORT_FORMAT,
        "genai_prices": source._asdict(),
        "providers": [_export_provider(p, zero_count) for p in get_snapshot().providers],
    }


def zero_count_price_keys() -> frozenset[str]:
    """The price keys whose count the library takes as zero for usage that reports only the gateway's token counts,
    so that it charges such usage nothing for them. Empty when the library's units do not nest as the gateway's
    arithmetic assumes (cache reads and writes are parts of input; output apart): every price with other keys then
    goes to the library.

    Asked of the library: a ``Usage`` reporting all four counts answers 0 for a unit it neither has nor can infer
    from them (fewer reported counts leave fewer to infer from). It refuses units whose count it would infer from
    reported ones (a more specific count reported, or two that combine into it), and ``requests``, which it does not
    read from usage: each calculation is one request. Zero-count units have zero-count units below them only, so they
    take nothing from the counts of the units above them either (``compute_leaf_values``)."""
    try:
        from genai_prices import Usage
        from genai_prices.units import _get_registry
    except ImportError:  # a release without the unit registry of 0.2: nothing is known to be zero
        return frozenset()

    units = _get_registry().units
    if not _gateway_units_nest_as_assumed(units):
        return frozenset()
    probe = Usage(**dict.fromkeys(GATEWAY_UNITS, 1))
    zero = set()
    for unit in units.values():
        if unit.usage_key in GATEWAY_UNITS:
            continue
        try:
            count = getattr(probe, unit.usage_key)
        except (AttributeError, ValueError):  # not read from usage, or inferred from the reported counts
            continue
        if count == 0:
            zero.add(unit.price_key)
    return frozenset(zero)


def _gateway_units_nest_as_assumed(units: Mapping[str, Any]) -> bool:
    from genai_prices.decompose import is_descendant_or_self

    if any(key not in units or (units[key].price_key, units[key].per) != (price_key, 1_000_000)
           for key, price_key in GATEWAY_UNITS.items()):
        return False
    nested = {(a, b) for a in GATEWAY_UNITS for b in GATEWAY_UNITS
              if a != b and is_descendant_or_self(units[a], units[b])}
    return nested == {("input_tokens", "cache_read_tokens"), ("input_tokens", "cache_write_tokens")}


def _export_provider(provider: Any, zero_count: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": provider.id}
    if provider.provider_match is not None:
        out["provider_match"] = export_match(provider.provider_match)
    if provider.model_match is not None:
        out["model_match"] = export_match(provider.model_match)
    if provider.fallback_model_providers:
        out["fallback_model_providers"] = list(provider.fallback_model_providers)
    models = [{"id": m.id, "match": export_match(m.match), "prices": export_prices(m.prices, zero_count)}
              for m in provider.models]
    out["models"] = orjson.dumps(models).decode()
    return out


def export_match(clause: Any) -> dict[str, Any]:
    """A library match clause as ``{kind: text}`` or ``{"or" | "and": [clauses]}``."""
    from genai_prices import types

    if isinstance(clause, types.ClauseOr):
        return {"or": [export_match(c) for c in clause.or_]}
    if isinstance(clause, types.ClauseAnd):
        return {"and": [export_match(c) for c in clause.and_]}
    if isinstance(clause, types.ClauseRegex):
        return {"regex": clause.regex}
    for kind in ("starts_with", "ends_with", "contains", "equals"):
        text = getattr(clause, kind, None)
        if isinstance(text, str):
            return {kind: text.lower()}  # matching ignores case: stored the way lookups compare it
    raise ValueError(f"unsupported match clause {clause!r}")


def export_prices(prices: Any, zero_count: frozenset[str]) -> dict[str, Any] | list[dict[str, Any]]:
    """A model's ``prices``: one price, or its conditional prices in order with their constraints."""
    if isinstance(prices, list):
        return [{"constraint": _export_constraint(c.constraint), "prices": export_price(c.prices, zero_count)}
                for c in prices]
    return export_price(prices, zero_count)


def export_price(price: Any, zero_count: frozenset[str]) -> dict[str, Any]:
    """A library ``ModelPrice`` as price key → decimal string (or tiers), marked when only the library can apply it:
    when it has keys besides the gateway's token prices and ``zero_count`` ones, or the library would refuse it."""
    from genai_prices.types import TieredPrices

    out: dict[str, Any] = {}
    valid = True
    for key, value in vars(price).items():
        if key.startswith("_") or value is None:
            continue
        if isinstance(value, Decimal):
            out[key] = str(value)
            valid = valid and _valid_price(value)
        elif isinstance(value, TieredPrices):
            tiers = [{"start": tier.start, "price": str(tier.price)} for tier in value.tiers]
            out[key] = {"base": str(value.base), "tiers": tiers}
            valid = valid and _valid_tiers(value)
        else:
            raise ValueError(f"unsupported price value {key}={value!r}")
    if not (valid and out.keys() <= TOKEN_PRICE_KEYS | zero_count and _units_valid(out.keys())):
        out[LIBRARY_MARK] = True
    return out


def _valid_price(value: Decimal) -> bool:
    return value.is_finite() and value >= 0


def _valid_tiers(value: Any) -> bool:
    """The library's check of tiered prices (``_validate_model_price_value``): it refuses prices that fail it."""
    starts = [tier.start for tier in value.tiers]
    return (_valid_price(value.base) and all(_valid_price(tier.price) for tier in value.tiers)
            and all(type(start) is int and start >= 0 for start in starts) and starts == sorted(starts))


def _units_valid(price_keys: Collection[str]) -> bool:
    """Whether the library accepts a price with these keys (every more general unit and every join priced too)."""
    try:
        from genai_prices.units import _get_registry
        from genai_prices.validation import validate_priced_units
    except ImportError:
        return False

    registry = _get_registry()
    try:
        validate_priced_units([registry.unit_for_price_key(key) for key in price_keys], registry)
    except (KeyError, ValueError):
        return False
    return True


def _export_constraint(constraint: Any) -> dict[str, str] | None:
    from genai_prices.types import StartDateConstraint, TimeOfDateConstraint

    if constraint is None:
        return None
    if isinstance(constraint, StartDateConstraint):
        return {"start_date": constraint.start_date.isoformat()}
    if isinstance(constraint, TimeOfDateConstraint):
        return {"start_time": constraint.start_time.isoformat(), "end_time": constraint.end_time.isoformat()}
    raise ValueError(f"unsupported price constraint {constraint!r}")


# --- lookup (plain data only) --------------------------------------------------------------------------------------


def write_export(document: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Writes ``document`` to ``path`` atomically: a temporary file in the same directory, then a rename."""
    import tempfile

    target = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # prices are no secret; mkstemp makes the file private
            f.write(orjson.dumps(document))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m core.telemetry.price_export",
                                     description="Export the installed genai-prices table as compact JSON.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--write", metavar="PATH", help="write the export to PATH atomically instead of printing it")
    where.add_argument("--write-dir", metavar="DIR",
                       help="write the export into DIR (made if missing) under the name a price table looks for, "
                            "and print its path: how a build ships it in core/telemetry/price_exports")
    where.add_argument("--write-shipped", action="store_true",
                       help="--write-dir this installation's core/telemetry/price_exports (a container image build)")
    args = parser.parse_args(argv)
    if args.write_shipped:
        args.write_dir = str(bundled_exports_dir())
    try:
        document = export_snapshot()
    except ImportError as e:
        print(f"price_snapshot: {e}", file=sys.stderr)
        return 2
    if args.write_dir:
        directory = Path(args.write_dir)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / export_file_name(DataSource(**document["genai_prices"]))
        write_export(document, path)
        print(path)
    elif args.write:
        write_export(document, args.write)
    else:
        sys.stdout.buffer.write(orjson.dumps(document) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
