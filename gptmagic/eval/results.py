"""The outcome of :func:`gptmagic.evaluate`: a tidy table and views over it.

One row per case × prompt × model × grid point × repeat, with the API it went
to, the output, finish reason, tokens (reasoning, cached and cache-write tokens
as the provider reported them), cost and its parts, latency, ``tokens_per_s``,
``compute`` (the embedded engine's own seconds; None for a hosted model), every score
(and ``explain.<scorer>`` when some scorer explained its scores) and the error if
any. (``cached`` says a row came from gptmagic's own store; ``cached_tokens`` are
prompt tokens the provider read from its prompt cache.)
A run with a schema adds ``parsed`` (the validated object), ``valid`` (NA for a
prompt without a schema) and ``schema_errors``; a run with tools adds ``steps``
(every function call of the loop as plain data), and its tokens and cost add up
all the loop's model calls.
:meth:`EvalResults.summary` aggregates per prompt × model (× API) × grid point, and
:meth:`EvalResults.pareto` keeps the frontier of quality against cost, latency,
tokens or compute (:mod:`gptmagic.eval.axes`). Re-scoring with
other scorers uses the stored outputs and never calls a model. ``batch`` is the
id of the Batch API batch a row was answered in (None: live); a batch run whose
batches have not answered every call yet adds ``pending`` (why a row has no answer
yet, and how to get it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from gptmagic.core.text import preview
from gptmagic.eval.axes import AXES, axis, call_values, draw, frontier
from gptmagic.eval.columns import DETAILS, table_rows
from gptmagic.eval.scorers_structured import jsonable

__all__ = ["EvalResults"]


async def _score(scorers: Sequence[Any], output: str, row: dict[str, Any],
                 result: Any) -> tuple[dict[str, float], dict[str, str | None], str | None]:
    """Each scorer's score and explanation (None: it gave none) for one output, and
    what went wrong, if anything."""
    from gptmagic.eval.scoring import Case, score_explained

    case = Case(output=output, row=row, result=result)
    scores: dict[str, float] = {}
    why: dict[str, str | None] = {}
    errors = []
    for s in scorers:
        try:
            got = await score_explained(s, case)
            scores[s.name], why[s.name] = float(got.value), got.explanation
        except Exception as e:  # noqa: BLE001 - a scorer's failure is recorded, not fatal
            scores[s.name], why[s.name] = math.nan, None
            errors.append(f"{s.name}: {e}")
    return scores, why, "; ".join(errors) or None


_COSTS = ("total_cost", "cost_per_correct", "cost", "best_overall_cost", "saving",
          *(cost for _, cost in DETAILS))
_SECONDS = ("latency_p50", "latency_p95", "compute_total", "latency", "compute",
            "best_overall_latency", "best_overall_compute")


def _significant(x: Any, digits: int = 4) -> Any:
    """``x`` to ``digits`` significant figures (a cost of $0.0000123456 stays visible)."""
    if not isinstance(x, float) or not math.isfinite(x) or x == 0:
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def _rounded(table: pd.DataFrame) -> pd.DataFrame:
    """Summary figures rounded for reading: scores 3 decimals, seconds to the
    millisecond, tokens per second to 1 decimal, costs 4 significant figures."""
    for col in table:
        if col in _COSTS:
            table[col] = table[col].map(_significant)
        elif col in _SECONDS:
            table[col] = table[col].round(3)
        elif col == "tokens_per_s":
            table[col] = table[col].round(1)
        elif col == "score" or col.startswith(("score.", "score_")) or col == "pass_rate":
            table[col] = table[col].round(3)
    return table


def _sum(col: pd.Series) -> float:
    """A column's total; NaN when no row has a value (unknown is not zero)."""
    return float(col.sum(min_count=1)) if col.notna().any() else math.nan


def _label(key: Any) -> str:
    """A configuration's group key as one line: ``p · gpt-x``."""
    return " · ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))


def _speed(ok: pd.DataFrame) -> float:
    """Completion tokens per second over the calls that have both figures (NaN if none)."""
    both = ok[ok["completion_tokens"].notna() & ok["latency"].notna()]
    seconds = float(both["latency"].sum())
    return float(both["completion_tokens"].sum()) / seconds if seconds > 0 else math.nan


#: The MIME type of a Jupyter widget's view.
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class EvalResults:
    """Results of a run: ``.df`` (one row per call) plus summaries and plots."""

    def __init__(self, df: pd.DataFrame, jobs: list[Any], cases: list[dict[str, Any]],
                 scorers: list[Any], group_cols: list[str]) -> None:
        self.df = df
        self._jobs = jobs
        self._cases = cases
        self.scorers = scorers
        self.group_cols = group_cols
        #: The run it came from as the store recorded it (:mod:`gptmagic.eval.runs`).
        self.run: Any = None
        #: ``viewer(results, **options)`` -> a displayable explorer; set by the public
        #: faces (:mod:`gptmagic.evaluation`), as eval may not import views.
        self.viewer: Any = None
        #: ``text_viewer(results)`` -> the explorer's text form: what a display asking for
        #: text only (a terminal) gets, with no widget, HTML or details built.
        self.text_viewer: Any = None

    @classmethod
    async def build(cls, jobs: list[Any], cases: list[dict[str, Any]],
                    scorers: list[Any]) -> EvalResults:
        grid_cols = sorted({k for j in jobs for k in j.grid})
        records = table_rows(jobs, cases, grid_cols)
        # A run over both APIs (not as a grid axis) groups by API too: one model can be
        # asked through two profiles, one of them set to the Responses API.
        by_api = ["api"] if len({j.api for j in jobs}) > 1 and "api" not in grid_cols else []
        self = cls(records, jobs, cases, scorers, ["prompt", "model", *by_api, *grid_cols])
        await self._apply_scores(scorers)
        return self

    async def _apply_scores(self, scorers: Sequence[Any]) -> None:
        if not scorers:
            return
        cols: dict[str, list[float]] = {f"score.{s.name}": [] for s in scorers}
        why: dict[str, list[str | None]] = {f"explain.{s.name}": [] for s in scorers}
        errs: list[str | None] = []
        for j in self._jobs:
            if j.result is None:
                for c in cols.values():
                    c.append(math.nan)
                for w in why.values():
                    w.append(None)
                errs.append(None)
                continue
            scores, reasons, err = await _score(scorers, j.result.text, self._cases[j.row],
                                                j.result)
            for s in scorers:
                cols[f"score.{s.name}"].append(scores[s.name])
                why[f"explain.{s.name}"].append(reasons[s.name])
            errs.append(err)
        for name, values in cols.items():
            self.df[name] = values
        weights = [float(getattr(s, "weight", 1.0)) for s in scorers]
        parts = self.df[list(cols)].to_numpy()
        total = sum(weights)
        self.df["score"] = [
            math.nan if any(math.isnan(v) for v in row) else
            sum(v * w for v, w in zip(row, weights, strict=True)) / total
            for row in parts]
        self.df["score_error"] = errs
        if any(w is not None for ws in why.values() for w in ws):
            for name, texts in why.items():  # every scorer's, once one explained
                self.df[name] = pd.Series(texts, index=self.df.index, dtype=object)

    async def _rescored(self, scorers: Sequence[Any]) -> EvalResults:
        new = EvalResults(self.df.drop(columns=[c for c in self.df
                                                if c.startswith(("score", "explain."))]),
                          self._jobs, self._cases, list(scorers), self.group_cols)
        await new._apply_scores(scorers)
        return new

    def rescore(self, scorers: Sequence[Any]) -> EvalResults:
        """The same outputs scored again with ``scorers`` (no model is called)."""
        from gptmagic.client.portal import get_portal
        from gptmagic.eval.scoring import ask_scorer_keys

        ask_scorer_keys(scorers)  # a judge's prompted key is asked here, not on the loop
        new = get_portal().run(self._rescored(scorers))
        new.viewer, new.text_viewer = self.viewer, self.text_viewer
        return new

    def _details(self) -> list[tuple[str, str]]:
        """The (tokens, cost) columns the summary sums: those some row reported."""
        return [pair for pair in DETAILS if pair[0] in self.df and self.df[pair[0]].notna().any()]

    def _scorer_cols(self) -> list[str]:
        return [c for c in self.df if c.startswith("score.")]

    def summary(self, threshold: float = 0.5) -> pd.DataFrame:
        """Per prompt × model (× API when a run uses both) × grid point: calls, how many
        came from the cache, errors, the score's mean and standard error, each scorer's
        mean (``score.<name>``), pass rate (score >= ``threshold``), total cost, cost
        per correct answer, the sums of reasoning, cached and cache-write tokens and of
        what each cost (the kinds some row reported; the costs are parts of
        ``total_cost``), p50/p95 latency, ``total_tokens`` (prompt + completion),
        ``tokens_per_s`` (completion tokens over the calls' summed latency) and
        ``compute_total`` (the embedded engine's own seconds; NaN for a hosted model).

        Figures are rounded for reading: scores and rates to 3 decimals, seconds
        to the millisecond, tokens per second to 1 decimal, costs to 4 significant
        figures (``.df`` keeps them whole).
        """
        df = self.df
        out = []
        for key, g in df.groupby(self.group_cols, dropna=False, sort=False):
            key = key if isinstance(key, tuple) else (key,)
            ok = g[g["error"].isna()]
            scores = ok["score"].dropna() if "score" in ok else pd.Series(dtype=float)
            passed = int((scores >= threshold).sum())
            cost = _sum(ok["cost"])
            rec = dict(zip(self.group_cols, key, strict=True))
            rec.update({
                "calls": len(g), "cached": int(g["cached"].fillna(False).astype(bool).sum()),
                "errors": int(g["error"].notna().sum()),
                **({"pending": int(g["pending"].notna().sum())} if "pending" in g else {}),
                "score": scores.mean() if len(scores) else math.nan,
                "score_se": (scores.std(ddof=1) / math.sqrt(len(scores))
                             if len(scores) > 1 else math.nan),
                **{c: ok[c].mean() for c in self._scorer_cols()},
                "pass_rate": passed / len(scores) if len(scores) else math.nan,
                "total_cost": cost,
                "cost_per_correct": cost / passed if passed and not math.isnan(cost)
                else math.nan,
                **{c: _sum(ok[c]) for pair in self._details() for c in pair},
                "latency_p50": ok["latency"].quantile(0.5) if len(ok) else math.nan,
                "latency_p95": ok["latency"].quantile(0.95) if len(ok) else math.nan,
                "total_tokens": _sum(call_values(ok, AXES["tokens"])),
                "tokens_per_s": _speed(ok),
                "compute_total": _sum(ok["compute"]) if "compute" in ok else math.nan,
            })
            out.append(rec)
        return _rounded(pd.DataFrame(out))

    def pareto(self, threshold: float = 0.5, *, x: str = "cost") -> pd.DataFrame:
        """The configurations no other beats on both ``x`` (lower) and score (higher).

        ``x``: ``"cost"`` (total cost), ``"latency"`` (median seconds per call),
        ``"tokens"`` (total tokens) or ``"compute"`` (the embedded engine's seconds); a
        configuration with no value there (unpriced, or hosted for compute) counts as
        the worst, and the table shows its value as NaN (unknown, not infinite).
        """
        return frontier(self.summary(threshold), axis(x).summary)

    def recommend(self, by: str, threshold: float, *, x: str = "cost") -> pd.DataFrame:
        """Routing advice: per group of cases (column ``by`` of the data), the cheapest
        prompt × model whose mean score reaches ``threshold``, its per-scorer means,
        and what that saves against running the best configuration overall on every
        case. Rounded as :meth:`summary`; a ``note`` column appears only when some
        group has no configuration that reaches ``threshold``, or one that reaches it
        has no value on ``x`` (an unpriced model: unknown cost is not free).

        ``x`` is what "cheapest" means: ``"cost"`` (the group's summed cost; columns
        ``cost``, ``best_overall_cost``, ``saving``), ``"latency"`` (median seconds per
        call), ``"tokens"`` (summed tokens) or ``"compute"`` (summed engine seconds);
        the columns are then named after it (``latency``, ``best_overall_latency``) and
        a configuration with no value there ranks last, as in :meth:`pareto`."""
        ax = axis(x)
        col = by if by in self.df else f"input.{by}"
        if col not in self.df:
            from gptmagic.errors import RequestError

            raise RequestError(f"no column {by!r} in the data; columns: "
                               f"{', '.join(c[6:] for c in self.df if c.startswith('input.'))}",
                               param="by")
        if "score" not in self.df:
            from gptmagic.errors import RequestError

            raise RequestError("recommend() needs scores: evaluate with scorers=[...]",
                               param="scorers")
        keys = self.group_cols
        ok = self.df[self.df["error"].isna()]
        ok = ok.assign(_x=call_values(ok, ax))
        # Unknown stays unknown on every axis (an unpriced model is not free, a hosted
        # one is not "no compute"): it ranks last, as in pareto(), and a note says so.
        reduce: Any = "median" if ax.reduce == "median" else lambda v: v.sum(min_count=1)
        overall = ok.groupby(keys, dropna=False)["score"].mean()
        best_key = overall.idxmax() if len(overall) else None
        per_scorer = self._scorer_cols()
        name, best_name = ax.name, f"best_overall_{ax.name}"
        rows = []
        for group, g in ok.groupby(col, dropna=False):
            stats = g.groupby(keys, dropna=False).agg(
                score=("score", "mean"), _x=("_x", reduce), n=("score", "size"),
                **{c: (c, "mean") for c in per_scorer})
            good = stats[stats["score"] >= threshold].sort_values(
                ["_x", "score"], ascending=[True, False], na_position="last")
            best_x = float(stats.loc[best_key, "_x"]) if best_key in stats.index else math.nan
            rec: dict[str, Any] = {by: group, "cases": int(g["row"].nunique())}
            if len(good):
                pick = good.index[0]
                pick = pick if isinstance(pick, tuple) else (pick,)
                rec.update(dict(zip(keys, pick, strict=True)))
                rec.update({"score": float(good.iloc[0]["score"]),
                            **{c: float(good.iloc[0][c]) for c in per_scorer},
                            name: float(good.iloc[0]["_x"]), best_name: best_x,
                            "saving": best_x - float(good.iloc[0]["_x"])})
            else:
                rec.update({k: None for k in keys})
                rec.update({"score": math.nan, **{c: math.nan for c in per_scorer},
                            name: math.nan, best_name: best_x,
                            "saving": math.nan, "note": f"no configuration reaches {threshold}"})
            unknown = [_label(k) for k in good[good["_x"].isna()].index]
            if unknown:
                rec["note"] = f"{ax.name} unknown, ranked last: {', '.join(unknown)}"
            rows.append(rec)
        table = _rounded(pd.DataFrame(rows))
        if "note" in table:  # only when some group has no configuration; blank elsewhere
            table["note"] = table["note"].fillna("")
        return table

    def describe(self) -> str:
        """``160 calls, 160 from cache, 0 errors``: what a run did, in one line (and how
        many calls wait in batches, if any do)."""
        cached = int(self.df["cached"].fillna(False).astype(bool).sum())
        errors = int(self.df["error"].notna().sum())
        text = f"{len(self.df)} calls, {cached} from cache, {errors} errors"
        pending = self._pending()
        return text + (f", {len(pending)} pending in batches" if len(pending) else "")

    def _pending(self) -> pd.DataFrame:
        return self.df[self.df["pending"].notna()] if "pending" in self.df else self.df[:0]

    def waiting(self) -> str | None:
        """The calls of a batch run with no answer yet, by why, each with what to do;
        None if every call has an answer or an error.

        ``300 of 1,000 calls pending: 300 in batch batch_1 (in_progress, ...)``"""
        pending = self._pending()
        if pending.empty:
            return None
        kinds = [f"{len(rows):,} {preview(str(why), 240)}"
                 for why, rows in pending.groupby("pending", sort=False)]
        return f"{len(pending):,} of {len(self.df):,} calls pending: " + "; ".join(kinds[:5])

    def failures(self) -> str | None:
        """The rows that failed, by kind, each with its first message; None if none did.

        ``10 of 10 calls failed: 10 BudgetExceeded (not sent: max_cost is set but ...)``"""
        failed = self.df[self.df["error"].notna()]
        if failed.empty:
            return None
        kinds = [f"{len(rows):,} {kind} ({preview(str(rows['error'].iloc[0]), 240)})"
                 for kind, rows in failed.groupby("error_type", sort=False, dropna=False)]
        return f"{len(failed):,} of {len(self.df):,} calls failed: " + "; ".join(kinds)

    def plot(self, threshold: float = 0.5, ax: Any = None, *, x: str = "cost") -> Any:
        """Quality against ``x`` with the Pareto frontier; returns the matplotlib Axes
        (needs matplotlib: ``gptmagic[plot]``).

        ``x``: ``"cost"`` (total USD, the default), ``"latency"`` (median seconds per
        call), ``"tokens"`` (total prompt + completion tokens) or ``"compute"`` (the
        embedded engine's own seconds, from its timings: local models only; a hosted
        configuration has none and is left out, as the title says). When every
        configuration is free (or unpriced) the cost axis would be all $0: the plot
        uses latency instead, and the title says so.

        Returning the Axes, as pandas does, lets Jupyter draw the figure once (a
        returned Figure was drawn twice: as the cell's value and by the inline
        backend). Each configuration has its own marker, named in a legend beside the
        plot, so labels never overlap.
        """
        if isinstance(threshold, str):
            from gptmagic.errors import RequestError

            raise RequestError(f"plot({threshold!r}): the first argument is the score "
                               f"threshold; name the axis: plot(x={threshold!r})",
                               param="threshold")
        chosen = axis(x)
        try:
            import matplotlib.pyplot  # noqa: F401 - checked here, used by draw()
        except ImportError:
            from gptmagic.errors import ConfigError

            raise ConfigError("plot() needs matplotlib: pip install 'gptmagic[plot]'") from None
        s = self.summary(threshold).dropna(subset=["score"])
        title = ""
        if chosen.name == "cost" and not bool((s["total_cost"].fillna(0) > 0).any()):
            chosen = AXES["latency"]
            title = "every model is free or unpriced: latency instead of cost"
        elif chosen.name == "compute":
            s, title = self._with_compute(s)
        labels = s[self.group_cols].astype(str).agg(" · ".join, axis=1)
        return draw(s, labels, chosen, title, ax)

    def _with_compute(self, s: pd.DataFrame) -> tuple[pd.DataFrame, str]:
        """The summary rows that have engine time, and a title naming those left out."""
        has = s["compute_total"].notna()
        if not has.any():
            from gptmagic.errors import RequestError

            raise RequestError("x='compute' is the embedded engine's own time, and no "
                               "configuration has it (a hosted model reports none): use "
                               "x='latency' to compare wall-clock time", param="x")
        left = int((~has).sum())
        return s[has], (f"{left} configuration{'s' * (left != 1)} with no engine time "
                        "(hosted) not shown" if left else "")

    def _flat(self) -> pd.DataFrame:
        """``df`` for a file: ``parsed`` and ``steps`` as JSON text (a model instance and a
        list of dicts have no cell of their own in CSV or Parquet)."""
        df = self.df.copy()
        for col in ("parsed", "steps"):
            if col in df:
                df[col] = [None if v is None else json.dumps(jsonable(v), ensure_ascii=False)
                           for v in df[col]]
        return df

    def to_csv(self, path: str, **kwargs: Any) -> None:
        """The table as CSV (``parsed`` and ``steps`` as JSON text)."""
        self._flat().to_csv(path, index=False, **kwargs)

    def to_parquet(self, path: str, **kwargs: Any) -> None:
        """The table as Parquet (needs pyarrow; ``parsed`` and ``steps`` as JSON text)."""
        try:
            self._flat().to_parquet(path, index=False, **kwargs)
        except ImportError as e:
            from gptmagic.errors import ConfigError

            raise ConfigError(f"to_parquet needs pyarrow: pip install pyarrow ({e})") from None

    def _repr_html_(self) -> str:
        return self.summary().to_html(index=False)

    def __repr__(self) -> str:
        return f"<EvalResults {self.describe()}, models {sorted(self.df['model'].unique())}>"

    # -- the explorer (views draw it; the public faces set ``viewer``) ------------------

    def explore(self, **options: Any) -> Any:
        """The results explorer: cases × variants coloured by score, filters, search,
        a side panel per call and a word diff of two (``gptmagic.views.explorer``).
        ``options``: ``threshold`` (a pass), ``cell_chars``, ``inline_limit``, ``title``."""
        if self.viewer is None:
            from gptmagic.errors import ConfigError

            raise ConfigError("these results have no explorer: run them with "
                              "gptmagic.evaluate (or set results.viewer = "
                              "gptmagic.views.explorer.explore)")
        return self.viewer(self, **options)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None
                          ) -> tuple[dict[str, Any], dict[str, Any]] | dict[str, Any]:
        """The explorer in a notebook (its widget, static HTML and text); the summary
        table and this repr without a viewer. Only the forms ``include`` / ``exclude``
        leave are built: asked for text alone (``include={"text/plain"}``), no widget,
        HTML or call details are."""
        rich = [m for m in (_WIDGET_VIEW, "text/html")
                if (not include or m in include) and (not exclude or m not in exclude)]
        if self.viewer is not None and not rich and self.text_viewer is not None:
            return {"text/plain": f"{self!r}\n{self.text_viewer(self)}"}, {}
        if self.viewer is not None:
            shown = self.viewer(self)
            bundle = shown._repr_mimebundle_(include=include, exclude=exclude)
            if bundle is not None:
                data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
                if "text/plain" in data:
                    data = {**data, "text/plain": f"{self!r}\n{data['text/plain']}"}
                return data, meta
        return {"text/html": self._repr_html_(), "text/plain": repr(self)}
