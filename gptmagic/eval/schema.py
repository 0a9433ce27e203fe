"""The store's SQLite schema (:mod:`gptmagic.eval.store`): its tables, and the migrations
that bring a file of any earlier version up to :data:`SCHEMA_VERSION`.

Version 0 is the unversioned file of gptmagic before claims (``calls`` only), 1 adds
``claims``, 2 the batch tables (``batches``, ``batch_rows``: :mod:`gptmagic.eval.ledger`).
Each migration only creates what is missing, so a file another process is migrating at
the same moment comes out the same.
"""

from __future__ import annotations

__all__ = ["CALL_COLUMNS", "CLAIM_COLUMNS", "MIGRATIONS", "SCHEMA_VERSION"]

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
#: Version -> the SQL that brings a file at version - 1 up to it.
MIGRATIONS: dict[int, str] = {1: _CALLS + _CLAIMS, 2: _BATCHES}
SCHEMA_VERSION = max(MIGRATIONS)
CALL_COLUMNS = {"key", "created", "base_url", "model", "request", "result"}
CLAIM_COLUMNS = {"key", "owner", "pid", "host", "at"}
