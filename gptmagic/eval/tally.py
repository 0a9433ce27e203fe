"""How far a run got (:class:`Tally`, read when the user interrupts it), and the store a
run's ``cache=`` asks for (:func:`open_store`)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptmagic.errors import RunInterrupted
from gptmagic.eval.store import Store

__all__ = ["Tally", "open_store"]


@dataclass
class Tally:
    """How far a run got, read by :func:`~gptmagic.evaluate` when the user interrupts it."""

    total: int | None = None
    hits: int = 0  # answered from the store
    answered: int = 0  # results this run received
    store: Store | None = None
    written_before: int = 0  # an injected store may have written for earlier runs
    batch: bool = False  # a batch-mode run: its batches go on at the provider
    batches: dict[str, Any] = field(default_factory=dict)  # its batches (ledger records)
    finished: threading.Event = field(default_factory=threading.Event)

    def stored(self) -> int:
        if self.store is None:
            return self.hits
        return self.hits + self.store.written - self.written_before

    def interrupted(self) -> RunInterrupted:
        if self.total is None:
            return RunInterrupted("interrupted before any call was made")
        if self.store is None:
            return RunInterrupted(f"{self.answered}/{self.total} answered, none stored "
                                  f"(cache=False): a re-run asks for all of them again")
        prefix = "" if self.finished.is_set() else "at least "
        if self.batch:
            return RunInterrupted(
                f"{prefix}{self.stored()}/{self.total} stored; {self._going_on()} at the "
                "provider (gptmagic.batches() lists them): run the same evaluate(..., "
                "batch=True) again to wait for them and collect them, never paying twice")
        return RunInterrupted(f"{prefix}{self.stored()}/{self.total} stored; "
                              f"run again to resume")


    def _going_on(self) -> str:
        """The batches an interrupted batch run leaves running, named."""
        running = [r for r in list(self.batches.values()) if r.open and r.batch_id]
        if not running:
            return "any batch it submitted goes on"
        ids = ", ".join(r.batch_id for r in running[:3]) + ", ..." * (len(running) > 3)
        calls = sum(r.total for r in running)
        return (f"the {calls:,} call{'s' * (calls != 1)} in batch"
                f"{'es' * (len(running) > 1)} {ids} go{'es' * (calls == 1)} on")


async def open_store(cache: bool | str | Path | Store) -> Store | None:
    """The store ``cache`` asks for, opened off the event loop (it may wait on a lock)."""
    if isinstance(cache, Store):
        return cache
    if not cache:
        return None
    return await asyncio.to_thread(Store, None if cache is True else cache)
