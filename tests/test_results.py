"""EvalResults views: the plot, summary() and recommend(), on runs against the fake server."""

from __future__ import annotations

import itertools
import textwrap

import pytest
from lazy import lazy
from notebook_support import isolated

import gptmagic
from gptmagic import report as rp

nbformat = lazy("nbformat")
matplotlib = lazy("matplotlib")

CASES = [{"q": f"question {i}", "expected": f"echo: question {i}"} for i in range(4)]
PROMPTS = {"plain $x$": "user: {q}", "_under": "system: Be brief.\nuser: {q}",
           "a$b": "user: {q} please"}


class Exact:
    name, weight, is_async = "exact", 1.0, False

    def __call__(self, case):
        return float(case.output == case.row["expected"])


class Short:
    name, weight, is_async = "short", 1.0, False

    def __call__(self, case):
        return float(len(case.output) < 18)


def free_run():
    """Two unpriced models: every cost is unknown, as with only free models."""
    return gptmagic.evaluate(CASES, PROMPTS, ["fake:free-a", "fake:free-b"],
                             scorers=[Exact(), Short()], progress=False)


# -- the plot -----------------------------------------------------------------------------------


def _overlaps(boxes):
    return [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]


def test_plot_of_free_models_uses_latency_and_its_labels_do_not_collide(fake, tmp_path):
    matplotlib.use("Agg")
    ax = free_run().plot()
    fig = ax.figure
    fig.savefig(tmp_path / "free.png")  # draws every text: '$' would raise or be maths
    # Before: x was total cost, all 0, so the axis was -0.04..0.04.
    lo, hi = ax.get_xlim()
    assert ax.get_xlabel() == "median latency (s)" and "latency instead of cost" in ax.get_title()
    assert lo > 0 and hi > lo
    renderer = fig.canvas.get_renderer()
    texts = ax.get_legend().get_texts()
    shown = [t.get_text() for t in texts]
    assert r"plain \$x\$ · free-a" in shown and r"a\$b · free-b" in shown
    assert "\u200b_under · free-a" in shown  # a leading '_' would hide the entry
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert _overlaps(boxes) == []
    assert all(b.height < 20 for b in boxes)  # one line each: no mathtext


def test_plot_of_priced_models_is_cost_against_score(fake):
    matplotlib.use("Agg")
    gptmagic.set_price("cheap", input_per_mtok="1", output_per_mtok="1")
    gptmagic.set_price("pricey", input_per_mtok="5", output_per_mtok="5")
    res = gptmagic.evaluate(CASES, "user: {q}", ["fake:cheap", "fake:pricey"],
                            scorers=[Exact()], progress=False)
    ax = res.plot()
    assert ax.get_xlabel() == "total cost (USD)" and ax.get_title() == ""
    xs = sorted(c.get_offsets()[0][0] for c in ax.collections)
    assert xs[0] > 0 and xs[1] == pytest.approx(5 * xs[0], rel=1e-6)


PLOT_CELLS = [
    """\
    import gptmagic
    gptmagic.add_profile("fake", base_url=URL, default_model="m")
    res = gptmagic.evaluate([{"q": "a"}, {"q": "b"}], "user: {q}", ["fake:x", "fake:y"],
                            scorers=[gptmagic.scorers.contains("echo")], progress=False)""",
    "res.plot()",
    "ax = res.plot()",
]


@pytest.mark.notebook
def test_plot_draws_one_figure_in_a_real_kernel(fake, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(c).replace("URL", repr(fake.url)))
                for c in PLOT_CELLS]
    nbformat.write(nb, tmp_path / "plot.ipynb")
    with isolated():
        ran = rp.execute(tmp_path / "plot.ipynb", tmp_path / "ran.ipynb", timeout=120)
    for c in ran.cells[1:]:
        images = [o for o in c.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, (c.source, [o.get("data", {}).keys() for o in c.outputs])


# -- summary() and recommend() ------------------------------------------------------------------


def test_summary_is_rounded_and_has_a_column_per_scorer(fake):
    res = free_run()
    s = res.summary()
    # Before: only the mean "score", and figures such as 0.6666666666666666.
    assert {"score.exact", "score.short"} <= set(s.columns)
    assert list(s.columns[:5]) == ["prompt", "model", "calls", "cached", "errors"]
    for col in ("score", "score_se", "score.exact", "score.short", "pass_rate",
                "latency_p50", "latency_p95"):
        values = s[col].dropna()
        assert (values == values.round(3)).all(), col
    row = s.iloc[0]
    whole = res.df[(res.df["prompt"] == row["prompt"]) & (res.df["model"] == row["model"])]
    assert row["score.short"] == round(whole["score.short"].mean(), 3)
    assert row["latency_p50"] == round(whole["latency"].quantile(0.5), 3)


def test_summary_costs_keep_four_significant_figures(fake):
    gptmagic.set_price("cheap", input_per_mtok="0.3333333", output_per_mtok="1.7777777")
    res = gptmagic.evaluate(CASES, "user: {q}", ["fake:cheap"], scorers=[Exact()],
                            progress=False)
    cost = res.summary()["total_cost"].iloc[0]
    exact = res.df["cost"].sum()
    assert cost == float(f"{exact:.4g}") != exact  # rounded, yet a tiny cost stays visible
    assert 0 < cost < 0.0001


def test_recommend_has_scorer_columns_and_no_nan_note(fake):
    cases = [{**c, "kind": "a" if i % 2 else "b"} for i, c in enumerate(CASES)]
    res = gptmagic.evaluate(cases, "user: {q}", ["fake:one"], scorers=[Exact(), Short()],
                            progress=False)
    rec = res.recommend("kind", threshold=0.5, x="latency")
    assert "note" not in rec.columns  # every group has a pick: no column of NaN
    unpriced = res.recommend("kind", threshold=0.5)  # the fake model has no price
    assert list(unpriced["note"]) == ["cost unknown, ranked last: prompt · one"] * 2
    assert {"score.exact", "score.short"} <= set(rec.columns)
    low = res.recommend("kind", threshold=2.0)  # nothing reaches it
    assert list(low["note"]) == ["no configuration reaches 2.0"] * 2
    assert rec["score"].tolist() == rec["score"].round(3).tolist()


def test_a_cached_run_says_so(fake, capsys):
    first = gptmagic.evaluate(CASES, "user: {q}", ["fake:m"], progress=True)
    assert first.describe() == "4 calls, 0 from cache, 0 errors"
    assert "from cache" not in capsys.readouterr().err
    again = gptmagic.evaluate(CASES, "user: {q}", ["fake:m"], progress=True)
    assert again.describe() == "4 calls, 4 from cache, 0 errors" and len(fake.requests) == 4
    assert "4 from cache" in capsys.readouterr().err  # the progress bar
    assert "4 from cache" in repr(again)
    assert again.summary()["cached"].tolist() == [4]
