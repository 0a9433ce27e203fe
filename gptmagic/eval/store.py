"""SQLite store of finished calls: the runner's cache, its resume log, and its claims.

Only successful results are stored (keyed and serialised by
:mod:`gptmagic.eval.rows`), each as soon as it completes, so an interrupted
run resumes with only the missing calls and never pays twice.

What can go wrong with the file, and what happens then:

- It cannot be read at all (not a database, truncated, a directory, another
  program's tables, locked for longer than the busy timeout): a
  :class:`~gptmagic.errors.ConfigError` naming the file and the ways out,
  raised before anything is paid.
- One row cannot be read (bad JSON, a format this version does not know):
  a miss; the call is asked again and the row overwritten.
- It cannot be written (read-only, disk full, file-size limit, locked for
  longer than the busy timeout, a table that refuses the row): one
  :class:`CacheWarning` naming the file, and the run carries on without
  storing. A failed write never costs a result that was paid for.

Two processes on one file share the work: just before sending, a run *claims*
the call it is about to ask for (``claims``: owner, pid, host, heartbeat time).
Another run that needs a claimed key waits for the owner's result instead of
paying for it again, and takes the claim over when the owner is gone (its
pid is dead on this host, or its heartbeat stopped).

Runs (:mod:`gptmagic.eval.runs`) and the magics' call log (:mod:`gptmagic.eval.calllog`)
are kept here too, as are batch mode's batches (``batches`` and ``batch_rows``, read and
written by :mod:`gptmagic.eval.ledger`): each batch the moment it is made, and
which batch every call went into, so no call is ever put in a second batch.

The schema is versioned with ``PRAGMA user_version``; the migrations of
:mod:`gptmagic.eval.schema` bring any older file up to date.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import os
import platform
import sqlite3
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gptmagic.core.images import elide
from gptmagic.core.types import Result
from gptmagic.errors import ConfigError, public_params, public_url
from gptmagic.eval.rows import call_key, result_from_dict, result_to_dict, row_result
from gptmagic.eval.schema import CALL_COLUMNS, CLAIM_COLUMNS, SCHEMA_VERSION, TABLES, statements

__all__ = ["CacheWarning", "Claim", "SCHEMA_VERSION", "Store", "alive", "call_key",
           "default_path", "result_from_dict", "result_to_dict"]

T = TypeVar("T")

#: Seconds a read or write waits for another process's lock before giving up. Longer than
#: any write of ours takes (milliseconds) by far, so only a stuck or slow holder trips it.
BUSY_TIMEOUT = 30.0
#: Seconds between refreshes of a run's claims, and the age at which a claim whose owner
#: stopped refreshing it is taken over (covers owners on another host and hung runs).
HEARTBEAT = 10.0
STALE_AFTER = 60.0

_CHUNK = 500  # keys per IN (...) query, under SQLite's variable limit


class CacheWarning(UserWarning):
    """The cache could not be written; the run carried on without storing its results."""


def default_path() -> Path:
    """``$GPTMAGIC_CACHE`` or ``~/.cache/gptmagic/calls.sqlite``."""
    if os.environ.get("GPTMAGIC_CACHE"):
        return Path(os.environ["GPTMAGIC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gptmagic" / "calls.sqlite"


def alive(pid: int, host: str) -> bool:
    """Whether a claim's owner may still be running (only a pid here can be checked)."""
    if host != platform.node() or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: it exists
        return True
    return True


def _code(e: sqlite3.Error) -> str:
    return getattr(e, "sqlite_errorname", "") or ""


def _read_only(e: sqlite3.Error) -> bool:
    """An error that says the file can be read but not written here."""
    name = _code(e)
    return name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")) or "readonly" in str(e)


@dataclass
class Claim:
    """What :meth:`Store.claim` found for each key asked."""

    mine: list[str] = field(default_factory=list)  # claimed by us: send these
    theirs: list[str] = field(default_factory=list)  # another live run is asking: wait
    stored: dict[str, Result] = field(default_factory=dict)  # answered meanwhile: reuse
    batched: list[str] = field(default_factory=list)  # pending in a batch: do not send


class Store:
    """A SQLite file of finished calls (WAL), used from one thread at a time.

    The sync methods lock; the ``a``-prefixed ones run the same work on the
    store's own single thread, so the event loop never waits on the disk or
    on another process's lock. ``busy_timeout`` is how long to wait for
    another process's lock before a write is given up.
    """

    def __init__(self, path: str | Path | None = None, *,
                 busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = Path(path) if path else default_path()
        self.busy_timeout = busy_timeout
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.writable = True
        self.written = 0  # results this store wrote (an interrupted run reports them)
        self._why_not = ""
        self._warned = False
        self._claims = False  # whether the file has our claims table
        self.batches = False  # whether the file has the batch tables (:mod:`.ledger`)
        self.runs = False  # and the runs and call log (:mod:`.runs`, :mod:`.calllog`)
        self._claimed = False  # whether this store ever claimed a key (so has any to drop)
        self._closed = False
        self._lock = threading.Lock()
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="gptmagic-store")
        self._db = self._open()

    # -- opening --------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self.path.is_dir():
            raise ConfigError(
                f"the cache path {self.path} is a directory, not a file. Run without the "
                f"cache (cache=False), or point cache= (or $GPTMAGIC_CACHE) at a file, "
                f"e.g. {self.path / 'calls.sqlite'}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # a read-only place: opening says what can be done there
        db: sqlite3.Connection | None = None
        try:
            db = self._connect(str(self.path), uri=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._migrate(db)
            return db
        except sqlite3.Error as e:
            if db is not None:
                db.close()
            if _read_only(e) and self.path.is_file():
                return self._open_read_only(e)
            raise self._unreadable(e) from None
        except ConfigError:  # a database, but not a cache of ours
            if db is not None:
                db.close()
            raise

    def _connect(self, target: str, *, uri: bool) -> sqlite3.Connection:
        return sqlite3.connect(target, uri=uri, timeout=self.busy_timeout,
                               check_same_thread=False, isolation_level=None)

    def _open_read_only(self, why: sqlite3.Error) -> sqlite3.Connection:
        """A cache in a place we cannot write is still read; writes are skipped."""
        self.writable = False
        self._why_not = f"read-only: {why}"
        base = self.path.resolve().as_uri()
        # immutable=1 reads a WAL file without creating its -shm (impossible here).
        for query in ("?mode=ro", "?mode=ro&immutable=1"):
            db = self._connect(base + query, uri=True)
            try:
                self._check(db)
                return db
            except sqlite3.Error as e:
                db.close()
                last = e
            except ConfigError:
                db.close()
                raise
        raise self._unreadable(last) from None

    def _version(self, db: sqlite3.Connection) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def _columns(self, db: sqlite3.Connection, table: str) -> set[str]:
        return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}

    def _check(self, db: sqlite3.Connection) -> None:
        """Refuse a file that is a database but not one of ours (nothing is written)."""
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "calls" in tables and not CALL_COLUMNS <= self._columns(db, "calls"):
            raise ConfigError(self._foreign(
                f"its calls table has the columns {sorted(self._columns(db, 'calls'))}"))
        if "calls" not in tables and tables - TABLES:
            raise ConfigError(self._foreign(f"it holds the tables {sorted(tables)}"))
        self._claims = "claims" in tables and CLAIM_COLUMNS <= self._columns(db, "claims")
        self.batches = {"batches", "batch_rows"} <= tables
        self.runs = {"runs", "run_cells", "calllog"} <= tables  # :mod:`.runs`, `.calllog`

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Bring the file to :data:`SCHEMA_VERSION` (one transaction; another process may
        be doing the same, so the version is read again under the write lock)."""
        version = self._version(db)
        self._check(db)
        if version >= SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            version = self._version(db)
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for statement in statements(v, db):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={v}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._check(db)

    def _foreign(self, what: str) -> str:
        return (f"the cache file {self.path} is not a gptmagic cache ({what}). Run without "
                f"the cache (cache=False), point cache= at another file, or delete this one "
                f"if it is yours to delete")

    def _unreadable(self, e: sqlite3.Error) -> ConfigError:
        name = _code(e)
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return ConfigError(
                f"the cache file {self.path} stayed locked by another process for over "
                f"{self.busy_timeout:g} s ({e}). Wait for it and run again, or run without "
                f"the cache (cache=False)")
        if name.startswith("SQLITE_CANTOPEN") and not self.path.exists():
            return ConfigError(
                f"cannot create the cache file {self.path} ({e}): is its folder writable? "
                f"Run without the cache (cache=False), or point cache= (or $GPTMAGIC_CACHE) "
                f"at a writable place")
        return ConfigError(
            f"the cache file {self.path} cannot be read ({e}): it is damaged or not a "
            f"database. Run without the cache (cache=False), or delete the file (the next "
            f"run starts a new one and asks again for what it held)")

    # -- failing softly -------------------------------------------------------------------

    def _give_up(self, e: sqlite3.Error) -> None:
        """Stop writing for the rest of this store's life, with one warning."""
        self.writable = False
        self._why_not = f"{e}, {_code(e)}" if _code(e) else str(e)
        self._warn()

    def _warn(self) -> None:
        if self._warned:
            return
        self._warned = True
        # warn_explicit without a registry: said once per store, so once per run, and
        # again on the next run (plain warn() would stay silent after the first time).
        warnings.warn_explicit(
            f"gptmagic: cannot write to the cache {self.path} ({self._why_not}); this run "
            f"carries on without storing its results (every result is still returned; a "
            f"re-run asks again for those not stored). To store them, make the file writable "
            f"(or free space) and run again, or pass cache= another file",
            CacheWarning, __file__, 0, module=__name__)

    def _write(self, fn: Callable[[sqlite3.Connection], T], default: T) -> T:
        """Run ``fn`` in one write transaction; on any failure give up writing."""
        if not self.writable:
            self._warn()
            return default
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    out = fn(self._db)
                    self._db.execute("COMMIT")
                    return out
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                failure: sqlite3.Error = e
        self._give_up(failure)
        return default

    def transact(self, fn: Callable[[sqlite3.Connection], T], default: T) -> T:
        """Run ``fn`` in one write transaction (for :mod:`.ledger`); ``default`` when
        writing failed (one warning, and the store writes no more)."""
        return self._write(fn, default)

    def query(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the file under the store's lock; a file that cannot be read is
        a :class:`~gptmagic.errors.ConfigError`."""
        with self._lock:
            try:
                return fn(self._db)
            except sqlite3.Error as e:
                raise self._unreadable(e) from None

    async def athread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the store's own thread (the event loop never waits on disk)."""
        return await self._off(fn, *args)

    # -- reading --------------------------------------------------------------------------

    def get_many(self, keys: list[str]) -> dict[str, Result]:
        """Stored results for the keys that have a readable one (a bad row is a miss).

        Raises :class:`~gptmagic.errors.ConfigError` when the file cannot be read.
        """
        with self._lock:
            try:
                return self._get(keys)
            except sqlite3.Error as e:
                raise self._unreadable(e) from None

    def _get(self, keys: list[str], since: float | None = None) -> dict[str, Result]:
        out: dict[str, Result] = {}
        for key, blob in self._select(self._db, "key, result", "calls", keys,
                                      f"created >= {float(since or 0.0)!r}"):
            result = row_result(blob)
            if result is not None:
                out[key] = result
        return out

    def _holders(self, db: sqlite3.Connection, keys: list[str]) -> dict[str, tuple[Any, ...]]:
        """Live claims of other runs on ``keys``: key -> (owner, pid, host, at)."""
        if not self._claims:
            return {}
        now = time.time()
        out = {}
        for key, owner, pid, host, at in self._select(db, "key, owner, pid, host, at",
                                                      "claims", keys):
            if owner != self.owner and at > now - STALE_AFTER and alive(pid, host):
                out[key] = (owner, pid, host, at)
        return out

    def _select(self, db: sqlite3.Connection, columns: str, table: str, keys: list[str],
                where: str = "1") -> list[tuple[Any, ...]]:
        """``columns`` of ``table``'s rows for ``keys`` (``where`` also holding)."""
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            out += db.execute(f"SELECT {columns} FROM {table} WHERE key IN "
                              f"({','.join('?' * len(chunk))}) AND {where}", chunk).fetchall()
        return out

    def busy(self, db: sqlite3.Connection, keys: list[str],
             since: float | None = None) -> set[str]:
        """Of ``keys``, those stored (``since`` then) or claimed by another live run: a
        batch must not carry them (run by :mod:`.ledger` inside its write)."""
        stored = set(self._get(keys, since))
        return stored | set(self._holders(db, [k for k in keys if k not in stored]))

    def waiting(self, keys: list[str],
                since: float | None = None) -> tuple[dict[str, Result], list[str]]:
        """For keys another run claimed: the results it stored (``since`` then, if given),
        and the keys it no longer holds (it failed, stopped, or died), which this run may
        claim now."""
        with self._lock:
            try:
                done = self._get(keys, since)
                held = self._holders(self._db, [k for k in keys if k not in done])
            except sqlite3.Error:  # cannot see the other run's work: do it ourselves
                return {}, list(keys)
        return done, [k for k in keys if k not in done and k not in held]

    # -- writing --------------------------------------------------------------------------

    def claim(self, keys: list[str], since: float | None = None, *,
              batched: bool = True) -> Claim:
        """Claim the keys nobody else is asking for (one transaction).

        A key stored since it was looked up (or ``since`` then, when a run asks
        again for what is stored) comes back in ``stored``; one pending in a batch
        (while ``batched``) in ``batched``: the batch pays for it. When
        claims cannot be written, every key is ours: the run goes on alone.
        """
        if not self._claims:  # a file we may only read: the run goes on alone
            return Claim(mine=list(keys))

        def do(db: sqlite3.Connection) -> Claim:
            out = Claim(stored=self._get(keys, since))
            rest = [k for k in keys if k not in out.stored]
            if batched and self.batches:
                out.batched = [k for (k,) in self._select(db, "key", "batch_rows", rest,
                                                          "state = 'pending'")]
                in_batch = set(out.batched)
                rest = [k for k in rest if k not in in_batch]
            held = self._holders(db, rest)
            out.theirs = [k for k in rest if k in held]
            out.mine = [k for k in rest if k not in held]
            now, pid, host = time.time(), os.getpid(), platform.node()
            self._claimed = self._claimed or bool(out.mine)
            db.executemany(
                "INSERT OR REPLACE INTO claims (key, owner, pid, host, at) VALUES (?,?,?,?,?)",
                [(k, self.owner, pid, host, now) for k in out.mine])
            return out

        return self._write(do, Claim(mine=list(keys)))

    def put(self, key: str, base_url: str, model: str, request: dict[str, Any],
            result: Result) -> bool:
        """Store one finished call now (durable before the next one starts) and drop its
        claim; False when it could not be stored (the run goes on; one warning). The
        request is stored with its images' base64 elided and without options that may
        carry credentials (``extra_headers``...: :func:`~gptmagic.errors.public_params`),
        the base URL without its user name and password: both are kept to be read, never
        looked up (the key identifies the call)."""
        blob = json.dumps(result_to_dict(result), ensure_ascii=False)
        req = json.dumps(elide(public_params(request)), ensure_ascii=False, default=str)

        def do(db: sqlite3.Connection) -> bool:
            db.execute(
                "INSERT OR REPLACE INTO calls (key, created, base_url, model, request, result) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key, time.time(), public_url(base_url), model, req, blob))
            if self._claims:
                db.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, self.owner))
            if self.batches:  # answered live: no batch's answer (or price) any more
                db.execute("DELETE FROM batch_rows WHERE key = ? AND state != 'pending'",
                           (key,))
            return True

        stored = self._write(do, False)
        self.written += stored
        return stored

    def put_many(self, items: list[tuple[str, str, str, dict[str, Any], Result]]) -> bool:
        """Store many finished calls in one transaction (a batch's output): each
        ``(key, base_url, model, request, result)`` as :meth:`put` stores one."""
        now = time.time()
        rows = [(key, now, public_url(base_url), model,
                 json.dumps(elide(public_params(request)), ensure_ascii=False, default=str),
                 json.dumps(result_to_dict(result), ensure_ascii=False))
                for key, base_url, model, request, result in items]

        def do(db: sqlite3.Connection) -> bool:
            db.executemany(
                "INSERT OR REPLACE INTO calls (key, created, base_url, model, request, result) "
                "VALUES (?, ?, ?, ?, ?, ?)", rows)
            return True

        stored = self._write(do, False) if rows else True
        self.written += len(rows) if stored else 0
        return stored

    def release(self, keys: list[str] | None = None) -> None:
        """Drop this run's claims on ``keys`` (all of them by default), so a waiting run
        asks for them itself. Best effort: a failure here loses nothing."""
        if not self._claimed:
            return

        def do(db: sqlite3.Connection) -> None:
            if keys is None:
                db.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
            else:
                db.executemany("DELETE FROM claims WHERE key = ? AND owner = ?",
                               [(k, self.owner) for k in keys])

        if self.writable:
            self._write(do, None)
            return
        with self._lock:  # writing failed earlier; it may work now (a lock has gone)
            try:
                do(self._db)
            except sqlite3.Error:
                pass  # the claims go stale on their own (no heartbeat, and the pid ends)

    def heartbeat(self) -> None:
        """Tell other runs this one is still working on its claims."""
        if not self._claimed or not self.writable:
            return
        self._write(lambda db: db.execute("UPDATE claims SET at = ? WHERE owner = ?",
                                          (time.time(), self.owner)), None)

    def delete(self, keys: list[str]) -> None:
        self._write(lambda db: db.executemany("DELETE FROM calls WHERE key = ?",
                                              [(k,) for k in keys]), None)

    # -- the same, off the event loop ------------------------------------------------------

    async def _off(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(fn, *args))

    async def aget_many(self, keys: list[str]) -> dict[str, Result]:
        return await self._off(self.get_many, keys)

    async def aclaim(self, keys: list[str], since: float | None = None, *,
                     batched: bool = True) -> Claim:
        return await self._off(functools.partial(self.claim, batched=batched), keys, since)

    async def apoll(self, keys: list[str],
                    since: float | None = None) -> tuple[dict[str, Result], list[str]]:
        return await self._off(self.waiting, keys, since)

    async def aput(self, key: str, base_url: str, model: str, request: dict[str, Any],
                   result: Result) -> bool:
        return await self._off(self.put, key, base_url, model, request, result)

    async def arelease(self, keys: list[str] | None = None) -> None:
        await self._off(self.release, keys)

    async def aheartbeat(self) -> None:
        await self._off(self.heartbeat)

    # -- inspection and closing ----------------------------------------------------------------

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def integrity(self) -> str:
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def version(self) -> int:
        """The file's schema version (``PRAGMA user_version``)."""
        with self._lock:
            return self._version(self._db)

    def close(self) -> None:
        """Release this run's claims and close the file (once; later calls do nothing)."""
        if self._closed:
            return
        self._thread.shutdown(wait=True)  # the writes in flight land first
        self.release()
        with self._lock:
            self._closed = True
            self._db.close()
