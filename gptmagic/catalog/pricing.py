"""What a call costs, in exact :class:`~decimal.Decimal` money.

A price comes from, in order: a price the user set with :func:`set_price`; the
embedded local model (exactly zero); genai-prices' bundled price table; else
the cost is unknown: every amount None, never zero.

genai-prices is used offline. Its table ships inside the wheel and is loaded on
the first lookup (~0.2 s, mostly importing pydantic and httpx2); pricing a
call then takes ~0.25 ms, so a batch run prices through one :class:`PriceMemo`,
which asks genai-prices once per model and gives the same amounts. It only
fetches newer prices from GitHub if someone starts its ``UpdatePrices`` task,
which gptmagic never does; if the user does, the fetched prices are used and
``Cost.source`` says so.

Provider hints: ``"openai"`` and ``"azure"`` select genai-prices' table of that
name (Azure's falls back to OpenAI's prices for gpt-* models); ``"local"`` is
free; ``None`` and ``"compatible"`` try the provider matching ``base_url``,
then the provider genai-prices guesses from the model name, then OpenAI; any
other genai-prices provider id (``"groq"``, ``"openrouter"``) is used as is.
A dated snapshot genai-prices does not list is priced as its family
(``gpt-4o-2030-01-01`` as ``gpt-4o``), and the source says so.

Token kinds: cached input costs the cache-read rate; input written to the
prompt cache (``Usage.cache_write_tokens``) the cache-write rate where the
table has one, and where it has none the input rate (what genai-prices' own
``calc_price`` does, and what OpenAI bills where it publishes no cache-write
surcharge), the source saying so (:data:`~gptmagic.catalog.money.INPUT_RATE_WRITES`);
such a cost is unknown only where the input rate is; reasoning tokens are part of
``completion_tokens`` (OpenAI counts them there) and cost the output rate, or a
reasoning rate where one is published, never counted twice. Every
:class:`Cost` carries a :class:`CostBreakdown` of those parts.

Batch API calls (``batch=True``) cost genai-prices' batch price where it has
one (its ``processing: batch`` price variant, for the provider's own models);
elsewhere (a user price, a model without one, Azure's gpt-* which genai-prices
prices as OpenAI's) the standard price less 50%, OpenAI's published Batch API
discount, and the source says so (:data:`~gptmagic.catalog.money.BATCH_DISCOUNTED`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from gptmagic.catalog.embedded import is_local_model
from gptmagic.catalog.genai import lookup
from gptmagic.catalog.genai_cost import PriceMemo, genai_price
from gptmagic.catalog.models import model_info
from gptmagic.catalog.money import (
    BATCH_DISCOUNT,
    BATCH_DISCOUNTED,
    INPUT_RATE_WRITES,
    MTOK,
    ZERO,
    Cost,
    CostBreakdown,
    Counts,
    Estimate,
    from_parts,
    money_text,
    scaled,
)
from gptmagic.core.responses import usage_from_responses
from gptmagic.core.types import Usage
from gptmagic.errors import ConfigError, MalformedResponseError
from gptmagic.state import current

__all__ = ["Cost", "CostBreakdown", "DEFAULT_EXPECTED_COMPLETION_TOKENS", "Estimate",
           "PriceMemo", "cost_of", "estimate", "rates_per_mtok", "set_price"]

#: Completion length :func:`estimate` expects when the caller gives none: a
#: chat answer of a few paragraphs. It is capped by ``max_tokens``. Reasoning
#: models bill their hidden reasoning as completion tokens, so expect more there.
DEFAULT_EXPECTED_COMPLETION_TOKENS = 256

#: The money text of an amount, as the views show it (kept here for them).
_money = money_text


@dataclass(frozen=True, slots=True)
class _UserPrice:
    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal | None = None




def set_price(model: str, *, input_per_mtok: Decimal | str | float,
              output_per_mtok: Decimal | str | float,
              cached_input_per_mtok: Decimal | str | float | None = None,
              cache_write_per_mtok: Decimal | str | float | None = None) -> None:
    """Set the USD price per million tokens of ``model`` (matched exactly, ignoring case).

    User prices win over genai-prices and the local model. Floats are converted
    through their shortest ``repr`` (``0.15`` is ``Decimal('0.15')``). Cached
    input costs the input price unless ``cached_input_per_mtok`` is given, and
    so does input written to the prompt cache unless ``cache_write_per_mtok``
    is given (the cost's source says so when a call wrote to the cache).
    """
    inp = _decimal(input_per_mtok, "input_per_mtok")
    cached = inp if cached_input_per_mtok is None else _decimal(cached_input_per_mtok,
                                                               "cached_input_per_mtok")
    write = None if cache_write_per_mtok is None else _decimal(cache_write_per_mtok,
                                                               "cache_write_per_mtok")
    current().prices[model.lower()] = _UserPrice(inp, _decimal(output_per_mtok, "output_per_mtok"),
                                             cached, write)

def cost_of(usage: Usage | Mapping[str, Any] | None, model: str, *, provider: str | None = None,
            base_url: str | None = None, at: datetime | None = None,
            requested: str | None = None, memo: PriceMemo | None = None,
            batch: bool = False) -> Cost:
    """Price a finished call from the usage the provider reported.

    ``usage`` is a :class:`~gptmagic.Usage`, an OpenAI ``usage`` object of
    either API (Chat Completions' ``prompt_tokens`` / ``completion_tokens`` or
    the Responses API's ``input_tokens`` / ``output_tokens``, with their
    details), or a flat mapping with ``cached_tokens`` (and
    ``cache_write_tokens``, ``reasoning_tokens``); a mapping with no token
    counts is a ValueError, never $0. ``model`` is the model the server
    reported; when it has no price and ``requested`` (the model asked for)
    has one, the call is priced as ``requested`` and the source says so (a
    server may answer under a deployment or snapshot name of its own).
    Cached prompt tokens cost the cached rate where the table has one;
    cache writes the cache-write rate, or the input rate where there is none
    (and ``source`` says so).
    Reasoning tokens are already counted in ``completion_tokens`` and are not
    added again. ``at`` prices a past call with the prices of its day
    (default now). ``memo`` (a :class:`PriceMemo`) makes pricing many calls
    fast; the amounts are the same. ``batch``: the call ran in a Batch API
    batch: genai-prices' batch price where it has one, else the standard price
    less OpenAI's published 50% batch discount, and ``source`` says which.
    """
    u = _as_usage(usage)
    if u is None:
        return Cost(None, None, None, source="no usage reported")
    prompt = _count(u.prompt_tokens, "prompt_tokens")
    completion = _count(u.completion_tokens, "completion_tokens")
    cached = min(_count(u.cached_tokens or 0, "cached_tokens"), prompt)
    written = min(_count(u.cache_write_tokens or 0, "cache_write_tokens"), prompt - cached)
    reasoning = min(_count(u.reasoning_tokens or 0, "reasoning_tokens"), completion)
    counts = Counts(prompt, cached, completion, written, reasoning)
    cost = _price(model, provider, base_url, counts, at, memo, batch)
    if cost.known or not requested or requested == model:
        return cost
    asked = _price(requested, provider, base_url, counts, at, memo, batch)
    if not asked.known:
        return cost
    return replace(asked, source=f"{asked.source}, the price of {requested!r} as asked for "
                                 f"(the server reported {model!r}, which has no price)")


def estimate(prompt_tokens: int, model: str, *, max_tokens: int | None = None,
             expected_completion_tokens: int | None = None, provider: str | None = None,
             base_url: str | None = None, batch: bool = False) -> Estimate:
    """Estimate what sending ``prompt_tokens`` to ``model`` will cost.

    The completion is bounded by ``max_tokens``, the model's output limit and
    the room left in its context window (see :mod:`gptmagic.models`). The
    expected completion defaults to :data:`DEFAULT_EXPECTED_COMPLETION_TOKENS`,
    capped by that bound, so ``low <= expected <= high`` always holds.
    ``batch`` prices it as a Batch API call (see :func:`cost_of`).
    """
    prompt = _count(prompt_tokens, "prompt_tokens")
    ceiling = _completion_ceiling(model, prompt, max_tokens)
    expected = DEFAULT_EXPECTED_COMPLETION_TOKENS
    if expected_completion_tokens is not None:
        expected = _count(expected_completion_tokens, "expected_completion_tokens")
    if ceiling is not None:
        expected = min(expected, ceiling)

    def price(completion: int) -> Cost:
        return _price(model, provider, base_url, Counts(prompt, 0, completion), None,
                      batch=batch)

    high = (price(ceiling) if ceiling is not None else
            Cost(None, None, None, source=f"no output limit known for {model!r}"))
    return Estimate(price(0), price(expected), high, prompt, expected, ceiling)


def rates_per_mtok(model: str, *, provider: str | None = None, base_url: str | None = None,
                   at: datetime | None = None
                   ) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """USD per million input, cached input and output tokens of ``model``, for showing.

    None is unknown (cached: no cache-read price, so cached input costs the
    input rate). A tiered price shows its first tier (short prompts).
    """
    user = current().prices.get(model.lower())
    if user is not None:
        return user.input, user.cached_input, user.output
    if provider == "local" or is_local_model(model):
        return ZERO, ZERO, ZERO
    found = lookup(model, provider, base_url)
    if found is None:
        return None, None, None
    try:
        rates = found.model.get_prices(at or datetime.now(UTC))
    except (LookupError, ValueError):
        return None, None, None

    def flat(key: str) -> Decimal | None:
        value = getattr(rates, key, None)
        return getattr(value, "base", value)

    return flat("input_mtok"), flat("cache_read_mtok"), flat("output_mtok")


def _completion_ceiling(model: str, prompt: int, max_tokens: int | None) -> int | None:
    info = model_info(model)
    bounds = [b for b in (max_tokens, info.max_output_tokens) if b is not None]
    if not bounds:
        return None
    ceiling = min(_count(b, "max_tokens") for b in bounds)
    if info.context_window is not None:
        ceiling = min(ceiling, max(info.context_window - prompt, 0))
    return ceiling


def _price(model: str, provider: str | None, base_url: str | None, counts: Counts,
           at: datetime | None, memo: PriceMemo | None = None, batch: bool = False) -> Cost:
    user = current().prices.get(model.lower())
    if user is not None:
        cost = _user_cost(user, counts)
        return scaled(cost, BATCH_DISCOUNT, BATCH_DISCOUNTED) if batch else cost
    if provider == "local" or is_local_model(model):
        zero = CostBreakdown(ZERO, ZERO, ZERO, ZERO, ZERO, ZERO)
        return Cost(ZERO, ZERO, ZERO, source="local model (free)", breakdown=zero)
    found = lookup(model, provider, base_url)
    priced = None
    if found is not None:
        priced = (memo.price(found, counts, at, batch) if memo is not None
                  else genai_price(found, counts, at, batch))
    if priced is None:
        return Cost(None, None, None, source=f"unknown model {model!r}")
    return priced


def _user_cost(user: _UserPrice, c: Counts) -> Cost:
    """A call priced at the user's own rates (:func:`set_price`)."""
    uncached = c.prompt - c.cached - c.written
    write_rate = user.input if user.cache_write is None else user.cache_write
    parts = (uncached * user.input / MTOK, c.cached * user.cached_input / MTOK,
             c.written * write_rate / MTOK, c.completion * user.output / MTOK,
             c.reasoning * user.output / MTOK)
    note = f", {INPUT_RATE_WRITES}" if user.cache_write is None and c.written else ""
    return from_parts(parts, source="user price" + note)

#: The token counts a usage mapping must have one of: Chat Completions' or the Responses API's.
_COUNT_KEYS = ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")


def _as_usage(usage: Usage | Mapping[str, Any] | None) -> Usage | None:
    """A :class:`Usage` from a usage object of either API (read as the client reads a
    reply's, :func:`~gptmagic.core.responses.usage_from_responses`), or a flat mapping."""
    if usage is None or isinstance(usage, Usage):
        return usage
    if not isinstance(usage, Mapping):
        raise TypeError(f"usage must be a Usage or a mapping, not {type(usage).__name__}")
    if not any(usage.get(k) is not None for k in _COUNT_KEYS):
        # Read as no tokens, it would cost a made-up $0.
        raise ValueError(f"usage has no token counts (keys: {sorted(map(str, usage)) or 'none'}): "
                         "give prompt_tokens and completion_tokens (Chat Completions) or "
                         "input_tokens and output_tokens (the Responses API)")
    try:
        u = usage_from_responses(dict(usage))
    except MalformedResponseError as e:
        raise ValueError(f"usage: {e}") from None
    assert u is not None
    for key in ("cached_tokens", "cache_write_tokens", "reasoning_tokens"):
        if getattr(u, key) is None and usage.get(key) is not None:
            setattr(u, key, _count(usage[key], key))
    return u


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def _decimal(value: Decimal | str | float, option: str) -> Decimal:
    """A finite non-negative Decimal from a user's price, exactly as written."""
    try:
        if isinstance(value, bool):
            raise TypeError
        price = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        price = None
    if price is None or not price.is_finite() or price < 0:
        raise ConfigError(f"set_price: {option} must be a non-negative number of dollars per "
                          f"million tokens, like '0.15', got {value!r}")
    return price

