"""Pricing a call with genai-prices' own arithmetic, one call or a whole run (:class:`PriceMemo`).

genai-prices is used offline: its table ships inside the wheel. A price is
split by kind of token (:class:`~gptmagic.catalog.money.CostBreakdown`) with
genai-prices' per-unit function, and the split is trusted only where its
parts add up to genai-prices' own input and output amounts exactly.

Input written to the prompt cache costs the cache-write rate where genai-prices
has one, and the input rate where it has none: what genai-prices' own
``calc_price`` does, and what OpenAI bills on models that publish no
cache-write surcharge. The cost's source says so
(:data:`~gptmagic.catalog.money.INPUT_RATE_WRITES`), for the views to show.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from gptmagic.catalog.genai import Found
from gptmagic.catalog.money import (
    BATCH_DISCOUNT,
    BATCH_DISCOUNTED,
    BATCH_PRICE,
    INPUT_RATE_WRITES,
    ZERO,
    Cost,
    CostBreakdown,
    Counts,
    from_parts,
    scaled,
    tidy,
)

__all__ = ["BATCH_CONTEXT", "PriceMemo", "batch_priced", "genai_price"]

#: genai-prices' request context of a Batch API call (its ``price_variants``' key).
BATCH_CONTEXT = MappingProxyType({"processing": "batch"})


def batch_priced(found: Found, when: datetime) -> bool:
    """Whether genai-prices has a batch price of ``found``'s model in force at ``when``.

    Only for a model of ``found``'s own provider: genai-prices ignores the context
    when it prices a model it borrowed from another provider (Azure's gpt-* are
    OpenAI's), so such a call gets the discount instead.
    """
    if not any(m is found.model for m in found.provider.models):
        return False
    return any(v.when == BATCH_CONTEXT and (v.constraint is None or v.constraint.active(when))
               for v in found.model.price_variants or ())


def genai_price(found: Found, counts: Counts, at: datetime | None,
                batch: bool = False) -> Cost | None:
    """One call priced by genai-prices itself; None when it has no price for it.

    ``batch``: a Batch API call, at genai-prices' batch price where it has one,
    else at the standard price less :data:`~gptmagic.catalog.money.BATCH_DISCOUNT`
    (the source says which).
    """
    import genai_prices

    when = at or datetime.now(UTC)
    discount = batch and not batch_priced(found, when)
    context = BATCH_CONTEXT if batch and not discount else None
    try:
        rates = found.model.get_prices(when, context)
    except (LookupError, ValueError):
        return None
    # input_tokens counts cached and written tokens too; genai-prices subtracts them itself.
    usage = genai_prices.Usage(input_tokens=counts.prompt, output_tokens=counts.completion,
                               cache_read_tokens=counts.cached or None,
                               cache_write_tokens=counts.written or None,
                               output_reasoning_tokens=counts.reasoning or None)
    try:
        calc = genai_prices.calc_price(usage, found.ref, provider_id=found.provider.id,
                                       genai_request_timestamp=when, price_context=context)
    except (LookupError, ValueError):
        return None
    source = found.source
    if batch:
        source += f", {BATCH_DISCOUNTED if discount else BATCH_PRICE}"
    if calc.auto_update_timestamp is not None:
        source += f", prices fetched {calc.auto_update_timestamp:%Y-%m-%d %H:%M}"
    if counts.written and getattr(rates, "cache_write_mtok", None) is None:
        source += f", {INPUT_RATE_WRITES}"  # as a memo adds it, after the table's name
    cost = Cost(tidy(calc.input_price), tidy(calc.output_price), tidy(calc.total_price),
                source=source, breakdown=_split(calc.model_price, counts, calc))
    return scaled(cost, BATCH_DISCOUNT) if discount else cost


def _split(rates: Any, c: Counts, calc: Any) -> CostBreakdown | None:
    """genai-prices' amount by kind of token, with its own per-unit arithmetic.

    None if the parts do not add up to genai-prices' own input and output
    amounts exactly (a price of a kind gptmagic does not split, such as audio).
    """
    from genai_prices.types import calc_unit_price

    def rate(key: str) -> Any:
        return getattr(rates, key, None)

    reasoning_rate = rate("output_reasoning_mtok")
    output_rate = rate("output_mtok")
    leaves = {  # (price, count); a priced kind is a leaf of its own, as genai-prices counts
        "uncached": (rate("input_mtok"), c.prompt - c.cached - c.written),
        "cached": (rate("cache_read_mtok") or rate("input_mtok"), c.cached),
        "written": (rate("cache_write_mtok") or rate("input_mtok"), c.written),
        "plain": (output_rate, c.completion - (c.reasoning if reasoning_rate else 0)),
        "reasoning": (reasoning_rate or output_rate, c.reasoning),
    }
    amounts = {k: calc_unit_price(p, n, c.prompt, 1_000_000) for k, (p, n) in leaves.items()}
    out = amounts["plain"] + (amounts["reasoning"] if reasoning_rate else ZERO)
    inp = amounts["uncached"] + amounts["cached"] + amounts["written"]
    if inp != calc.input_price or out != calc.output_price:
        return None
    return CostBreakdown(tidy(amounts["uncached"]), tidy(amounts["cached"]),
                         tidy(amounts["written"]), tidy(out), tidy(amounts["reasoning"]),
                         tidy(calc.total_price))


#: The token kinds of a :class:`_Linear` price, in the order of its rates.
_KINDS = ("uncached", "cached", "written", "output", "reasoning")
#: One token of each kind, as counts (the reasoning token is also an output token).
_ONE = (Counts(1), Counts(1, cached=1), Counts(1, written=1), Counts(0, completion=1),
        Counts(0, completion=1, reasoning=1))


class _Linear:
    """A price that is a sum over tokens: the cost of none, plus so much per token of each kind.

    Built from genai-prices' answers for no tokens and for one token of each
    kind (uncached prompt, cached prompt, written to the cache, completion,
    reasoning completion). ``writes_published``: whether the model has a
    cache-write price of its own (else a written token costs the input rate,
    and a cost with such tokens says so).
    """

    __slots__ = ("_base", "_rates", "_source", "_writes_published")

    def __init__(self, none: Cost, ones: list[Cost], writes_published: bool) -> None:
        def total(c: Cost) -> Decimal:
            assert c.total is not None
            return c.total

        self._base = (none.input, none.output, none.total)
        base = total(none)
        # Per token of each kind; the reasoning rate is the extra a reasoning token costs
        # over a plain output token (zero unless a reasoning price is published).
        rates = [total(c) - base for c in ones]
        rates[4] -= rates[3]
        self._rates = dict(zip(_KINDS, rates, strict=True))
        self._source = none.source
        self._writes_published = writes_published

    def cost(self, c: Counts) -> Cost:
        r = self._rates
        base_in, base_out, _ = self._base
        assert base_in is not None and base_out is not None
        reasoning = c.reasoning * (r["output"] + r["reasoning"])
        parts = (base_in + (c.prompt - c.cached - c.written) * r["uncached"],
                 c.cached * r["cached"], c.written * r["written"],
                 base_out + c.completion * r["output"] + c.reasoning * r["reasoning"], reasoning)
        note = "" if self._writes_published or not c.written else f", {INPUT_RATE_WRITES}"
        return from_parts(parts, source=self._source + note)


class PriceMemo:
    """The genai-prices prices of one run, looked up once per (provider, model, time).

    genai-prices re-derives the usage and re-validates its price units on every
    call (~0.25 ms), and a batch run prices the same few models thousands of
    times: 10,000 cached rows took 3 s, nearly all of it there. Its price is a
    sum of price x count over the token kinds, so the memo asks it once per
    model for the cost of no tokens and of one token of each kind (uncached
    prompt, cached prompt, cache write, completion, reasoning) and adds those
    up per call: the same Decimal amounts, exactly. Before trusting that, it
    checks the sum against genai-prices on probe calls; a model
    with tiered prices (the rate depends on the prompt's length) or one that
    fails the check is priced call by call, remembered by its exact counts.

    Give each run its own memo: with ``at=None`` it keeps the prices in force
    when it first met each model (genai-prices can change a price by date or
    time of day).
    """

    def __init__(self) -> None:
        self._linear: dict[tuple[Any, ...], _Linear | None] = {}
        self._exact: dict[tuple[Any, ...], Cost | None] = {}

    def price(self, found: Found, counts: Counts, at: datetime | None,
              batch: bool = False) -> Cost | None:
        """What :func:`cost_of` would say for these counts of ``found``'s model
        (``batch``: at its Batch API price)."""
        key = (found.provider.id, found.ref, at, batch)
        if key not in self._linear:
            self._linear[key] = _linear(found, at or datetime.now(UTC), batch)
        linear = self._linear[key]
        if linear is not None:
            return linear.cost(counts)
        exact_key = (*key, *counts)
        if exact_key not in self._exact:
            self._exact[exact_key] = genai_price(found, counts, at, batch)
        return self._exact[exact_key]


#: Counts the linear sum is checked against before it is trusted.
_PROBES = (Counts(123_457, 0, 7_891), Counts(98_765, 43_210, 1_234),
           Counts(98_765, 43_210, 5_678, 1_357, 2_468))


def _linear(found: Found, at: datetime, batch: bool = False) -> _Linear | None:
    """``found``'s price (``batch``: its Batch API price) as a :class:`_Linear` sum, or
    None where it is not one."""
    from genai_prices.types import TieredPrices

    try:
        rates = found.model.get_prices(at, BATCH_CONTEXT if batch_priced(found, at) and batch
                                       else None)
    except (LookupError, ValueError):
        return None
    if any(isinstance(v, TieredPrices) for v in vars(rates).values()):
        return None
    none = genai_price(found, Counts(0), at, batch)
    ones = [genai_price(found, c, at, batch) for c in _ONE]
    if none is None or not none.known or any(c is None or not c.known for c in ones):
        return None
    writes = getattr(rates, "cache_write_mtok", None) is not None
    linear = _Linear(none, [c for c in ones if c is not None], writes)
    for counts in _PROBES:
        want = genai_price(found, counts, at, batch)
        got = linear.cost(counts)
        if want is None or got != want or got.breakdown != want.breakdown:
            return None
    return linear
