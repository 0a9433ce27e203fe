"""The log of the magics' calls (``calllog``, schema version 3), in the store the runs
use: every ``%%chat`` / ``%%complete`` reply with its request, parameters, usage, cost,
latency, model and thread, and every call that failed with its error (no reply),
searchable afterwards (:func:`log`), as simonw/llm logs every prompt to SQLite.

Never stored: a key, a header, a base URL's user name or password (stripped), an
image's base64 (elided), or any secret gptmagic knows of (redacted). A search is
literal: each of its words must be in the request's text or the reply as written (any
case). Where this SQLite has FTS5, its index of both (``calllog_fts``) narrows the
calls to check to those holding the words' letters and digits; without it every call
is checked, with the same answer. Writing is best effort: a log that
cannot be written never fails the cell (its caller warns once).
"""

from __future__ import annotations

import json
import operator
import re
import time
from collections.abc import Callable
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

__all__ = ["KEEP", "LoggedCall", "call_detail", "log", "public_url", "request_text", "write"]

#: Calls the magics' log keeps by default (``GPTMAGIC_LOG_KEEP``, ``%gptmagic log keep N``):
#: the oldest go as new ones come, so the cache file does not grow without end (about
#: 2-5 kB a call with its search index: some 20-50 MB).
KEEP = 10_000


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


def write(store: Store, call: LoggedCall, *, keep: int | None = None) -> bool:
    """Log one call (one transaction); False when it could not be written (the store
    warns once and writes no more). With ``keep``, calls older than the last ``keep``
    are dropped in the same transaction (one range of the primary key: ids only grow)."""
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
        added = db.execute(
            "INSERT INTO calllog (at, kind, model, provider, base_url, thread, request, "
            "params, reply, result, prompt_tokens, completion_tokens, cost, latency, error) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row).lastrowid
        if keep is not None and added is not None and added > keep:
            db.execute("DELETE FROM calllog WHERE id <= ?", (added - keep,))
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


def _pattern(term: str) -> re.Pattern[str]:
    """One search term as literal text, any case; one that starts with a letter or digit
    must start a word (``brow`` finds "brown", not "eyebrow"), as FTS5 finds words."""
    start = r"(?<![^\W_])" if term[0].isalnum() else ""
    return re.compile(start + re.escape(term), re.IGNORECASE)


def _matcher(terms: list[str]) -> Callable[[str | None, str | None], bool]:
    """Whether a call's request text or reply holds every term (each in either)."""
    patterns = [_pattern(t) for t in terms]

    def match(request: str | None, reply: str | None) -> bool:
        return all(p.search(request or "") or p.search(reply or "") for p in patterns)

    return match


def _fts_query(terms: list[str]) -> str | None:
    """The terms' words as FTS5 phrases (``c++`` -> ``"c"*``, ``gpt-4o`` -> ``"gpt 4o"*``):
    what narrows the search to the calls that may match; :func:`_matcher` then keeps
    those that hold each term literally (FTS5 drops ``+``, ``*``, ``-``...). None when no
    term has a word (``*``, ``-``): every call is checked."""
    phrases = []
    for term in terms:
        words = re.findall(r"[^\W_]+", term)
        if words:
            phrases.append('"' + " ".join(words) + '"*')  # words hold no quote
    return " ".join(phrases) or None


def _has_fts(db: Any) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE name = 'calllog_fts'").fetchone() \
        is not None


_CHUNK = 200  # calls read at a time while searching (under SQLite's variable limit)
_COLUMNS = ("id", "at", "kind", "model", "provider", "thread", "request", "reply",
            "prompt_tokens", "completion_tokens", "cost", "latency", "error")


def _rows(store: Store, search: str | None, model: str | None, since: float | None,
          limit: int) -> list[tuple[Any, ...]]:
    where: list[str] = []
    args: list[Any] = []
    cols = ", ".join(f"c.{c}" for c in _COLUMNS)

    def query(db: Any) -> list[tuple[Any, ...]]:
        source = "calllog c"
        terms = (search or "").split()
        narrow = _fts_query(terms)
        if narrow is not None and _has_fts(db):
            source += " JOIN calllog_fts f ON f.rowid = c.id"
            where.append("calllog_fts MATCH ?")
            args.append(narrow)
        if model:
            where.append("c.model = ?")
            args.append(model)
        if since is not None:
            where.append("c.at >= ?")
            args.append(since)
        sql = f"FROM {source} WHERE {' AND '.join(where) or '1'} ORDER BY c.at DESC, c.id DESC"
        if not terms:
            return list(db.execute(f"SELECT {cols} {sql} LIMIT ?", [*args, limit]))
        # Newest first, each checked until enough match (a common word checks few); the
        # ids are sorted alone, then read a chunk at a time.
        ids = [i for (i,) in db.execute(f"SELECT c.id {sql}", args)]
        match, reply, out = _matcher(terms), _COLUMNS.index("reply"), []
        for at in range(0, len(ids), _CHUNK):
            chunk = ids[at : at + _CHUNK]
            rows = {r[0]: r for r in db.execute(
                f"SELECT {cols}, json_extract(c.request, '$.text') FROM calllog c "
                f"WHERE c.id IN ({','.join('?' * len(chunk))})", chunk)}
            out += [rows[i][:-1] for i in chunk if match(rows[i][-1], rows[i][reply])]
            if len(out) >= limit:
                return out[:limit]
        return out

    return store.query(query)


def log(search: str | None = None, model: str | None = None,
        since: datetime | date | str | timedelta | None = None, limit: int = 50,
        cache: str | Path | Store | None = None) -> pd.DataFrame:
    """The magics' past calls, newest first: id, when, kind, model, provider, thread,
    request (as text), reply, tokens, cost, latency, error. ``search`` finds calls whose
    request or reply holds each of its words as written, in any case (``c++``, ``*``
    and ``'`` too; a word that starts with a letter or digit starts a word there:
    ``brow`` finds "brown"); ``model`` one model's calls; ``since`` a datetime, a date,
    a ``'YYYY-MM-DD'`` string or a timedelta (``timedelta(hours=1)``: the last hour).
    ``cache`` is the file (default: the runs' cache, ``$GPTMAGIC_CACHE``)."""
    import pandas as pd

    from gptmagic.eval.store import default_path

    limit = _limit(limit)
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
    df["when"] = pd.to_datetime(df["when"], unit="s", utc=True).dt.floor("s")
    df["request"] = [json.loads(r).get("text") for r in df["request"]]
    return df


def _limit(limit: Any) -> int:
    """``limit`` as a row count for SQLite: a whole number >= 1 (one past SQLite's
    integers means every call)."""
    try:
        n = operator.index(limit) if not isinstance(limit, bool) else None
    except TypeError:
        n = None
    if n is None or n < 1:
        raise RequestError(f"limit={limit!r}: give the number of calls to show, a whole "
                           "number >= 1 (e.g. limit=50)", param="limit")
    return min(n, 2**63 - 1)


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
