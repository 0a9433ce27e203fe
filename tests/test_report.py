"""The demo's report: executed notebooks and HTML that renders offline, widgets included.

The report (quickstart + batch evaluation) is built once per session by
``notebook_support`` exactly as ``gptmagic demo --report`` builds it; here the
pages are opened in headless chromium from a loopback server and from
``file://``, and every request must stay on the machine.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest
from browser_support import artifacts_dir, chromium, serve_dir
from lazy import lazy
from notebook_support import js_cache, report

from gptmagic import cli
from gptmagic import report as rp

nbformat = lazy("nbformat")

pytestmark = pytest.mark.engine


@pytest.fixture
def built(request):
    return report(js_cache(request))


def test_report_files(built):
    out = built.out
    assert [p.name for p in built.notebooks] == list(rp.DEFAULT_NOTEBOOKS)
    assert [p.name for p in built.html] == ["01-quickstart.html", "06-batch-evaluation.html"]
    assert built.index == out / "index.html"
    assert (out / "data" / "geography.csv").is_file()  # the copies can be run again there
    for name in ("require.js", "embed-amd.js", "anywidget.js"):
        assert (out / rp.JS_FOLDER / name).stat().st_size > 1000, name
    index = built.index.read_text()
    for page in built.html:
        assert f'href="{page.name}"' in index
    for page in built.html:
        html = page.read_text()
        # Every script is local: no CDN for require.js, the widget manager or MathJax.
        srcs = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)
        assert srcs == [f"{rp.JS_FOLDER}/require.js"], srcs
        assert f"'{rp.JS_FOLDER}/embed-amd.js'" in html
        assert "mathjax" not in html.lower()
        assert 'type="application/vnd.jupyter.widget-state+json"' in html
    for nb_path in built.notebooks:
        nb = nbformat.read(nb_path, as_version=4)
        assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")
        assert nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]


def _off_machine(urls: list[str]) -> list[str]:
    bad = []
    for u in urls:
        p = urlparse(u)
        if p.scheme in ("data", "blob", "file"):
            continue
        if p.scheme in ("http", "https", "ws", "wss") and p.hostname in ("127.0.0.1", "::1",
                                                                      "localhost"):
            continue
        bad.append(u)
    return bad


def _open(browser, url: str, wait_for: str):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    requests: list[str] = []
    errors: list[str] = []
    failed: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    page.goto(url)
    page.wait_for_selector(wait_for, timeout=20_000)
    page.wait_for_load_state("networkidle", timeout=20_000)
    return page, requests, errors, failed


# A view drawn by the widget manager lives in .widget-subarea; the static HTML fallback
# (same gm- classes) does not, so these selectors only match real widget views.
HEATMAP = ".widget-subarea .gm-root.gm-heatmap"
COUNTER = ".widget-subarea .gm-root.gm-counter"
PROGRESS = ".widget-subarea .widget-hprogress"


def test_widgets_render_offline_in_chromium(built):
    quick = nbformat.read(built.out / "01-quickstart.ipynb", as_version=4)
    state = quick.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    heat = next(s["state"]["data"] for s in state.values()
                if s["model_name"] == "AnyModel" and s["state"]["data"].get("kind") == "heatmap")
    shots = artifacts_dir()
    with chromium() as browser, serve_dir(built.out) as url:
        page, requests, errors, failed = _open(browser, url + "01-quickstart.html", HEATMAP)
        assert not errors, errors
        assert not failed, failed
        assert not _off_machine(requests), _off_machine(requests)
        assert any(u.endswith(f"{rp.JS_FOLDER}/anywidget.js") for u in requests)
        # The heatmap: one coloured span per token of the saved state.
        tokens = page.locator(f"{HEATMAP} .gm-tok")
        assert tokens.count() == len(heat["choices"][0]["t"])
        assert "Neil Armstrong" in page.locator(HEATMAP).inner_text()
        assert tokens.first.evaluate("e => getComputedStyle(e).backgroundColor") not in (
            "", "rgba(0, 0, 0, 0)")
        # The token counter and a standard ipywidget (the evaluation's progress bar).
        assert "32 tokens" in page.locator(COUNTER).inner_text()
        assert page.locator(PROGRESS).count() == 1
        assert "12/12" in page.locator(".widget-subarea").last.inner_text()
        page.screenshot(path=str(shots / "report-quickstart.png"), full_page=True)
        least = min(range(len(heat["choices"][0]["lp"])),
                    key=lambda i: heat["choices"][0]["lp"][i] if heat["choices"][0]["lp"][i]
                    is not None else 0)
        tokens.nth(least).hover()
        page.wait_for_timeout(300)
        page.locator(HEATMAP).screenshot(path=str(shots / "report-heatmap.png"))
        page.close()

        page, requests, errors, failed = _open(browser, url + "06-batch-evaluation.html",
                                               PROGRESS)
        assert not errors and not failed and not _off_machine(requests)
        assert "54/54" in page.locator(".widget-subarea").first.inner_text()
        assert page.locator("img[src^='data:image/png']").count() == 1  # the Pareto plot
        page.screenshot(path=str(shots / "report-batch.png"), full_page=True)
        page.close()

        # The report also works opened as a file (no server).
        page, requests, errors, _ = _open(browser, (built.out / "index.html").as_uri(), "a")
        page.click("a[href='01-quickstart.html']")
        page.wait_for_selector(HEATMAP, timeout=20_000)
        assert not errors and not _off_machine(requests)
        page.close()
    for name in ("report-quickstart.png", "report-heatmap.png", "report-batch.png"):
        assert (shots / name).stat().st_size > 10_000


def test_demo_report_prints_paths_and_how_to_open(built, monkeypatch, capsys, tmp_path):
    calls = []

    def fake_build(out, html=True):
        calls.append((out, html))
        return built

    monkeypatch.setattr(rp, "build", fake_build)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "--report"]) == 0
    assert calls == [("report", True)]
    out = capsys.readouterr().out
    for p in [*built.notebooks, *built.html]:
        assert str(p) in out
    assert f"jupyter lab {built.out}" in out and str(built.index) in out
    assert re.search(r"Done in \d+ s\.", out)
    assert cli.main(["demo", "--report", "elsewhere", "--no-html"]) == 0
    assert calls[-1] == ("elsewhere", False)


def test_widget_js_is_cached_by_version(built, request, monkeypatch, tmp_path):
    cache = js_cache(request)
    folder = rp.widget_js(cache, log=lambda _: None)
    assert folder.parent.name.startswith(f"html-manager-{rp.HTML_MANAGER_VERSION}_anywidget-")
    # A second call reuses the folder and never runs npm.
    monkeypatch.setattr(rp.shutil, "which", lambda _: None)
    assert rp.widget_js(cache, log=lambda _: None) == folder
    with pytest.raises(rp.ConfigError, match="needs npm once"):
        rp.widget_js(tmp_path / "empty", log=lambda _: None)
