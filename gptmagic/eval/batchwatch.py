"""Batch mode's second half: polling the batches a run tracks, with a progress bar of
their statuses and counts, and collecting each one that finishes (:class:`Watching`).

A finished batch's output and error files are downloaded and read line by line
(:func:`~gptmagic.client.batches.iter_output`: a malformed line costs that line,
not the file). Each answered call is stored in one transaction, then every call of
the batch is marked in the ledger: ``done``, ``failed`` (with the provider's
error), or ``unrun`` (expired or cancelled before it ran; a validation failure
names its line). Calls of the batch that another run asked for are stored too:
they were paid for.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from typing import TYPE_CHECKING, Any

from gptmagic.client.batches import iter_output
from gptmagic.core.reply_checks import check_reply
from gptmagic.core.retry import is_retryable
from gptmagic.core.structured import parse_reply
from gptmagic.core.text import preview
from gptmagic.errors import GptmagicError, MalformedResponseError
from gptmagic.eval.batchfiles import Outcome, line_body, read_line
from gptmagic.eval.batchstate import BatchState, patient
from gptmagic.eval.calls import price, restore

if TYPE_CHECKING:
    from gptmagic.client.batches import Batch, BatchError, Batches
    from gptmagic.eval.jobs import Job
    from gptmagic.eval.ledger import BatchRecord

__all__ = ["Watching"]


class Watching(BatchState):
    """Polling the tracked batches and collecting what they answered."""

    async def watch(self, bar: Any, wait: bool) -> None:
        """Look at every open batch the run tracks, collect those that finished; again
        every ``poll`` seconds while ``wait`` and any is still open."""
        while True:
            for local in list(self.tracked):
                await self._look(local)
            self._show(bar)
            if not wait or not any(r.open and local not in self.stuck
                                   for local, r in self.tracked.items()):
                return
            if not self.store.writable:  # what it collects could not be kept: stop here
                self._say("the cache cannot be written any more: stopped waiting; the "
                          "batches go on at the provider (gptmagic.batches() lists them)")
                return
            await asyncio.sleep(self.opts.poll)

    async def _look(self, local: str) -> None:
        record = self.tracked[local]
        if not record.open or local in self.stuck:
            return
        if record.batch_id is None:  # another run is submitting it, or died doing so
            await self._recover({local})
            record = self.tracked[local] = (await self._db(self.ledger.records, [local]))[0]
            if record.batch_id is None:
                return
        batches = self._batches(record.profile())
        try:
            b = await patient(lambda: batches.retrieve(str(record.batch_id)), self.opts.poll)
        except GptmagicError as e:
            self._trouble(record, f"could not be looked at: {preview(str(e), 200)}", e)
            return
        await self._db(self.ledger.set_batch, local, b)
        record.status, record.note = b.status, None
        record.completed, record.failed = b.request_counts.completed, b.request_counts.failed
        record.total = b.request_counts.total or record.total
        if b.done:
            await self._collect(record, b, batches)

    async def _collect(self, record: BatchRecord, b: Batch, batches: Batches) -> None:
        """Download and store what ``b`` answered; mark each of its calls in the ledger."""
        outcomes: dict[str, Outcome] = {}
        problems: list[str] = []  # lines that could not be read
        strangers: list[str] = []  # lines of calls the batch never had
        lines = await self._db(self.ledger.lines, record.local)
        sent = set(lines.values())
        try:
            for file_id, where in ((b.output_file_id, "output"), (b.error_file_id, "errors")):
                if file_id is None:
                    continue
                content = await patient(functools.partial(batches.content, file_id),
                                        self.opts.poll)
                for line in iter_output(content, where=f"batch {b.id} {where}"):
                    if isinstance(line, MalformedResponseError):
                        problems.append(str(line))
                    elif line.custom_id not in sent:  # never ours to store
                        strangers.append(f"batch {b.id} {where} line {line.line}: custom_id "
                                        f"{preview(line.custom_id, 80)!r} is not in the batch")
                    else:  # read as it comes: its body is let go at once
                        _keep(outcomes, line.custom_id,
                              read_line(line, self._api(record), b.id))
                del content
        except GptmagicError as e:  # collected by a later look (or run)
            self._trouble(record, f"could not be collected (its files could not be "
                          f"downloaded: {preview(str(e), 200)})", e)
            return
        outcomes |= self._unanswered(b, lines, outcomes, problems)
        answered = [(k, o) for k, o in outcomes.items() if o.result is not None]
        for key, o in answered:
            self._finish_result(key, o, b.id)
        stored = await self._db(self.store.put_many, [
            (k, *self._where(k, record), self._request(k, b.id), o.result) for k, o in answered])
        note = "; ".join(problems + strangers)[:1000] or None
        if stored:
            await self._db(self.ledger.settle, record.local,
                           {k: (o.state, o.error, o.error_type) for k, o in outcomes.items()},
                           note)
        record.collected = 1.0
        self._apply(outcomes, record, b.id)

    def _trouble(self, record: BatchRecord, note: str, e: GptmagicError) -> None:
        """A look or a download failed: tried again at the next look if it may pass, else
        not by this run (waiting for it would never end)."""
        record.note = note
        if not is_retryable(e):
            self.stuck.add(record.local)

    @staticmethod
    def _api(record: BatchRecord) -> str:
        return "responses" if record.endpoint.endswith("/responses") else "chat"

    def _unanswered(self, b: Batch, lines: dict[int, str], outcomes: dict[str, Outcome],
                    problems: list[str]) -> dict[str, Outcome]:
        """What became of the batch's calls that no line answered: named by a validation
        error (``failed``), lost on a malformed output line (``failed``), or never run."""
        out: dict[str, Outcome] = {}
        named = {e.line: e for e in b.errors if e.line is not None}
        first = b.errors[0] if b.errors else None
        for n, key in lines.items():
            if key in outcomes:
                continue
            if n in named:
                e = named[n]
                out[key] = Outcome("failed", error=f"batch {b.id} failed validation: line {n}: "
                                   f"{e.code}: {e.message}", error_type="BatchValidationError")
            elif problems:
                out[key] = Outcome("failed", error=f"batch {b.id}: no answer could be read for "
                                   f"it ({problems[0]})", error_type="MalformedResponseError")
            else:
                why = f"batch {b.id} {b.status}" + (f" ({_said(first)})" if first else "")
                out[key] = Outcome("unrun", error=f"{why} before it ran",
                                   error_type="BatchLineError")
        return out

    def _finish_result(self, key: str, o: Outcome, batch_id: str) -> None:
        """An answered call's result as the online runner leaves one: its warnings, and
        its reply parsed against the prompt's schema."""
        assert o.result is not None
        jobs = self.by_key.get(key)
        if not jobs:
            return
        job = jobs[0]
        o.result.warnings = check_reply("response" if job.api == "responses" else "chat",
                                        line_body(job), o.result)
        if job.extras.schema is not None:
            parse_reply(o.result, job.extras.schema)

    def _where(self, key: str, record: BatchRecord) -> tuple[str, str]:
        jobs = self.by_key.get(key)
        if jobs:
            return self.base_urls[jobs[0].provider.name], jobs[0].model
        return str(record.provider.get("base_url") or ""), record.model

    def _request(self, key: str, batch_id: str) -> dict[str, Any]:
        jobs = self.by_key.get(key)
        if not jobs:  # another run's call in the same batch: the key identifies it
            return {"batch": batch_id}
        j = jobs[0]
        return {**j.body, **j.extras.key(), "api": j.api, "repeat": j.repeat,
                "batch": batch_id}

    def _apply(self, outcomes: dict[str, Outcome], record: BatchRecord, batch_id: str) -> None:
        """Set the run's jobs from a collected batch's outcomes."""
        for key, o in outcomes.items():
            jobs = self.by_key.get(key, [])
            for j in jobs:
                self._set(j, o, batch_id)
                self.tally.answered += o.result is not None
            if jobs and o.result is not None:  # one line, paid once
                price(jobs[0], self.prices)
                self.spent += jobs[0].cost or 0

    @staticmethod
    def _set(j: Job, o: Outcome, batch_id: str) -> None:
        j.batch, j.pending = batch_id, None
        if o.state == "done":
            j.result = o.result
        elif o.state == "failed":
            j.error, j.error_type = o.error, o.error_type
        else:
            j.pending = (f"not run: {o.error}; evaluate(..., batch=True, resubmit=True) "
                         "sends it again")

    def _show(self, bar: Any) -> None:
        """The bar: calls answered (stored, or done in a batch) and each batch's status."""
        if bar.disable:
            return
        records = list(self.tracked.values())
        done = self.tally.hits + sum(r.completed + r.failed for r in records)
        bar.n = min(done, bar.total)
        states = Counter(r.status if r.open else f"{r.status} (collected)" for r in records)
        failed = sum(r.failed for r in records)
        if records:
            bar.set_postfix_str(f"{len(records)} batch{'es' * (len(records) > 1)}: "
                                + ", ".join(f"{n} {s}" for s, n in states.items())
                                + (f"; {failed:,} request{'s' * (failed != 1)} failed"
                                   if failed else "")
                                + (f"; ${self.spent:.4f} at batch prices" if self.spent
                                   else ""), refresh=False)
        bar.refresh()

    def finish(self) -> None:
        """Price what was answered (at the batch price where it came from a batch), parse
        stored replies again, and say why each unanswered job waits."""
        for job in self.jobs:
            if job.key in self.elsewhere:
                continue  # run_batch hands it to the online runner
            if job.result is not None:
                if job.cached:
                    restore(job)
                price(job, self.prices)
            elif job.error is None and job.pending is None:
                record = next((r for r in self.tracked.values()
                               if r.batch_id is not None and r.batch_id == job.batch), None)
                job.pending = _waiting(record, job.batch)


def _said(e: BatchError) -> str:
    """A batch's error as its rows say it: its line (if it names one) or its code."""
    where = f"line {e.line}" if e.line is not None else (e.code or "error")
    return f"{where}: {e.message or 'no message'}"


def _keep(outcomes: dict[str, Outcome], key: str, outcome: Outcome) -> None:
    """Note what a line says of ``key``; a call listed twice (a provider's retry) keeps
    its answer over an error, and its last answer."""
    if outcome.state == "done" or outcomes.get(key, outcome).state != "done":
        outcomes[key] = outcome


def _waiting(record: BatchRecord | None, batch_id: str | None) -> str:
    if record is None:
        return (f"in batch {batch_id or '(being submitted)'}: call evaluate(..., batch=True) "
                "again to collect it")
    if record.note:
        return (f"in batch {record.batch_id}, which {record.note}; call evaluate(..., "
                "batch=True) again to collect it (gptmagic.batches() shows its status)")
    counts = f"{record.completed + record.failed:,}/{record.total:,} done"
    return (f"in batch {record.batch_id} ({record.status}, {counts}): call evaluate(..., "
            "batch=True) again to wait for it and collect it")
