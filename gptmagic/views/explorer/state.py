"""The explorer's state: an evaluation as cases × variants, and one call's detail.

Pure functions over an :class:`~gptmagic.eval.results.EvalResults` (its ``df``
and, when it has them, the jobs that ran: the messages each one sent and its
result's logprobs). The state is the contract in ``docs/widgets.md``
(``kind: "explorer"`` and ``kind: "call"``); the JS, the static HTML and the
text form draw it. Nothing here reads a key, a header or a base URL.

A cell's output ships truncated in the matrix; its details (the full reply,
the request as cell text, usage, cost, latency, scores and explanations, the
logprob heatmap) ship in the state while they fit ``inline_limit`` bytes, and
are asked of the kernel one cell at a time beyond that (``details: "ask"``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from gptmagic.core.messages import render_cell
from gptmagic.core.types import Choice, TokenLogprob, TopLogprob
from gptmagic.errors import GptmagicError, RequestError, public_params
from gptmagic.views.widgets.state import VERSION, heatmap_state

__all__ = ["CELL_CHARS", "INLINE_LIMIT", "SCORE_STOPS", "SEARCH_CHARS", "call_state",
           "cell_detail", "detail_state", "explorer_state", "matrix_only", "repeat_list",
           "request_text"]

#: Characters of an output shown in a matrix cell (the panel shows it whole).
CELL_CHARS = 160
#: Characters of an output the search looks through (the cut text and its ``rest``).
SEARCH_CHARS = 4_000
#: Bytes of details a state carries before they are asked of the kernel per cell.
INLINE_LIMIT = 4_000_000
#: Score -> cell colour: red (0) through amber to green (1), light enough for dark text.
SCORE_STOPS: list[list[float | str]] = [[0.0, "#f4c7c3"], [0.5, "#fce8b2"], [1.0, "#b7e1cd"]]
#: Cells whose detail sizes estimate the whole state's.
_SAMPLE = 50
#: Characters of a data: URL (an inline image) kept in a request's text.
_DATA_URL_CHARS = 80


def _num(x: Any, digits: int = 4) -> float | None:
    """A JSON number, or None for a missing value (NaN, NA, None)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return round(v, digits) if math.isfinite(v) else None


def _str(x: Any) -> str | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    try:
        import pandas as pd

        if x is pd.NA:
            return None
    except ImportError:  # pragma: no cover - pandas comes with eval
        pass
    return str(x)


def _shorten_urls(content: Any) -> Any:
    """A message's content with inline images' data: URLs cut (a megabyte of base64 is
    no request a reader reads)."""
    if not isinstance(content, list):
        return content
    out = []
    for part in content:
        url = part.get("image_url", {}).get("url") if isinstance(part, Mapping) else None
        if isinstance(url, str) and url.startswith("data:") and len(url) > _DATA_URL_CHARS:
            part = {**part, "image_url": {**part["image_url"],
                                          "url": url[:_DATA_URL_CHARS] + "…"}}
        out.append(part)
    return out


def request_text(messages: Sequence[Mapping[str, Any]] | None) -> str | None:
    """The messages as the cell grammar writes them (``render_cell``); messages a cell
    cannot hold (tool calls, a bare list) as ``role: content`` lines instead."""
    if not messages:
        return None
    msgs = [{**m, "content": _shorten_urls(m.get("content"))} for m in messages]
    try:
        return render_cell(msgs)
    except GptmagicError:
        return "\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in msgs)


def _label(keys: Mapping[str, Any], cols: Sequence[str]) -> str:
    parts = []
    for c in cols:
        v = _str(keys.get(c))
        if v is None:
            continue
        parts.append(v if c in ("prompt", "model", "api") else f"{c}={v}")
    return " · ".join(parts) or "(one variant)"


def _heatmap(result: Any) -> dict[str, Any] | None:
    try:
        return heatmap_state(result)
    except GptmagicError:
        return None


def _scores(row: Mapping[str, Any], scorers: Sequence[str], threshold: float
            ) -> dict[str, dict[str, Any]]:
    out = {}
    for name in scorers:
        value = _num(row.get(f"score.{name}"))
        out[name] = {"score": value, "passed": None if value is None else value >= threshold,
                     "explanation": _str(row.get(f"explain.{name}"))}
    return out


def cell_detail(results: Any, i: int, *, threshold: float = 0.5,
                row: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Row ``i`` of ``results.df`` (positional) as one call's detail (the contract's
    shape: model, prompt, messages, params, reply, usage, cost, latency, logprobs as a
    heatmap state under ``heatmap``, scores, error). ``row``: that row as a dict, when
    the caller has it already."""
    df = results.df
    row = df.iloc[i].to_dict() if row is None else row
    jobs = getattr(results, "_jobs", None) or []
    job = jobs[i] if len(jobs) == len(df) else None
    result = getattr(job, "result", None)
    usage = getattr(result, "usage", None)
    usage_d = ({k: v for k, v in vars(usage).items() if v is not None}
               if usage is not None and hasattr(usage, "__dict__") else
               {k: _num(row.get(k), 0) for k in ("prompt_tokens", "completion_tokens")
                if _num(row.get(k)) is not None})
    scorers = [c[6:] for c in df.columns if c.startswith("score.")]
    return {
        "model": _str(row.get("model")), "prompt": _str(row.get("prompt")),
        "messages": list(job.messages) if job is not None else None,
        "params": public_params(job.params) if job is not None else {},
        "reply": _str(row.get("output")), "finish_reason": _str(row.get("finish_reason")),
        "usage": {k: v for k, v in usage_d.items() if isinstance(v, int | float)},
        "cost": _num(row.get("cost"), 10), "latency": _num(row.get("latency")),
        "ttft": _num(row.get("ttft")), "compute": _num(row.get("compute")),
        "logprobs": None, "heatmap": _heatmap(result) if result is not None else None,
        "scores": _scores(row, scorers, threshold),
        "score": _num(row.get("score")), "score_error": _str(row.get("score_error")),
        "error": _str(row.get("error")), "when": None,
    }


def _logprob_heatmap(logprobs: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """A contract detail's ``logprobs`` list as a heatmap state."""
    tokens = [TokenLogprob(str(t.get("token", "")), _num(t.get("logprob"), 6),
                           top=tuple(TopLogprob(str(a.get("token", "")),
                                                _num(a.get("logprob"), 6) or -9999.0)
                                     for a in t.get("top") or ()))
              for t in logprobs]
    return _heatmap([Choice(index=0, logprobs=tokens)]) if tokens else None


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(params), default=str))


def detail_state(detail: Mapping[str, Any]) -> dict[str, Any]:
    """A detail dict (:func:`cell_detail`, or a logged call's) as the JSON the panel
    draws: the request as cell text, the heatmap state, nothing else that is not JSON."""
    hm = detail.get("heatmap")
    if hm is None and detail.get("logprobs"):
        hm = _logprob_heatmap(detail["logprobs"])
    usage = detail.get("usage") or {}
    return {
        "model": _str(detail.get("model")), "prompt": _str(detail.get("prompt")),
        "request": request_text(detail.get("messages")),
        "params": _jsonable(public_params(detail.get("params") or {})),
        "reply": _str(detail.get("reply")), "finish_reason": _str(detail.get("finish_reason")),
        "usage": {str(k): _num(v, 0) for k, v in usage.items() if _num(v) is not None},
        "cost": _num(detail.get("cost"), 10), "latency": _num(detail.get("latency")),
        "ttft": _num(detail.get("ttft")), "compute": _num(detail.get("compute")),
        "heatmap": hm,
        "scores": {str(k): {"score": _num(s.get("score")), "passed": s.get("passed"),
                            "explanation": _str(s.get("explanation"))}
                   for k, s in (detail.get("scores") or {}).items()},
        "score": _num(detail.get("score")), "score_error": _str(detail.get("score_error")),
        "error": _str(detail.get("error")), "when": _num(detail.get("when"), 3),
    }


def call_state(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The state of :class:`~gptmagic.views.explorer.CallPanel` (``kind: "call"``)."""
    return {"v": VERSION, "kind": "call", "detail": detail_state(detail)}


def _check(threshold: Any, cell_chars: Any) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not (
            0.0 <= threshold <= 1.0):
        raise RequestError(f"threshold is a score from 0 to 1, got {threshold!r}",
                           param="threshold")
    if isinstance(cell_chars, bool) or not isinstance(cell_chars, int) or cell_chars < 10:
        raise RequestError(f"cell_chars is a number of characters (10 or more), got "
                           f"{cell_chars!r}", param="cell_chars")


def explorer_state(results: Any, *, threshold: float = 0.5, cell_chars: int = CELL_CHARS,
                   inline_limit: int = INLINE_LIMIT, title: str | None = None
                   ) -> dict[str, Any]:
    """The explorer state (``kind: "explorer"``) of ``results``.

    Cases (the data's rows) are rows, variants (``results.group_cols``: prompt ×
    model × grid × API) are columns. A cell is ``[case, variant, id, text, more,
    score, [per scorer], error, n, rest]``: ``id`` the df row of its first repeat,
    ``text`` its output cut to ``cell_chars`` (``more``: 1 if cut), ``n`` its repeats,
    ``rest`` the output after the cut up to :data:`SEARCH_CHARS` (what the search
    looks through besides ``text``; ``""`` when not cut, or when the details, whose
    replies the search reads then, are inline). A score
    passes at ``threshold``. ``details`` maps id -> :func:`detail_state` while they
    fit ``inline_limit`` bytes (``"mode": "inline"``), else is empty (``"ask"``).
    """
    _check(threshold, cell_chars)
    df = results.df.reset_index(drop=True)
    group_cols = [c for c in results.group_cols if c in df]
    scorers = [c[6:] for c in df.columns if c.startswith("score.")]
    inputs = [c for c in df.columns if c.startswith("input.")]
    variants: dict[tuple[Any, ...], int] = {}
    cases: dict[Any, int] = {}
    case_rows: list[list[Any]] = []
    cells: dict[tuple[int, int], list[Any]] = {}
    repeats: dict[int, list[int]] = {}  # first repeat's id -> every repeat's
    if inline_limit <= 0:  # no details: the matrix's columns are all it reads
        keep = {*group_cols, *inputs, "row", "repeat", "output", "score", "error",
                *(f"score.{s}" for s in scorers)}
        records = df[[c for c in df.columns if c in keep]].to_dict(orient="records")
    else:
        records = df.to_dict(orient="records")
    for i, rec in enumerate(records):
        vkey = tuple(_str(rec.get(c)) for c in group_cols)
        v = variants.setdefault(vkey, len(variants))
        ckey = rec.get("row", i)
        if ckey not in cases:
            cases[ckey] = len(cases)
            case_rows.append([_str(ckey), [_str(rec.get(c)) for c in inputs]])
        c = cases[ckey]
        if (c, v) in cells:
            cells[(c, v)][8] += 1
            repeats.setdefault(cells[(c, v)][2], [cells[(c, v)][2]]).append(i)
            continue
        out = _str(rec.get("output"))
        text = out if out is not None else ""
        more = int(len(text) > cell_chars)
        cells[(c, v)] = [c, v, i, text[:cell_chars] if more else text, more,
                         _num(rec.get("score"), 3),
                         [_num(rec.get(f"score.{s}"), 3) for s in scorers],
                         _str(rec.get("error")), 1, text[cell_chars:SEARCH_CHARS]]
    variant_list = []
    for vkey in variants:
        keys = dict(zip(group_cols, vkey, strict=True))
        variant_list.append({"label": _label(keys, group_cols), "keys": keys})
    explained = [s for s in scorers if f"explain.{s}" in df]
    details, mode = _details(results, records, list(cells.values()), threshold, inline_limit)
    for first, ids in repeats.items():
        if str(first) in details:
            details[str(first)]["repeats"] = repeat_list(records, ids)
    if mode == "inline":  # the search reads each detail's reply: no second copy
        for cell in cells.values():
            cell[9] = ""
    return {"v": VERSION, "kind": "explorer", "title": title,
            "threshold": float(threshold), "scale": SCORE_STOPS, "group_cols": group_cols,
            "inputs": [c[6:] for c in inputs], "scorers": scorers, "explained": explained,
            "variants": variant_list, "cases": case_rows,
            "cells": sorted(cells.values(), key=lambda cell: (cell[0], cell[1])),
            "mode": mode, "details": details}


def matrix_only(state: Mapping[str, Any]) -> dict[str, Any]:
    """An explorer state without its details (``"ask"``), each cut cell's ``rest`` taken
    from its detail's reply, so the search still reads past the cut."""
    details = state.get("details") or {}
    cells = []
    for cell in state.get("cells", []):
        reply = (details.get(str(cell[2])) or {}).get("reply")
        rest = (reply[len(cell[3]):SEARCH_CHARS] if cell[4] and not cell[9]
                and isinstance(reply, str) else cell[9])
        cells.append([*cell[:9], rest])
    return {**state, "cells": cells, "mode": "ask", "details": {}}


def repeat_list(records: Sequence[Mapping[str, Any]], ids: Sequence[int]
                ) -> list[dict[str, Any]]:
    """The repeats of one cell, for its panel: each one's repeat index, reply, score
    and error."""
    return [{"repeat": _num(records[i].get("repeat"), 0), "reply": _str(records[i].get("output")),
             "score": _num(records[i].get("score"), 3), "error": _str(records[i].get("error"))}
            for i in ids]


def _details(results: Any, records: list[dict[str, Any]], cells: list[list[Any]],
             threshold: float, limit: int) -> tuple[dict[str, Any], str]:
    """Every cell's detail while their JSON fits ``limit`` bytes; else none (``"ask"``).
    The first cells' sizes estimate the whole first, so a big run builds no details."""
    out: dict[str, Any] = {}
    size = 0
    if limit <= 0:
        return out, "ask"
    for k, cell in enumerate(cells):
        d = detail_state(cell_detail(results, cell[2], threshold=threshold,
                                     row=records[cell[2]]))
        size += len(json.dumps(d, ensure_ascii=False))
        if size > limit or (k == _SAMPLE and size / (k + 1) * len(cells) > limit):
            return {}, "ask"
        out[str(cell[2])] = d
    return out, "inline"
