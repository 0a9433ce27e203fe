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
table has one, and where it has none (and such tokens were billed) the input
and the total are unknown, not guessed; reasoning tokens are part of
``completion_tokens`` (OpenAI counts them there) and cost the output rate, or a
reasoning rate where one is published, never counted twice. Every
:class:`Cost` carries a :class:`CostBreakdown` of those parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from gptmagic.catalog.embedded import is_local_model
from gptmagic.catalog.genai import Found, lookup
from gptmagic.catalog.models import model_info
from gptmagic.core.types import Usage
from gptmagic.errors import ConfigError
from gptmagic.state import current

__all__ = ["Cost", "CostBreakdown", "DEFAULT_EXPECTED_COMPLETION_TOKENS", "Estimate",
           "PriceMemo", "cost_of", "estimate", "rates_per_mtok", "set_price"]

#: Completion length :func:`estimate` expects when the caller gives none: a
#: chat answer of a few paragraphs. It is capped by ``max_tokens``. Reasoning
#: models bill their hidden reasoning as completion tokens, so expect more there.
DEFAULT_EXPECTED_COMPLETION_TOKENS = 256

_MTOK = Decimal(1_000_000)
_ZERO = Decimal(0)
# The date suffix of an OpenAI snapshot: -2024-08-06 or -0613.


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """A cost by kind of token, for showing where the money went. None means unknown.

    ``input`` is the uncached input; ``cached_input`` the input read from the
    prompt cache; ``cache_write`` the input written to it; ``output`` all the
    output, of which ``reasoning`` is the part that was hidden reasoning (so
    ``total`` is ``input + cached_input + cache_write + output``, not plus
    ``reasoning`` again).
    """

    input: Decimal | None
    cached_input: Decimal | None
    cache_write: Decimal | None
    output: Decimal | None
    reasoning: Decimal | None
    total: Decimal | None

    def __add__(self, other: CostBreakdown) -> CostBreakdown:
        return CostBreakdown(*(_add(a, b) for a, b in zip(_parts(self), _parts(other),
                                                          strict=True)))


def _parts(b: CostBreakdown) -> tuple[Decimal | None, ...]:
    return (b.input, b.cached_input, b.cache_write, b.output, b.reasoning, b.total)


@dataclass(frozen=True, slots=True)
class Cost:
    """Money for one call (or a sum of calls). None means unknown, never zero.

    ``source`` names the price table used, e.g.
    ``"genai-prices 0.2.3 (openai/gpt-4o-mini)"``, ``"user price"``,
    ``"local model (free)"`` or ``"unknown model 'x'"``. ``breakdown`` splits
    it by kind of token (None where no price was found).
    """

    input: Decimal | None
    output: Decimal | None
    total: Decimal | None
    _: KW_ONLY
    currency: str = "USD"
    source: str = "unknown"
    breakdown: CostBreakdown | None = field(default=None, compare=False, repr=False)

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
        both = (self.breakdown + other.breakdown
                if self.breakdown is not None and other.breakdown is not None else None)
        return Cost(_add(self.input, other.input), _add(self.output, other.output),
                    _add(self.total, other.total), currency=self.currency,
                    source=self.source if self.source == other.source else "mixed",
                    breakdown=both)

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
    cache_write: Decimal | None = None




def set_price(model: str, *, input_per_mtok: Decimal | str | float,
              output_per_mtok: Decimal | str | float,
              cached_input_per_mtok: Decimal | str | float | None = None,
              cache_write_per_mtok: Decimal | str | float | None = None) -> None:
    """Set the USD price per million tokens of ``model`` (matched exactly, ignoring case).

    User prices win over genai-prices and the local model. Floats are converted
    through their shortest ``repr`` (``0.15`` is ``Decimal('0.15')``). Cached
    input costs the input price unless ``cached_input_per_mtok`` is given;
    input written to the prompt cache has no price (its cost is unknown)
    unless ``cache_write_per_mtok`` is given.
    """
    inp = _decimal(input_per_mtok, "input_per_mtok")
    cached = inp if cached_input_per_mtok is None else _decimal(cached_input_per_mtok,
                                                               "cached_input_per_mtok")
    write = None if cache_write_per_mtok is None else _decimal(cache_write_per_mtok,
                                                               "cache_write_per_mtok")
    current().prices[model.lower()] = _UserPrice(inp, _decimal(output_per_mtok, "output_per_mtok"),
                                             cached, write)


class _Counts(NamedTuple):
    """The tokens of one call by kind. ``cached`` and ``written`` are parts of ``prompt``,
    ``reasoning`` a part of ``completion``, as OpenAI reports them."""

    prompt: int
    cached: int = 0
    completion: int = 0
    written: int = 0
    reasoning: int = 0


def cost_of(usage: Usage | Mapping[str, Any] | None, model: str, *, provider: str | None = None,
            base_url: str | None = None, at: datetime | None = None,
            requested: str | None = None, memo: PriceMemo | None = None) -> Cost:
    """Price a finished call from the usage the provider reported.

    ``usage`` is a :class:`~gptmagic.Usage`, an OpenAI ``usage`` object or a
    flat mapping with ``cached_tokens`` (and ``cache_write_tokens``,
    ``reasoning_tokens``). ``model`` is the model the server
    reported; when it has no price and ``requested`` (the model asked for)
    has one, the call is priced as ``requested`` and the source says so (a
    server may answer under a deployment or snapshot name of its own).
    Cached prompt tokens cost the cached rate where the table has one;
    cache writes the cache-write rate (unknown where there is none).
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
    written = min(_count(u.cache_write_tokens or 0, "cache_write_tokens"), prompt - cached)
    reasoning = min(_count(u.reasoning_tokens or 0, "reasoning_tokens"), completion)
    counts = _Counts(prompt, cached, completion, written, reasoning)
    cost = _price(model, provider, base_url, counts, at, memo)
    if cost.known or not requested or requested == model:
        return cost
    asked = _price(requested, provider, base_url, counts, at, memo)
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
        return _price(model, provider, base_url, _Counts(prompt, 0, completion), None)

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
        return _ZERO, _ZERO, _ZERO
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


def _price(model: str, provider: str | None, base_url: str | None, counts: _Counts,
           at: datetime | None, memo: PriceMemo | None = None) -> Cost:
    user = current().prices.get(model.lower())
    if user is not None:
        return _user_cost(user, counts)
    if provider == "local" or is_local_model(model):
        zero = CostBreakdown(_ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO)
        return Cost(_ZERO, _ZERO, _ZERO, source="local model (free)", breakdown=zero)
    found = lookup(model, provider, base_url)
    priced = None
    if found is not None:
        priced = (memo.price(found, counts, at) if memo is not None
                  else _genai_price(found, counts, at))
    if priced is None:
        return Cost(None, None, None, source=f"unknown model {model!r}")
    return priced


def _user_cost(user: _UserPrice, c: _Counts) -> Cost:
    """A call priced at the user's own rates (:func:`set_price`)."""
    uncached = c.prompt - c.cached - c.written
    write = (None if user.cache_write is None and c.written else
             c.written * (user.cache_write or _ZERO) / _MTOK)
    parts = (uncached * user.input / _MTOK, c.cached * user.cached_input / _MTOK, write,
             c.completion * user.output / _MTOK, c.reasoning * user.output / _MTOK)
    return _from_parts(parts, source="user price")


def _from_parts(parts: tuple[Decimal | None, ...], *, source: str) -> Cost:
    """A cost from its parts (uncached, cached, written, output, reasoning in output)."""
    uncached, cached, written, out, reasoning = (None if p is None else _tidy(p) for p in parts)
    inp = _sum(uncached, cached, written)
    total = _add(inp, out)
    inp, total = (None if a is None else _tidy(a) for a in (inp, total))
    note = "" if written is not None else ", no cache-write price: input cost unknown"
    return Cost(inp, out, total, source=source + note,
                breakdown=CostBreakdown(uncached, cached, written, out, reasoning, total))


def _genai_price(found: Found, counts: _Counts, at: datetime | None) -> Cost | None:
    """One call priced by genai-prices itself; None when it has no price for it."""
    import genai_prices

    when = at or datetime.now(UTC)
    try:
        rates = found.model.get_prices(when)
    except (LookupError, ValueError):
        return None
    if counts.written and getattr(rates, "cache_write_mtok", None) is None:
        # genai-prices would bill them at the input rate; the real rate is not known.
        out = _genai_price(found, counts._replace(written=0, prompt=counts.prompt - counts.written),
                           at)
        if out is None:
            return None
        return _from_parts((None, None, None, out.output, _part(out, "reasoning")),
                           source=out.source)
    # input_tokens counts cached and written tokens too; genai-prices subtracts them itself.
    usage = genai_prices.Usage(input_tokens=counts.prompt, output_tokens=counts.completion,
                               cache_read_tokens=counts.cached or None,
                               cache_write_tokens=counts.written or None,
                               output_reasoning_tokens=counts.reasoning or None)
    try:
        calc = genai_prices.calc_price(usage, found.ref, provider_id=found.provider.id,
                                       genai_request_timestamp=when)
    except (LookupError, ValueError):
        return None
    source = found.source
    if calc.auto_update_timestamp is not None:
        source += f", prices fetched {calc.auto_update_timestamp:%Y-%m-%d %H:%M}"
    return Cost(_tidy(calc.input_price), _tidy(calc.output_price), _tidy(calc.total_price),
                source=source, breakdown=_split(calc.model_price, counts, calc))


def _part(cost: Cost, name: str) -> Decimal | None:
    return None if cost.breakdown is None else getattr(cost.breakdown, name)


def _split(rates: Any, c: _Counts, calc: Any) -> CostBreakdown | None:
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
        "written": (rate("cache_write_mtok"), c.written),
        "plain": (output_rate, c.completion - (c.reasoning if reasoning_rate else 0)),
        "reasoning": (reasoning_rate or output_rate, c.reasoning),
    }
    amounts = {k: calc_unit_price(p, n, c.prompt, 1_000_000) for k, (p, n) in leaves.items()}
    out = amounts["plain"] + (amounts["reasoning"] if reasoning_rate else _ZERO)
    inp = amounts["uncached"] + amounts["cached"] + amounts["written"]
    if inp != calc.input_price or out != calc.output_price:
        return None
    return CostBreakdown(_tidy(amounts["uncached"]), _tidy(amounts["cached"]),
                         _tidy(amounts["written"]), _tidy(out), _tidy(amounts["reasoning"]),
                         _tidy(calc.total_price))


#: The token kinds of a :class:`_Linear` price, in the order of its rates.
_KINDS = ("uncached", "cached", "written", "output", "reasoning")
#: One token of each kind, as counts (the reasoning token is also an output token).
_ONE = (_Counts(1), _Counts(1, cached=1), _Counts(1, written=1), _Counts(0, completion=1),
        _Counts(0, completion=1, reasoning=1))


class _Linear:
    """A price that is a sum over tokens: the cost of none, plus so much per token of each kind.

    Built from genai-prices' answers for no tokens and for one token of each
    kind (uncached prompt, cached prompt, written to the cache, completion,
    reasoning completion). ``written`` is None where there is no cache-write price.
    """

    __slots__ = ("_base", "_rates", "_source")

    def __init__(self, none: Cost, ones: list[Cost | None]) -> None:
        def total(c: Cost) -> Decimal:
            assert c.total is not None
            return c.total

        self._base = (none.input, none.output, none.total)
        base = total(none)
        # Per token of each kind; the reasoning rate is the extra a reasoning token costs
        # over a plain output token (zero unless a reasoning price is published).
        rates = [None if c is None else total(c) - base for c in ones]
        if rates[4] is not None and rates[3] is not None:
            rates[4] -= rates[3]
        self._rates = dict(zip(_KINDS, rates, strict=True))
        self._source = none.source

    def cost(self, c: _Counts) -> Cost:
        r = self._rates
        assert r["uncached"] is not None and r["cached"] is not None
        assert r["output"] is not None and r["reasoning"] is not None
        base_in, base_out, _ = self._base
        assert base_in is not None and base_out is not None
        write = None if r["written"] is None else c.written * r["written"]
        if write is None and not c.written:
            write = _ZERO
        reasoning = c.reasoning * (r["output"] + r["reasoning"])
        parts = (base_in + (c.prompt - c.cached - c.written) * r["uncached"],
                 c.cached * r["cached"], write,
                 base_out + c.completion * r["output"] + c.reasoning * r["reasoning"], reasoning)
        return _from_parts(parts, source=self._source)


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

    def price(self, found: Found, counts: _Counts, at: datetime | None) -> Cost | None:
        """What :func:`cost_of` would say for these counts of ``found``'s model."""
        key = (found.provider.id, found.ref, at)
        if key not in self._linear:
            self._linear[key] = _linear(found, at or datetime.now(UTC))
        linear = self._linear[key]
        if linear is not None:
            return linear.cost(counts)
        exact_key = (*key, *counts)
        if exact_key not in self._exact:
            self._exact[exact_key] = _genai_price(found, counts, at)
        return self._exact[exact_key]


#: Counts the linear sum is checked against before it is trusted.
_PROBES = (_Counts(123_457, 0, 7_891), _Counts(98_765, 43_210, 1_234),
           _Counts(98_765, 43_210, 5_678, 1_357, 2_468))


def _linear(found: Found, at: datetime) -> _Linear | None:
    """``found``'s price as a :class:`_Linear` sum, or None where it is not one."""
    from genai_prices.types import TieredPrices

    try:
        rates = found.model.get_prices(at)
    except (LookupError, ValueError):
        return None
    if any(isinstance(v, TieredPrices) for v in vars(rates).values()):
        return None
    writes = getattr(rates, "cache_write_mtok", None) is not None
    none = _genai_price(found, _Counts(0), at)
    ones = [_genai_price(found, c, at) if writes or not c.written else None for c in _ONE]
    needed = [none, *(c for c, one in zip(ones, _ONE, strict=True) if writes or not one.written)]
    if any(c is None or not c.known for c in needed):
        return None
    assert none is not None
    linear = _Linear(none, ones)
    for counts in _PROBES:
        if not writes:
            counts = counts._replace(written=0)
        want = _genai_price(found, counts, at)
        got = linear.cost(counts)
        if want is None or got != want or got.breakdown != want.breakdown:
            return None
    return linear

def _as_usage(usage: Usage | Mapping[str, Any] | None) -> Usage | None:
    if usage is None or isinstance(usage, Usage):
        return usage
    if not isinstance(usage, Mapping):
        raise TypeError(f"usage must be a Usage or a mapping, not {type(usage).__name__}")
    u = Usage.from_dict(dict(usage))
    if u is not None:
        for key in ("cached_tokens", "cache_write_tokens", "reasoning_tokens"):
            if getattr(u, key) is None and usage.get(key) is not None:
                setattr(u, key, int(usage[key]))
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


def _sum(*amounts: Decimal | None) -> Decimal | None:
    """The sum, or None if any amount is unknown."""
    if any(a is None for a in amounts):
        return None
    return sum((a for a in amounts if a is not None), _ZERO)


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
