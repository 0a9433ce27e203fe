"""What changed between two runs (:func:`compare`): each prompt's text diffed, each
variant's mean score and pass rate before and after, and the cases that flipped.

A *cell* is one case × variant (prompt × model × grid point × API, the results'
``group_cols``); with repeats its score is the mean of its repeats. Cells are matched
by the case's row index *and* its inputs (a row whose inputs changed is not the same
case, and is counted apart). A cell passes when its score is at least ``threshold``;
a cell with no score (its call failed, or no scorer) counts as failing. Everything
shown is user- or model-written, so the HTML escapes all of it.
"""

from __future__ import annotations

import difflib
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from gptmagic.eval.results import EvalResults
    from gptmagic.eval.store import Store

__all__ = ["Comparison", "compare", "diff_runs"]


@dataclass
class Comparison:
    """Run ``a`` against run ``b`` (``b`` the later one, usually)."""

    a: str  # each run's label: its name and id (or "results" for an unrecorded one)
    b: str
    threshold: float
    #: Prompt name -> its unified diff ("" when unchanged; None when a run's text is unknown).
    prompt_diffs: dict[str, str | None]
    #: Per variant: score_a, score_b, change, pass_rate_a, pass_rate_b.
    variants: pd.DataFrame
    fail_to_pass: int
    pass_to_fail: int
    only_in_a: list[str] = field(default_factory=list)  # variants, as labels
    only_in_b: list[str] = field(default_factory=list)
    changed_cases: int = 0  # rows whose inputs differ between the runs (not compared)
    score_a: float = math.nan  # the mean score of the variants both runs have
    score_b: float = math.nan
    #: The flipped cells of ``b`` (each repeat), with ``flip`` and ``score_before`` columns.
    flips: Any = None
    #: The flipped cells of both runs, a column each: ``run`` ("before" for ``a``,
    #: "after" for ``b``) leads the variant, ``input.flip`` says which way it went.
    both: Any = None

    def line(self) -> str:
        """One line: ``vs run-x (id): score 0.61 → 0.66 (+0.05), 3 cases fail→pass, 1
        pass→fail``."""
        change = self.score_b - self.score_a
        score = (f"score {_num(self.score_a)} → {_num(self.score_b)}"
                 + (f" ({change:+.2f})" if math.isfinite(change) else ""))
        return (f"vs {self.a}: {score}, {self.fail_to_pass} case"
                f"{'s' * (self.fail_to_pass != 1)} fail→pass, {self.pass_to_fail} pass→fail")

    def explore(self, **options: Any) -> Any:
        """The flipped cases in the results explorer: each variant's cell before (run
        ``a``) and after (run ``b``) side by side, the case's ``flip`` among its inputs
        (group or filter by it); ``options`` as :meth:`EvalResults.explore`."""
        shown = self.both if self.both is not None else self.flips
        options.setdefault("title", f"{self.a} → {self.b}: the cases that flipped")
        return shown.explore(**options)

    def __repr__(self) -> str:
        lines = [f"compare {self.a} → {self.b} (pass: score >= {self.threshold:g})"]
        for name, diff in self.prompt_diffs.items():
            if diff is None:
                lines.append(f"prompt {name!r}: text not recorded in one run")
            elif diff:
                lines += [f"prompt {name!r} changed:", *("  " + d for d in diff.splitlines())]
            else:
                lines.append(f"prompt {name!r}: unchanged")
        if len(self.variants):
            lines.append(self.variants.to_string(index=False))
        lines.append(self.line().split(": ", 1)[1])
        lines += [f"only in {self.a}: {v}" for v in self.only_in_a]
        lines += [f"only in {self.b}: {v}" for v in self.only_in_b]
        if self.changed_cases:
            lines.append(f"{self.changed_cases} case(s) with other inputs, not compared")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        out = [f"<div class='gptmagic-compare'><strong>compare {e(self.a)} → {e(self.b)}</strong> "
               f"(pass: score &gt;= {self.threshold:g})"]
        for name, diff in self.prompt_diffs.items():
            said = ("text not recorded in one run" if diff is None else
                    "changed" if diff else "unchanged")
            out.append(f"<div>prompt <code>{e(name)}</code>: {said}</div>")
            if diff:
                out.append(f"<pre>{e(diff)}</pre>")
        if len(self.variants):
            out.append(self.variants.to_html(index=False, escape=True, na_rep=""))
        out.append(f"<div>{e(self.line().split(': ', 1)[1])}</div>")
        out += [f"<div>only in {e(self.a)}: {e(v)}</div>" for v in self.only_in_a]
        out += [f"<div>only in {e(self.b)}: {e(v)}</div>" for v in self.only_in_b]
        return "".join(out) + "</div>"


def _num(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "n/a"


def _label(res: EvalResults) -> str:
    rec = res.run
    return f"{rec.name} ({rec.id})" if rec is not None else "results"


def _cells(res: EvalResults, cols: list[str]) -> pd.DataFrame:
    """One row per case × variant: its mean score and whether it passed."""
    df = res.df.copy()
    df["_score"] = df["score"] if "score" in df else math.nan
    df.loc[df["error"].notna(), "_score"] = math.nan
    df["_inputs"] = [json.dumps({c[6:]: str(r[c]) for c in df if c.startswith("input.")},
                                sort_keys=True) for _, r in df.iterrows()]
    for c in cols:
        df[c] = df[c].astype(str)
    return df.groupby(["row", *cols], dropna=False, sort=False).agg(
        score=("_score", "mean"), inputs=("_inputs", "first")).reset_index()


def _variant_stats(cells: pd.DataFrame, cols: list[str], threshold: float) -> pd.DataFrame:
    return cells.groupby(cols, sort=False).agg(
        score=("score", "mean"),
        pass_rate=("score", lambda s: float((s.fillna(-math.inf) >= threshold).mean())),
    ).reset_index()


def diff_runs(a: EvalResults, b: EvalResults, threshold: float = 0.5) -> Comparison:
    """Compare two results (usually two runs rebuilt by :func:`gptmagic.run`)."""
    import pandas as pd

    from gptmagic.eval.results import EvalResults

    cols = [c for c in a.group_cols if c in b.group_cols]
    ca, cb = _cells(a, cols), _cells(b, cols)
    sa, sb = _variant_stats(ca, cols, threshold), _variant_stats(cb, cols, threshold)
    both = sa.merge(sb, on=cols, how="outer", suffixes=("_a", "_b"), indicator=True)
    label = both[cols].astype(str).agg(" · ".join, axis=1)
    only_a = list(label[both["_merge"] == "left_only"])
    only_b = list(label[both["_merge"] == "right_only"])
    shared = both[both["_merge"] == "both"].drop(columns="_merge")
    variants = pd.DataFrame({
        **{c: shared[c] for c in cols},
        "score_a": shared["score_a"].round(3), "score_b": shared["score_b"].round(3),
        "change": (shared["score_b"] - shared["score_a"]).round(3),
        "pass_rate_a": shared["pass_rate_a"].round(3),
        "pass_rate_b": shared["pass_rate_b"].round(3)}).reset_index(drop=True)
    m = ca.merge(cb, on=["row", *cols], suffixes=("_a", "_b"))
    same = m["inputs_a"] == m["inputs_b"]
    m = m[same]
    pass_a = m["score_a"].fillna(-math.inf) >= threshold
    pass_b = m["score_b"].fillna(-math.inf) >= threshold
    flipped = m[pass_a != pass_b].assign(flip=[
        "fail→pass" if p else "pass→fail" for p in pass_b[pass_a != pass_b]])
    # The flipped cells' rows of b (every repeat), in b's order.
    key = b.df[["row", *cols]].astype(str).agg("\x00".join, axis=1)
    want = {"\x00".join(map(str, r)): (f, s) for r, f, s in zip(
        flipped[["row", *cols]].itertuples(index=False), flipped["flip"],
        flipped["score_a"], strict=True)}
    rows = [i for i, k in enumerate(key) if k in want]
    df = b.df.iloc[rows].reset_index(drop=True)
    df["flip"] = [want[key.iat[i]][0] for i in rows]
    df["score_before"] = [want[key.iat[i]][1] for i in rows]
    flips = EvalResults(df, [b._jobs[i] for i in rows] if len(b._jobs) == len(b.df) else [],
                        b._cases, b.scorers, b.group_cols)
    flips.run = b.run
    flips.viewer = b.viewer
    return Comparison(
        a=_label(a), b=_label(b), threshold=threshold, prompt_diffs=_prompt_diffs(a, b),
        variants=variants, fail_to_pass=int((flipped["flip"] == "fail→pass").sum()),
        pass_to_fail=int((flipped["flip"] == "pass→fail").sum()), only_in_a=only_a,
        only_in_b=only_b, changed_cases=int((~same).sum()),
        score_a=_mean(_within(ca, shared, cols)), score_b=_mean(_within(cb, shared, cols)),
        flips=flips, both=_before_and_after(a, b, flipped, cols))


def _before_and_after(a: EvalResults, b: EvalResults, flipped: pd.DataFrame,
                      cols: list[str]) -> EvalResults:
    """The flipped cells of ``a`` and of ``b`` (every repeat) as one result whose
    variants lead with ``run``: "before" / "after", so the explorer shows each
    variant's two cells next to each other; ``input.flip`` says which way it went."""
    import pandas as pd

    from gptmagic.eval.results import EvalResults

    way = {"\x00".join(map(str, r)): f for r, f in zip(
        flipped[["row", *cols]].itertuples(index=False), flipped["flip"], strict=True)}
    parts, jobs = [], []
    for res, when in ((a, "before"), (b, "after")):
        key = res.df[["row", *cols]].astype(str).agg("\x00".join, axis=1)
        rows = [i for i, k in enumerate(key) if k in way]
        df = res.df.iloc[rows].reset_index(drop=True)
        df.insert(0, "run", when)
        df["input.flip"] = [way[key.iat[i]] for i in rows]
        parts.append(df)
        jobs += [res._jobs[i] for i in rows] if len(res._jobs) == len(res.df) else []
    df = pd.concat(parts, ignore_index=True)
    both = EvalResults(df, jobs if len(jobs) == len(df) else [], b._cases, b.scorers,
                       ["run", *cols])
    both.viewer = b.viewer
    return both


def _within(cells: pd.DataFrame, shared: pd.DataFrame, cols: list[str]) -> pd.Series:
    """The scores of the cells of the variants both runs have (so the overall change
    compares like with like)."""
    return cells.merge(shared[cols], on=cols)["score"]


def _mean(s: pd.Series) -> float:
    return float(s.mean()) if s.notna().any() else math.nan


def _prompt_diffs(a: EvalResults, b: EvalResults) -> dict[str, str | None]:
    pa: dict[str, str] | None = a.run.prompts if a.run is not None else None
    pb: dict[str, str] | None = b.run.prompts if b.run is not None else None
    names = list(dict.fromkeys([*(pa or {}), *(pb or {}), *a.df["prompt"].unique(),
                                *b.df["prompt"].unique()]))
    out: dict[str, str | None] = {}
    for name in names:
        if pa is None or pb is None:
            out[name] = None
            continue
        before, after = pa.get(name, ""), pb.get(name, "")
        out[name] = "\n".join(difflib.unified_diff(
            before.splitlines(), after.splitlines(), f"a/{name}", f"b/{name}", lineterm=""))
    return out


def compare(a: Any, b: Any, threshold: float = 0.5,
            cache: str | Path | Store | None = None) -> Comparison:
    """What changed from run ``a`` to run ``b`` (each a run's name or id, or an
    :class:`~gptmagic.EvalResults`): prompts diffed, each variant's score and pass rate,
    the cases that flipped pass→fail and fail→pass (``.flips``; ``.explore()`` shows
    them), variants only in one run. ``cache`` is the file the runs are in."""
    from gptmagic.eval.runs import run

    ra = a if hasattr(a, "df") else run(str(a), cache)
    rb = b if hasattr(b, "df") else run(str(b), cache)
    return diff_runs(ra, rb, threshold)
