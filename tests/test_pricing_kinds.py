"""Reasoning, cached and cache-write tokens priced exactly as genai-prices prices them (issue 14).

Every amount is compared with ``genai_prices.calc_price`` on the same usage, as
Decimal equality, directly and through a :class:`PriceMemo`; the parts of the
breakdown with the published rate x count, by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest

from gptmagic.catalog.pricing import CostBreakdown, PriceMemo, cost_of, set_price
from gptmagic.core.types import Usage

M = Decimal(1_000_000)
AT = datetime(2026, 12, 1, tzinfo=UTC)
# (model, input, cached input, output) USD per 1M tokens in genai-prices 0.2.3
RATES = {"gpt-5-mini": ("0.25", "0.025", "2"), "gpt-4o-mini": ("0.15", "0.075", "0.6"),
         "gpt-5-nano": ("0.05", "0.005", "0.4")}


def _genai(model: str, prompt: int, cached: int, completion: int, reasoning: int,
           written: int = 0) -> genai_prices.types.PriceCalculation:
    usage = genai_prices.Usage(input_tokens=prompt, cache_read_tokens=cached,
                               cache_write_tokens=written or None, output_tokens=completion,
                               output_reasoning_tokens=reasoning)
    return genai_prices.calc_price(usage, model, provider_id="openai",
                                   genai_request_timestamp=AT)


@pytest.mark.parametrize("model", sorted(RATES))
@pytest.mark.parametrize("memo", [None, PriceMemo()], ids=["direct", "memo"])
def test_cached_and_reasoning_tokens_cost_what_genai_prices_says(model, memo) -> None:
    usage = Usage(prompt_tokens=12_345, completion_tokens=6_789, cached_tokens=4_096,
                  reasoning_tokens=5_120)
    cost = cost_of(usage, model, provider="openai", at=AT, memo=memo)
    want = _genai(model, 12_345, 4_096, 6_789, 5_120)
    assert (cost.input, cost.output, cost.total) == (want.input_price, want.output_price,
                                                     want.total_price)
    inp, cached, out = (Decimal(r) for r in RATES[model])
    assert cost.breakdown == CostBreakdown(
        input=(12_345 - 4_096) * inp / M, cached_input=4_096 * cached / M, cache_write=0,
        output=6_789 * out / M, reasoning=5_120 * out / M, total=want.total_price)
    # Reasoning is a part of the output, not added to it again.
    assert cost.total == cost.breakdown.input + cost.breakdown.cached_input + cost.breakdown.output
    assert "genai-prices 0.2.3" in cost.source and model in cost.source


@pytest.mark.parametrize("model", ["gpt-6-cyber", "gpt-6-luna"])  # a flat and a tiered price
@pytest.mark.parametrize("prompt", [10_000, 300_000])
@pytest.mark.parametrize("memo", [None, PriceMemo()], ids=["direct", "memo"])
def test_cache_writes_cost_the_cache_write_rate(model, prompt, memo) -> None:
    usage = {"prompt_tokens": prompt, "completion_tokens": 2_000, "cached_tokens": 3_000,
             "cache_write_tokens": 5_000, "reasoning_tokens": 1_500}
    cost = cost_of(usage, model, provider="openai", at=AT, memo=memo)
    want = _genai(model, prompt, 3_000, 2_000, 1_500, written=5_000)
    assert (cost.input, cost.output, cost.total) == (want.input_price, want.output_price,
                                                     want.total_price)
    rates = want.model_price
    write_rate = rates.cache_write_mtok
    if not isinstance(write_rate, Decimal):  # tiered: the tier the prompt's length selects
        write_rate = next((t.price for t in reversed(write_rate.tiers) if prompt > t.start),
                          write_rate.base)
    assert cost.breakdown is not None and cost.breakdown.cache_write == 5_000 * write_rate / M
    # The cache write costs more than the same tokens uncached would.
    assert cost.breakdown.cache_write > 0 and cost.breakdown.total == cost.total


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-5-mini", "gpt-4.1"])
@pytest.mark.parametrize("memo", [None, PriceMemo()], ids=["direct", "memo"])
def test_cache_writes_without_a_published_rate_cost_the_input_rate(model, memo) -> None:
    usage = Usage(prompt_tokens=1_000, completion_tokens=100, cached_tokens=200,
                  cache_write_tokens=300, reasoning_tokens=40)
    cost = cost_of(usage, model, provider="openai", at=AT, memo=memo)
    want = _genai(model, 1_000, 200, 100, 40, written=300)
    assert want.model_price.cache_write_mtok is None  # genai-prices publishes none
    assert (cost.input, cost.output, cost.total) == (want.input_price, want.output_price,
                                                     want.total_price)
    assert cost.known and str(cost) != "unknown"
    assert cost.source.endswith(", cache writes at the input rate (no cache-write price "
                                "published)")
    inp = want.model_price.input_mtok
    assert cost.breakdown is not None and cost.breakdown.cache_write == 300 * inp / M
    # The parts with a price of their own keep it: 500 uncached, 200 cached.
    assert cost.breakdown.input == 500 * inp / M
    assert cost.breakdown.cached_input == 200 * want.model_price.cache_read_mtok / M
    # No cache writes: no note.
    plain = cost_of(Usage(prompt_tokens=1_000, completion_tokens=100), model,
                    provider="openai", at=AT, memo=memo)
    assert plain.known and "cache writes" not in plain.source


def test_a_cache_write_rate_that_is_published_says_no_input_rate() -> None:
    cost = cost_of(Usage(prompt_tokens=1_000, cache_write_tokens=300), "gpt-6-cyber",
                   provider="openai", at=AT)
    assert cost.known and "input rate" not in cost.source


def test_an_unknown_input_rate_stays_unknown_with_cache_writes() -> None:
    cost = cost_of(Usage(prompt_tokens=1_000, cache_write_tokens=300), "no-such-model-xyz")
    assert not cost.known and cost.input is None and str(cost) == "unknown"


def test_user_prices_split_the_same_way() -> None:
    set_price("mine", input_per_mtok="1", output_per_mtok="4", cached_input_per_mtok="0.5",
              cache_write_per_mtok="1.25")
    cost = cost_of({"prompt_tokens": 1_000, "completion_tokens": 100, "cached_tokens": 200,
                    "cache_write_tokens": 300, "reasoning_tokens": 60}, "mine")
    assert cost.breakdown == CostBreakdown(
        input=Decimal("0.0005"), cached_input=Decimal("0.0001"), cache_write=Decimal("0.000375"),
        output=Decimal("0.0004"), reasoning=Decimal("0.00024"), total=Decimal("0.001375"))
    assert cost.source == "user price" and cost.total == Decimal("0.001375")
    set_price("other", input_per_mtok="1", output_per_mtok="4")
    at_input = cost_of({"prompt_tokens": 10, "cache_write_tokens": 5}, "other")
    assert at_input.total == Decimal("0.00001") and at_input.breakdown is not None
    assert at_input.breakdown.input == at_input.breakdown.cache_write == Decimal("0.000005")
    assert at_input.source == ("user price, cache writes at the input rate (no cache-write "
                               "price published)")


def test_a_sum_of_costs_sums_the_breakdowns() -> None:
    a = cost_of(Usage(100, 50, cached_tokens=20, reasoning_tokens=10), "gpt-5-mini", at=AT)
    b = cost_of(Usage(300, 70, cached_tokens=0, reasoning_tokens=30), "gpt-5-mini", at=AT)
    both = sum([a, b])
    assert isinstance(both.breakdown, CostBreakdown) and both.total == a.total + b.total
    assert both.breakdown.reasoning == 40 * Decimal(2) / M
    assert both.breakdown.cached_input == 20 * Decimal("0.025") / M
    local = cost_of(Usage(5, 5), "local")
    assert local.breakdown is not None and local.breakdown.total == 0
    assert (a + cost_of(None, "gpt-5-mini")).breakdown is None  # unknown stays unknown


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-5-mini", "gpt-6-cyber", "gpt-6-luna",
                                   "o3-mini"])
def test_a_memo_splits_exactly_as_each_call_alone(model) -> None:
    memo = PriceMemo()
    for prompt, cached, written, completion, reasoning in [
            (0, 0, 0, 0, 0), (1, 0, 0, 1, 1), (5_000, 1_000, 0, 300, 0),
            (300_000, 10_000, 20_000, 9_000, 8_000), (777, 0, 77, 7, 0)]:
        usage = Usage(prompt, completion, cached_tokens=cached, cache_write_tokens=written,
                      reasoning_tokens=reasoning)
        alone = cost_of(usage, model, provider="openai", at=AT)
        memoised = cost_of(usage, model, provider="openai", at=AT, memo=memo)
        assert memoised == alone and memoised.breakdown == alone.breakdown, usage
        assert alone.breakdown is not None
