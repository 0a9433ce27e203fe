"""Batch mode of :func:`gptmagic.evaluate` (``batch=True``): the provider's Batch API,
at its batch price, at any size, surviving restarts.

The calls not already in the store go into JSONL files (:mod:`.batchfiles`: one
per provider × endpoint × model, split at the limits), each written down in the
store (:mod:`.ledger`) before it is uploaded, its file id and batch id the moment
they exist. Then the run polls every batch that holds one of its calls, with a
progress bar of their statuses and counts, downloads each finished batch's
output and error files, and stores what they say. Run again (a new process,
after a kill), the same call finds its batches in the store and waits for them
or collects them: no call is ever in two batches unless ``resubmit=True`` asks
for the calls a batch left undone (expired, cancelled) or failed to be sent again.

Calls that cannot be batched run live, as without ``batch``: a prompt with tools
(a tool loop is several calls, each depending on the last) and the embedded
model (it has no Batch API, and costs nothing). ``max_cost`` is checked before
anything is submitted, each call at its worst case at the batch price.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gptmagic.errors import ConfigError, RequestError
from gptmagic.eval.batchfiles import BatchOptions, not_batchable
from gptmagic.eval.batchsubmit import Submitting
from gptmagic.eval.batchwatch import Watching
from gptmagic.eval.ledger import Ledger

if TYPE_CHECKING:
    from gptmagic.client.client import Client
    from gptmagic.eval.jobs import Job
    from gptmagic.eval.store import Store

__all__ = ["BatchOptions", "BatchRun", "answered_in", "batch_options", "in_batches",
           "run_batch"]


def batch_options(batch: Any) -> BatchOptions | None:
    """``batch=`` as evaluate() takes it: False, True, a :class:`BatchOptions`, or a
    dict of its fields (a config file's ``[batch]`` table)."""
    if batch is None or batch is False:
        return None
    if batch is True:
        return BatchOptions()
    if isinstance(batch, BatchOptions):
        return batch
    if isinstance(batch, Mapping):
        unknown = set(batch) - {"poll", "max_requests", "max_bytes"}
        if unknown:
            raise RequestError(f"batch has unknown setting(s) {', '.join(sorted(unknown))}; "
                               "known: poll, max_requests, max_bytes", param="batch")
        return BatchOptions(**batch)
    raise RequestError(f"batch must be True, False, a BatchOptions or a dict, not "
                       f"{type(batch).__name__}", param="batch")


class BatchRun(Submitting, Watching):
    """One batch-mode run (:class:`~gptmagic.eval.batchstate.BatchState`): submitting
    (:mod:`.batchsubmit`), then watching and collecting (:mod:`.batchwatch`)."""


Live = Callable[[list["Job"], "Decimal | None"], Awaitable[None]]


async def run_batch(jobs: list[Job], store: Store | None, opts: BatchOptions, *,
                    client: Client, live: Live, max_cost: Any, wait: bool,
                    resubmit: bool, refresh: bool, progress: bool, tally: Any) -> None:
    """Give every job a result, an error, or a ``pending`` note: from the store, from a
    batch (submitted now or by an earlier run), or live (``live(jobs, budget)``, the
    online runner, for the jobs no batch can carry)."""
    from gptmagic.catalog.pricing import PriceMemo

    if store is None:
        raise RequestError("batch=True needs the cache: its batches are written there the "
                           "moment they are made, so a later run collects them instead of "
                           "paying again; leave cache on (or give cache= a file)",
                           param="cache")
    if not store.batches or not store.writable:
        raise ConfigError(f"batch=True cannot keep its batches in {store.path} (it can only "
                          "be read here); give cache= a file this process may write")
    later = [j for j in jobs if not_batchable(j)]
    if later and progress:
        why = sorted({str(not_batchable(j)) for j in later})
        print(f"gptmagic: {len(later):,} calls run live, not in a batch: {'; '.join(why)}",
              file=sys.stderr)
    run = BatchRun([j for j in jobs if not not_batchable(j)], store, opts, client, tally,
                   PriceMemo())
    tally.batches = run.tracked  # named if the user interrupts the run
    budget = None if max_cost is None else Decimal(str(max_cost))
    held = await run.prepare(refresh=refresh, resubmit=resubmit, budget=budget)
    bar = _progress(len(run.jobs), progress)
    try:
        await run.submit(bar)
        await run.watch(bar, wait)
    finally:
        bar.close()
    run.finish()
    later += [j for j in run.jobs if j.key in run.elsewhere]
    if later:
        await live(later, None if budget is None else max(budget - held, Decimal(0)))


def answered_in(store: Store, keys: list[str]) -> dict[str, str]:
    """Of ``keys`` (stored results), those a batch answered: key -> the batch's id (so a
    run without ``batch`` prices them as the batch did). On the store's thread."""
    ledger = Ledger(store)
    rows = {k: r for k, r in ledger.rows(keys).items() if r.state == "done"}
    ids = {r.local: r.batch_id for r in ledger.records({r.local for r in rows.values()})}
    return {k: str(ids[r.local]) for k, r in rows.items() if ids.get(r.local)}


def in_batches(store: Store, jobs: list[Job]) -> None:
    """Say, on each of ``jobs`` (calls a run without ``batch`` did not send because a
    batch holds them), which batch that is and how to collect it (on the store's
    thread)."""
    ledger = Ledger(store)
    rows = ledger.rows({j.key for j in jobs})
    records = {r.local: r for r in ledger.records({r.local for r in rows.values()})}
    for j in jobs:
        row = rows.get(j.key)
        record = records.get(row.local) if row is not None else None
        name = (record.batch_id or record.local) if record is not None else "(gone)"
        j.batch = record.batch_id if record is not None else None
        status = f" ({record.status})" if record is not None else ""
        j.pending = (f"in batch {name}{status}, not sent live: evaluate(..., batch=True) "
                     "collects it; resubmit=True sends it live now (paid twice if the batch "
                     "runs it too)")


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc="gptmagic batch", unit="call")


