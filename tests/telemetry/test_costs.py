"""Cost per record from token usage and the genai-prices table; unknown models say so instead of reporting 0."""

from __future__ import annotations

import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import genai_prices
import orjson
import pytest
from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot

from core.telemetry import costs
from core.telemetry.costs import PriceTable, TieredRate, Tokens, token_cost, token_rates
from core.telemetry.pipeline import LogPipeline
from core.telemetry.price_export import main
from core.telemetry.price_snapshot import (
    LIBRARY_MARK,
    export_file_name,
    installed_source,
    read_export,
)
from tests.telemetry.conftest import MemorySink, entry

USAGE = b'{"model": "gpt-4o-mini-2024-07-18", "usage": {"prompt_tokens": 1000, "completion_tokens": 500, ' \
        b'"total_tokens": 1500, "prompt_tokens_details": {"cached_tokens": 400}}}'


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("price-cache")


@pytest.fixture(scope="module")
def nothing_shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty directory of shipped exports: the checkout's own ``price_exports`` must not answer these tests."""
    return tmp_path_factory.mktemp("nothing-shipped")


@pytest.fixture
def price_table(nothing_shipped: Path) -> Callable[..., PriceTable]:
    def make(cache_dir: Path, **options: Any) -> PriceTable:
        return PriceTable(cache_dir=cache_dir, bundled_dir=nothing_shipped, **options)

    return make


@pytest.fixture(scope="module")
def table(cache_dir: Path, nothing_shipped: Path) -> PriceTable:
    """Loaded from an empty cache: the export is made in this process (once for the module)."""
    prices = PriceTable(cache_dir=cache_dir, bundled_dir=nothing_shipped)
    prices.load()
    return prices


@pytest.fixture(scope="module")
def export_file(table: PriceTable, cache_dir: Path) -> Path:
    source = installed_source()
    assert source is not None
    return cache_dir / export_file_name(source)


def test_a_known_model_is_priced_from_its_usage(table: PriceTable) -> None:
    cost = table.cost("openai", ("gpt-4o-mini",), Tokens(input=1000, output=500, cache_read=400))
    # gpt-4o-mini: $0.15 / M input, $0.075 / M cached input, $0.60 / M output
    assert cost.status == "ok" and cost.source == "openai/gpt-4o-mini"
    assert cost.usd == pytest.approx((600 * 0.15 + 400 * 0.075 + 500 * 0.60) / 1e6)


def test_provider_ids_map_to_the_table_and_fall_back_to_the_model_name(table: PriceTable) -> None:
    assert table.cost("bedrock", ("anthropic.claude-3-5-sonnet-20240620-v1:0",), Tokens(10, 10)).status == "ok"
    assert table.cost("vertex-ai", ("gemini-2.0-flash",), Tokens(10, 10)).source == "google/gemini-2.0-flash"
    assert table.cost("azure-openai", ("gpt-4o",), Tokens(10, 10)).status == "ok"


def test_unknown_models_are_null_not_zero(table: PriceTable) -> None:
    cost = table.cost("openai", ("my-finetune-xyz",), Tokens(10, 10))
    assert (cost.usd, cost.status) == (None, "unknown_model")


def test_no_usage_and_cache_hits(table: PriceTable) -> None:
    assert table.cost("openai", ("gpt-4o-mini",), None).status == "no_usage"
    assert table.cost("openai", ("gpt-4o-mini",), Tokens(10, 10), cache_hit=True).usd == 0.0


def test_a_tier_applies_to_the_whole_count_once_input_exceeds_its_start() -> None:
    """gemini-2.5-pro: $1.25 / M input up to 200,000 input tokens (cache reads included), $2.50 / M for all of them
    above; output $10 / $15, cache reads $0.125 / $0.25."""
    price = {"input_mtok": {"base": "1.25", "tiers": [{"start": 200_000, "price": "2.5"}]},
             "output_mtok": {"base": "10", "tiers": [{"start": 200_000, "price": "15"}]},
             "cache_read_mtok": {"base": "0.125", "tiers": [{"start": 200_000, "price": "0.25"}]}}
    rates = token_rates(price)
    assert rates is not None
    at = token_cost(rates, Tokens(input=200_000, output=1000, cache_read=50_000))
    above = token_cost(rates, Tokens(input=200_001, output=1000, cache_read=50_000))
    assert at == pytest.approx((150_000 * 1.25 + 1000 * 10 + 50_000 * 0.125) / 1e6, rel=1e-12)
    assert above == pytest.approx((150_001 * 2.5 + 1000 * 15 + 50_000 * 0.25) / 1e6, rel=1e-12)
    two = TieredRate(1.0, ((32_000, 2.0), (128_000, 3.0)))
    assert [two.at(n) for n in (0, 32_000, 32_001, 128_000, 128_001)] == [1.0, 1.0, 2.0, 2.0, 3.0]


def test_cache_counts_without_their_own_price_are_input_and_too_many_are_refused() -> None:
    rates = token_rates({"input_mtok": "2", "output_mtok": "8"})
    assert rates is not None
    assert token_cost(rates, Tokens(input=1000, output=10, cache_read=600, cache_write=300)) == \
        pytest.approx((1000 * 2 + 10 * 8) / 1e6, rel=1e-12)
    cached = token_rates({"input_mtok": "2", "cache_read_mtok": "0.5"})
    assert cached is not None
    with pytest.raises(ValueError, match="exceed input"):
        token_cost(cached, Tokens(input=100, cache_read=101))


def test_cache_writes_are_read_where_the_provider_translations_put_them(table: PriceTable) -> None:
    """Anthropic and Bedrock answers, translated: cache writes in ``cache_creation_input_tokens`` (priced at the
    cache-write rate, not as input); usage that caches more than its input is ``invalid_usage``, never an error."""
    from core.providers.usage import usage_with_cache

    usage = usage_with_cache(input_tokens=100, output_tokens=50, cache_read=1000, cache_write=2000)
    assert Tokens.from_usage(usage) == Tokens(input=3100, output=50, cache_read=1000, cache_write=2000)
    usd, status, _ = table.record_cost("anthropic", ("claude-sonnet-4-5",), usage)
    # claude-sonnet-4-5: $3 / M input, $3.75 / M cache writes, $0.30 / M cache reads, $15 / M output
    assert status == "ok" and usd == pytest.approx((100 * 3 + 2000 * 3.75 + 1000 * 0.30 + 50 * 15) / 1e6)
    broken = {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 50}}
    assert table.record_cost("openai", ("gpt-4o-mini",), broken) == (None, "invalid_usage", None)


def thresholds(price: dict[str, Any]) -> list[int]:
    return sorted({tier["start"] for value in price.values() if isinstance(value, dict) for tier in value["tiers"]})


def usages(price: dict[str, Any], rng: random.Random) -> Iterator[Tokens]:
    """Input counts below, at and just above every tier start (and zero, and any), each with output and a random
    split of cache reads and writes, some taking all the input; and one with a cache token more than the input."""
    counts = [0, rng.randint(1, 120_000)]
    for start in thresholds(price):
        counts += [rng.randint(1, start - 1), start - 1, start, start + 1, rng.randint(start + 2, 2 * start)]
    for i, n in enumerate(counts):
        read = rng.randint(0, n)
        write = rng.randint(0, n - read) if i % 3 else n - read
        yield Tokens(input=n, output=rng.randint(0, 20_000), cache_read=read, cache_write=write)
        if i % 2:
            yield Tokens(input=n, output=rng.randint(0, 20_000))
    yield Tokens(input=counts[1], output=10, cache_read=counts[1] // 2 + 1, cache_write=counts[1] - counts[1] // 2)


def library_usd(library_price: Any, tokens: Tokens) -> Decimal | None:
    usage = Usage(input_tokens=tokens.input, output_tokens=tokens.output, cache_read_tokens=tokens.cache_read,
                  cache_write_tokens=tokens.cache_write)
    try:
        return library_price.calc_price(usage)["total_price"]
    except ValueError:  # usage the library refuses
        return None


def test_our_arithmetic_is_the_library_calculation_for_every_price_it_takes(export_file: Path) -> None:
    """Every price of every model (conditional ones too) that the export leaves to us, tiered or not, with usage
    around each tier start: our dollars equal genai-prices' ``calc_price`` within 1e-9."""
    compact, library = read_export(export_file), get_snapshot()
    rng = random.Random(7)
    models = fast = prices = checked = tiered = refused = 0
    worst = 0.0
    for raw, provider in zip(compact.providers, library.providers, strict=True):
        for m, info in zip(compact.models_of(raw), provider.models, strict=True):
            models += 1
            pairs = list(zip(m["prices"], info.prices, strict=True)) if isinstance(info.prices, list) else \
                [({"prices": m["prices"]}, SimpleNamespace(prices=info.prices))]
            ours = [(exported["prices"], c.prices) for exported, c in pairs if LIBRARY_MARK not in exported["prices"]]
            fast += bool(ours)
            for price, library_price in ours:
                rates = token_rates(price)
                assert rates is not None
                prices += 1
                tiered += bool(thresholds(price))
                for tokens in usages(price, rng):
                    expected = library_usd(library_price, tokens)
                    if expected is None:
                        with pytest.raises(ValueError):
                            token_cost(rates, tokens)
                        refused += 1
                        continue
                    usd = token_cost(rates, tokens)
                    assert usd == pytest.approx(float(expected), rel=1e-9, abs=0), (info.id, price, tokens)
                    worst = max(worst, abs(usd - float(expected)) / float(expected)) if expected else worst
                    checked += 1
    print(f"{fast} of {models} models on our arithmetic; {prices} prices ({tiered} tiered), {checked} usages priced "
          f"alike (largest relative difference {worst:.1e}), {refused} refused by both")
    assert fast > models - 20 and tiered > 150 and checked > 7000 and refused > 100


def test_every_model_costs_what_the_library_says(table: PriceTable) -> None:
    """Through the table, per-token prices and those only the library can apply (tiers, other units) alike: the
    model the library finds for the provider (else for the model name alone), priced by the library."""
    library = get_snapshot()
    tokens = Tokens(input=300_000, output=2000, cache_read=1000)
    usage = Usage(input_tokens=tokens.input, output_tokens=tokens.output, cache_read_tokens=tokens.cache_read)
    priced = 0
    for provider in library.providers:
        for info in provider.models:
            cost = table.cost(provider.id, (info.id,), tokens)
            try:
                table_provider, model = library.find_provider_model(info.id, None, provider.id, None)
            except LookupError:  # a few ids match no rule of their own provider
                try:
                    table_provider, model = library.find_provider_model(info.id, None, None, None)
                except LookupError:
                    assert (cost.usd, cost.status) == (None, "unknown_model"), info.id
                    continue
            assert cost.source == f"{table_provider.id}/{model.id}"
            assert cost.usd == pytest.approx(float(model.calc_price(usage, table_provider).total_price),
                                             rel=1e-9, abs=1e-12), cost.source
            priced += 1
    assert priced > 2200


async def test_records_carry_cost_fields(cache_dir: Path, price_table: Callable[..., PriceTable]) -> None:
    sink = MemorySink()
    pipeline = LogPipeline(sink, replica="r1", prices=price_table(cache_dir))
    pipeline.submit(entry(1, provider="openai", model="gpt-4o-mini", response_body=USAGE))
    pipeline.submit(entry(2, provider="openai", model="local-llama",
                          response_body=USAGE.replace(b"gpt-4o-mini-2024-07-18", b"local-llama")))
    pipeline.submit(entry(3, provider="openai", model="gpt-4o-mini", status=400))
    assert await pipeline.flush(5)
    known, unknown, failed = sink.records()
    assert known["cost"] == pytest.approx((600 * 0.15 + 400 * 0.075 + 500 * 0.60) / 1e6)
    assert known["cost_status"] == "ok" and known["cost_source"].startswith("genai-prices ")
    assert (unknown["cost"], unknown["cost_status"], unknown["cost_source"]) == (None, "unknown_model", None)
    assert (failed["cost"], failed["cost_status"]) == (None, "no_usage")


# --- loading: shipped exports, the cache, where a missing export is made, fallbacks -----------------------------

PRICE_IN_A_FRESH_PROCESS = """
import importlib.util
import json
import sys

def rss_mib():
    with open("/proc/self/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Rss:")) / 1024

import core.telemetry.writer_process
before = rss_mib()
from core.telemetry.costs import PriceTable
table = PriceTable(cache_dir=sys.argv[1], bundled_dir=sys.argv[2], isolated_export=sys.argv[3] == "isolated")
table.load()
usage = {"prompt_tokens": 1000, "completion_tokens": 500}
costs = {f"{provider}/{model}": table.record_cost(provider, (model,), usage) for provider, model in (
    ("openai", "gpt-4o-mini-2024-07-18"), ("anthropic", "claude-sonnet-4-5"), ("bedrock", "claude-sonnet-4-5"),
    ("vertex-ai", "gemini-2.5-pro"))}
imported = sorted(m for m in sys.modules if m.split(".")[0] in ("genai_prices", "pydantic"))
print(json.dumps({"costs": costs, "version": table.version, "imported": imported, "rss": [before, rss_mib()],
                  "genai_prices_at": importlib.util.find_spec("genai_prices").submodule_search_locations[0]}))
"""


def price_in_a_fresh_process(cache_dir: Path, bundled_dir: Path, *, isolated: bool = False,
                             site: Path | None = None) -> dict[str, Any]:
    """A gateway process that loads the table (``site``: where it finds genai-prices first) and prices gpt-4o-mini,
    claude-sonnet-4-5 (from Anthropic and from Bedrock) and gemini-2.5-pro (from Vertex AI)."""
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(site), env.get("PYTHONPATH"))))
    command = [sys.executable, "-c", PRICE_IN_A_FRESH_PROCESS, str(cache_dir), str(bundled_dir),
               "isolated" if isolated else "here"]
    done = subprocess.run(command, capture_output=True, check=True, timeout=120, env=env)
    return orjson.loads(done.stdout)


def test_a_cached_export_prices_without_importing_the_library(export_file: Path, nothing_shipped: Path) -> None:
    """The writer's modules take about 27 MiB of RSS; the table adds about 3 (genai-prices' own adds about 17), also
    for Anthropic's and Gemini's tiered prices."""
    priced = price_in_a_fresh_process(export_file.parent, nothing_shipped)
    version = priced["version"]
    assert priced["costs"] == {
        "openai/gpt-4o-mini-2024-07-18": [pytest.approx((1000 * 0.15 + 500 * 0.6) / 1e6), "ok",
                                          f"genai-prices {version}: openai/gpt-4o-mini"],
        "anthropic/claude-sonnet-4-5": [pytest.approx((1000 * 3 + 500 * 15) / 1e6), "ok",
                                        f"genai-prices {version}: anthropic/claude-sonnet-4-5"],
        "bedrock/claude-sonnet-4-5": [pytest.approx((1000 * 3 + 500 * 15) / 1e6), "ok",
                                      f"genai-prices {version}: anthropic/claude-sonnet-4-5"],
        "vertex-ai/gemini-2.5-pro": [pytest.approx((1000 * 1.25 + 500 * 10) / 1e6), "ok",
                                     f"genai-prices {version}: google/gemini-2.5-pro"]}
    assert priced["imported"] == []
    before, after = priced["rss"]
    print(f"RSS {before:.1f} MiB -> {after:.1f} MiB")
    assert after - before < 8


def test_an_isolated_table_makes_a_missing_export_in_a_child_process_and_keeps_it(
        tmp_path: Path, nothing_shipped: Path, price_table: Callable[..., PriceTable]) -> None:
    priced = price_in_a_fresh_process(tmp_path, nothing_shipped, isolated=True)
    assert all(status == "ok" for _, status, _ in priced["costs"].values())
    assert priced["imported"] == []  # the library ran in the child only
    (export,) = tmp_path.glob("genai-prices-*.json")
    made = export.stat()
    table = price_table(tmp_path, isolated_export=True)
    table.load()
    again = export.stat()
    assert (again.st_ino, again.st_mtime_ns) == (made.st_ino, made.st_mtime_ns)  # read, not made again
    assert table.cost("openai", ("gpt-4o-mini",), Tokens(10, 10)).status == "ok"


def test_by_default_a_missing_export_is_made_in_this_process_and_kept(
        tmp_path: Path, price_table: Callable[..., PriceTable], monkeypatch: pytest.MonkeyPatch) -> None:
    """No child process (its interpreter's start would add to a serverless cold start); the next process reads it."""
    def no_child(path: Path) -> str:
        raise AssertionError("a child process was started")

    monkeypatch.setattr(costs, "_export_in_child", no_child)
    table = price_table(tmp_path)
    table.load()
    assert table.cost("vertex-ai", ("gemini-2.5-pro",), Tokens(10, 10)).status == "ok"
    (export,) = tmp_path.glob("genai-prices-*.json")
    source = installed_source()
    assert source is not None and export.name == export_file_name(source)
    assert read_export(export).source == source


def refuse_to_export(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError("the table was exported")

    monkeypatch.setattr(costs, "_export_in_child", refuse)
    monkeypatch.setattr(costs, "_export_here", refuse)


def test_shipped_exports_are_read_before_the_cache_and_never_written(
        export_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = tmp_path / "price_exports"
    shipped.mkdir()
    shutil.copy(export_file, shipped / export_file.name)
    shipped.chmod(0o555)
    refuse_to_export(monkeypatch)
    table = PriceTable(cache_dir=tmp_path / "cache", bundled_dir=shipped, isolated_export=True)
    table.load()
    assert table.cost("anthropic", ("claude-sonnet-4-5",), Tokens(10, 10)).status == "ok"
    assert not (tmp_path / "cache").exists()


def test_a_shipped_export_of_other_data_is_passed_over(
        export_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = tmp_path / "price_exports"
    shipped.mkdir()
    (shipped / export_file.name).write_bytes(export_file.read_bytes().replace(b'"data_sha256":"', b'"data_sha256":"0'))
    refuse_to_export(monkeypatch)
    table = PriceTable(cache_dir=export_file.parent, bundled_dir=shipped)
    table.load()
    assert table.cost("openai", ("gpt-4o-mini",), Tokens(10, 10)).status == "ok"


def test_an_export_made_at_build_time_is_found_by_a_copy_elsewhere_with_other_dates(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The build runs ``--write-dir``; the deployed code and genai-prices live at other paths, their files dated when
    they were unpacked: the process finds the shipped export, without making one or importing the library."""
    shipped = tmp_path / "price_exports"
    assert main(["--write-dir", str(shipped)]) == 0
    capsys.readouterr()
    site = tmp_path / "site"
    installed = Path(genai_prices.__path__[0])
    shutil.copytree(installed, site / "genai_prices", ignore=shutil.ignore_patterns("__pycache__"))
    for dist_info in installed.parent.glob("genai_prices-*.dist-info"):
        shutil.copytree(dist_info, site / dist_info.name)
    priced = price_in_a_fresh_process(tmp_path / "cache", shipped, isolated=True, site=site)
    assert Path(priced["genai_prices_at"]) == site / "genai_prices"
    assert all(status == "ok" for _, status, _ in priced["costs"].values())
    assert priced["imported"] == [] and list((tmp_path / "cache").glob("*.json")) == []


@pytest.mark.parametrize("damage", [lambda data: data[:1000], lambda data: data.replace(b'"format":2', b'"format":9')])
def test_a_damaged_export_is_made_again(export_file: Path, tmp_path: Path, damage: Callable[[bytes], bytes],
                                        price_table: Callable[..., PriceTable]) -> None:
    damaged = tmp_path / export_file.name
    damaged.write_bytes(damage(export_file.read_bytes()))
    table = price_table(tmp_path)
    table.load()
    assert table.cost("openai", ("gpt-4o-mini",), Tokens(10, 10)).status == "ok"
    assert orjson.loads(damaged.read_bytes()) == orjson.loads(export_file.read_bytes())


def test_an_unwritable_cache_directory_falls_back_to_a_private_temporary_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, price_table: Callable[..., PriceTable]) -> None:
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    table = price_table(tmp_path / "file" / "cache")
    table.load()
    assert table.cost("openai", ("gpt-4o-mini",), Tokens(10, 10)).status == "ok"
    private = tmp_path / "tmp" / f"skyrelay-{os.getuid()}"
    assert len(list(private.glob("genai-prices-*.json"))) == 1 and private.stat().st_mode & 0o777 == 0o700


def test_a_temporary_directory_made_by_someone_else_is_not_trusted(
        export_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, price_table: Callable[..., PriceTable]) -> None:
    """Anyone can create ``skyrelay-<uid>`` in the shared temporary directory first: one open to others is neither
    read nor written (an isolated table then exports in this process, and says so)."""
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    planted = tmp_path / "tmp" / f"skyrelay-{os.getuid()}"
    planted.mkdir(parents=True, mode=0o777)
    planted.chmod(0o777)
    shutil.copy(export_file, planted / export_file.name)
    with caplog.at_level(logging.WARNING, "skyrelay.logs"):
        table = price_table(tmp_path / "file" / "cache", isolated_export=True)
        table.load()
    assert table.available
    assert [r.message for r in caplog.records if "no writable cache directory" in r.message]


@pytest.mark.parametrize("isolated", [True, False])
def test_with_nothing_writable_the_table_is_exported_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        price_table: Callable[..., PriceTable], isolated: bool) -> None:
    """An isolated table warns once that the library stays in this process; a default one exports here anyway."""
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "file" / "tmp"))
    with caplog.at_level(logging.WARNING, "skyrelay.logs"):
        table = price_table(tmp_path / "file" / "cache", isolated_export=isolated)
        table.load()
        table.load()
        assert table.cost("openai", ("gpt-4o-mini",), Tokens(10, 10)).status == "ok"
    assert table.version == genai_prices.__version__
    if isolated:
        (warning,) = caplog.records
        assert "no writable cache directory" in warning.message
    else:
        assert caplog.records == []


def test_a_failing_child_process_falls_back_to_exporting_here(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, price_table: Callable[..., PriceTable]) -> None:
    source = installed_source()
    assert source is not None
    (tmp_path / export_file_name(source)).mkdir()  # the child cannot replace a directory with its file
    with caplog.at_level(logging.WARNING, "skyrelay.logs"):
        table = price_table(tmp_path, isolated_export=True)
        table.load()
    assert table.cost("openai", ("gpt-4o-mini",), Tokens(10, 10)).status == "ok"
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "exit status 1" in warning.message


def test_without_genai_prices_costs_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          price_table: Callable[..., PriceTable]) -> None:
    monkeypatch.setitem(sys.modules, "genai_prices", None)  # what an import of a missing package finds
    table = price_table(tmp_path)
    table.load()
    assert not table.available and table.version is None
    assert table.cost("openai", ("gpt-4o-mini",), Tokens(10, 10)).status == "no_price_table"
    assert list(tmp_path.iterdir()) == []


def test_a_provider_whose_exported_models_are_damaged_is_unpriced_and_the_rest_still_priced(
        export_file: Path, tmp_path: Path, price_table: Callable[..., PriceTable],
        caplog: pytest.LogCaptureFixture) -> None:
    """Model data is checked when a lookup first reads it: damage there costs that provider its prices, not the
    record (the first provider of the table, anthropic, is the one damaged)."""
    damaged = tmp_path / export_file.name
    damaged.write_bytes(export_file.read_bytes().replace(b'"models":"[', b'"models":"[,', 1))
    table = price_table(tmp_path)
    usage = {"prompt_tokens": 10, "completion_tokens": 5}
    with caplog.at_level("WARNING", logger="skyrelay.logs"):
        assert table.record_cost("anthropic", ("claude-sonnet-4-5",), usage) == (None, "unknown_model", None)
    assert "'anthropic' are not JSON" in caplog.text
    assert table.record_cost("openai", ("gpt-4o-mini",), usage)[1] == "ok"
