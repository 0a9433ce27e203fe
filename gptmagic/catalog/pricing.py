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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from gptmagic.catalog.embedded import is_local_model
from gptmagic.catalog.genai import Found, lookup
from gptmagic.catalog.models import model_info
from gptmagic.core.types import Usage
from gptmagic.errors import ConfigError
from gptmagic.state import current

__all__ = ["Cost", "DEFAULT_EXPECTED_COMPLETION_TOKENS", "Estimate", "PriceMemo", "cost_of",
           "estimate", "set_price"]

#: Completion length :func:`estimate` expects when the caller gives none: a
#: chat answer of a few paragraphs. It is capped by ``max_tokens``. Reasoning
#: models bill their hidden reasoning as completion tokens, so expect more there.
DEFAULT_EXPECTED_COMPLETION_TOKENS = 256

_MTOK = Decimal(1_000_000)
_ZERO = Decimal(0)
# The date suffix of an OpenAI snapshot: -2024-08-06 or -0613.


@dataclass(frozen=True, slots=True)
class Cost:
    """Money for one call (or a sum of calls). None means unknown, never zero.

    ``source`` names the price table used, e.g.
    ``"genai-prices 0.2.3 (openai/gpt-4o-mini)"``, ``"user price"``,
    ``"local model (free)"`` or ``"unknown model 'x'"``.
    """

    input: Decimal | None
    output: Decimal | None
    total: Decimal | None
    _: KW_ONLY
    currency: str = "USD"
    source: str = "unknown"

    @property
    def known(self) -> bool:
        """True if the total is known (it may be exactly zero)."""
        return self.total is not None

    def __str__(self) -> str:
        return _money(self.total, self.currency)

    def __add__(self, other: object) -> Cost:
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self  # the start value of sum()
        if not isinstance(other, Cost):
            return NotImplemented
        if other.currency != self.currency:
            raise ValueError(f"cannot add {self.currency} and {other.currency} costs")
        return Cost(_add(self.input, other.input), _add(self.output, other.output),
                    _add(self.total, other.total), currency=self.currency,
                    source=self.source if self.source == other.source else "mixed")

    __radd__ = __add__


@dataclass(frozen=True, slots=True)
class Estimate:
    """The cost of a prompt before it is sent.

    ``low`` prices the prompt alone, ``expected`` adds
    ``expected_completion_tokens``, ``high`` adds ``max_completion_tokens``
    (unknown when neither ``max_tokens`` nor the model's output limit is known).
    """

    low: Cost
    expected: Cost
    high: Cost
    prompt_tokens: int
    expected_completion_tokens: int
    max_completion_tokens: int | None

    def __str__(self) -> str:
        return f"{self.expected} (from {self.low} to {self.high})"


@dataclass(frozen=True, slots=True)
class _UserPrice:
    input: Decimal
    output: Decimal
    cached_input: Decimal




def set_price(model: str, *, input_per_mtok: Decimal | str | float,
              output_per_mtok: Decimal | str | float,
              cached_input_per_mtok: Decimal | str | float | None = None) -> None:
    """Set the USD price per million tokens of ``model`` (matched exactly, ignoring case).

    User prices win over genai-prices and the local model. Floats are converted
    through their shortest ``repr`` (``0.15`` is ``Decimal('0.15')``). Cached
    input costs the input price unless ``cached_input_per_mtok`` is given.
    """
    inp = _decimal(input_per_mtok, "input_per_mtok")
    cached = inp if cached_input_per_mtok is None else _decimal(cached_input_per_mtok,
                                                               "cached_input_per_mtok")
    current().prices[model.lower()] = _UserPrice(inp, _decimal(output_per_mtok, "output_per_mtok"),
                                             cached)


def cost_of(usage: Usage | Mapping[str, Any] | None, model: str, *, provider: str | None = None,
            base_url: str | None = None, at: datetime | None = None,
            requested: str | None = None, memo: PriceMemo | None = None) -> Cost:
    """Price a finished call from the usage the provider reported.

    ``usage`` is a :class:`~gptmagic.Usage`, an OpenAI ``usage`` object or a
    flat mapping with ``cached_tokens``. ``model`` is the model the server
    reported; when it has no price and ``requested`` (the model asked for)
    has one, the call is priced as ``requested`` and the source says so (a
    server may answer under a deployment or snapshot name of its own).
    Cached prompt tokens cost the cached rate where the table has one.
    Reasoning tokens are already counted in ``completion_tokens`` and are not
    added again. ``at`` prices a past call with the prices of its day
    (default now). ``memo`` (a :class:`PriceMemo`) makes pricing many calls
    fast; the amounts are the same.
    """
    u = _as_usage(usage)
    if u is None:
        return Cost(None, None, None, source="no usage reported")
    prompt = _count(u.prompt_tokens, "prompt_tokens")
    completion = _count(u.completion_tokens, "completion_tokens")
    cached = min(_count(u.cached_tokens or 0, "cached_tokens"), prompt)
    cost = _price(model, provider, base_url, prompt, cached, completion, at, memo)
    if cost.known or not requested or requested == model:
        return cost
    asked = _price(requested, provider, base_url, prompt, cached, completion, at, memo)
    if not asked.known:
        return cost
    return replace(asked, source=f"{asked.source}, the price of {requested!r} as asked for "
                                 f"(the server reported {model!r}, which has no price)")


def estimate(prompt_tokens: int, model: str, *, max_tokens: int | None = None,
             expected_completion_tokens: int | None = None, provider: str | None = None,
             base_url: str | None = None) -> Estimate:
    """Estimate what sending ``prompt_tokens`` to ``model`` will cost.

    The completion is bounded by ``max_tokens``, the model's output limit and
    the room left in its context window (see :mod:`gptmagic.models`). The
    expected completion defaults to :data:`DEFAULT_EXPECTED_COMPLETION_TOKENS`,
    capped by that bound, so ``low <= expected <= high`` always holds.
    """
    prompt = _count(prompt_tokens, "prompt_tokens")
    ceiling = _completion_ceiling(model, prompt, max_tokens)
    expected = DEFAULT_EXPECTED_COMPLETION_TOKENS
    if expected_completion_tokens is not None:
        expected = _count(expected_completion_tokens, "expected_completion_tokens")
    if ceiling is not None:
        expected = min(expected, ceiling)

    def price(completion: int) -> Cost:
        return _price(model, provider, base_url, prompt, 0, completion, None)

    high = (price(ceiling) if ceiling is not None else
            Cost(None, None, None, source=f"no output limit known for {model!r}"))
    return Estimate(price(0), price(expected), high, prompt, expected, ceiling)


def _completion_ceiling(model: str, prompt: int, max_tokens: int | None) -> int | None:
    info = model_info(model)
    bounds = [b for b in (max_tokens, info.max_output_tokens) if b is not None]
    if not bounds:
        return None
    ceiling = min(_count(b, "max_tokens") for b in bounds)
    if info.context_window is not None:
        ceiling = min(ceiling, max(info.context_window - prompt, 0))
    return ceiling


def _price(model: str, provider: str | None, base_url: str | None, prompt: int, cached: int,
           completion: int, at: datetime | None, memo: PriceMemo | None = None) -> Cost:
    user = current().prices.get(model.lower())
    if user is not None:
        inp = ((prompt - cached) * user.input + cached * user.cached_input) / _MTOK
        out = completion * user.output / _MTOK
        return Cost(_tidy(inp), _tidy(out), _tidy(inp + out), source="user price")
    if provider == "local" or is_local_model(model):
        return Cost(_ZERO, _ZERO, _ZERO, source="local model (free)")
    found = lookup(model, provider, base_url)
    priced = None
    if found is not None:
        priced = (memo.price(found, prompt, cached, completion, at) if memo is not None
                  else _genai_price(found, prompt, cached, completion, at))
    if priced is None:
        return Cost(None, None, None, source=f"unknown model {model!r}")
    return priced


def _genai_price(found: Found, prompt: int, cached: int, completion: int,
                 at: datetime | None) -> Cost | None:
    """One call priced by genai-prices itself; None when it has no price for it."""
    import genai_prices

    # input_tokens counts cached tokens too; genai-prices subtracts them itself.
    usage = genai_prices.Usage(input_tokens=prompt, output_tokens=completion,
                               cache_read_tokens=cached or None)
    try:
        calc = genai_prices.calc_price(usage, found.ref, provider_id=found.provider.id,
                                       genai_request_timestamp=at)
    except (LookupError, ValueError):
        return None
    source = found.source
    if calc.auto_update_timestamp is not None:
        source += f", prices fetched {calc.auto_update_timestamp:%Y-%m-%d %H:%M}"
    return Cost(_tidy(calc.input_price), _tidy(calc.output_price), _tidy(calc.total_price),
                source=source)


class _Linear:
    """A price that is a sum over tokens: the cost of none, plus so much per token of each kind.

    Built from genai-prices' answers for no tokens and for one token of each
    kind (uncached prompt, cached prompt, completion).
    """

    __slots__ = ("_rates", "_source")

    def __init__(self, none: Cost, uncached: Cost, cached: Cost, output: Cost) -> None:
        def rates(field: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
            base = getattr(none, field)
            return (base, getattr(uncached, field) - base, getattr(cached, field) - base,
                    getattr(output, field) - base)

        self._rates = [rates("input"), rates("output"), rates("total")]
        self._source = none.source

    def cost(self, prompt: int, cached: int, completion: int) -> Cost:
        uncached = prompt - cached
        inp, out, total = (_tidy(base + uncached * u + cached * c + completion * o)
                           for base, u, c, o in self._rates)
        return Cost(inp, out, total, source=self._source)


class PriceMemo:
    """The genai-prices prices of one run, looked up once per (provider, model, time).

    genai-prices re-derives the usage and re-validates its price units on every
    call (~0.25 ms), and a batch run prices the same few models thousands of
    times: 10,000 cached rows took 3 s, nearly all of it there. Its price is a
    sum of price x count over the token kinds, so the memo asks it once per
    model for the cost of no tokens and of one token of each kind (uncached
    prompt, cached prompt, completion) and adds those up per call: the same
    Decimal amounts, exactly. Before trusting that, it checks the sum against
    genai-prices on two probe calls (with and without cached tokens); a model
    with tiered prices (the rate depends on the prompt's length) or one that
    fails the check is priced call by call, remembered by its exact counts.

    Give each run its own memo: with ``at=None`` it keeps the prices in force
    when it first met each model (genai-prices can change a price by date or
    time of day).
    """

    def __init__(self) -> None:
        self._linear: dict[tuple[Any, ...], _Linear | None] = {}
        self._exact: dict[tuple[Any, ...], Cost | None] = {}

    def price(self, found: Found, prompt: int, cached: int, completion: int,
              at: datetime | None) -> Cost | None:
        """What :func:`cost_of` would say for these counts of ``found``'s model."""
        key = (found.provider.id, found.ref, at)
        if key not in self._linear:
            self._linear[key] = _linear(found, at or datetime.now(UTC))
        linear = self._linear[key]
        if linear is not None:
            return linear.cost(prompt, cached, completion)
        exact_key = (*key, prompt, cached, completion)
        if exact_key not in self._exact:
            self._exact[exact_key] = _genai_price(found, prompt, cached, completion, at)
        return self._exact[exact_key]


#: Counts the linear sum is checked against before it is trusted.
_PROBES = ((123_457, 0, 7_891), (98_765, 43_210, 1_234))


def _linear(found: Found, at: datetime) -> _Linear | None:
    """``found``'s price as a :class:`_Linear` sum, or None where it is not one."""
    from genai_prices.types import TieredPrices

    try:
        rates = found.model.get_prices(at)
    except (LookupError, ValueError):
        return None
    if any(isinstance(v, TieredPrices) for v in vars(rates).values()):
        return None
    # No tokens, then one token of each kind: uncached prompt, cached prompt, completion.
    points = [_genai_price(found, *counts, at) for counts in
              ((0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 0, 1))]
    known = [p for p in points if p is not None and p.known]
    if len(known) < len(points):
        return None
    linear = _Linear(*known)
    for counts in _PROBES:
        if linear.cost(*counts) != _genai_price(found, *counts, at):
            return None
    return linear


def _as_usage(usage: Usage | Mapping[str, Any] | None) -> Usage | None:
    if usage is None or isinstance(usage, Usage):
        return usage
    if not isinstance(usage, Mapping):
        raise TypeError(f"usage must be a Usage or a mapping, not {type(usage).__name__}")
    u = Usage.from_dict(dict(usage))
    if u is not None and u.cached_tokens is None and usage.get("cached_tokens") is not None:
        u.cached_tokens = int(usage["cached_tokens"])
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


def _tidy(amount: Decimal) -> Decimal:
    """``0.150`` -> ``0.15`` and ``1.5E+2`` -> ``150``: same value, no noise digits."""
    if amount == amount.to_integral_value():
        return amount.quantize(_ZERO)
    return amount.normalize()


def _add(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return None if a is None or b is None else a + b


def _money(amount: Decimal | None, currency: str) -> str:
    """``$0.000123``: three significant digits below a dollar, cents above."""
    if amount is None:
        return "unknown"
    if amount == 0 or abs(amount) >= 1:
        text = f"{amount:,.2f}"
    else:
        text = f"{amount:.{max(2, 2 - amount.adjusted())}f}"
        whole, frac = text.split(".")
        text = f"{whole}.{frac.rstrip('0').ljust(2, '0')}"
    return f"${text}" if currency == "USD" else f"{text} {currency}"
