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


@pytest.fixture
def fake(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    gptmagic.add_profile("fake", base_url=fake_server.url, default_model="fake-model")
    return fake_server


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
