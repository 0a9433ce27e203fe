"""The columns of one row of the results table: what a job asked, what came back, what it
cost, the batch it went in, and, for a run with a schema or tools, the parsed reply and
the loop's calls."""

from __future__ import annotations

from typing import Any

import pandas as pd

from gptmagic.core.logprobs import mean_logprob
from gptmagic.eval.scorers_structured import jsonable

__all__ = ["DETAILS", "engine_seconds", "table_rows"]

#: Token counts a provider reports besides prompt and completion, each with its cost
#: (a part of ``cost``, not added to it): the summary sums them per configuration.
DETAILS = (("reasoning_tokens", "reasoning_cost"), ("cached_tokens", "cached_input_cost"),
           ("cache_write_tokens", "cache_write_cost"))


def _money(amount: Any) -> float | None:
    return None if amount is None else float(amount)


def _details(usage: Any, parts: dict[str, Any]) -> dict[str, Any]:
    """A row's reasoning, cached and cache-write tokens and what each cost (None: not
    reported, or no price)."""
    return {
        "reasoning_tokens": getattr(usage, "reasoning_tokens", None),
        "cached_tokens": getattr(usage, "cached_tokens", None),
        "cache_write_tokens": getattr(usage, "cache_write_tokens", None),
        "reasoning_cost": _money(parts.get("reasoning")),
        "cached_input_cost": _money(parts.get("cached_input")),
        "cache_write_cost": _money(parts.get("cache_write")),
    }


def engine_seconds(timings: Any) -> float | None:
    """The engine's own time on a call, in seconds: reading the prompt plus generating
    (llama.cpp's ``prompt_ms + predicted_ms``); None when the server sent no timings
    (a hosted model)."""
    if not isinstance(timings, dict):
        return None
    parts = [timings.get("prompt_ms"), timings.get("predicted_ms")]
    ms = [float(p) for p in parts
          if isinstance(p, int | float) and not isinstance(p, bool) and p >= 0]
    return sum(ms) / 1000 if len(ms) == 2 else None


def _compute(r: Any) -> float | None:
    """A row's engine seconds: a tool loop's summed over its model calls (None if any
    call has none)."""
    if not r.steps:
        return engine_seconds(r.timings.engine)
    each = [engine_seconds(s.result.timings.engine) for s in r.steps]
    return None if any(x is None for x in each) else sum(x for x in each if x is not None)


def _speed(completion_tokens: int | None, latency: float | None) -> float | None:
    """Completion tokens per second of the call's wall-clock latency."""
    if completion_tokens is None or not latency:
        return None
    return completion_tokens / latency


def _structured(job: Any, schema: bool, tools: bool) -> dict[str, Any]:
    """A row's ``parsed``, ``valid`` and ``schema_errors`` (a run with a schema) and its
    ``steps`` (a run with tools)."""
    r = job.result
    rec: dict[str, Any] = {}
    if schema:
        v = r.validation if r is not None else None
        rec["parsed"] = v.value if v is not None and v.valid else None
        rec["valid"] = pd.NA if v is None else v.valid
        rec["schema_errors"] = (None if v is None or v.valid else
                                f"refused: {v.refusal}" if v.refusal is not None
                                else "; ".join(v.errors))
    if tools:
        rec["steps"] = None if r is None or not job.extras.tools else [
            {"step": i, "name": c.name, "arguments": c.arguments,
             "args": None if c.args is None else jsonable(c.args), "output": c.output,
             "error": c.error} for i, step in enumerate(r.steps) for c in step.calls]
    return rec


def _row(j: Any, case: dict[str, Any], grid_cols: list[str]) -> dict[str, Any]:
    r = j.result
    rec: dict[str, Any] = {f"input.{k}": v for k, v in case.items()}
    rec.update({"row": j.row, "prompt": j.prompt, "model": j.model,
                **{k: j.grid.get(k) for k in grid_cols}, "repeat": j.repeat})
    rec["api"] = j.api
    rec["batch"] = j.batch
    if r is not None:
        u = r.usage  # a tool loop's: summed over its model calls
        lps = r.logprobs
        rec.update({
            "output": r.text, "finish_reason": r.finish_reason,
            "prompt_tokens": u.prompt_tokens if u else None,
            "completion_tokens": u.completion_tokens if u else None,
            "cost": _money(j.cost), **_details(u, j.parts),
            "latency": r.timings.total, "ttft": r.timings.ttft,
            "compute": _compute(r),
            "tokens_per_s": _speed(u.completion_tokens if u else None, r.timings.total),
            "mean_logprob": mean_logprob(lps) if lps else None,
            "cached": j.cached, "error": None, "error_type": None})
    else:
        rec.update({"output": None, "finish_reason": None, "prompt_tokens": None,
                    "completion_tokens": None, "cost": None,
                    **_details(None, {}), "latency": None, "ttft": None,
                    "compute": None, "tokens_per_s": None, "mean_logprob": None,
                    "cached": False,
                    "error": j.error, "error_type": j.error_type})
    return rec


def table_rows(jobs: list[Any], cases: list[dict[str, Any]],
               grid_cols: list[str]) -> pd.DataFrame:
    """One row per job: its inputs, grid point, output, tokens, cost, latency, engine
    seconds (``compute``: the embedded engine's own timings; None for a hosted model) and
    ``tokens_per_s`` (completion tokens over latency), error, and the
    ``batch`` it was answered in (None: live); ``parsed`` / ``valid`` /
    ``schema_errors`` when some prompt had a schema, ``steps`` when some had tools (a
    prompt without them: NA / None), ``pending`` when some call of a batch run has no
    answer yet (why, and how to get it; None for the others)."""
    schema = any(j.extras.schema is not None for j in jobs)
    tools = any(j.extras.tools for j in jobs)
    waiting = any(j.pending is not None for j in jobs)
    df = pd.DataFrame.from_records(
        [{**_row(j, cases[j.row], grid_cols), **_structured(j, schema, tools),
          **({"pending": j.pending} if waiting else {})} for j in jobs])
    if schema:
        df["valid"] = df["valid"].astype("boolean")
    return df
