"""Batch mode's first half: what the store already answers, the batches an earlier run
left (found again, or recovered when their run died while submitting), the budget,
and new batches written down, uploaded and created (:class:`Submitting`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

from gptmagic.client.batches import FINAL
from gptmagic.core.retry import is_retryable
from gptmagic.core.text import preview
from gptmagic.errors import APIConnectionError, APIStatusError, GptmagicError
from gptmagic.eval.batchfiles import plan, where_is
from gptmagic.eval.batchstate import TRIES, BatchState, patient
from gptmagic.eval.budget import over_budget, unbounded
from gptmagic.eval.jobs import Job
from gptmagic.eval.ledger import BatchRecord

__all__ = ["Submitting"]


class Submitting(BatchState):
    """Answering from the store, and submitting what it cannot answer."""

    # -- before submitting ------------------------------------------------------------------

    async def prepare(self, *, refresh: bool, resubmit: bool, budget: Decimal | None) -> Decimal:
        """Answer what the store has, find the batches that hold the rest, decide what goes
        in new ones (within ``budget``); returns the budget those hold."""
        keys = list(self.by_key)
        self.since = time.time() if refresh else None
        hits = {} if refresh else await self.store.aget_many(keys)
        rows = await self._db(self.ledger.rows, keys)
        await self._recover({r.local for r in rows.values() if r.state == "pending"})
        rows = await self._db(self.ledger.rows, keys)
        records = {r.local: r for r in await self._db(self.ledger.records,
                                                        {r.local for r in rows.values()})}
        again: list[str] = []
        for key, group in self.by_key.items():
            row = rows.get(key)
            record = records.get(row.local) if row is not None else None
            batch_id = record.batch_id if record is not None else None
            if key in hits:  # answered in a batch (priced so), or live before
                done_in = batch_id if row is not None and row.state == "done" else None
                for j in group:
                    j.result, j.cached, j.batch = hits[key], True, done_in
                if row is not None and row.state == "pending" and _unsettled(record):
                    assert record is not None  # stored, but its batch was never marked
                    self.tracked[record.local] = record  # collected (again): settled
                continue
            if row is None:
                self.todo += group
            elif row.state == "pending" and record is not None:
                self.tracked[record.local] = record
                for j in group:
                    j.batch = batch_id
            elif row.state == "done" or resubmit or refresh:  # gone from the store, or asked
                again.append(key)
                self.todo += group
            else:
                self._left(group, row.state, row.error, row.error_type, record)
        if again:
            await self._db(self.ledger.release, again)
        self.tally.hits = sum(j.cached for j in self.jobs)
        return await self._within(budget) if budget is not None else Decimal(0)

    def _left(self, group: list[Job], state: str, error: str | None, kind: str | None,
              record: BatchRecord | None) -> None:
        """Jobs a finished batch did not answer, as that batch left them."""
        bid = record.batch_id if record is not None else None
        for j in group:
            j.batch = bid
            if state == "failed":
                j.error, j.error_type = error, kind
            else:
                j.pending = (f"not run: {error or f'batch {bid} ended before it ran'}; "
                             "evaluate(..., batch=True, resubmit=True) sends it again")

    async def _within(self, budget: Decimal) -> Decimal:
        """Keep in ``todo`` only the calls whose worst case fits ``budget`` at the batch
        price (the others get the online runner's refusal); returns what they hold."""
        from gptmagic.catalog.pricing import estimate

        held, allowed = Decimal(0), set()
        for key in dict.fromkeys(j.key for j in self.todo):  # one line per key
            job = self.by_key[key][0]
            try:
                count = await self.client.count_tokens(job.messages, job.model,
                                                       breakdown=False)
            except GptmagicError as e:
                self._refuse([key], f"not sent: its prompt could not be counted for the "
                             f"budget: {e}", type(e).__name__)
                continue
            est = estimate(count.total, job.model, max_tokens=job.max_tokens,
                           provider=job.provider.kind, batch=True)
            if est.high.total is None:
                self._refuse([key], unbounded(job.model, est), "BudgetExceeded")
            elif held + est.high.total > budget:
                self._refuse([key], over_budget(budget, Decimal(0), held, est,
                                                job.max_tokens), "BudgetExceeded")
            else:
                held += est.high.total
                allowed.add(key)
        self.todo = [j for j in self.todo if j.key in allowed]
        return held

    # -- submitting -------------------------------------------------------------------------

    async def submit(self, bar: Any) -> None:
        """Write down, upload and create a batch for each file of ``todo``."""
        parts, too_big = plan(self.todo, self.opts.max_requests, self.opts.max_bytes)
        for key, why in too_big.items():
            for j in self.by_key[key]:
                j.error, j.error_type = why, "RequestError"
        bar.update(self.tally.hits)
        for part in parts:
            local, got = await self._db(self.ledger.add, part.provider, part.endpoint,
                                        part.model, self.label, part.keys, self.since)
            if not got and not self.store.writable:
                self._refuse(part.keys, "not submitted: the cache cannot be written, and a "
                             "batch whose id is not kept could be paid for twice",
                             "CacheWarning")
                continue
            if len(got) < len(part.keys):  # in another run's batch, or live, meanwhile
                await self._track(set(part.keys) - set(got))
            if not got:
                continue
            lines = dict(zip(part.keys, part.lines, strict=True))
            try:
                await self._create(local, part, got, b"".join(lines[k] for k in got))
            finally:
                # Stopped before the batch id was written: the next run looks for it.
                if local not in self.tracked:
                    self.ledger.disown(local)

    async def _create(self, local: str, part: Any, keys: list[str], content: bytes) -> None:
        batches = self._batches(part.provider)
        try:
            f = await patient(lambda: batches.upload(content, filename=f"{local}.jsonl"),
                               self.opts.poll)
        except GptmagicError as e:
            lines = dict(enumerate(keys, start=1))
            why = f"batch file upload refused: {where_is(str(e), lines, self.by_key)}"
            await self._db(self.ledger.forget, local, preview(why, 500))
            return self._refuse(keys, why, type(e).__name__)
        await self._db(self.ledger.set_file, local, f.id)
        record = (await self._db(self.ledger.records, [local]))[0]
        b = None
        for _ in range(TRIES):
            try:
                b = await batches.create(f.id, part.endpoint, metadata=self._metadata(local))
                break
            except GptmagicError as e:
                if isinstance(e, APIStatusError) and not is_retryable(e):
                    await self._db(self.ledger.forget, local, preview(str(e), 500))
                    return self._refuse(keys, f"batch not created: {e}", type(e).__name__)
                if not isinstance(e, APIConnectionError | APIStatusError):
                    raise
                b = await self._find(batches, replace(record, file_id=f.id))
                if b is not None:
                    break
        if b is None:
            self._say(f"batch {local} was not created (the provider did not answer); "
                      "a later run finds it or submits it")
            for k in keys:
                for j in self.by_key[k]:
                    j.pending = (f"batch {local} not confirmed by the provider: call again "
                                 "to find or submit it")
            return
        await self._db(self.ledger.set_batch, local, b)
        # Tracked as made even if the store failed to say so: it is collected all the same.
        self.tracked[local] = replace(record, batch_id=b.id, file_id=f.id, status=b.status,
                                      expires=b.expires_at)
        for k in keys:
            for j in self.by_key[k]:
                j.batch = b.id

    async def _track(self, keys: set[str]) -> None:
        """Follow the batches of ``keys`` that another run put in one; leave the others
        (stored, or asked live, by another run) to the online runner, which waits for
        them."""
        rows = await self._db(self.ledger.rows, keys)
        self.elsewhere |= keys - set(rows)
        for record in await self._db(self.ledger.records, {r.local for r in rows.values()}):
            self.tracked[record.local] = record
            for k, r in rows.items():
                if r.local == record.local:
                    for j in self.by_key[k]:
                        j.batch = record.batch_id


def _unsettled(record: BatchRecord | None) -> bool:
    """A batch that had ended when last seen and was never marked collected: its run
    stopped between storing its answers and marking it (two writes)."""
    return (record is not None and record.open and record.batch_id is not None
            and record.status in FINAL)
