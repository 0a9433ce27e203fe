"""The store's SQLite schema (:mod:`gptmagic.eval.store`): its tables, and the migrations
that bring a file of any earlier version up to :data:`SCHEMA_VERSION`.

Version 0 is the unversioned file of gptmagic before claims (``calls`` only), 1 adds
``claims``, 2 the batch tables (``batches``, ``batch_rows``: :mod:`gptmagic.eval.ledger`),
3 the runs (``runs``, ``run_cells``: :mod:`gptmagic.eval.runs`) and the log of the magics'
calls (``calllog``, searched through ``calllog_fts`` where this SQLite has FTS5:
:mod:`gptmagic.eval.calllog`).
Each migration only creates what is missing, so a file another process is migrating at
the same moment comes out the same.
"""

from __future__ import annotations

import sqlite3

__all__ = ["CALL_COLUMNS", "CLAIM_COLUMNS", "MIGRATIONS", "SCHEMA_VERSION", "TABLES",
           "statements"]

_CALLS = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    base_url TEXT,
    model TEXT,
    request TEXT NOT NULL,
    result TEXT NOT NULL
);
"""
_CLAIMS = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    at REAL NOT NULL
);
"""
_BATCHES = """
CREATE TABLE IF NOT EXISTS batches (
    local TEXT PRIMARY KEY,
    batch_id TEXT,
    file_id TEXT,
    provider TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    run TEXT NOT NULL,
    status TEXT NOT NULL,
    total INTEGER NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    expires REAL,
    collected REAL,
    note TEXT,
    owner TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_rows (
    key TEXT PRIMARY KEY,
    local TEXT NOT NULL,
    line INTEGER NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    error_type TEXT
);
CREATE INDEX IF NOT EXISTS batch_rows_local ON batch_rows (local);
CREATE INDEX IF NOT EXISTS batches_batch_id ON batches (batch_id);
"""
_RUNS = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    config_key TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL NOT NULL,
    config TEXT NOT NULL,
    prompts TEXT NOT NULL,
    data_hash TEXT NOT NULL,
    data_rows INTEGER NOT NULL,
    cases TEXT NOT NULL,
    totals TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_name ON runs (name, started);
CREATE INDEX IF NOT EXISTS runs_config ON runs (config_key, started);
CREATE TABLE IF NOT EXISTS run_cells (
    run TEXT NOT NULL,
    i INTEGER NOT NULL,
    cell TEXT NOT NULL,
    PRIMARY KEY (run, i)
);
CREATE TABLE IF NOT EXISTS calllog (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    model TEXT,
    provider TEXT,
    base_url TEXT,
    thread TEXT,
    request TEXT NOT NULL,
    params TEXT NOT NULL,
    reply TEXT,
    result TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    cost REAL,
    latency REAL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS calllog_at ON calllog (at);
"""
#: Full-text search of the call log's request text and reply (as simonw/llm indexes its
#: prompts and replies), made
#: with version 3 only where this SQLite has FTS5; without it the log is searched with LIKE.
_FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS calllog_fts USING fts5(
    request, reply, content='calllog', content_rowid='id');
CREATE TRIGGER IF NOT EXISTS calllog_ai AFTER INSERT ON calllog BEGIN
    INSERT INTO calllog_fts (rowid, request, reply)
    VALUES (new.id, json_extract(new.request, '$.text'), new.reply);
END;
CREATE TRIGGER IF NOT EXISTS calllog_ad AFTER DELETE ON calllog BEGIN
    INSERT INTO calllog_fts (calllog_fts, rowid, request, reply)
    VALUES ('delete', old.id, json_extract(old.request, '$.text'), old.reply);
END;
"""
#: Version -> the SQL that brings a file at version - 1 up to it.
MIGRATIONS: dict[int, str] = {1: _CALLS + _CLAIMS, 2: _BATCHES, 3: _RUNS}
#: Every table of ours (a file holding others is not a cache of ours).
TABLES = frozenset({"calls", "claims", "batches", "batch_rows", "runs", "run_cells", "calllog",
                    "calllog_fts", "calllog_fts_data", "calllog_fts_idx",
                    "calllog_fts_content", "calllog_fts_docsize", "calllog_fts_config"})
SCHEMA_VERSION = max(MIGRATIONS)
CALL_COLUMNS = {"key", "created", "base_url", "model", "request", "result"}
CLAIM_COLUMNS = {"key", "owner", "pid", "host", "at"}


def _has_fts5(db: sqlite3.Connection) -> bool:
    try:
        db.execute("CREATE VIRTUAL TABLE temp._gptmagic_fts5 USING fts5(x)")
        db.execute("DROP TABLE temp._gptmagic_fts5")
        return True
    except sqlite3.OperationalError:
        return False


def statements(version: int, db: sqlite3.Connection) -> list[str]:
    """The statements of migration ``version`` (version 3 adds the search index where this
    SQLite has FTS5). A trigger's body holds ``;``: each statement ends at ``;`` + newline
    outside a ``BEGIN ... END``."""
    sql = MIGRATIONS[version] + (_FTS if version == 3 and _has_fts5(db) else "")
    out, part = [], ""
    for line in sql.splitlines(keepends=True):
        part += line
        if line.rstrip().endswith(";") and (
                "BEGIN" not in part or line.strip().upper() == "END;"):
            out.append(part.strip())
            part = ""
    return [s for s in [*out, part.strip()] if s]
