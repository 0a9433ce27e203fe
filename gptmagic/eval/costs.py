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

if TYPE_CHECKING:
    from gptmagic.catalog.pricing import PriceMemo
    from gptmagic.core.types import Usage

__all__ = ["PARTS", "cost_parts"]

#: The parts of a call's cost that the results table shows as ``<part>_cost``.
PARTS = ("reasoning", "cached_input", "cache_write")


def cost_parts(usage: Usage | None, model: str, *, provider: str, requested: str,
               memo: PriceMemo, batch: bool = False
               ) -> tuple[Decimal | None, dict[str, Decimal | None]]:
    """The total cost of a call with ``usage`` and its parts (see :data:`PARTS`), from
    the price's own breakdown (:class:`~gptmagic.catalog.pricing.CostBreakdown`);
    ``batch``: at its Batch API price."""
    from gptmagic.catalog.pricing import cost_of

    cost = cost_of(usage, model, provider=provider, requested=requested, memo=memo,
                   batch=batch)
    reported = {"reasoning": None if usage is None else usage.reasoning_tokens,
                "cached_input": None if usage is None else usage.cached_tokens,
                "cache_write": None if usage is None else usage.cache_write_tokens}
    b = cost.breakdown
    return cost.total, {part: None if b is None or reported[part] is None
                        else getattr(b, part) for part in PARTS}
