"""The results explorer in Debian chromium: the static HTML (no kernel, no network), the
widget in the harness, and ``res.explore()`` in real JupyterLab and Notebook 7.

The runs are real (the fake server); names, inputs and outputs hold XSS payloads
that would set ``window.__pwned``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from browser_support import artifacts_dir, harness_site, jupyter_server, notebook_page, serve_dir
from lazy import lazy
from test_explorer import CASES, PROMPTS, XSS, Exact, Short

import gptmagic
from gptmagic.views.explorer import explorer_state
from gptmagic.views.explorer import static as xs

nbformat = lazy("nbformat")

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

SHOTS = Path("/tmp/explorer-shots")


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / name))
    page.screenshot(path=str(artifacts_dir() / f"explorer-{name}"))


def _run() -> Any:
    res = gptmagic.evaluate(CASES, PROMPTS, ["fake:fake-model", "fake:other"],
                            scorers=[Exact(), Short()], progress=False,
                            params={"logprobs": True, "top_logprobs": 3})
    # Two variants answer case 0 differently: the diff has words to mark.
    res.df.loc[1, "output"] = "echo: the question 0 <b>changed</b>"
    return res


def _page(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.set_default_timeout(15_000)
    # No network: anything but the local server is refused.
    page.route("**/*", lambda route: route.abort()
               if not route.request.url.startswith(url) else route.continue_())
    return page


def test_static_explorer_clicks_filters_diffs_and_keys(fake, browser, tmp_path):
    res = _run()
    # Inside JupyterLab's (and nbconvert's) output area, whose `pre` breaks anywhere.
    (tmp_path / "x.html").write_text(
        "<!doctype html><meta charset=utf-8><style>.jp-OutputArea-output pre "
        "{ word-break: break-all; }</style><body><div class='jp-OutputArea-output'>"
        + xs.explorer_html(explorer_state(res)) + "</div>", encoding="utf-8")
    with serve_dir(tmp_path) as url:
        page = _page(browser, url)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "x.html")
        x = page.locator(".gm-explorer")
        x.locator(".gm-x-cell").first.wait_for()
        assert x.locator(".gm-x-cell").count() == 16
        assert x.locator(".gm-count").get_attribute("data-shown") == "4"
        # The colours: a pass is green, a fail red (the state's scale).
        assert x.locator(".gm-x-cell").first.evaluate(
            "e => getComputedStyle(e).backgroundColor") == "rgb(183, 225, 205)"
        # Click -> the panel: the request as the grammar writes it, the reply, the heatmap.
        x.locator(".gm-x-cell").nth(2).click()
        panel = x.locator(".gm-x-panel")
        assert "user:\nquestion 0" in panel.locator(".gm-x-request").text_content()
        assert panel.locator(".gm-x-reply").text_content() == "echo: question 0"
        assert panel.locator(".gm-heatmap .gm-tok").count() == 3
        assert "exact" in panel.locator(".gm-x-scores").text_content()
        # No scorer explained: no empty explanation column; the pass mark has a heading.
        assert panel.locator(".gm-x-scores th").all_text_contents() == ["scorer", "score",
                                                                        "result"]
        _shot(page, "static-panel.png")
        # Search, then the failing cases only, then grouping.
        search = x.locator(".gm-x-search")
        search.fill("question 1")
        page.wait_for_function("() => document.querySelector('.gm-count').dataset.shown === '1'")
        search.fill("")
        page.wait_for_function("() => document.querySelector('.gm-count').dataset.shown === '4'")
        x.locator("select").nth(1).select_option("fail")
        page.wait_for_function("() => document.querySelector('.gm-count').dataset.shown === '1'")
        assert "hostile" in x.locator(".gm-x-case").nth(1).text_content()
        x.locator("select").nth(1).select_option("all")
        x.locator("select").nth(3).select_option(label="kind")
        assert x.locator(".gm-x-group").all_text_contents() == ["kind = a (2)", "kind = b (2)"]
        x.locator("select").nth(3).select_option("")
        # Two cells side by side, with a word diff.
        page.keyboard.press("Escape")
        x.locator(".gm-x-cell").nth(0).click(modifiers=["Shift"])
        x.locator(".gm-x-cell").nth(1).click(modifiers=["Shift"])
        diff = panel.locator(".gm-x-diff")
        assert diff.locator(".gm-x-ins").all_text_contents() == ["the ", " <b>changed</b>"]
        assert diff.locator(".gm-x-del").count() == 0
        # Words break between words, not inside them ("C|anada" in JupyterLab).
        assert diff.locator(".gm-x-dtext").first.evaluate(
            "e => getComputedStyle(e).wordBreak") == "normal"
        assert panel.locator(".gm-x-same").count() == 0
        _shot(page, "static-diff.png")
        page.keyboard.press("Escape")
        x.locator(".gm-x-cell").nth(0).click(modifiers=["Shift"])
        x.locator(".gm-x-cell").nth(2).click(modifiers=["Shift"])
        assert panel.locator(".gm-x-same").text_content() == "the two replies are identical"
        # Keys: Esc closes; arrows move; Enter opens; / goes to the search.
        page.keyboard.press("Escape")
        assert panel.is_hidden()
        x.locator(".gm-x-cell").first.focus()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowRight")
        focused = page.evaluate("() => [document.activeElement.dataset.r,"
                                " document.activeElement.dataset.v]")
        assert focused == ["1", "1"]
        outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
        assert outline == "solid"  # the focus is visible
        page.keyboard.press("End")
        page.keyboard.press("Home")
        page.keyboard.press("End")
        assert page.evaluate("() => document.activeElement.dataset.r") == "3"
        page.keyboard.press("ArrowUp")
        page.keyboard.press("ArrowUp")
        page.keyboard.press("Enter")
        assert panel.locator(".gm-x-reply").text_content() == "echo: question 1"
        _shot(page, "static-keys.png")
        page.keyboard.press("Escape")
        assert panel.is_hidden()
        page.keyboard.press("/")
        assert page.evaluate("() => document.activeElement.className") == "gm-x-search"
        # Every payload stayed text.
        for i in range(x.locator(".gm-x-cell").count()):
            x.locator(".gm-x-cell").nth(i).click()
        assert page.evaluate("window.__pwned") is None
        assert page.locator("img").count() == 0
        assert errors == []
        page.close()


def test_the_widget_asks_the_kernel_for_details_it_does_not_carry(fake, browser):
    res = _run()
    state = explorer_state(res, inline_limit=0)
    assert state["mode"] == "ask"
    with harness_site() as url:
        page = _page(browser, url)
        page.goto(url + "harness.html")
        page.wait_for_function("() => window.gm && window.gm.ready")
        page.evaluate("(s) => gm.mount('explorer', {data: s})", state)
        # The kernel's side, as the widget's custom message handler answers.
        page.evaluate("""() => { const m = gm.mounts[0].model; m.sent = [];
            m.send = (msg) => { m.sent.push(msg); setTimeout(() => {
              for (const cb of m.handlers.get('msg:custom') || []) cb({type: 'detail',
                id: msg.id, detail: {reply: 'full reply ' + msg.id, request: 'user:\\nhi',
                scores: {}, usage: {}}}); }, 10); }; }""")
        page.locator(".gm-x-cell").nth(3).click()
        reply = page.locator(".gm-x-panel .gm-x-reply")
        reply.wait_for()
        assert reply.text_content() == "full reply 3"
        assert page.evaluate("gm.mounts[0].model.sent") == [{"type": "detail", "id": 3}]
        assert page.evaluate("window.__pwned") is None
        page.close()


def _hostile_run() -> Any:
    """Payloads in a model name and a data column's name; a long model name with a grid
    (the header's grid line); an output whose only match for a search is past the cut."""
    cases = [{f"col{XSS}": f"v{i}", "q": f"question {i}"} for i in range(3)]
    res = gptmagic.evaluate(cases, {"plain": "user: {q}"},
                            [f"fake:m{XSS}", "fake:smollm2-135m-instruct-q8-0-a-long-name"],
                            grid={"temperature": [0.0, 1.0]}, scorers=[Exact()],
                            progress=False)
    res.df.loc[0, "output"] = "filler " * 60 + "needle-past-the-cut"
    return res


def _check_hostile(page: Any, errors: list[str]) -> None:
    x = page.locator(".gm-explorer")
    x.locator(".gm-x-cell").first.wait_for()
    heads = x.locator(".gm-x-hcell[role=columnheader]")
    assert heads.count() == 4
    # The grid value has a line of its own, whole, under the (cut) prompt · model.
    for i in range(4):
        grid = heads.nth(i).locator(".gm-x-vgrid")
        assert grid.text_content() in ("temperature=0.0", "temperature=1.0")
        assert grid.evaluate("e => e.scrollHeight <= e.clientHeight + 1 && e.offsetHeight > 0 "
                             "&& e.getBoundingClientRect().bottom <= "
                             "e.parentElement.getBoundingClientRect().bottom + 1")
    assert "m<script>" in heads.first.get_attribute("title")  # the full label on hover
    assert f"col{XSS}: v0" in x.locator(".gm-x-case").nth(1).text_content()
    _shot(page, "hostile-names.png")
    # The search finds text past the cell's cut.
    x.locator(".gm-x-search").fill("needle-past-the-cut")
    page.wait_for_function("() => document.querySelector('.gm-count').dataset.shown === '1'")
    x.locator(".gm-x-search").fill("")
    page.wait_for_function("() => document.querySelector('.gm-count').dataset.shown === '3'")
    for i in range(x.locator(".gm-x-cell").count()):
        x.locator(".gm-x-cell").nth(i).click()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0
    assert errors == []


def test_static_explorer_keeps_hostile_model_and_column_names_as_text(fake, browser, tmp_path):
    res = _hostile_run()
    for name, limit in (("x.html", 10**9), ("ask.html", 0)):
        (tmp_path / name).write_text("<!doctype html><meta charset=utf-8><body>"
                                     + xs.explorer_html(explorer_state(res, inline_limit=limit)),
                                     encoding="utf-8")
    with serve_dir(tmp_path) as url:
        page = _page(browser, url)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "x.html")
        _check_hostile(page, errors)
        # No details and no kernel: the panel shows what the matrix carries, past the cut.
        page.goto(url + "ask.html")
        page.locator(".gm-x-cell").first.click()
        out = page.locator(".gm-x-panel .gm-x-pre").last.text_content()
        assert out.endswith("needle-past-the-cut")
        assert "kernel" in page.locator(".gm-x-panel").text_content()
        _shot(page, "ask-panel.png")
        assert page.evaluate("window.__pwned") is None and errors == []
        page.close()


def test_widget_keeps_hostile_model_and_column_names_as_text(fake, browser):
    state = explorer_state(_hostile_run())
    with harness_site() as url:
        page = _page(browser, url)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "harness.html")
        page.wait_for_function("() => window.gm && window.gm.ready")
        page.evaluate("(s) => gm.mount('explorer', {data: s})", state)
        _check_hostile(page, errors)
        page.close()


NOTEBOOK = "explore.ipynb"


def _notebook(root: Path, base_url: str) -> None:
    src = textwrap.dedent(f"""\
        import os
        os.environ["GPTMAGIC_CACHE"] = {str(root / "cache.sqlite")!r}
        import gptmagic
        gptmagic.add_profile("fake", base_url={base_url!r}, default_model="fake-model")
        XSS = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=1>"
        cases = [{{"q": f"question {{i}}", "expected": f"echo: question {{i}}"}}
                 for i in range(3)] + [{{"q": XSS, "expected": "x"}}]
        res = gptmagic.evaluate(cases, {{"plain": "user: {{q}}", "p" + XSS: "user: {{q}}!"}},
                                ["fake:fake-model"], scorers=[gptmagic.scorers.exact()],
                                progress=False)
        res.explore(inline_limit=0)""")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src), nbformat.v4.new_code_cell("res")]
    nbformat.write(nb, root / NOTEBOOK)


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_explore_in_jupyter(app, fake, browser, tmp_path):
    from test_browser_jupyter import _run_all

    _notebook(tmp_path, fake.url)
    path = "lab/tree" if app == "lab" else "notebooks"
    with jupyter_server(app, tmp_path) as (url, token), \
            notebook_page(browser, url, token, NOTEBOOK, path=path,
                          failure=f"explorer-{app}-failure.png") as page:
        _run_all(page)
        x = page.locator(".gm-explorer")
        x.nth(1).locator(".gm-x-cell").first.wait_for(timeout=60_000)
        assert x.count() == 2  # explore() and the rich display of res
        first = x.first
        assert first.locator(".gm-x-cell").count() == 8
        # Details are not in the state (inline_limit=0): the kernel sends them.
        first.locator(".gm-x-cell").nth(1).click()
        reply = first.locator(".gm-x-panel .gm-x-reply")
        reply.wait_for(timeout=20_000)
        assert reply.text_content() == "echo: question 0!"
        assert "user:\nquestion 0!" in first.locator(".gm-x-request").text_content()
        first.locator(".gm-x-cell").nth(0).focus()
        page.keyboard.press("ArrowDown")
        assert page.evaluate("() => document.activeElement.dataset.r") == "1"
        _shot(page, f"jupyter-{app}.png")
        assert page.evaluate("window.__pwned") is None


def test_explorer_in_the_offline_report(fake, request, browser, tmp_path):
    """``res`` displayed in a notebook run headless, exported by gptmagic.report, opened
    with no kernel and no network: the saved widget state draws the explorer, whose
    details (inline in the state) open on click."""
    from notebook_support import js_cache

    from gptmagic import report as rp

    src = tmp_path / "nb.ipynb"
    _notebook(tmp_path, fake.url)
    nb = nbformat.read(tmp_path / NOTEBOOK, as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("res.explore(inline_limit=0)", "res")
    nb.cells = nb.cells[:1]
    nbformat.write(nb, src)
    executed = rp.execute(src, tmp_path / "out" / "nb.ipynb")
    page_path = rp.export_html(executed, tmp_path / "out" / "nb.html",
                               rp.widget_js(js_cache(request), log=lambda _: None))
    with serve_dir(page_path.parent) as url:
        page = _page(browser, url)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "nb.html")
        x = page.locator(".gm-explorer")
        x.locator(".gm-x-cell").first.wait_for(timeout=30_000)
        assert x.count() == 1 and x.locator(".gm-x-cell").count() == 8
        x.locator(".gm-x-cell").nth(1).click()
        assert x.locator(".gm-x-reply").text_content() == "echo: question 0!"
        x.locator(".gm-x-search").fill("question 2")
        page.wait_for_function("() => document.querySelector('.gm-count').dataset.shown === '1'")
        x.locator(".gm-x-search").fill("")
        page.wait_for_function("() => document.querySelector('.gm-count').dataset.shown === '4'")
        page.keyboard.press("Escape")
        x.locator(".gm-x-cell").nth(0).click(modifiers=["Shift"])
        x.locator(".gm-x-cell").nth(1).click(modifiers=["Shift"])
        assert x.locator(".gm-x-diff .gm-x-ins").all_text_contents() == ["0!"]
        _shot(page, "report.png")
        for i in range(x.locator(".gm-x-cell").count()):
            x.locator(".gm-x-cell").nth(i).click()
        assert page.evaluate("window.__pwned") is None
        assert errors == []
        page.close()


def test_the_panel_shows_explanations_when_a_scorer_gave_them(fake, browser, tmp_path):
    res = _run()
    res.df["explain.exact"] = [f"because {i}{XSS}" for i in range(len(res.df))]
    (tmp_path / "e.html").write_text("<!doctype html><meta charset=utf-8><body>"
                                     + xs.explorer_html(explorer_state(res)), encoding="utf-8")
    with serve_dir(tmp_path) as url:
        page = _page(browser, url)
        page.goto(url + "e.html")
        x = page.locator(".gm-explorer")
        x.locator(".gm-x-cell").nth(2).click()
        scores = x.locator(".gm-x-panel .gm-x-scores")
        assert scores.locator("th").all_text_contents() == ["scorer", "score", "result",
                                                            "explanation"]
        assert scores.locator(".gm-x-explain").first.text_content().startswith("because ")
        assert page.evaluate("() => window.__pwned") is None
        page.close()
