"""The axes a run's configurations are weighed on against their score.

``cost`` (dollars), ``latency`` (the median seconds per call, as the client measured
them), ``tokens`` (prompt + completion) and ``compute`` (the embedded engine's own
seconds, from llama.cpp's timings; a hosted model reports none). One table of them
serves :meth:`~gptmagic.eval.results.EvalResults.plot`, ``pareto`` and ``recommend``,
so the three agree on what an axis means; the Pareto frontier and the plot's drawing
live here too. Pure: no I/O, matplotlib only when drawing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["AXES", "Axis", "axis", "call_values", "draw", "frontier"]


@dataclass(frozen=True)
class Axis:
    """One x axis: its summary column, how a group of calls adds up, its label."""

    name: str
    #: The summary() column plotted and ranked (lower is better).
    summary: str
    #: How recommend() reduces a group's calls: ``sum`` or ``median``.
    reduce: str
    #: The plot's x label, with its unit.
    label: str


AXES = {a.name: a for a in (
    Axis("cost", "total_cost", "sum", "total cost (USD)"),
    Axis("latency", "latency_p50", "median", "median latency (s)"),
    Axis("tokens", "total_tokens", "sum", "total tokens (prompt + completion)"),
    Axis("compute", "compute_total", "sum", "engine time, total (s)"),
)}


def axis(name: Any, param: str = "x") -> Axis:
    """The axis called ``name``; anything else is a clear error listing the choices."""
    found = AXES.get(name) if isinstance(name, str) else None
    if found is None:
        from gptmagic.errors import RequestError

        raise RequestError(f"{param}={name!r} is not an axis; choose one of "
                           f"{', '.join(repr(a) for a in AXES)}", param=param)
    return found


def call_values(df: pd.DataFrame, ax: Axis) -> pd.Series:
    """Each call's value on ``ax`` (NaN: unknown, as a hosted model's compute)."""
    if ax.name == "tokens":
        return df["prompt_tokens"].astype(float) + df["completion_tokens"].astype(float)
    column = {"cost": "cost", "latency": "latency", "compute": "compute"}[ax.name]
    return df[column].astype(float)


def frontier(summary: pd.DataFrame, x_col: str) -> pd.DataFrame:
    """The rows no other beats on both ``x_col`` (lower; missing ranks as worst, and
    stays missing in the table) and score (higher)."""
    s = summary.dropna(subset=["score"])
    rank = s.assign(_rank=s[x_col].astype(float).fillna(math.inf))
    rank = rank.sort_values(["_rank", "score"], ascending=[True, False])
    best, keep = -math.inf, []
    for idx, row in rank.iterrows():
        if row["score"] > best:
            keep.append(idx)
            best = row["score"]
    return s.loc[keep].reset_index(drop=True)


def _plain_label(text: str) -> str:
    """``text`` as matplotlib shows it literally: ``$`` would start mathtext (or raise),
    and a leading ``_`` hides a legend entry."""
    text = text.replace("$", r"\$")
    return "\u200b" + text if text.startswith("_") else text


def _draw_frontier(ax: Any, front: pd.DataFrame, x_col: str) -> None:
    """The frontier as the set of best trade-offs: each of its points ringed, joined by a
    staircase only between them (a lone point is a ring, not a line across the plot,
    which would read as a threshold). A point with no value on the axis is not drawn."""
    pairs = [(float(x), float(y)) for x, y in zip(front[x_col], front["score"], strict=True)
             if math.isfinite(float(x)) and math.isfinite(float(y))]
    # One artist, so one legend entry: rings for the points, steps-post between them
    # (from a point, the best score stays its score until the next, costlier one); grey,
    # as any colour of the cycle may be a configuration's.
    ax.plot([x for x, _ in pairs], [y for _, y in pairs], drawstyle="steps-post",
            color="0.3", alpha=0.8, linewidth=1.2, marker="o", markersize=15,
            markerfacecolor="none", markeredgewidth=1.4, zorder=2, label="Pareto frontier")


def draw(s: pd.DataFrame, labels: pd.Series, ax_: Axis, title: str, ax: Any) -> Any:
    """Score against ``ax_`` for the summary rows ``s`` (named by ``labels``), with the
    Pareto frontier; on ``ax`` or a new figure's Axes, which it returns."""
    import matplotlib.pyplot as plt

    x_col = ax_.summary
    front = frontier(s, x_col)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    markers = "osD^vP*Xph"
    for i, (x, y, label) in enumerate(zip(s[x_col].fillna(0), s["score"], labels,
                                          strict=True)):
        # Hollow, each its own shape and colour: configurations at the same point
        # stay visible on top of each other.
        ax.scatter([x], [y], zorder=3, s=70, marker=markers[i % len(markers)],
                   facecolors="none", edgecolors=f"C{i % 10}", linewidths=1.6,
                   label=_plain_label(label))
    _draw_frontier(ax, front, x_col)
    ax.set_xlabel(ax_.label)
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_ylabel("mean score")
    ax.margins(x=0.08, y=0.08)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
    return ax
