"""Every :func:`~gptmagic.evaluate` as a named run in the store it cached in (``runs`` and
``run_cells``, schema version 3: :mod:`gptmagic.eval.schema`).

A run keeps what it was asked (models, grid, params, API, repeats, the scorers' and
the schema's and tools' names), the text of its prompts, the data's identity (a
SHA-256 of its rows) and size, its rows themselves (to rebuild the table), its
totals, and for every call (case × variant × repeat) the cache key of its request, its
result (a row of :mod:`gptmagic.eval.rows`: the run keeps the output it scored even when
``refresh=True`` later replaces the cache's) and the scores it was given. :func:`run`
rebuilds the :class:`~gptmagic.eval.results.EvalResults` from the file alone, after a
restart, without calling a model or scoring again.

Names need not be unique: a run's ``id`` is; :func:`run` of a name gives the latest
run of that name. A run with ``cache=False`` has no store, so it is not recorded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gptmagic.errors import ConfigError, RequestError, public_params, redact
from gptmagic.eval.rows import result_to_dict, row_result
from gptmagic.eval.store import Store

if TYPE_CHECKING:
    import pandas as pd

    from gptmagic.eval.jobs import Job
    from gptmagic.eval.results import EvalResults

__all__ = ["RunRecord", "config_key", "find", "load", "previous", "prompt_text", "record",
           "run", "run_name", "runs"]


@dataclass
class RunRecord:
    """One run as the store keeps it (times are Unix seconds)."""

    id: str
    name: str
    config_key: str  # the same prompts and models: what "the previous run" means
    started: float
    finished: float
    config: dict[str, Any]
    prompts: dict[str, str]  # name -> the prompt's text
    data_hash: str
    data_rows: int
    totals: dict[str, Any] = field(repr=False, default_factory=dict)


def run_name(now: float | None = None) -> str:
    """A generated name: ``run-20261201-153500`` (UTC)."""
    stamp = datetime.fromtimestamp(now or time.time(), tz=UTC)
    return "run-" + stamp.strftime("%Y%m%d-%H%M%S")


def prompt_text(prompt: Any) -> str:
    """A prompt as text to read and diff: a template as written, messages as cell text."""
    if isinstance(prompt, str):
        return prompt
    from gptmagic.core.messages import render_cell

    try:
        return render_cell(list(prompt))
    except Exception:  # noqa: BLE001 - what a cell cannot hold is shown as JSON
        return json.dumps(prompt, ensure_ascii=False, indent=1, default=str)


def config_key(prompts: Sequence[str], models: Sequence[str]) -> str:
    """What makes two runs "the same evaluation": its prompts' names and its models."""
    text = json.dumps([sorted(prompts), list(models)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """A JSON-safe value: NaN and NA are None, Decimals floats, others as text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        f = float(value)
        return None if math.isnan(f) else f
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _names(value: Any) -> Any:
    """The names of a schema or of tools (a dict by prompt: each prompt's)."""
    if value is None:
        return None
    if isinstance(value, Mapping) and not any(k in value for k in ("type", "properties")):
        return {str(k): _names(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [getattr(f, "__name__", str(f)) for f in value]
    return getattr(value, "__name__", None) or ("JSON schema" if isinstance(value, dict)
                                                else type(value).__name__)


def _scored(res: EvalResults, i: int) -> dict[str, Any]:
    """Row ``i``'s scores, score error and scorers' explanations, as stored."""
    cols = [c for c in res.df if c.startswith(("score", "explain."))]
    return {c: _plain(res.df[c].iat[i]) for c in cols}


def _cell(job: Job, res: EvalResults, i: int) -> dict[str, Any]:
    return {"row": job.row, "prompt": job.prompt, "model": job.model,
            "provider": job.provider.name, "kind": job.provider.kind,
            "grid": {k: _plain(v) for k, v in public_params(job.grid).items()},
            "repeat": job.repeat,
            "api": job.api, "key": job.key, "cached": job.cached, "cost": _plain(job.cost),
            "parts": {k: _plain(v) for k, v in job.parts.items()}, "batch": job.batch,
            "pending": job.pending, "error": job.error, "error_type": job.error_type,
            "scored": _scored(res, i),
            # The output it scored, kept with the run: refresh=True replaces the cache's.
            "result": None if job.result is None else result_to_dict(job.result)}


def _totals(res: EvalResults) -> dict[str, Any]:
    df = res.df
    per: dict[str, Any] = {}
    if "score" in df:
        for key, g in df.groupby(res.group_cols, dropna=False, sort=False):
            key = key if isinstance(key, tuple) else (key,)
            per[" · ".join(map(str, key))] = _plain(g["score"].mean())
    return {"calls": len(df), "cached": int(df["cached"].fillna(False).astype(bool).sum()),
            "errors": int(df["error"].notna().sum()),
            "cost": _plain(df["cost"].sum(min_count=1)),
            "score": _plain(df["score"].mean()) if "score" in df else None,
            "score_by_variant": per}


def record(store: Store, res: EvalResults, *, name: str | None, started: float,
           prompts: Mapping[str, Any], models: Sequence[str], cases: list[dict[str, Any]],
           settings: dict[str, Any]) -> RunRecord | None:
    """Write the run ``res`` came from (one transaction); None when the store cannot be
    written (a read-only cache is read without a word; a write that fails is the store's
    one warning; the results are returned all the same)."""
    if not store.runs or not store.writable or not os.access(store.path, os.W_OK):
        return None
    # Kept in the data's column order (a rebuilt run shows its inputs as they were);
    # hashed with sorted keys (the same data in another column order is the same data).
    cases_json = json.dumps(cases, ensure_ascii=False, default=str)
    data_hash = hashlib.sha256(json.dumps(cases, ensure_ascii=False, sort_keys=True,
                                          default=str).encode()).hexdigest()
    config = {"models": list(models), "group_cols": list(res.group_cols),
              "scorers": [getattr(s, "name", str(s)) for s in res.scorers],
              **{k: _names(v) if k in ("schema", "tools") else v for k, v in settings.items()}}
    for k in ("params", "grid"):  # options such as extra_headers may carry credentials
        if isinstance(config.get(k), Mapping):
            config[k] = public_params(config[k])
    rec = RunRecord(
        id=uuid.uuid4().hex[:12], name=name or run_name(started),
        config_key=config_key(list(prompts), list(models)), started=started,
        finished=time.time(), config=json.loads(redact(json.dumps(config, default=str))),
        prompts={str(k): prompt_text(v) for k, v in prompts.items()},
        data_hash=data_hash, data_rows=len(cases),
        totals=_totals(res))
    cells = [(rec.id, i, json.dumps(_cell(j, res, i), ensure_ascii=False))
             for i, j in enumerate(res._jobs)]

    def do(db: Any) -> RunRecord:
        db.execute("INSERT INTO runs (id, name, config_key, started, finished, config, "
                   "prompts, data_hash, data_rows, cases, totals) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                   (rec.id, rec.name, rec.config_key, rec.started, rec.finished,
                    json.dumps(rec.config), json.dumps(rec.prompts, ensure_ascii=False),
                    rec.data_hash, rec.data_rows, cases_json, json.dumps(rec.totals)))
        db.executemany("INSERT INTO run_cells (run, i, cell) VALUES (?,?,?)", cells)
        return rec

    return store.transact(do, None)


_COLUMNS = "id, name, config_key, started, finished, config, prompts, data_hash, data_rows, totals"


def _record(row: tuple[Any, ...]) -> RunRecord:
    (id_, name, key, started, finished, config, prompts, data_hash, rows, totals) = row
    return RunRecord(id_, name, key, started, finished, json.loads(config), json.loads(prompts),
                     data_hash, rows, json.loads(totals))


def find(store: Store, name_or_id: str) -> RunRecord:
    """The run of that id, else the latest of that name; a clear error naming the
    latest runs when there is none."""
    if not store.runs:
        raise RequestError(f"no runs in {store.path} (evaluate() records one each time)",
                           param="run")
    row = store.query(lambda db: db.execute(
        f"SELECT {_COLUMNS} FROM runs WHERE id = ? OR name = ? "
        "ORDER BY id = ? DESC, started DESC LIMIT 1", (name_or_id, name_or_id, name_or_id))
        .fetchone())
    if row is None:
        latest = [n for (n,) in store.query(lambda db: db.execute(
            "SELECT name FROM runs ORDER BY started DESC LIMIT 5").fetchall())]
        raise RequestError(f"no run named {name_or_id!r} in {store.path}; the latest: "
                           f"{', '.join(latest) or 'none'} (gptmagic.runs() lists them)",
                           param="run")
    return _record(row)


def previous(store: Store, rec: RunRecord) -> RunRecord | None:
    """The latest run of the same prompts and models that started before ``rec``."""
    row = store.query(lambda db: db.execute(
        f"SELECT {_COLUMNS} FROM runs WHERE config_key = ? AND started < ? AND id != ? "
        "ORDER BY started DESC LIMIT 1", (rec.config_key, rec.started, rec.id)).fetchone())
    return _record(row) if row is not None else None


def load(store: Store, rec: RunRecord) -> EvalResults:
    """The results of a stored run: outputs and scores as they were stored with it (no
    model called, nothing scored), each request's messages from the cache. A call with no
    copy of its own (a batch's call still pending when the run ended) takes its result
    from the cache; when it is gone from there too, it is a row with that error."""
    from gptmagic.client.config import Provider
    from gptmagic.eval.columns import table_rows
    from gptmagic.eval.jobs import Job
    from gptmagic.eval.results import EvalResults

    cases_json, cells = store.query(lambda db: (
        db.execute("SELECT cases FROM runs WHERE id = ?", (rec.id,)).fetchone()[0],
        [json.loads(c) for (c,) in db.execute(
            "SELECT cell FROM run_cells WHERE run = ? ORDER BY i", (rec.id,))]))
    cases = json.loads(cases_json)
    keys = sorted({c["key"] for c in cells})
    stored: dict[str, tuple[dict[str, Any], str | None]] = {
        k: (json.loads(req), blob) for k, req, blob in store.query(lambda db: _calls(db, keys))}
    jobs = []
    for c in cells:
        request, blob = stored.get(c["key"], ({}, None))
        # Its own copy; a call pending in a batch when the run ended has none: the cache's.
        own = c.get("result")
        result = row_result(own) if own is not None else (
            row_result(blob) if blob is not None else None)
        job = Job(c["row"], c["prompt"], c["model"], Provider(c["provider"], c["kind"]), {},
                  c["grid"], c["repeat"], list(request.get("messages") or []), c["api"],
                  key=c["key"], cached=c["cached"], batch=c["batch"], pending=c["pending"],
                  cost=None if c["cost"] is None else Decimal(str(c["cost"])),
                  parts={k: None if v is None else Decimal(str(v))
                         for k, v in c["parts"].items()})
        if c["error"] is not None:
            job.error, job.error_type = c["error"], c["error_type"]
        elif result is None and c["pending"] is None:
            job.error, job.error_type = ("its result is no longer in the cache "
                                         f"{store.path}", "MissingResult")
        else:
            job.result = result
        jobs.append(job)
    grid_cols = sorted({k for c in cells for k in c["grid"]})
    res = EvalResults(table_rows(jobs, cases, grid_cols), jobs, cases, [],
                      list(rec.config.get("group_cols") or ["prompt", "model"]))
    for col in dict.fromkeys(k for c in cells for k in c["scored"]):
        res.df[col] = [c["scored"].get(col) for c in cells]
        if col.startswith("score") and col != "score_error":
            res.df[col] = res.df[col].astype(float)
    res.run = rec
    return res


def _calls(db: Any, keys: list[str]) -> list[tuple[str, str, str]]:
    """The stored request and result of each of ``keys`` that has one."""
    out = []
    for i in range(0, len(keys), 500):  # under SQLite's variable limit
        chunk = keys[i : i + 500]
        out += db.execute("SELECT key, request, result FROM calls WHERE key IN "
                          f"({','.join('?' * len(chunk))})", chunk).fetchall()
    return out


def _path(cache: str | Path | None) -> Path:
    from gptmagic.eval.store import default_path

    return Path(cache) if cache else default_path()


def _open(cache: str | Path | Store | None) -> tuple[Store, bool]:
    """The store ``cache`` names, and whether it is ours to close."""
    if isinstance(cache, Store):
        return cache, False
    if not _path(cache).exists():
        raise ConfigError(f"there is no cache file at {_path(cache)}: no run has been "
                          "recorded there (evaluate() records its runs in its cache; "
                          "cache= names another file)")
    return Store(_path(cache)), True


def runs(cache: str | Path | Store | None = None) -> pd.DataFrame:
    """The runs recorded in the cache (newest first): id, name, started, finished, models,
    prompts, data rows and hash, calls, cached, errors, cost, mean score."""
    import pandas as pd

    recs: list[RunRecord] = []
    if isinstance(cache, Store) or _path(cache).exists():  # no file yet: no runs
        store, mine = _open(cache)
        try:
            if store.runs:
                recs = [_record(r) for r in store.query(lambda db: db.execute(
                    f"SELECT {_COLUMNS} FROM runs ORDER BY started DESC").fetchall())]
        finally:
            if mine:
                store.close()
    return pd.DataFrame([{
        "id": r.id, "name": r.name,
        "started": pd.Timestamp(r.started, unit="s", tz="UTC").floor("s"),
        "seconds": round(r.finished - r.started, 3),
        "models": ", ".join(r.config.get("models", [])), "prompts": ", ".join(r.prompts),
        "rows": r.data_rows, "data": r.data_hash[:12],
        **{k: r.totals.get(k) for k in ("calls", "cached", "errors", "cost", "score")},
    } for r in recs], columns=["id", "name", "started", "seconds", "models", "prompts", "rows",
                               "data", "calls", "cached", "errors", "cost", "score"])


def run(name_or_id: str, cache: str | Path | Store | None = None) -> EvalResults:
    """The results of a recorded run (by id, or the latest of that name), rebuilt from the
    cache: no model is called and nothing is scored again."""
    store, mine = _open(cache)
    try:
        return load(store, find(store, name_or_id))
    finally:
        if mine:
            store.close()
