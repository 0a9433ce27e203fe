"""Dollar amounts in real JupyterLab and Notebook 7: literal text, never MathJax maths.

A tester's ``%%chat`` reply read ``reasoning 8 tok 0.000016·cost0.000052`` in italic
maths: the summary line held two ``\\$`` amounts, marked turned both into ``$``, and
JupyterLab's MathJax 3 paired them. Here a real ``%%chat`` against the fake server
(gpt-5-mini reasons, so its line has a reasoning part and a cost), a reply bundle
with more amounts, a history table (text/html) and a counter's static HTML are
rendered by the front end itself, run in the page (trusted) and as outputs saved in
the notebook (untrusted: JupyterLab's sanitiser runs first). A control output with
``$x^2$`` proves MathJax ran on the page, so no ``mjx-container`` in ours means something.
Then a model's reply with ``$3 or $4`` shows them as typed (it was ``3𝑜𝑟4`` in maths),
and one with ``$$x^2$$`` is still typeset.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from browser_support import artifacts_dir, jupyter_server, notebook_page
from lazy import lazy

nbformat = lazy("nbformat")

pytestmark = pytest.mark.timeout(180)

NOTEBOOK = "dollars.ipynb"
KEY = "sk-fake-dollars-0123456789abcdef"
CHAT = ("%%chat -m fake:gpt-5-mini --api responses --reasoning-effort low "
        "--reasoning-summary auto\nuser: hi")
BUNDLES = """\
from decimal import Decimal
from gptmagic.catalog.pricing import Cost
from gptmagic.core.types import Choice, Result, Usage
from gptmagic.views import reply, tables
from gptmagic.views.widgets import state, static

def usd(x):
    return Cost(Decimal(0), Decimal(x), Decimal(x), source="test")

def bundles():
    res = Result("chat", "gpt-5-mini", [Choice(0, "Hello", "stop")],
                 Usage(30, 20, 50, cached_tokens=19, reasoning_tokens=8))
    parts = {"reasoning": usd("0.000016"), "cached": usd("0.000001")}
    note = "max_cost $0.50 would be exceeded: $0.49 spent"
    rows = [tables.HistoryRow(1, "user", None, "is $5 < $10?", 9, None)]
    counted = state.counter_state("user: what do $5 or $10 buy?", "gpt-4o", mode="chat",
                                  max_tokens=100)
    return [{"text/markdown": "control: $x^2$"},
            reply.reply_bundle(res, cost=usd("0.000052"), parts=parts, note=note)[0],
            tables.history_bundle(rows, thread="t", context_window=100, total=9)[0],
            {"text/html": static.counter_html(counted)}]
"""
#: Replies (the fake model echoes the user): single dollars are money, $$...$$ is maths.
MONEY = "%%chat -m fake:fake-model\nuser: The lunch costs $3 or $4 and the tip is $1."
MATHS = "%%chat -m fake:fake-model\nuser: The area is $$x^2$$ here."
VIEWS = BUNDLES + """
from IPython.display import display
for data in bundles():
    display(data, raw=True)
print("done")"""

#: What each of our outputs must show, as text.
LITERAL = ["$0.000016", "$0.000001", "$0.000052", "$0.50", "$0.49", "is $5 < $10?",
           "what do $5 or $10 buy?"]
AMOUNT = re.compile(r"\$\d+\.\d+")


def _write_notebook(root: Path, url: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    setup = textwrap.dedent(f"""\
        import os
        os.environ["FAKE_KEY"] = {KEY!r}
        %load_ext gptmagic
        import gptmagic
        gptmagic.add_profile("fake", base_url={url!r}, default_model="fake-model",
                             api_key_env="FAKE_KEY")""")
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (setup, CHAT, VIEWS)]
    saved = nbformat.v4.new_code_cell("# outputs saved earlier: untrusted, sanitised")
    made: dict[str, Any] = {}
    exec(BUNDLES, made)  # the same outputs, made here and saved in the file
    saved.outputs = [nbformat.v4.new_output("display_data", data=d) for d in made["bundles"]()]
    nb.cells.append(saved)
    nb.cells += [nbformat.v4.new_code_cell(src) for src in (MONEY, MATHS)]
    nbformat.write(nb, root / NOTEBOOK)


def _run(page: Any, n: int, prompt: str) -> Any:
    cell = page.locator(".jp-Notebook .jp-Cell").nth(n)
    cell.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    cell.locator(".jp-InputArea-prompt").filter(has_text=prompt).wait_for(timeout=60_000)
    return cell.locator(".jp-OutputArea-output")


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_dollar_amounts_render_as_text_not_maths(app: str, browser: Any, fake_server: Any,
                                                  tmp_path: Path) -> None:
    _write_notebook(tmp_path, fake_server.url)
    path = "lab/tree" if app == "lab" else "notebooks"
    with jupyter_server(app, tmp_path) as (url, token), notebook_page(
            browser, url, token, NOTEBOOK, path=path, height=1200,
            failure=f"jupyter-{app}-dollars-failure.png") as page:
        _run(page, 0, "[1]")
        chat = _run(page, 1, "[2]").filter(has_text="gpt-5-mini").last
        views = _run(page, 2, "[3]")
        views.filter(has_text="done").wait_for()
        # The control is typeset: MathJax has run on this page's outputs.
        views.first.locator("mjx-container").wait_for(timeout=30_000)
        page.wait_for_timeout(500)  # typesetting of the later outputs settles
        page.screenshot(path=str(artifacts_dir() / f"jupyter-{app}-dollars.png"),
                        full_page=True)
        saved = page.locator(".jp-Notebook .jp-Cell").nth(3).locator(".jp-OutputArea-output")
        ours = [chat, *(views.nth(i) for i in range(1, views.count() - 1)),
                *(saved.nth(i) for i in range(1, saved.count()))]
        assert len(ours) == 7
        assert saved.first.locator("mjx-container").count() == 1  # the control, sanitised
        ours[-1].scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts_dir() / f"jupyter-{app}-dollars-end.png"))
        for out in ours:
            assert out.locator("mjx-container, .MathJax").count() == 0, out.inner_html()
        # The %%chat reply's own line: a reasoning part and a cost, both as typed.
        line = chat.inner_text()
        assert "reasoning 8 tok $0.000016" in line, line
        assert len(AMOUNT.findall(line)) >= 2 and re.search(r"cost \$0\.\d+", line), line
        for group in (ours[1:4], ours[4:]):
            text = "\n".join(out.inner_text() for out in group)
            missing = [s for s in LITERAL if s not in text]
            assert missing == [], text
        # A model's reply: "$3 or $4" as typed (it was "3𝑜𝑟4" in maths), "$$x^2$$" typeset.
        money = _run(page, 4, "[4]").filter(has_text="fake-model").last
        maths = _run(page, 5, "[5]").filter(has_text="fake-model").last
        maths.locator("mjx-container").wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts_dir() / f"jupyter-{app}-dollars-replies.png"))
        assert money.locator("mjx-container, .MathJax").count() == 0, money.inner_html()
        assert "The lunch costs $3 or $4 and the tip is $1." in money.inner_text()
        assert maths.locator("mjx-container").count() == 1, maths.inner_html()
        assert "$$" not in maths.inner_text() and "The area is" in maths.inner_text()
