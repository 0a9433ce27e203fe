"""The batches of batch mode, kept in the run's SQLite store (its ``batches`` and
``batch_rows`` tables, :mod:`gptmagic.eval.store`).

A batch is written down *before* anything is uploaded, with every call it
carries (``batch_rows``: the call's cache key, its line in the file, and what
became of it). A key is in at most one batch at a time (the table's primary
key), and the insert is one transaction, so two runs on one file, or a run
killed and started again, never put a call in a second batch. Then the upload's
file id, then the provider's batch id, are written the moment they exist. A
batch whose id was never written (its process died between creating it and
writing it down) is found again by its file among the provider's batches.

A row's ``state``: ``pending`` (in a batch not yet collected), ``done`` (its
result is in ``calls``), ``failed`` (the provider answered with an error:
``error`` says it), ``unrun`` (the batch expired, was cancelled or failed before
it ran the call). Only ``resubmit`` (or a ``done`` call whose result is gone)
takes a key out of its batch, so it can go in another.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gptmagic.client.config import Provider, profiles
from gptmagic.eval.store import Store, alive

__all__ = ["BatchRecord", "Ledger", "RowState", "STATES", "provider_fields"]

#: What became of a call put in a batch.
STATES = ("pending", "done", "failed", "unrun")
#: Seconds after which a batch still being submitted by a process on another host
#: (whose pid cannot be checked) is taken over: longer than any upload takes.
SUBMIT_STALE = 3600.0
_CHUNK = 500  # keys per IN (...) query, under SQLite's variable limit
_COLUMNS = ("local", "batch_id", "file_id", "provider", "endpoint", "model", "run", "status",
            "total", "completed", "failed", "created", "expires", "collected", "note", "owner",
            "pid", "host", "at")


@dataclass
class BatchRecord:
    """One batch as the store keeps it (times are Unix seconds)."""

    local: str  # gptmagic's id, made before the upload
    batch_id: str | None  # the provider's, once created
    file_id: str | None
    provider: dict[str, Any]  # the profile's settings, never its key (provider_fields)
    endpoint: str
    model: str
    run: str
    status: str  # "preparing" until created, then the provider's
    total: int
    completed: int
    failed: int
    created: float
    expires: float | None
    collected: float | None  # when its rows were stored (None: not yet)
    note: str | None
    owner: str
    pid: int
    host: str
    at: float

    @property
    def open(self) -> bool:
        """True until its outcome has been collected into the store."""
        return self.collected is None

    def profile(self) -> Provider:
        """The provider to ask about it: the profile of that name if it still points at
        the same place, else one rebuilt from what was kept."""
        fields = dict(self.provider)
        known = profiles().get(str(fields.get("name")))
        if known is not None and known.base_url == fields.get("base_url"):
            return known
        return Provider(**{k: v for k, v in fields.items() if k != "batch_deployments"})


@dataclass(frozen=True)
class RowState:
    """What became of one call put in a batch."""

    key: str
    local: str
    line: int  # 1-based, in its batch's input file
    state: str
    error: str | None = None
    error_type: str | None = None


def provider_fields(p: Provider) -> dict[str, Any]:
    """What is kept of a provider: where it is and the *name* of its key's variable."""
    return {"name": p.name, "kind": p.kind, "base_url": p.base_url,
            "api_key_env": p.api_key_env, "api_version": p.api_version,
            "organization": p.organization, "project": p.project}


def _record(row: tuple[Any, ...]) -> BatchRecord:
    data = dict(zip(_COLUMNS, row, strict=True))
    data["provider"] = json.loads(data["provider"])
    return BatchRecord(**data)


class Ledger:
    """The batch tables of one :class:`~gptmagic.eval.store.Store`.

    Every method runs on the caller's thread (use the store's ``athread`` from the
    event loop); writes are one transaction each and, as the store's, fail softly:
    a write that fails returns False or nothing, and the store writes no more.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reading ----------------------------------------------------------------------------

    def rows(self, keys: Iterable[str]) -> dict[str, RowState]:
        """The batch rows of ``keys`` that have one."""
        keys = list(keys)

        def read(db: sqlite3.Connection) -> dict[str, RowState]:
            out = {}
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i:i + _CHUNK]
                for row in db.execute(
                        "SELECT key, local, line, state, error, error_type FROM batch_rows "
                        f"WHERE key IN ({','.join('?' * len(chunk))})", chunk):
                    out[row[0]] = RowState(*row)
            return out

        return self.store.query(read)

    def lines(self, local: str) -> dict[int, str]:
        """A batch's input file, line number -> key."""
        return dict(self.store.query(lambda db: db.execute(
            "SELECT line, key FROM batch_rows WHERE local = ?", (local,)).fetchall()))

    def records(self, locals_: Iterable[str] | None = None) -> list[BatchRecord]:
        """The batches named (all of them by default), newest first."""
        cols = ", ".join(_COLUMNS)
        if locals_ is None:
            rows = self.store.query(lambda db: db.execute(
                f"SELECT {cols} FROM batches ORDER BY created DESC").fetchall())
            return [_record(r) for r in rows]
        wanted = list(dict.fromkeys(locals_))

        def read(db: sqlite3.Connection) -> list[BatchRecord]:
            out: list[BatchRecord] = []
            for i in range(0, len(wanted), _CHUNK):
                chunk = wanted[i:i + _CHUNK]
                out += [_record(r) for r in db.execute(
                    f"SELECT {cols} FROM batches WHERE local IN ({','.join('?' * len(chunk))})",
                    chunk)]
            return sorted(out, key=lambda r: r.created, reverse=True)

        return self.store.query(read)

    def find(self, batch_id: str) -> BatchRecord | None:
        """The batch with the provider's id ``batch_id`` (or gptmagic's own id); the
        newest, should two providers have used one id."""
        cols = ", ".join(_COLUMNS)
        row = self.store.query(lambda db: db.execute(
            f"SELECT {cols} FROM batches WHERE batch_id = ? OR local = ? "
            "ORDER BY created DESC", (batch_id, batch_id)).fetchone())
        return None if row is None else _record(row)

    # -- writing ----------------------------------------------------------------------------

    def add(self, provider: Provider, endpoint: str, model: str, run: str,
            keys: list[str], since: float | None = None) -> tuple[str, list[str]]:
        """Write down a new batch of ``keys`` (in file order) before it is uploaded;
        returns its local id and the keys it got: those in no other batch, not stored
        (``since`` then) and not being asked live by another run. A batch that got none
        is not kept. ``("", [])`` when the store cannot be written."""
        local = f"gm-{uuid.uuid4().hex[:16]}"
        now = time.time()

        def do(db: sqlite3.Connection) -> list[str]:
            busy = self.store.busy(db, keys, since)
            db.executemany(
                "INSERT OR IGNORE INTO batch_rows (key, local, line, state) "
                "VALUES (?, ?, 0, 'pending')", [(k, local) for k in keys if k not in busy])
            mine = {k for (k,) in db.execute("SELECT key FROM batch_rows WHERE local = ?",
                                            (local,))}
            got = [k for k in keys if k in mine]
            db.executemany("UPDATE batch_rows SET line = ? WHERE key = ?",
                           [(n, k) for n, k in enumerate(got, start=1)])
            if got:
                db.execute(
                    f"INSERT INTO batches ({', '.join(_COLUMNS)}) VALUES "
                    f"({', '.join('?' * len(_COLUMNS))})",
                    (local, None, None, json.dumps(provider_fields(provider)), endpoint, model,
                     run, "preparing", len(got), 0, 0, now, None, None, None,
                     self.store.owner, os.getpid(), platform.node(), now))
            return got

        got = self.store.transact(do, None)
        return ("", []) if got is None else (local if got else "", got)

    def set_file(self, local: str, file_id: str) -> bool:
        """The batch's input file is uploaded."""
        return self.store.transact(lambda db: db.execute(
            "UPDATE batches SET file_id = ?, at = ? WHERE local = ?",
            (file_id, time.time(), local)).rowcount == 1, False)

    def set_batch(self, local: str, batch: Any) -> bool:
        """The provider's batch (a :class:`~gptmagic.client.batches.Batch`): its id when
        it is made, and its status and counts each time it is looked at."""
        c = batch.request_counts
        return self.store.transact(lambda db: db.execute(
            "UPDATE batches SET batch_id = ?, status = ?, completed = ?, failed = ?, "
            "expires = COALESCE(?, expires), file_id = COALESCE(file_id, ?) WHERE local = ?",
            (batch.id, batch.status, c.completed, c.failed, batch.expires_at,
             batch.input_file_id, local)).rowcount == 1, False)

    def settle(self, local: str, outcomes: dict[str, tuple[str, str | None, str | None]],
               note: str | None = None) -> bool:
        """A collected batch: each key's ``(state, error, error_type)``, and the batch
        marked collected (``note``: what was wrong with its files, if anything)."""
        def do(db: sqlite3.Connection) -> bool:
            db.executemany(
                "UPDATE batch_rows SET state = ?, error = ?, error_type = ? "
                "WHERE key = ? AND local = ?",
                [(s, e, t, k, local) for k, (s, e, t) in outcomes.items()])
            db.execute("UPDATE batches SET collected = ?, note = ? WHERE local = ?",
                       (time.time(), note, local))
            return True

        return self.store.transact(do, False)

    def release(self, keys: list[str]) -> bool:
        """Take ``keys`` out of their batches (to be sent again: ``resubmit``, or a result
        that is gone from the store)."""
        return self.store.transact(lambda db: db.executemany(
            "DELETE FROM batch_rows WHERE key = ?", [(k,) for k in keys]) is not None, False)

    def forget(self, local: str, note: str | None = None) -> bool:
        """A batch that never reached the provider (its upload was refused, or its
        process died before uploading): its keys are free again; the batch is kept,
        ``failed`` with ``note``, for :func:`gptmagic.batches` to show."""
        def do(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM batch_rows WHERE local = ?", (local,))
            db.execute("UPDATE batches SET status = 'failed', collected = ?, note = ? "
                       "WHERE local = ?", (time.time(), note, local))
            return True

        return self.store.transact(do, False)

    def disown(self, local: str) -> bool:
        """Let any run take over a batch this one could not finish submitting (stopped, or
        not sure the provider made it): the next run looks for it by its file."""
        return self.store.transact(lambda db: db.execute(
            "UPDATE batches SET owner = '' WHERE local = ? AND batch_id IS NULL",
            (local,)).rowcount == 1, False)

    def take_over(self, local: str) -> bool:
        """Make a batch still ``preparing`` ours when the process submitting it is gone
        (dead on this host, or silent for :data:`SUBMIT_STALE` s elsewhere); True if
        it is ours now."""
        def do(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT owner, pid, host, at, batch_id FROM batches "
                             "WHERE local = ?", (local,)).fetchone()
            if row is None or row[4] is not None:
                return False
            owner, pid, host, at, _ = row
            if owner and owner != self.store.owner and alive(pid, host) and (
                    host == platform.node() or at > time.time() - SUBMIT_STALE):
                return False
            db.execute("UPDATE batches SET owner = ?, pid = ?, host = ?, at = ? "
                       "WHERE local = ?", (self.store.owner, os.getpid(), platform.node(),
                                           time.time(), local))
            return True

        return self.store.transact(do, False)
