"""Money types: what a call costs, by kind of token, as exact :class:`~decimal.Decimal`.

:mod:`.pricing` finds the prices and :mod:`.genai_cost` asks genai-prices;
both build their answers with the types and helpers here. None is unknown,
never zero.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from decimal import Decimal
from typing import NamedTuple

__all__ = ["BATCH_DISCOUNT", "BATCH_DISCOUNTED", "BATCH_PRICE", "Cost", "CostBreakdown", "Counts",
           "Estimate", "INPUT_RATE_WRITES", "MTOK", "ZERO", "add_known", "from_parts",
           "money_text", "scaled", "sum_known", "tidy"]

#: Prices are per million tokens.
MTOK = Decimal(1_000_000)
ZERO = Decimal(0)
#: What a cost's ``source`` adds when its cache writes were priced at the input rate,
#: the model having no cache-write price (genai-prices' own ``calc_price`` does the
#: same, and OpenAI bills so where it publishes no cache-write surcharge).
INPUT_RATE_WRITES = "cache writes at the input rate (no cache-write price published)"
#: What a Batch API call pays of the standard price where no batch price is published:
#: OpenAI's (and Azure OpenAI's Global Batch) published discount, 50%.
BATCH_DISCOUNT = Decimal("0.5")
#: What a cost's ``source`` adds when it is a batch price from the price table.
BATCH_PRICE = "batch price"
#: What a cost's ``source`` adds when it is the standard price with the discount applied.
BATCH_DISCOUNTED = ("batch: the standard price less 50%, OpenAI's published Batch API "
                    "discount (no batch price in the table for this model)")


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
        return CostBreakdown(*(add_known(a, b) for a, b in zip(_parts(self), _parts(other),
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
        return money_text(self.total, self.currency)

    def __add__(self, other: object) -> Cost:
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self  # the start value of sum()
        if not isinstance(other, Cost):
            return NotImplemented
        if other.currency != self.currency:
            raise ValueError(f"cannot add {self.currency} and {other.currency} costs")
        both = (self.breakdown + other.breakdown
                if self.breakdown is not None and other.breakdown is not None else None)
        return Cost(add_known(self.input, other.input), add_known(self.output, other.output),
                    add_known(self.total, other.total), currency=self.currency,
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


class Counts(NamedTuple):
    """The tokens of one call by kind. ``cached`` and ``written`` are parts of ``prompt``,
    ``reasoning`` a part of ``completion``, as OpenAI reports them."""

    prompt: int
    cached: int = 0
    completion: int = 0
    written: int = 0
    reasoning: int = 0


def from_parts(parts: tuple[Decimal | None, ...], *, source: str) -> Cost:
    """A cost from its parts (uncached, cached, written, output, reasoning in output)."""
    uncached, cached, written, out, reasoning = (None if p is None else tidy(p) for p in parts)
    inp = sum_known(uncached, cached, written)
    total = add_known(inp, out)
    inp, total = (None if a is None else tidy(a) for a in (inp, total))
    return Cost(inp, out, total, source=source,
                breakdown=CostBreakdown(uncached, cached, written, out, reasoning, total))


def scaled(cost: Cost, factor: Decimal, note: str | None = None) -> Cost:
    """``cost`` times ``factor`` (every part of it), its source ending in ``note`` if given."""
    def times(a: Decimal | None) -> Decimal | None:
        return None if a is None else tidy(a * factor)

    b = cost.breakdown
    parts = None if b is None else CostBreakdown(*(times(a) for a in _parts(b)))
    return Cost(times(cost.input), times(cost.output), times(cost.total),
                currency=cost.currency,
                source=cost.source if note is None else f"{cost.source}, {note}",
                breakdown=parts)


def tidy(amount: Decimal) -> Decimal:
    """``0.150`` -> ``0.15`` and ``1.5E+2`` -> ``150``: same value, no noise digits."""
    if amount == amount.to_integral_value():
        return amount.quantize(ZERO)
    return amount.normalize()


def sum_known(*amounts: Decimal | None) -> Decimal | None:
    """The sum, or None if any amount is unknown."""
    if any(a is None for a in amounts):
        return None
    return sum((a for a in amounts if a is not None), ZERO)


def add_known(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return None if a is None or b is None else a + b


def money_text(amount: Decimal | None, currency: str) -> str:
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
