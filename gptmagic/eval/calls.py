"""One job of a run sent, and what it cost: a single call (its reply parsed against the
prompt's schema, if any), or a tool loop whose every model call counts.

A tool loop in a run is the client's loop (:mod:`gptmagic.client.tools`, through
``Client.chat`` / ``Client.respond`` with ``tools=``): the functions run on worker
threads, never on the event loop, and nobody is asked for approval (a run is
unattended). A function's exception is a tool result the model sees, as in a cell;
nothing a function does fails the run. The loop's result reports its usage summed
over its model calls; its cost is each call priced on its own, then added up.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gptmagic.core.structured import parse_reply
from gptmagic.core.types import Result

if TYPE_CHECKING:
    from gptmagic.catalog.pricing import PriceMemo
    from gptmagic.client.client import Client
    from gptmagic.eval.jobs import Job

__all__ = ["call", "calls_in", "price", "restore"]


async def call(client: Client, job: Job, **kw: Any) -> Result:
    """Send ``job`` to its API (``client.chat`` or ``client.respond``), or run its tool
    loop; with a schema (its format is in the job's body), the reply is parsed into
    ``parsed`` and ``validation``."""
    ask = job.extras
    if ask.tools:
        kw.update(tools=list(ask.tools), max_steps=ask.max_steps, tool_choice=ask.tool_choice)
    if job.api == "responses":
        body = dict(job.body)
        result = await client.respond(body.pop("input"), model=job.model,
                                      provider=job.provider, **kw, **body)
    else:
        result = await client.chat(job.messages, model=job.model, provider=job.provider,
                                   **kw, **job.params)
    if ask.schema is not None:
        parse_reply(result, ask.schema)
    return result


def restore(job: Job) -> None:
    """A stored result of a job with a schema, parsed again: ``parsed`` is then the
    schema's own object (a model instance), as in the run that stored it (the store
    keeps it as JSON)."""
    if job.extras.schema is not None and job.result is not None:
        parse_reply(job.result, job.extras.schema)


def calls_in(result: Result) -> list[Result]:
    """The model calls a result stands for: each step of a tool loop, else itself."""
    return [s.result for s in result.steps] if result.steps else [result]


def price(job: Job, prices: PriceMemo) -> None:
    """What a finished job cost and its parts: each model call priced at the reported
    model's price (else the requested one's), then added up; a call without a price
    makes the total unknown, not smaller. A job answered in a batch costs its batch
    price."""
    from gptmagic.eval.costs import PARTS, cost_parts

    priced = [cost_parts(r.usage, r.model or job.model, provider=job.provider.kind,
                         requested=job.model, memo=prices, batch=job.batch is not None)
              for r in calls_in(job.result)]
    job.cost = _total([cost for cost, _ in priced])
    job.parts = {p: _total([parts[p] for _, parts in priced]) for p in PARTS}


def _total(amounts: list[Decimal | None]) -> Decimal | None:
    """The sum, or None when any is unknown (a part of it unknown is all of it unknown)."""
    known = [a for a in amounts if a is not None]
    return sum(known, Decimal(0)) if len(known) == len(amounts) else None
