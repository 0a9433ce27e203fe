"""The log of the magics' calls (``calllog``, schema version 3), in the store the runs
use: every ``%%chat`` / ``%%complete`` reply with its request, parameters, usage, cost,
latency, model and thread, and every call that failed with its error (no reply),
searchable afterwards (:func:`log`), as simonw/llm logs every prompt to SQLite.

Never stored: a key, a header, a base URL's user name or password (stripped), an
image's base64 (elided), or any secret gptmagic knows of (redacted). The text of the
request and the reply is indexed with SQLite's FTS5 where this SQLite has it
(``calllog_fts``), else searched with ``LIKE``. Writing is best effort: a log that
cannot be written never fails the cell (its caller warns once).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gptmagic.core.images import elide, part_text
from gptmagic.core.types import Result
from gptmagic.errors import RequestError, public_params, public_url, redact
from gptmagic.eval.rows import result_to_dict, row_result
from gptmagic.eval.store import Store

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LoggedCall", "call_detail", "log", "public_url", "request_text", "write"]


@dataclass
class LoggedCall:
    """One call to log: ``request`` is the messages sent (chat) or the prompt text."""

    kind: str  # "chat" or "completion"
    model: str
    request: list[dict[str, Any]] | str
    params: dict[str, Any]
    result: Result | None
    provider: str | None = None
    base_url: str | None = None
    thread: str | None = None
    cost: float | None = None
    error: str | None = None
    prompt: str | None = None  # a named prompt, if any


def request_text(request: list[dict[str, Any]] | str) -> str:
    """The request as searchable text: ``role: content`` a line per message."""
    if isinstance(request, str):
        return request
    return "\n".join(f"{m.get('role')}: {part_text(m.get('content'))}" for m in request)


def _dumps(value: Any) -> str:
    return redact(json.dumps(elide(value), ensure_ascii=False, default=str))


def write(store: Store, call: LoggedCall) -> bool:
    """Log one call (one transaction); False when it could not be written (the store
    warns once and writes no more)."""
    if not store.runs:
        return False
    r = call.result
    u = r.usage if r is not None else None
    params = public_params(call.params)
    row = (time.time(), call.kind, call.model, call.provider, public_url(call.base_url),
           call.thread, redact(json.dumps({"text": request_text(call.request),
                                           "messages": elide(call.request),
                                           "prompt": call.prompt},
                                          ensure_ascii=False, default=str)),
           _dumps(params), redact(r.text) if r is not None else None,
           _dumps(result_to_dict(r)) if r is not None else None,
           u.prompt_tokens if u else None, u.completion_tokens if u else None,
           call.cost, r.timings.total if r is not None else None,
           redact(call.error) if call.error else None)

    def do(db: Any) -> bool:
        db.execute("INSERT INTO calllog (at, kind, model, provider, base_url, thread, "
                   "request, params, reply, result, prompt_tokens, completion_tokens, cost, "
                   "latency, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
        return True

    return store.transact(do, False)


def _since(since: datetime | date | str | timedelta | float | None) -> float | None:
    """``since`` as Unix seconds: a datetime (naive is local time), a date, an ISO date or
    time string, a timedelta (that long ago), or seconds."""
    if since is None:
        return None
    if isinstance(since, timedelta):
        return time.time() - since.total_seconds()
    if isinstance(since, int | float):
        return float(since)
    if isinstance(since, str):
        try:
            since = datetime.fromisoformat(since)
        except ValueError:
            raise RequestError(f"since={since!r} is not a date or time; give one like "
                               "'2026-12-01' or '2026-12-01 15:30', a datetime, or a "
                               "timedelta(hours=1)", param="since") from None
    if isinstance(since, datetime):
        return since.timestamp()
    if isinstance(since, date):
        return datetime(since.year, since.month, since.day).timestamp()
    raise RequestError(f"since={since!r}: give a datetime, a date, a 'YYYY-MM-DD' string "
                       "or a timedelta", param="since")


def _fts_query(text: str) -> str:
    """Each word of ``text`` quoted (FTS5 reads bare words as its own syntax), all
    required, the last a prefix."""
    words = [w.replace('"', '""') for w in text.split()]
    return " ".join(f'"{w}"' for w in words[:-1]) + (f' "{words[-1]}"*' if words else "")


def _has_fts(db: Any) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE name = 'calllog_fts'").fetchone() \
        is not None


_COLUMNS = ("id", "at", "kind", "model", "provider", "thread", "request", "reply",
            "prompt_tokens", "completion_tokens", "cost", "latency", "error")


def _rows(store: Store, search: str | None, model: str | None, since: float | None,
          limit: int) -> list[tuple[Any, ...]]:
    where: list[str] = []
    args: list[Any] = []
    cols = ", ".join(f"c.{c}" for c in _COLUMNS)

    def query(db: Any) -> list[tuple[Any, ...]]:
        source = "calllog c"
        if search and search.split() and _has_fts(db):
            source += " JOIN calllog_fts f ON f.rowid = c.id"
            where.append("calllog_fts MATCH ?")
            args.append(_fts_query(search))
        elif search:
            where.append("(c.request LIKE ? ESCAPE '\\' OR c.reply LIKE ? ESCAPE '\\')")
            like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") \
                + "%"
            args.extend([like, like])
        if model:
            where.append("c.model = ?")
            args.append(model)
        if since is not None:
            where.append("c.at >= ?")
            args.append(since)
        sql = (f"SELECT {cols} FROM {source} WHERE {' AND '.join(where) or '1'} "
               "ORDER BY c.at DESC, c.id DESC LIMIT ?")
        return list(db.execute(sql, [*args, int(limit)]).fetchall())

    return store.query(query)


def log(search: str | None = None, model: str | None = None,
        since: datetime | date | str | timedelta | None = None, limit: int = 50,
        cache: str | Path | Store | None = None) -> pd.DataFrame:
    """The magics' past calls, newest first: id, when, kind, model, provider, thread,
    request (as text), reply, tokens, cost, latency, error. ``search`` finds words in
    the request or the reply; ``model`` one model's calls; ``since`` a datetime, a date,
    a ``'YYYY-MM-DD'`` string or a timedelta (``timedelta(hours=1)``: the last hour).
    ``cache`` is the file (default: the runs' cache, ``$GPTMAGIC_CACHE``)."""
    import pandas as pd

    from gptmagic.eval.store import default_path

    if limit < 1:
        raise RequestError(f"limit must be at least 1, got {limit}", param="limit")
    start = _since(since)
    frame = pd.DataFrame(columns=["when" if c == "at" else c for c in _COLUMNS])
    if isinstance(cache, Store):
        store, mine = cache, False
    elif not Path(cache or default_path()).exists():
        return frame
    else:
        store, mine = Store(cache), True
    try:
        rows = _rows(store, search, model, start, limit) if store.runs else []
    finally:
        if mine:
            store.close()
    if not rows:
        return frame
    df = pd.DataFrame(rows, columns=list(_COLUMNS)).rename(columns={"at": "when"})
    df["when"] = pd.to_datetime(df["when"], unit="s", utc=True)
    df["request"] = [json.loads(r).get("text") for r in df["request"]]
    return df


def call_detail(store: Store, id: int) -> dict[str, Any]:
    """One logged call in the shape the explorer's side panel shows (the issue 17
    contract): model, prompt, messages, params, reply, finish_reason, usage, cost,
    latency, ttft, compute, logprobs, scores, error, when."""
    row = store.query(lambda db: db.execute(
        "SELECT at, kind, model, request, params, reply, result, cost, latency, error "
        "FROM calllog WHERE id = ?", (int(id),)).fetchone()) if store.runs else None
    if row is None:
        raise RequestError(f"no logged call {id} in {store.path} (gptmagic.log() lists "
                           "them)", param="id")
    at, kind, model, request, params, reply, blob, cost, latency, error = row
    req = json.loads(request)
    messages = req.get("messages")
    if isinstance(messages, str):  # a completion's prompt
        messages = [{"role": "user", "content": messages}]
    result = row_result(blob) if blob else None
    usage = result.usage if result is not None else None
    return {
        "model": model, "prompt": req.get("prompt"), "messages": messages or [],
        "params": json.loads(params), "reply": reply,
        "finish_reason": result.finish_reason if result is not None else None,
        "usage": None if usage is None else {
            k: v for k, v in {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
                "cached_tokens": usage.cached_tokens}.items() if v is not None},
        "cost": cost, "latency": latency,
        "ttft": result.timings.ttft if result is not None else None,
        "compute": _compute(result),
        "logprobs": None if result is None or not result.logprobs else [
            {"token": t.token, "logprob": t.logprob,
             "top": [{"token": a.token, "logprob": a.logprob} for a in t.top]}
            for t in result.logprobs],
        "scores": {}, "error": error, "when": at, "kind": kind,
    }


def _compute(result: Result | None) -> float | None:
    """The engine's own time for the call (llama.cpp's timings), in seconds."""
    engine = result.timings.engine if result is not None else None
    if not engine or engine.get("prompt_ms") is None or engine.get("predicted_ms") is None:
        return None
    return (float(engine["prompt_ms"]) + float(engine["predicted_ms"])) / 1000
