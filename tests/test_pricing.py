"""Tests of gptmagic.catalog.pricing: exact Decimal money, offline, never zero for unknown."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from gptmagic.catalog import pricing
from gptmagic.catalog.pricing import (
    DEFAULT_EXPECTED_COMPLETION_TOKENS,
    Cost,
    Estimate,
    cost_of,
    estimate,
    set_price,
)
from gptmagic.core.types import Usage
from gptmagic.errors import ConfigError
from gptmagic.local.model import ALIASES, MODEL_ID

M = 1_000_000




@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pricing tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def table_prices(model: str) -> tuple[Any, Any, Any]:
    """(input, output, cache read) per Mtok, read from genai-prices' own data."""
    from genai_prices.data_snapshot import get_snapshot

    _, info = get_snapshot().find_provider_model(model, None, "openai", None)
    prices = info.get_prices(datetime.now(UTC))
    return prices.input_mtok, prices.output_mtok, prices.cache_read_mtok


def test_all_lists_the_public_names() -> None:
    defined = {name for name, obj in vars(pricing).items() if not name.startswith("_")
               and getattr(obj, "__module__", None) == pricing.__name__}
    # The money types and the run memo live in .money and .genai_cost; pricing is their home.
    reexported = {"Cost", "CostBreakdown", "Estimate", "PriceMemo"}
    assert set(pricing.__all__) == defined | {"DEFAULT_EXPECTED_COMPLETION_TOKENS"} | reexported
    assert pricing.__all__ == sorted(pricing.__all__)
    assert all(getattr(pricing, name).__doc__ for name in defined)


# --- genai-prices ---------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4.1", "o3-mini", "gpt-3.5-turbo"])
def test_price_matches_genai_prices_data(model: str) -> None:
    inp, out, _ = table_prices(model)
    cost = cost_of(Usage(prompt_tokens=1234, completion_tokens=567), model)
    assert cost.input == 1234 * inp / M
    assert cost.output == 567 * out / M
    assert cost.total == cost.input + cost.output
    assert cost.source == f"genai-prices 0.2.3 (openai/{model})"


@pytest.mark.parametrize(
    ("model", "input_per_mtok", "output_per_mtok", "cached_per_mtok"),
    [  # OpenAI's published prices, as genai-prices 0.2.3 holds them
        ("gpt-4o-mini", "0.15", "0.6", "0.075"),
        ("gpt-4o", "2.5", "10", "1.25"),
    ],
)
def test_published_prices_by_hand(
    model: str, input_per_mtok: str, output_per_mtok: str, cached_per_mtok: str
) -> None:
    assert table_prices(model) == (Decimal(input_per_mtok), Decimal(output_per_mtok),
                                   Decimal(cached_per_mtok))
    cost = cost_of(Usage(prompt_tokens=M, completion_tokens=M), model)
    assert (cost.input, cost.output) == (Decimal(input_per_mtok), Decimal(output_per_mtok))


def test_million_tokens_at_fifteen_cents_is_exactly_fifteen_cents() -> None:
    cost = cost_of(Usage(prompt_tokens=M, completion_tokens=0), "gpt-4o-mini")
    assert repr(cost.input) == "Decimal('0.15')"
    assert repr(cost.output) == "Decimal('0')"
    assert str(cost) == "$0.15"
    assert isinstance(cost.total, Decimal)


def test_cached_tokens_cost_the_cached_rate() -> None:
    cost = cost_of(Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=400),
                   "gpt-4o-mini")
    assert cost.input == Decimal("600") * Decimal("0.15") / M + 400 * Decimal("0.075") / M
    assert cost.input == Decimal("0.00012")


def test_cached_tokens_without_a_cached_rate_cost_the_input_rate() -> None:
    assert table_prices("gpt-4")[2] is None
    plain = cost_of(Usage(prompt_tokens=1000, completion_tokens=10), "gpt-4")
    cached = cost_of(Usage(prompt_tokens=1000, completion_tokens=10, cached_tokens=900), "gpt-4")
    assert cached == plain


def test_more_cached_than_prompt_tokens_is_clamped() -> None:
    cost = cost_of(Usage(prompt_tokens=100, completion_tokens=0, cached_tokens=500), "gpt-4o")
    assert cost.input == 100 * Decimal("1.25") / M


def test_reasoning_tokens_are_not_counted_twice() -> None:
    with_reasoning = cost_of(Usage(prompt_tokens=100, completion_tokens=1000,
                                   reasoning_tokens=800), "o3-mini")
    assert with_reasoning.output == 1000 * Decimal("4.4") / M


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 1000, "completion_tokens": 10,
         "prompt_tokens_details": {"cached_tokens": 400}},
        {"prompt_tokens": 1000, "completion_tokens": 10, "cached_tokens": 400},
        Usage(prompt_tokens=1000, completion_tokens=10, cached_tokens=400),
        # The Responses API's names, as its usage object has them.
        {"input_tokens": 1000, "output_tokens": 10, "total_tokens": 1010,
         "input_tokens_details": {"cached_tokens": 400, "cache_write_tokens": 0},
         "output_tokens_details": {"reasoning_tokens": 0}},
    ],
)
def test_usage_forms(usage: object) -> None:
    cost = cost_of(usage, "gpt-4o-mini")  # type: ignore[arg-type]
    assert cost.input == Decimal("0.00012")
    assert cost.output == Decimal("0.000006")


def test_a_responses_usage_object_is_priced_in_full() -> None:
    usage = {"input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500,
             "input_tokens_details": {"cached_tokens": 400, "cache_write_tokens": 0},
             "output_tokens_details": {"reasoning_tokens": 300}}
    cost = cost_of(usage, "gpt-5-mini")
    same = cost_of(Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=400,
                         cache_write_tokens=0, reasoning_tokens=300), "gpt-5-mini")
    assert cost == same and cost.breakdown == same.breakdown
    # 600 uncached at $0.25, 400 cached at $0.025, 500 out at $2 (300 of them reasoning)
    assert cost.total == Decimal("0.00116") and cost.breakdown is not None
    assert cost.breakdown.reasoning == Decimal("0.0006")


@pytest.mark.parametrize("usage", [{}, {"total_tokens": 10}, {"tokens": 5},
                                   {"prompt_tokens": None, "input_tokens": None}])
def test_a_usage_mapping_with_no_token_counts_is_an_error_not_zero(usage) -> None:
    with pytest.raises(ValueError, match="usage has no token counts .*prompt_tokens and "
                                         "completion_tokens .* input_tokens and output_tokens"):
        cost_of(usage, "gpt-5-mini")


def test_a_bad_count_in_a_responses_usage_says_which() -> None:
    with pytest.raises(ValueError, match="usage.input_tokens_details.cached_tokens is -1"):
        cost_of({"input_tokens": 5, "output_tokens": 3,
                 "input_tokens_details": {"cached_tokens": -1}}, "gpt-5-mini")


def test_a_responses_usage_missing_a_required_count_says_which() -> None:
    """ResponseUsage requires both counts: one left out is not priced as 0 tokens."""
    with pytest.raises(ValueError, match="usage.output_tokens is missing"):
        cost_of({"input_tokens": 5}, "gpt-5-mini")


def test_no_usage_is_unknown() -> None:
    assert not cost_of(None, "gpt-4o").known


def test_negative_tokens_are_rejected() -> None:
    with pytest.raises(ValueError, match="prompt_tokens"):
        cost_of(Usage(prompt_tokens=-1), "gpt-4o")


@pytest.mark.parametrize(
    ("snapshot", "priced_like"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-11-20", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4-0613", "gpt-4"),
        ("GPT-4O-MINI", "gpt-4o-mini"),
        ("gpt-4o-2030-01-01", "gpt-4o"),  # unlisted: priced as its family
        ("gpt-4o-mini-2030-01-01", "gpt-4o-mini"),
    ],
)
def test_dated_snapshots(snapshot: str, priced_like: str) -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=100)
    cost = cost_of(usage, snapshot)
    base = cost_of(usage, priced_like)
    assert (cost.input, cost.output, cost.total) == (base.input, base.output, base.total)
    assert f"/{priced_like})" in cost.source or f"priced as {priced_like!r}" in cost.source


def test_a_snapshot_with_its_own_price_keeps_it() -> None:
    cost = cost_of(Usage(prompt_tokens=M, completion_tokens=0), "gpt-4o-2024-05-13")
    assert cost.input == Decimal(5)


def test_unlisted_snapshot_says_how_it_was_priced() -> None:
    cost = cost_of(Usage(prompt_tokens=1), "gpt-4o-2030-01-01")
    assert cost.source == "genai-prices 0.2.3 (openai/gpt-4o, priced as 'gpt-4o')"


def test_prices_of_the_day_of_the_call() -> None:
    usage = Usage(prompt_tokens=M, completion_tokens=0)
    assert cost_of(usage, "o3", at=datetime(2025, 1, 1, tzinfo=UTC)).input == Decimal(10)
    assert cost_of(usage, "o3", at=datetime(2025, 7, 1, tzinfo=UTC)).input == Decimal(2)


def test_tiered_prices_switch_above_the_threshold() -> None:
    from genai_prices.data_snapshot import get_snapshot
    from genai_prices.types import TieredPrices

    _, info = get_snapshot().find_provider_model("gpt-5.4", None, "openai", None)
    tiered = info.get_prices(datetime.now(UTC)).input_mtok
    assert isinstance(tiered, TieredPrices)
    threshold, dearer = tiered.tiers[0].start, tiered.tiers[0].price
    assert cost_of(Usage(prompt_tokens=threshold), "gpt-5.4").input == threshold * tiered.base / M
    above = threshold + 1
    assert cost_of(Usage(prompt_tokens=above), "gpt-5.4").input == above * dearer / M


def test_azure_uses_openai_prices_for_gpt_models() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=200)
    azure = cost_of(usage, "gpt-4o", provider="azure")
    openai = cost_of(usage, "gpt-4o", provider="openai")
    assert azure.total == openai.total
    assert azure.source == "genai-prices 0.2.3 (azure/gpt-4o)"


def test_base_url_selects_the_provider() -> None:
    cost = cost_of(Usage(prompt_tokens=1000), "llama-3.3-70b-versatile", provider="compatible",
                   base_url="https://api.groq.com/openai/v1")
    assert cost.known and "(groq/" in cost.source


# --- unknown, local, user prices ------------------------------------------------------------

@pytest.mark.parametrize(
    ("model", "provider"),
    [("my-gpt4o-deployment", "azure"), ("totally-unknown", None), ("llama3", "compatible"),
     ("gpt-4o", "no-such-provider"), ("", None)],
)
def test_unknown_is_unknown_not_zero(model: str, provider: str | None) -> None:
    cost = cost_of(Usage(prompt_tokens=1000, completion_tokens=100), model, provider=provider)
    assert cost == Cost(None, None, None, source=f"unknown model {model!r}")
    assert not cost.known
    assert str(cost) == "unknown"


@pytest.mark.parametrize("name", sorted(ALIASES | {"LOCAL", MODEL_ID}))
def test_local_model_is_exactly_free(name: str) -> None:
    cost = cost_of(Usage(prompt_tokens=5000, completion_tokens=5000), name)
    assert cost == Cost(Decimal(0), Decimal(0), Decimal(0), source="local model (free)")
    assert cost.known and str(cost) == "$0.00"


def test_local_provider_is_free_whatever_the_model_name() -> None:
    assert cost_of(Usage(prompt_tokens=10), "/models/x.gguf", provider="local").total == 0


def test_user_price_for_a_custom_model() -> None:
    set_price("My-Deployment", input_per_mtok=0.1, output_per_mtok="0.3",
              cached_input_per_mtok=Decimal("0.05"))
    cost = cost_of(Usage(prompt_tokens=M, completion_tokens=M, cached_tokens=M // 2),
                   "my-deployment", provider="azure")
    assert cost == Cost(Decimal("0.075"), Decimal("0.3"), Decimal("0.375"), source="user price")


def test_user_price_wins_over_genai_prices_and_caches_at_input_rate() -> None:
    set_price("gpt-4o-mini", input_per_mtok=1, output_per_mtok=2)
    cost = cost_of(Usage(prompt_tokens=M, completion_tokens=M, cached_tokens=M), "gpt-4o-mini")
    assert (cost.input, cost.output, cost.source) == (Decimal(1), Decimal(2), "user price")


def test_float_prices_have_no_float_artefacts() -> None:
    set_price("x", input_per_mtok=0.1, output_per_mtok=0.7)
    cost = cost_of(Usage(prompt_tokens=3 * M, completion_tokens=3 * M), "x")
    assert (cost.input, cost.output, cost.total) == (Decimal("0.3"), Decimal("2.1"),
                                                      Decimal("2.4"))


@pytest.mark.parametrize("bad", [-1, "abc", float("nan"), Decimal("Infinity"), True, None])
def test_bad_user_prices_are_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="input_per_mtok"):
        set_price("x", input_per_mtok=bad, output_per_mtok=1)  # type: ignore[arg-type]


# --- Cost -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("0.000123"), "$0.000123"),
        (Decimal("0.0001234567"), "$0.000123"),
        (Decimal("0.00000015"), "$0.00000015"),
        (Decimal("0.1"), "$0.10"),
        (Decimal("0.75"), "$0.75"),
        (Decimal(0), "$0.00"),
        (Decimal("1.5"), "$1.50"),
        (Decimal("1234.5678"), "$1,234.57"),
        (None, "unknown"),
    ],
)
def test_cost_str(amount: Decimal | None, text: str) -> None:
    assert str(Cost(amount, amount, amount)) == text


def test_cost_str_other_currency() -> None:
    assert str(Cost(None, None, Decimal("0.5"), currency="EUR")) == "0.50 EUR"


def test_costs_add_up_and_unknown_stays_unknown() -> None:
    a = cost_of(Usage(prompt_tokens=M), "gpt-4o-mini")
    b = cost_of(Usage(prompt_tokens=M), "gpt-4o")
    assert sum([a, a]) == Cost(Decimal("0.3"), Decimal(0), Decimal("0.3"), source=a.source)
    assert (a + b).total == Decimal("2.65") and (a + b).source == "mixed"
    assert not (a + cost_of(Usage(prompt_tokens=1), "nope")).known
    with pytest.raises(ValueError, match="EUR"):
        a + Cost(Decimal(1), Decimal(0), Decimal(1), currency="EUR")


# --- estimate -------------------------------------------------------------------------------

def test_estimate_defaults() -> None:
    est = estimate(1000, "gpt-4o-mini")
    assert isinstance(est, Estimate)
    assert est.expected_completion_tokens == DEFAULT_EXPECTED_COMPLETION_TOKENS
    assert est.max_completion_tokens == 16_384  # the model's output limit
    assert est.low == cost_of(Usage(prompt_tokens=1000), "gpt-4o-mini")
    assert est.expected == cost_of(Usage(prompt_tokens=1000, completion_tokens=256), "gpt-4o-mini")
    assert est.high == cost_of(Usage(prompt_tokens=1000, completion_tokens=16_384), "gpt-4o-mini")


@pytest.mark.parametrize(
    ("prompt", "model", "kwargs", "expected", "ceiling"),
    [
        (1000, "gpt-4o-mini", {"max_tokens": 100}, 100, 100),
        (1000, "gpt-4o-mini", {"max_tokens": 100, "expected_completion_tokens": 50}, 50, 100),
        (1000, "gpt-4o-mini", {"expected_completion_tokens": 10**6}, 16_384, 16_384),
        (127_000, "gpt-4o-mini", {}, 256, 1000),  # the room left in the context
        (200_000, "gpt-4o-mini", {}, 0, 0),
        (1000, "gpt-4o-2024-08-06", {"max_tokens": 10**6}, 256, 16_384),
        (100, "local", {}, 256, 8092),
    ],
)
def test_estimate_bounds(prompt: int, model: str, kwargs: dict[str, int], expected: int,
                         ceiling: int) -> None:
    est = estimate(prompt, model, **kwargs)  # type: ignore[arg-type]
    assert (est.expected_completion_tokens, est.max_completion_tokens) == (expected, ceiling)
    assert est.low.total is not None and est.expected.total is not None
    assert est.high.total is not None
    assert est.low.total <= est.expected.total <= est.high.total


def test_estimate_without_any_output_limit_has_an_unknown_high() -> None:
    set_price("custom", input_per_mtok=1, output_per_mtok=2)
    est = estimate(M, "custom")
    assert est.low.total == 1 and est.expected.total == Decimal(1) + 256 * Decimal(2) / M
    assert not est.high.known and est.max_completion_tokens is None
    assert str(est) == "$1.00 (from $1.00 to unknown)"


def test_estimate_of_unknown_model_is_unknown() -> None:
    est = estimate(1000, "nope", max_tokens=10)
    assert not (est.low.known or est.expected.known or est.high.known)


def test_estimate_of_local_model_is_free() -> None:
    est = estimate(100, "local", max_tokens=100)
    assert est.low.total == est.expected.total == est.high.total == 0


# --- offline --------------------------------------------------------------------------------

def test_lookups_never_touch_the_network(no_network: None) -> None:
    usage = Usage(prompt_tokens=10, completion_tokens=10, cached_tokens=5)
    for model in ("gpt-4o", "gpt-5.4", "claude-3-5-sonnet", "unknown-model", "gpt-4o-2030-01-01"):
        cost_of(usage, model)
        cost_of(usage, model, provider="azure")
        estimate(10, model)
    assert not any(t.name.startswith("genai_prices") for t in threading.enumerate())


def test_fresh_process_offline_and_lazy() -> None:
    code = textwrap.dedent(
        """
        import socket, sys, threading, time
        def refuse(*a, **k):
            raise OSError("network used")
        socket.socket.connect = refuse
        socket.getaddrinfo = refuse
        import gptmagic.catalog.pricing as p
        assert "genai_prices" not in sys.modules, "genai-prices imported eagerly"
        t = time.perf_counter()
        c = p.cost_of({"prompt_tokens": 10, "completion_tokens": 5}, "gpt-4o-mini")
        first = time.perf_counter() - t
        assert c.known, c
        t = time.perf_counter()
        for i in range(200):
            p.cost_of({"prompt_tokens": i, "completion_tokens": 5}, "gpt-4o-mini")
        each = (time.perf_counter() - t) / 200
        assert not any(t.name.startswith("genai_prices") for t in threading.enumerate())
        print(f"{first:.3f} {each:.6f}")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    first, each = map(float, out.stdout.split())
    assert first > 0 and each > 0  # the timings themselves: benchmarks/bench_tokens.py


# -- a run's price memo (issue 13, item 21) and the requested model's price (item 8) ----------

_MEMO_MODELS = [("gpt-4o-mini", "openai"), ("gpt-4o-mini", "compatible"), ("o3", "openai"),
                ("gpt-4o-2024-05-13", "openai"), ("gpt-4o-2030-01-01", "openai"),
                ("gemini-2.5-pro", None), ("claude-sonnet-4-5", None),
                ("sonar-pro", "perplexity"), ("no-such-model-xyz", None)]


def _shapes() -> list[Usage]:
    """Usage of many shapes: none cached, some, all; tiny, odd, past the 200k tiers."""
    shapes = [Usage(0, 0), Usage(1, 0), Usage(0, 1), Usage(1, 1, cached_tokens=1)]
    for prompt in (7, 999, 12_345, 199_999, 200_001, 987_654):
        for completion in (0, 3, 4_096, 65_537):
            for cached in (None, 0, 1, prompt // 3, prompt):
                shapes.append(Usage(prompt, completion, cached_tokens=cached))
    return shapes


@pytest.mark.parametrize(("model", "provider"), _MEMO_MODELS)
def test_a_memo_prices_exactly_as_each_call_alone(model: str, provider: str | None) -> None:
    memo = pricing.PriceMemo()
    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    for usage in _shapes():
        for when in (at, None):
            direct = cost_of(usage, model, provider=provider, at=when)
            memoised = cost_of(usage, model, provider=provider, at=when, memo=memo)
            assert memoised == direct, (usage, when)
            for field in ("input", "output", "total"):
                assert str(getattr(memoised, field)) == str(getattr(direct, field))


def test_a_memo_asks_genai_prices_a_few_times_per_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import genai_prices

    calls: list[str] = []
    real = genai_prices.calc_price

    def counting(usage: Any, model_ref: str, **kw: Any) -> Any:
        calls.append(model_ref)
        return real(usage, model_ref, **kw)

    monkeypatch.setattr(genai_prices, "calc_price", counting)
    memo = pricing.PriceMemo()
    shapes = _shapes()
    for usage in shapes:
        cost_of(usage, "gpt-4o-mini", provider="openai", memo=memo)
    # the empty call, one token of each kind, 3 checks
    assert 0 < len(calls) <= 9
    calls.clear()
    for usage in shapes:  # tiered prices: call by call, each distinct shape once
        cost_of(usage, "gemini-2.5-pro", memo=memo)
        cost_of(usage, "gemini-2.5-pro", memo=memo)
    distinct = {(u.prompt_tokens, min(u.cached_tokens or 0, u.prompt_tokens),
                 u.completion_tokens) for u in shapes}
    assert len(calls) == len(distinct)


def test_an_unpriced_reported_model_is_priced_as_the_requested_one() -> None:
    usage = Usage(1_000, 500, cached_tokens=200)
    asked = cost_of(usage, "gpt-4o-mini", provider="compatible")
    got = cost_of(usage, "my-deployment-7", provider="compatible", requested="gpt-4o-mini")
    assert asked.known and got.total == asked.total and got.input == asked.input
    assert "'gpt-4o-mini' as asked for" in got.source and "'my-deployment-7'" in got.source
    # A reported model with a price of its own keeps it; two unknowns stay unknown.
    snap = cost_of(usage, "gpt-4o", provider="openai", requested="gpt-4o-mini")
    assert snap == cost_of(usage, "gpt-4o", provider="openai")
    assert not cost_of(usage, "x-1", requested="x-2").known
    set_price("my-finetune", input_per_mtok="2", output_per_mtok="4")
    mine = cost_of(usage, "my-finetune-served-as-v3", requested="my-finetune")
    assert mine.total == Decimal("0.004") and "user price" in mine.source
