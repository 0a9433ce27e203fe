"""What every part of a batch-mode run shares (:class:`BatchState`): its calls by key,
the store's ledger, the batches it tracks, and the few things each part does with
them (ask the store on its thread, refuse calls, find a batch by its file).
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gptmagic.core.retry import is_retryable
from gptmagic.core.text import preview
from gptmagic.errors import GptmagicError
from gptmagic.eval.batchfiles import BatchOptions
from gptmagic.eval.jobs import set_keys
from gptmagic.eval.ledger import BatchRecord, Ledger

if TYPE_CHECKING:
    from gptmagic.catalog.pricing import PriceMemo
    from gptmagic.client.batches import Batch, Batches
    from gptmagic.client.client import Client
    from gptmagic.eval.jobs import Job
    from gptmagic.eval.store import Store

__all__ = ["BatchState", "patient"]

#: Tries of a look at a batch, an upload or a download before the run gives up on it.
TRIES = 4
#: Pages of ``GET /batches`` searched for a batch whose id was never written down.
_PAGES = 20


async def patient(fn: Callable[[], Awaitable[Any]], pause: float) -> Any:
    """``fn()``, tried again (up to :data:`TRIES` times) when it fails transiently."""
    for i in range(TRIES):
        try:
            return await fn()
        except GptmagicError as e:
            if i == TRIES - 1 or not is_retryable(e):
                raise
            await asyncio.sleep(min(pause, 2.0 ** i))
    raise AssertionError("unreachable")



@dataclass
class BatchState:
    """One batch-mode run: its jobs by key, the store's ledger, the batches it tracks."""

    jobs: list[Job]
    store: Store
    opts: BatchOptions
    client: Client
    tally: Any
    prices: PriceMemo
    by_key: dict[str, list[Job]] = field(default_factory=dict)
    todo: list[Job] = field(default_factory=list)  # to go in new batches
    tracked: dict[str, BatchRecord] = field(default_factory=dict)  # local id -> batch
    #: Keys another run is asking for live (or has just stored): the online runner's
    #: claims wait for them, so no batch carries them.
    elsewhere: set[str] = field(default_factory=set)
    since: float | None = None  # with refresh: results stored before this are not wanted
    #: Batches this run stopped looking at: the provider refused to show them or their
    #: files (not a passing fault); their ``note`` says why, a later run asks again.
    stuck: set[str] = field(default_factory=set)
    spent: Decimal = Decimal(0)  # what the batches this run collected cost (the bar says)
    ledger: Ledger = field(init=False)
    label: str = ""

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.store)
        self.base_urls = set_keys(self.jobs)
        for j in self.jobs:
            self.by_key.setdefault(j.key, []).append(j)
        models = sorted({j.model for j in self.jobs})
        prompts = sorted({j.prompt for j in self.jobs})
        self.label = preview(f"{time.strftime('%Y-%m-%d %H:%M')} · {len(self.jobs):,} calls · "
                             f"{', '.join(prompts)} × {', '.join(models)}", 160)

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.store.athread(fn, *args)

    async def _recover(self, locals_: set[str]) -> None:
        """Batches still ``preparing`` whose run is gone: found among the provider's
        batches by their file (or created from it, if it was never submitted), or, never
        uploaded, forgotten (their calls are free to go in a new batch)."""
        for record in await self._db(self.ledger.records, locals_):
            if record.batch_id is not None or not await self._db(self.ledger.take_over,
                                                                 record.local):
                continue
            if record.file_id is None:
                await self._db(self.ledger.forget, record.local,
                               "stopped before its file was uploaded; its calls were freed")
                continue
            batches = self._batches(record.profile())
            b = await self._find(batches, record)
            if b is None:
                try:
                    b = await batches.create(record.file_id, record.endpoint,
                                             metadata=self._metadata(record.local))
                except GptmagicError as e:
                    await self._db(self.ledger.disown, record.local)
                    self._say(f"batch {record.local} (file {record.file_id}) could not be "
                              f"submitted now ({preview(str(e), 200)}); a later run tries again")
                    continue
            await self._db(self.ledger.set_batch, record.local, b)

    def _refuse(self, keys: list[str], why: str, kind: str) -> None:
        for k in keys:
            for j in self.by_key[k]:
                j.error, j.error_type = why, kind

    def _batches(self, provider: Any) -> Batches:
        return self.client.batches(provider=provider)

    @staticmethod
    def _metadata(local: str) -> dict[str, str]:
        return {"gptmagic_batch": local}

    async def _find(self, batches: Batches, record: BatchRecord) -> Batch | None:
        """The provider's batch made from ``record``'s file, if there is one."""
        after = None
        for _ in range(_PAGES):
            page = await patient(functools.partial(batches.list, after=after, limit=100),
                                 self.opts.poll)
            for b in page.batches:
                if (b.input_file_id == record.file_id
                        or b.metadata.get("gptmagic_batch") == record.local):
                    return b
                if b.created_at < record.created - 3600:
                    return None  # newest first: older than the record, so not there
            if not page.has_more or page.last_id is None:
                return None
            after = page.last_id
        return None

    @staticmethod
    def _say(text: str) -> None:
        print(f"gptmagic: {text}", file=sys.stderr)
