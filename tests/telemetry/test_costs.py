"""Cost per record from token usage and the genai-prices table; unknown models say so instead of reporting 0."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from core.telemetry.costs import PriceTable, Tokens, linear_coefficients, linear_cost
from core.telemetry.pipeline import LogPipeline
from tests.telemetry.conftest import MemorySink, entry

USAGE = b'{"model": "gpt-4o-mini-2024-07-18", "usage": {"prompt_tokens": 1000, "completion_tokens": 500, ' \
        b'"total_tokens": 1500, "prompt_tokens_details": {"cached_tokens": 400}}}'


@pytest.fixture(scope="module")
def table() -> PriceTable:
    prices = PriceTable()
    prices.load()
    return prices


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


def test_the_fast_path_matches_the_library_for_every_model_it_handles(table: PriceTable) -> None:
    """Every per-token model in the table, with random usage: our arithmetic equals genai-prices' own."""
    from genai_prices import Usage
    from genai_prices.data_snapshot import get_snapshot

    rng = random.Random(7)
    checked = 0
    for provider in get_snapshot().providers:
        for model in provider.models:
            price = model.get_prices(datetime.now(UTC))
            tokens = Tokens(input=rng.randint(1000, 50_000), output=rng.randint(0, 5000))
            tokens = Tokens(tokens.input, tokens.output, cache_read=rng.randint(0, tokens.input // 2)
                            if getattr(price, "cache_read_mtok", None) is not None else 0)
            fast = linear_cost(linear_coefficients(price), tokens)
            if fast is None:
                continue
            usage = Usage(input_tokens=tokens.input, output_tokens=tokens.output,
                          cache_read_tokens=tokens.cache_read)
            expected = float(model.calc_price(usage, provider).total_price)
            assert fast == pytest.approx(expected, rel=1e-9, abs=1e-12), model.id
            checked += 1
    assert checked > 1000


async def test_records_carry_cost_fields() -> None:
    sink = MemorySink()
    pipeline = LogPipeline(sink, replica="r1", prices=PriceTable())
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
