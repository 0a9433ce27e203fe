"""What one call of a run cost, in total and in the parts a prompt engineer weighs:
hidden reasoning, prompt tokens read from the provider's cache, and prompt tokens
written to it.

The parts are inside the total (reasoning is billed as output, cached and
cache-written tokens as input), not added to it. A part is unknown (None) when
its tokens were not reported or its price is unknown; never zero for that.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from gptmagic.core.types import Usage

if TYPE_CHECKING:
    from gptmagic.catalog.pricing import PriceMemo

__all__ = ["PARTS", "cost_parts"]

#: The parts of a call's cost that the results table shows as ``<part>_cost``.
PARTS = ("reasoning", "cached_input", "cache_write")


def cost_parts(usage: Usage | None, model: str, *, provider: str, requested: str,
               memo: PriceMemo) -> tuple[Decimal | None, dict[str, Decimal | None]]:
    """The total cost of a call with ``usage`` and its parts (see :data:`PARTS`)."""
    from gptmagic.catalog.pricing import cost_of

    def price(u: Usage) -> tuple[Decimal | None, Decimal | None]:
        c = cost_of(u, model, provider=provider, requested=requested, memo=memo)
        return c.input, c.output

    total = cost_of(usage, model, provider=provider, requested=requested, memo=memo).total
    parts: dict[str, Decimal | None] = dict.fromkeys(PARTS)
    if usage is None:
        return total, parts
    if usage.reasoning_tokens is not None:
        r = usage.reasoning_tokens
        parts["reasoning"] = price(Usage(0, r, r))[1]  # at the output rate
    if usage.cached_tokens is not None:
        c = usage.cached_tokens
        parts["cached_input"] = price(Usage(c, 0, c, cached_tokens=c))[0]  # at the cached rate
    # TODO(lifecycle): cache writes at their rate, from the price breakdown.
    return total, parts
