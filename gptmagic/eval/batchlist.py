"""The batches batch mode made, as the store keeps them: :func:`batches` (a table, their
statuses asked again of the provider) and :func:`cancel_batch`.

Both read the store a run wrote (``cache=``, default the shared cache file) and
ask each batch's own provider, found again from what the store kept of it (its
profile by name, else its base URL and the name of its key's variable; never a
key). ``gptmagic batches`` and ``gptmagic batches cancel ID`` are the same at
the command line.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gptmagic.core.text import preview
from gptmagic.errors import GptmagicError, RequestError
from gptmagic.eval.ledger import BatchRecord, Ledger
from gptmagic.eval.store import Store

if TYPE_CHECKING:
    import pandas as pd

    from gptmagic.client.batches import Batch
    from gptmagic.client.client import Client

__all__ = ["abatches", "acancel_batch", "batches", "cancel_batch"]

_COLUMNS = ("id", "provider", "model", "endpoint", "status", "total", "completed", "failed",
            "created", "expires", "collected", "run", "note")


def batches(cache: str | Path | Store | None = None, *, refresh: bool = True,
            client: Client | None = None) -> pd.DataFrame:
    """The batches ``evaluate(..., batch=True)`` made, newest first: id, provider,
    model, endpoint, status, request counts, created / expires (UTC), whether its
    answers were collected into the cache, the run that made it, and a note (what
    went wrong, if anything). ``refresh`` asks each provider for the status of the
    batches not collected yet (and keeps it); a provider that cannot be reached
    leaves the last known status, with a note."""
    from gptmagic.client.portal import get_portal

    client = client or _shared()
    return get_portal().run(abatches(cache, refresh=refresh, client=client))


def cancel_batch(batch_id: str, cache: str | Path | Store | None = None, *,
                 client: Client | None = None) -> Batch:
    """Cancel a batch of the cache (its provider's id, as :func:`batches` lists it):
    what it answered before stopping is kept, and collected by the next run of the
    same evaluate(..., batch=True); the calls it did not run wait for
    ``resubmit=True``. Returns the batch as the provider describes it now."""
    from gptmagic.client.portal import get_portal

    client = client or _shared()
    return get_portal().run(acancel_batch(batch_id, cache, client=client))


def _shared() -> Client:
    from gptmagic.client.facade import get_client

    return get_client()


async def abatches(cache: str | Path | Store | None = None, *, refresh: bool = True,
                   client: Client) -> pd.DataFrame:
    """Async :func:`batches`."""
    import pandas as pd

    store, mine = await _open(cache)
    try:
        ledger = Ledger(store)
        records = await store.athread(ledger.records) if store.batches else []
        if refresh:
            await asyncio.gather(*(_refresh(r, ledger, client) for r in records
                                   if r.open and r.batch_id is not None))
    finally:
        if mine:
            await asyncio.to_thread(store.close)
    return pd.DataFrame([_row(r) for r in records], columns=list(_COLUMNS))


async def acancel_batch(batch_id: str, cache: str | Path | Store | None = None, *,
                        client: Client) -> Batch:
    """Async :func:`cancel_batch`."""
    store, mine = await _open(cache)
    try:
        ledger = Ledger(store)
        record = await store.athread(ledger.find, batch_id)
        if record is None or record.batch_id is None:
            raise RequestError(f"no batch {batch_id!r} in the cache {store.path}: "
                               "gptmagic.batches() lists the batches it has", param="batch_id")
        b = await client.batches(provider=record.profile()).cancel(record.batch_id)
        await store.athread(ledger.set_batch, record.local, b)
        return b
    finally:
        if mine:
            await asyncio.to_thread(store.close)


async def _open(cache: str | Path | Store | None) -> tuple[Store, bool]:
    if isinstance(cache, Store):
        return cache, False
    return await asyncio.to_thread(Store, cache), True


async def _refresh(record: BatchRecord, ledger: Ledger, client: Client) -> None:
    try:
        b = await client.batches(provider=record.profile()).retrieve(str(record.batch_id))
    except GptmagicError as e:
        record.note = f"status not refreshed: {preview(str(e), 200)}"
        return
    await ledger.store.athread(ledger.set_batch, record.local, b)
    record.status = b.status
    record.completed, record.failed = b.request_counts.completed, b.request_counts.failed


def _row(r: BatchRecord) -> dict[str, Any]:
    import pandas as pd

    def when(t: float | None) -> Any:
        return pd.NaT if t is None else pd.Timestamp(t, unit="s", tz="UTC").floor("s")

    return {"id": r.batch_id or r.local, "provider": r.provider.get("name"), "model": r.model,
            "endpoint": r.endpoint, "status": r.status, "total": r.total,
            "completed": r.completed, "failed": r.failed, "created": when(r.created),
            "expires": when(r.expires), "collected": r.collected is not None, "run": r.run,
            "note": r.note}
