"""Batch API prices (gptmagic/catalog: ``batch=True``): genai-prices' batch price where it
has one, else the standard price less OpenAI's published 50% discount, said so."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest

from gptmagic.catalog.genai import lookup
from gptmagic.catalog.genai_cost import BATCH_CONTEXT, batch_priced
from gptmagic.catalog.money import BATCH_DISCOUNTED, BATCH_PRICE
from gptmagic.catalog.pricing import PriceMemo, cost_of, estimate, set_price

USAGE = {"prompt_tokens": 123_457, "completion_tokens": 7_891,
         "prompt_tokens_details": {"cached_tokens": 43_210}}


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4.1-nano", "gpt-4o", "o4-mini"])
def test_openai_batch_price_is_genai_prices_own(model):
    got = cost_of(USAGE, model, provider="openai", batch=True)
    want = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=123_457, output_tokens=7_891,
                           cache_read_tokens=43_210), model, provider_id="openai",
        price_context=dict(BATCH_CONTEXT))
    assert got.total == want.total_price and got.source.endswith(BATCH_PRICE)
    assert got.total < cost_of(USAGE, model, provider="openai").total


def test_the_memo_gives_the_same_batch_amounts():
    memo = PriceMemo()
    for provider in ("openai", "azure"):
        for model in ("gpt-4o-mini", "gpt-4.1"):
            direct = cost_of(USAGE, model, provider=provider, batch=True)
            assert cost_of(USAGE, model, provider=provider, batch=True, memo=memo) == direct
            assert direct.breakdown == cost_of(USAGE, model, provider=provider, batch=True,
                                               memo=memo).breakdown


def test_without_a_batch_price_the_discount_is_applied_and_said():
    # Azure's gpt-* are OpenAI's models in genai-prices, which then ignores the context.
    found = lookup("gpt-4o-mini", "azure")
    assert found is not None and not batch_priced(found, datetime.now(UTC))
    full = cost_of(USAGE, "gpt-4o-mini", provider="azure")
    half = cost_of(USAGE, "gpt-4o-mini", provider="azure", batch=True)
    assert half.total == full.total * Decimal("0.5") and half.source.endswith(BATCH_DISCOUNTED)
    assert half.breakdown is not None and full.breakdown is not None
    assert half.breakdown.cached_input == full.breakdown.cached_input / 2
    set_price("my-model", input_per_mtok="2", output_per_mtok="8")
    mine = cost_of(USAGE, "my-model", batch=True)
    assert mine.total == cost_of(USAGE, "my-model").total / 2
    assert mine.source == f"user price, {BATCH_DISCOUNTED}"


def test_an_unknown_model_stays_unknown_in_a_batch():
    assert cost_of(USAGE, "no-such-model-xyz", batch=True).total is None


def test_estimate_at_the_batch_price():
    live = estimate(1_000, "gpt-4o-mini", max_tokens=100, provider="openai")
    batch = estimate(1_000, "gpt-4o-mini", max_tokens=100, provider="openai", batch=True)
    assert batch.high.total == live.high.total / 2 and BATCH_PRICE in batch.high.source
