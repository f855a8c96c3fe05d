"""The compact export of genai-prices' table answers lookups and prices exactly as the library does, and is named by
the content of the data it was made from."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import orjson
import pytest
from genai_prices import Usage
from genai_prices.data_snapshot import DataSnapshot, find_provider_by_id, get_snapshot
from genai_prices.types import ModelPrice, TimeOfDateConstraint
from genai_prices.units import _get_registry

import core.telemetry
from core.telemetry.costs import PROVIDER_IDS
from core.telemetry.price_export import export_price, main, zero_count_price_keys
from core.telemetry.price_snapshot import (
    EXPORT_FORMAT,
    GATEWAY_UNITS,
    LIBRARY_MARK,
    TOKEN_PRICE_KEYS,
    CompactModel,
    CompactSnapshot,
    DataSource,
    bundled_exports_dir,
    constraint_active,
    export_file_name,
    installed_source,
    package_source,
    read_export,
)


@pytest.fixture(scope="module")
def export_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The export, written by the command a price table runs (one child process for the module)."""
    path = tmp_path_factory.mktemp("prices") / "export.json"
    subprocess.run([sys.executable, "-m", "core.telemetry.price_export", "--write", str(path)], check=True,
                   timeout=120)
    return path


@pytest.fixture(scope="module")
def compact(export_path: Path) -> CompactSnapshot:
    return read_export(export_path)


@pytest.fixture(scope="module")
def zero_count() -> frozenset[str]:
    return zero_count_price_keys()


class Library(DataSnapshot):
    """genai-prices' bundled table, with a short repr (pytest prints the fixtures of a failing test)."""

    def __init__(self) -> None:
        super().__init__(providers=get_snapshot().providers, from_auto_update=False)

    def __repr__(self) -> str:
        return "Library()"


@pytest.fixture(scope="module")
def library() -> DataSnapshot:
    return Library()


def models(compact: CompactSnapshot, library: DataSnapshot) -> Iterator[tuple[CompactModel, Any]]:
    """Every model of both tables, side by side (the export keeps the library's order)."""
    assert [p["id"] for p in compact.providers] == [p.id for p in library.providers]
    for raw, provider in zip(compact.providers, library.providers, strict=True):
        exported = compact.models_of(raw)
        assert [m["id"] for m in exported] == [m.id for m in provider.models]
        for m, info in zip(exported, provider.models, strict=True):
            yield CompactModel(raw["id"], m["id"], m["prices"]), info


def library_find(library: DataSnapshot, ref: str, provider_id: str | None) -> tuple[str, str, str] | None:
    try:
        provider, model = library.find_provider_model(ref, None, provider_id, None)
    except LookupError:
        return None
    owner = next(p.id for p in library.providers if any(m is model for m in p.models))
    return provider.id, owner, model.id


def compact_find(compact: CompactSnapshot, ref: str, provider_id: str | None) -> tuple[str, str, str] | None:
    try:
        provider, model = compact.find_provider_model(ref, provider_id)
    except LookupError:
        return None
    return provider, model.provider_id, model.id


def library_texts(clause: Any) -> Iterator[str]:
    """The texts of a library match clause (what callers are likely to send), regexes left out."""
    for child in getattr(clause, "or_", None) or getattr(clause, "and_", None) or ():
        yield from library_texts(child)
    for kind in ("starts_with", "equals", "ends_with", "contains"):
        if isinstance(text := getattr(clause, kind, None), str):
            yield text


def model_refs(info: Any) -> set[str]:
    """A model's id and match texts, as written, upper-cased, with a compact date appended, and with their dashed
    dates written compactly (``gpt-4o-20240806``)."""
    refs = {info.id, info.id.upper(), f"{info.id}-20250101", f"{info.id}-20251332", *library_texts(info.match)}
    refs |= {compact_date for ref in refs if (compact_date := re.sub(r"-(20\d\d)-(\d\d)-(\d\d)", r"-\1\2\3", ref))}
    return refs


#: Provider names callers send besides the table's ids: ours, the library's provider_match names, odd spellings.
EXTRA_PROVIDERS = (*PROVIDER_IDS, "bedrock", "vertex", "Gemini", " OpenAI ", " Azure ", "xai", " XAI ", "together_ai",
                   "huggingface-groq", "litellm", "LiteLLM", " litellm", "no-such-provider", "")


def lookup_cases(library: DataSnapshot) -> list[tuple[str | None, str]]:
    """Every model reference with no provider; for every provider, the references of its own and its fallback
    providers' models (every n-th, at most 1,000, for the largest); for every provider name, every 100th of all
    references; litellm's ``provider/model`` references.

    Not every reference with every provider: a miss scans the provider's models, and 460,000 lookups take minutes."""
    by_provider = {p.id: set().union(*(model_refs(m) for m in p.models)) for p in library.providers}
    every = sorted(set().union(*by_provider.values()))
    cases: list[tuple[str | None, str]] = [(None, ref) for ref in every]
    names = [p.id for p in library.providers] + list(PROVIDER_IDS.values()) + list(EXTRA_PROVIDERS)
    seen: set[str] = set()
    for name in names:
        provider = find_provider_by_id(library.providers, name) if name.strip() else None
        own: list[str] = []
        if provider is not None and provider.id not in seen:
            seen.add(provider.id)
            own = sorted(set().union(*(by_provider.get(provider_id, set()) for provider_id in
                                       (provider.id, *(provider.fallback_model_providers or ())))))
            own = own[:: len(own) // 1000 + 1]
        cases += [(name, ref) for ref in own + every[::100]]
    for provider in library.providers:
        cases += [("litellm", f"{provider.id}/{ref}") for ref in every[::200]]
    cases += [("litellm", ref) for ref in ("/gpt-4o", "no-such/gpt-4o", "OpenAI/GPT-4o-mini", "azure/gpt-4o/x")]
    return cases


def test_lookups_find_what_the_library_finds(compact: CompactSnapshot, library: DataSnapshot) -> None:
    cases = lookup_cases(library)
    found = 0
    for provider_id, ref in cases:
        expected = library_find(library, ref, provider_id)
        assert compact_find(compact, ref, provider_id) == expected, (provider_id, ref)
        found += expected is not None
    print(f"{len(cases)} lookups, {found} found")
    assert len(cases) > 20_000 and found > 5_000


def instants(info: Any) -> list[datetime]:
    """Now, and around every constraint of a model's prices: the day before and of a start date (also as seen from
    other time zones and naive), and the edges of time-of-day windows."""
    now = datetime.now(UTC)
    out = [now, now.replace(tzinfo=None), now.astimezone(timezone(timedelta(hours=-9)))]
    days = [now.date(), date(2024, 1, 1)]
    for conditional in info.prices if isinstance(info.prices, list) else ():
        constraint = conditional.constraint
        if (start_date := getattr(constraint, "start_date", None)) is not None:
            midnight = datetime.combine(start_date, time(), UTC)
            days.append(start_date)
            out += [midnight - timedelta(microseconds=1), midnight, midnight.replace(tzinfo=None),
                    midnight - timedelta(days=1), midnight.astimezone(timezone(timedelta(hours=5))),
                    datetime.combine(start_date, time(0, 30), timezone(timedelta(hours=5))),
                    datetime.combine(start_date, time(23, 30), timezone(timedelta(hours=-5)))]
    for conditional in info.prices if isinstance(info.prices, list) else ():
        constraint = conditional.constraint
        if getattr(constraint, "start_time", None) is not None:
            for day in days:
                for edge in (constraint.start_time, constraint.end_time):
                    at = datetime.combine(day, edge.replace(tzinfo=None), edge.tzinfo or UTC)
                    for near in (at, at - timedelta(microseconds=1), at + timedelta(hours=2), at - timedelta(hours=2)):
                        out += [near, near.replace(tzinfo=None), *(near.astimezone(zone) for zone in ZONES)]
    return out


ZONES = (timezone(timedelta(hours=8, minutes=30)), timezone(timedelta(hours=-9)))


def test_time_windows_hold_when_the_library_says() -> None:
    """Windows in other zones than UTC, naive ones, and ones that wrap past midnight, at every half hour seen from
    several zones."""
    windows = [(time(22), time(2)), (time(1, tzinfo=timezone(timedelta(hours=5))), time(9, tzinfo=UTC)),
               (time(0, 30), time(16, 30)), (time(23, tzinfo=timezone(timedelta(hours=-3))), time(3, tzinfo=UTC))]
    checked = 0
    for start, end in windows:
        constraint = TimeOfDateConstraint(start_time=start, end_time=end)
        exported = {"start_time": start.isoformat(), "end_time": end.isoformat()}
        for half_hours in range(48):
            at = datetime(2025, 6, 1, tzinfo=UTC) + timedelta(minutes=30 * half_hours)
            near = (at, at - timedelta(microseconds=1), at.replace(tzinfo=None))
            for when in (*near, *(at.astimezone(zone) for zone in ZONES)):
                assert constraint_active(exported, when) is constraint.active(when), (start, end, when)
                checked += 1
    assert checked == 4 * 48 * (3 + len(ZONES))


def test_prices_are_the_library_prices_at_every_instant(compact: CompactSnapshot, library: DataSnapshot,
                                                         zero_count: frozenset[str]) -> None:
    checked = changing = 0
    for model, info in models(compact, library):
        seen = []
        for when in instants(info):
            price = model.get_prices(when)
            assert price == export_price(info.get_prices(when), zero_count), (model, when)
            seen += [price] if price not in seen else []
            checked += 1
        changing += len(seen) > 1
    print(f"{checked} price checks, {changing} models whose price changes among them")
    assert checked > 9_000 and changing > 150


def test_the_export_keeps_every_price_exactly(compact: CompactSnapshot, library: DataSnapshot,
                                              zero_count: frozenset[str]) -> None:
    """Decimal strings read back to the library's values; tiers keep their order; only prices with keys besides token
    prices and zero-count ones are marked for the library (the Perplexity models that charge per request)."""
    marked = set()
    for model, info in models(compact, library):
        if isinstance(info.prices, list):
            pairs = [(e["prices"], c.prices) for e, c in zip(model.prices, info.prices, strict=True)]
        else:
            pairs = [(model.prices, info.prices)]
        for exported, library_price in pairs:
            price = {k: v for k, v in vars(library_price).items() if v is not None}
            assert exported.keys() - {LIBRARY_MARK} == price.keys(), model
            for key, value in price.items():
                if isinstance(value, Decimal):
                    assert Decimal(exported[key]) == value
                else:
                    assert Decimal(exported[key]["base"]) == value.base
                    assert [(t["start"], Decimal(t["price"])) for t in exported[key]["tiers"]] == \
                        [(t.start, t.price) for t in value.tiers]
            ours = price.keys() <= TOKEN_PRICE_KEYS | zero_count
            assert exported.get(LIBRARY_MARK, False) is not ours, model
            marked |= {f"{model.provider_id}/{model.id}"} if not ours else set()
    print(f"{len(marked)} models have a price marked for the library: {sorted(marked)}")
    assert 0 < len(marked) < 20 and all(source.startswith("perplexity/") for source in marked)


def priced_together(price_key: str) -> set[str]:
    """``price_key`` with the gateway's token prices, and every price the library then requires too: of more general
    units, and of the join of any two units that overlap (``validate_priced_units``)."""
    registry = _get_registry()
    units = {registry.unit_for_price_key(price_key).usage_key, *GATEWAY_UNITS}
    while True:
        more = {key for u in units for key in registry.ancestor_usage_keys(u)}
        more |= {join.usage_key for a in units for b in units
                 if (join := registry.find_join(registry.units[a], registry.units[b])) is not None}
        if more <= units:
            return {registry.units[u].price_key for u in units}
        units |= more


#: What the library charges the probe usage for the gateway's token prices alone: 4,000 uncached input tokens at $3,
#: 700 output at $15, 3,000 cache reads at $0.30 and 2,000 cache writes at $3.75 (per million).
PROBE = Usage(input_tokens=9000, output_tokens=700, cache_read_tokens=3000, cache_write_tokens=2000)
TOKEN_PRICES = {"input_mtok": Decimal(3), "output_mtok": Decimal(15), "cache_read_mtok": Decimal("0.3"),
                "cache_write_mtok": Decimal("3.75")}
PROBE_USD = (Decimal(4000 * 3) + 700 * 15 + Decimal("0.3") * 3000 + Decimal("3.75") * 2000) / 1_000_000


def library_total(price_keys: set[str], usage: Usage) -> Decimal | None:
    """The library's price of ``usage`` with the token prices above and $7 for every other key (``None`` when it
    refuses the usage)."""
    price = ModelPrice(**{key: TOKEN_PRICES.get(key, Decimal(7)) for key in price_keys})
    try:
        return price.calc_price(usage)["total_price"]
    except ValueError:
        return None


def test_zero_count_keys_cost_nothing_in_the_library(zero_count: frozenset[str]) -> None:
    """Each zero-count key priced at $7 together with the token prices (and the units the library requires with it,
    all zero-count too) leaves the library's price of token usage unchanged: 1-hour and 5-minute cache writes, text,
    audio, image and video tokens, reasoning, characters, pages, seconds, searches."""
    assert {"cache_write_1h_mtok", "cache_write_5m_mtok", "input_text_mtok", "input_audio_mtok",
            "web_searches_kcount", "output_reasoning_mtok"} <= zero_count
    for key in zero_count:
        keys = priced_together(key)
        assert keys <= zero_count | TOKEN_PRICE_KEYS, key
        assert library_total(keys, PROBE) == PROBE_USD, key
        thin = Usage(input_tokens=9000, output_tokens=700)  # with fewer reported counts too
        assert library_total(keys, thin) == (Decimal(9000 * 3) + 700 * 15) / 1_000_000, key


def test_every_other_key_costs_something_or_is_refused(zero_count: frozenset[str]) -> None:
    """The keys left out are ones the library charges token usage for (requests: one per calculation), or whose
    count it would infer from the reported ones."""
    registry = _get_registry()
    others = {u.price_key for u in registry.units.values()} - zero_count - TOKEN_PRICE_KEYS
    assert "requests_kcount" in others
    for key in others:
        assert library_total(priced_together(key), PROBE) != PROBE_USD, key


def test_known_entries(compact: CompactSnapshot) -> None:
    _, mini = compact.find_provider_model("GPT-4o-mini-2024-07-18", "openai")
    assert mini.get_prices(datetime.now(UTC)) | {"web_searches_kcount": "-", "storage_searches_kcount": "-"} == {
        "input_mtok": "0.15", "cache_read_mtok": "0.075", "output_mtok": "0.6",
        "web_searches_kcount": "-", "storage_searches_kcount": "-"}
    assert compact.find_provider_model("gpt-4o", "azure")[1].provider_id == "openai"  # azure falls back to openai
    _, pro = compact.find_provider_model("gemini-2.5-pro", "google")
    tiered = pro.get_prices(datetime.now(UTC))
    assert LIBRARY_MARK not in tiered and tiered["input_mtok"]["base"] == "1.25" and tiered["input_mtok"]["tiers"]
    _, sonnet = compact.find_provider_model("claude-sonnet-4-5", "anthropic")
    assert LIBRARY_MARK not in sonnet.get_prices(datetime.now(UTC))  # its 1-hour cache writes are never reported
    _, sonar = compact.find_provider_model("sonar", "perplexity")
    assert sonar.get_prices(datetime.now(UTC))[LIBRARY_MARK] is True  # $5 per 1,000 requests
    _, chat = compact.find_provider_model("deepseek-chat", "deepseek")
    assert chat.get_prices(datetime(2025, 3, 1, 12, tzinfo=UTC))["output_mtok"] == "1.1"  # inside 00:30-16:30 UTC
    assert chat.get_prices(datetime(2025, 3, 1, 20, tzinfo=UTC))["output_mtok"] == "0.55"
    with pytest.raises(LookupError):
        compact.find_provider_model("my-finetune-xyz", "openai")


def test_the_command_prints_what_it_writes(export_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert printed == orjson.loads(export_path.read_bytes())
    assert printed["genai_prices"] == installed_source()._asdict()  # type: ignore[union-attr]


def test_the_command_writes_into_a_directory_under_the_name_a_table_looks_for(
        export_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What a build runs to ship the export with the code: the directory is made, the path printed."""
    assert main(["--write-dir", str(tmp_path / "core" / "telemetry" / "price_exports")]) == 0
    source = installed_source()
    assert source is not None
    written = tmp_path / "core" / "telemetry" / "price_exports" / export_file_name(source)
    assert capsys.readouterr().out.strip() == str(written)
    assert orjson.loads(written.read_bytes()) == orjson.loads(export_path.read_bytes())
    assert bundled_exports_dir() == Path(core.telemetry.__file__).parent / "price_exports"


def copy_of_the_package(site: Path) -> Path:
    """genai-prices and its dist-info copied into ``site`` (files dated now), as a Lambda zip or an image unpacks it."""
    installed = Path(genai_prices.__path__[0])
    shutil.copytree(installed, site / "genai_prices", ignore=shutil.ignore_patterns("__pycache__"))
    for dist_info in installed.parent.glob("genai_prices-*.dist-info"):
        shutil.copytree(dist_info, site / dist_info.name)
    return site / "genai_prices"


def test_exports_are_named_by_the_data_not_its_path_or_date(tmp_path: Path) -> None:
    source = installed_source()
    assert source is not None and source.version == genai_prices.__version__
    copy = copy_of_the_package(tmp_path / "site")
    os.utime(copy / "data.py", (1_000_000_000, 1_000_000_000))
    assert package_source(copy) == source
    with open(copy / "data.py", "ab") as f:
        f.write(b"\n")
    changed = package_source(copy)
    assert changed is not None and changed.version == source.version and changed != source
    assert export_file_name(changed) != export_file_name(source)
    assert export_file_name(DataSource("0.2.4", source.data_sha256)) != export_file_name(source)
    assert package_source(tmp_path / "elsewhere") is None


def test_models_are_parsed_when_a_lookup_first_needs_them(export_path: Path) -> None:
    """Each provider's models stay JSON text in the document until asked for, then are kept; a provider that falls
    back to others parses theirs only when its own models do not match."""
    compact = read_export(export_path)
    assert all(isinstance(p["models"], str) for p in compact.providers)
    assert not compact._models
    compact.find_provider_model("gpt-4o-mini", "openai")
    assert compact._models.keys() == {"openai"}
    openai = compact.provider_by_id("openai")
    assert openai is not None and compact.models_of(openai) is compact.models_of(openai)
    compact.find_provider_model("gpt-4o", "azure")
    assert compact._models.keys() == {"openai", "azure"}
    compact.find_provider_model("claude-sonnet-4-5", "azure")
    assert compact._models.keys() == {"openai", "azure", "anthropic"}


#: Damaged exports, and what refuses each: the parser (the file or a provider's models text is not JSON) or the checks
#: of the shape. Model data is JSON text inside the document, so damage to it is written with escaped quotes.
DAMAGES = [
    pytest.param(lambda data: data[: len(data) // 2], None, id="truncated"),
    pytest.param(lambda data: b"\x00" * 64, None, id="not-json"),
    pytest.param(lambda data: b"[]", "not a price export", id="not-an-object"),
    pytest.param(lambda data: data.replace(b'"format":%d' % EXPORT_FORMAT, b'"format":%d' % (EXPORT_FORMAT - 1)),
                 "export format", id="older-format"),
    pytest.param(lambda data: re.sub(rb'\\"input_mtok\\":\\"([0-9.]+)\\"', rb'\\"input_mtok\\":\1', data, count=1),
                 "not a (conditional )?price", id="price-not-a-string"),
    pytest.param(lambda data: data.replace(b'"genai_prices":{', b'"genai_prices":{"data_size":1,', 1).replace(
        b'"data_sha256":', b'"data_sha":', 1), r"KeyError\('data_sha256'\)", id="source-renamed"),
    pytest.param(lambda data: data.replace(b'\\"match\\":{', b'\\"match\\":{\\"is\\":1,', 1), "not a match clause",
                 id="clause-with-two-kinds"),
    pytest.param(lambda data: data.replace(b'"models":"[', b'"models":"[{\\"id\\":\\"x\\"},', 1),
                 r"incomplete \(KeyError\('match'\)", id="model-without-match"),
    pytest.param(lambda data: data.replace(b'"models":"[', b'"models":"[,', 1), "models of .* are not JSON",
                 id="models-not-json"),
]


@pytest.mark.parametrize(("damage", "refusal"), DAMAGES)
def test_a_damaged_export_is_refused(export_path: Path, tmp_path: Path, damage: Any, refusal: str | None) -> None:
    damaged = tmp_path / "damaged.json"
    damaged.write_bytes(damage(export_path.read_bytes()))
    with pytest.raises(ValueError, match=refusal):
        snapshot = read_export(damaged)
        for provider in snapshot.providers:  # model data is checked when a lookup first reads it
            snapshot.models_of(provider)
