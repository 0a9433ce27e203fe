"""SQLite store of finished calls: the runner's cache and its resume log.

A call's key hashes what decides its answer: the provider's base URL, the
endpoint, the model, every parameter, the messages or prompt, and the repeat
index (so repeats are distinct samples). Never a key or a header. Only
successful results are stored, each as soon as it completes, so an
interrupted run resumes with only the missing calls and never pays twice.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from gptmagic.core.types import Choice, Result, Timings, TokenLogprob, TopLogprob, Usage

__all__ = ["Store", "call_key", "default_path", "result_from_dict", "result_to_dict"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    base_url TEXT,
    model TEXT,
    request TEXT NOT NULL,
    result TEXT NOT NULL
);
"""


def default_path() -> Path:
    """``$GPTMAGIC_CACHE`` or ``~/.cache/gptmagic/calls.sqlite``."""
    import os

    if os.environ.get("GPTMAGIC_CACHE"):
        return Path(os.environ["GPTMAGIC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gptmagic" / "calls.sqlite"


def call_key(base_url: str, kind: str, body: dict[str, Any], repeat: int) -> str:
    """The cache key of one call (stable across runs and machines)."""
    blob = json.dumps({"base_url": base_url.rstrip("/"), "kind": kind, "body": body,
                       "repeat": repeat}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _lp(t: TokenLogprob) -> dict[str, Any]:
    return {"t": t.token, "l": t.logprob, "b": None if t.bytes is None else t.bytes.hex(),
            "o": t.offset, "p": t.prompt,
            "k": [[a.token, a.logprob, None if a.bytes is None else a.bytes.hex()]
                  for a in t.top]}


def _unlp(d: dict[str, Any]) -> TokenLogprob:
    return TokenLogprob(
        d["t"], d["l"], None if d["b"] is None else bytes.fromhex(d["b"]),
        tuple(TopLogprob(a[0], a[1], None if a[2] is None else bytes.fromhex(a[2]))
              for a in d["k"]), d["o"], d["p"])


def result_to_dict(r: Result) -> dict[str, Any]:
    """A JSON-safe copy of a result (the raw body is not kept)."""
    u = r.usage
    return {
        "kind": r.kind, "model": r.model, "id": r.id, "created": r.created,
        "request_id": r.request_id,
        "usage": None if u is None else [u.prompt_tokens, u.completion_tokens, u.total_tokens,
                                         u.cached_tokens, u.reasoning_tokens],
        "timings": [r.timings.total, r.timings.ttft, r.timings.attempts],
        "choices": [{"i": c.index, "text": c.text, "finish": c.finish_reason, "role": c.role,
                     "lp": None if c.logprobs is None else [_lp(t) for t in c.logprobs],
                     "plp": None if c.prompt_logprobs is None else [
                         _lp(t) for t in c.prompt_logprobs]}
                    for c in r.choices],
    }


def result_from_dict(d: dict[str, Any]) -> Result:
    u = d.get("usage")
    t = d.get("timings") or [None, None, 1]
    return Result(
        kind=d["kind"], model=d["model"], id=d.get("id"), created=d.get("created"),
        request_id=d.get("request_id"),
        usage=None if u is None else Usage(*u),
        timings=Timings(total=t[0], ttft=t[1], attempts=t[2]),
        choices=[Choice(index=c["i"], text=c["text"], finish_reason=c["finish"], role=c["role"],
                        logprobs=None if c["lp"] is None else [_unlp(x) for x in c["lp"]],
                        prompt_logprobs=None if c["plp"] is None else [
                            _unlp(x) for x in c["plp"]])
                 for c in d["choices"]],
    )


class Store:
    """A thread-safe SQLite file of finished calls (WAL, one writer at a time)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def get_many(self, keys: list[str]) -> dict[str, Result]:
        """Stored results for the keys that have one."""
        out: dict[str, Result] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                rows = self._db.execute(
                    f"SELECT key, result FROM calls WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk).fetchall()
                for key, blob in rows:
                    out[key] = result_from_dict(json.loads(blob))
        return out

    def put(self, key: str, base_url: str, model: str, request: dict[str, Any],
            result: Result) -> None:
        """Store one finished call now (durable before the next one starts)."""
        blob = json.dumps(result_to_dict(result), ensure_ascii=False)
        req = json.dumps(request, ensure_ascii=False, default=str)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO calls (key, created, base_url, model, request, result) "
                "VALUES (?, ?, ?, ?, ?, ?)", (key, time.time(), base_url, model, req, blob))

    def delete(self, keys: list[str]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM calls WHERE key = ?", [(k,) for k in keys])

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def integrity(self) -> str:
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
