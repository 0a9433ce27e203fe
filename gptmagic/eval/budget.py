"""Why a call of a run is not sent under ``max_cost``, and what to change (pure).

The budget holds each call's worst case, the prompt plus the most it may write:
``max_tokens`` where given, else the model's whole output limit (128,000 tokens
on gpt-5-mini), which is far beyond what a short answer needs. A refusal names
that assumption and its price, so the fix (``params={"max_tokens": N}``) is
plain.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from gptmagic.catalog.money import money_text, tidy

if TYPE_CHECKING:
    from gptmagic.catalog.money import Estimate

__all__ = ["over_budget", "unbounded"]


def unbounded(model: str, est: Estimate) -> str:
    """Why a call is not sent under ``max_cost`` when its cost has no upper bound, and the fix."""
    if est.low.total is None:
        why = f"the price of {model!r} is unknown"
        fix = (f"price it with gptmagic.set_price({model!r}, input_per_mtok=..., "
               "output_per_mtok=...) (USD per million tokens)")
        if est.max_completion_tokens is None:
            fix += " and bound its reply with params={'max_tokens': ...}"
    else:
        why = f"no output limit is known for {model!r}"
        fix = (f"bound its reply with params={{'max_tokens': ...}} or "
               f"gptmagic.register_model({model!r}, context_window=..., max_output_tokens=...)")
    return f"not sent: max_cost is set but {why}, so this call could cost anything; {fix}"


def over_budget(budget: Decimal, spent: Decimal, reserved: Decimal, est: Estimate,
                max_tokens: int | None, calls: int = 1) -> str:
    """Why a priced call is not sent under ``max_cost``: the ``max_tokens`` that would let
    it through (first, as a run's failure line is cut short), then the output it was
    assumed to write and what that would cost at worst. ``calls`` is how many such calls
    a tool loop may make (``max_steps``), each held at that worst case."""
    assert est.high.total is not None and est.low.total is not None
    out = est.max_completion_tokens or 0
    why = (f"its max_tokens={max_tokens}" if max_tokens is not None and out == max_tokens
           else "the most the model may write: its output limit or the room left in its "
                "context window, as no max_tokens was given" if max_tokens is None
           else "the room left in the model's context window")
    left = max(budget - spent - reserved, Decimal(0))
    cur = est.high.currency
    per_token = (est.high.total - est.low.total) / out if out else Decimal(0)
    fits = int((left / calls - est.low.total) / per_token) if per_token > 0 else 0
    if 0 < fits < out:
        fix = (f"bound the reply with params={{'max_tokens': N}}, N up to about {fits:,} "
               f"(1,000 output tokens cost {money_text(tidy(1000 * per_token), cur)}; a "
               "reasoning model counts its reasoning in it), or raise max_cost")
    else:
        fix = "raise max_cost, or shorten the prompt"
    if calls > 1:
        fix += f", or lower max_steps (its tool loop may make {calls} calls, each held at this"
        fix += " worst case)"
    # The fix comes first: a run's failure line (EvalResults.failures) cuts the message.
    return (f"not sent: max_cost {money_text(budget, cur)} would be exceeded; {fix}. This "
            f"call was assumed to write {out:,} output tokens ({why}), so at worst it costs "
            f"{est.high} with its {est.prompt_tokens:,} prompt tokens, and "
            f"{money_text(left, cur)} of the budget is left ({money_text(spent, cur)} spent, "
            f"{money_text(reserved, cur)} held for calls in flight)")
