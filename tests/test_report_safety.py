"""A hostile reply in the offline HTML report: rendered by nbconvert, opened in chromium.

No kernel is needed: the notebook holds the outputs the magics would have shown
(``reply_bundle`` of a reply full of encoded link schemes, and a Markdown output
written by something other than our views), exported by ``gptmagic.report``
exactly as the demo exports it, then clicked in Debian chromium.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_support import artifacts_dir, chromium, serve_dir
from hostile_markdown import ENCODED_LINKS, SAFE_SCHEMES, browser_scheme, link_targets
from lazy import lazy

from gptmagic import report as rp
from gptmagic.core.types import Choice, Result
from gptmagic.views.reply import reply_bundle

nbformat = lazy("nbformat")

pytestmark = pytest.mark.browser

# Markdown that did not come through safe_markdown (another library's output): only
# the sanitiser stands between it and the page.
RAW = ("[raw](&#106;avascript:window.__pwned=1) <a href='javascript:window.__pwned=1'>a</a> "
       "<img src=x onerror='window.__pwned=1'> <b onclick='window.__pwned=1'>b</b> "
       "<script>window.__pwned=1</script> [ok](https://example.org/a?b=1&c=2)")


def _notebook(tmp: Path) -> Path:
    text = "\n\n".join(f"{i}. {link} after" for i, link in enumerate(ENCODED_LINKS, 1))
    data, meta = reply_bundle(Result("chat", "gpt-4o", [Choice(0, text, "stop")]))
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("%%chat\nuser: links please", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("display_data", data=data, metadata=meta),
                    nbformat.v4.new_output("display_data", data={"text/markdown": RAW,
                                                                "text/plain": RAW})]
    nb.cells = [cell]
    js = tmp / "js"
    js.mkdir()
    return rp.export_html(nb, tmp / "hostile.html", js, title="hostile")


def test_the_report_has_no_live_script_link(tmp_path):
    page_html = _notebook(tmp_path).read_text()
    outputs = page_html[page_html.index('data-mime-type="text/markdown"'):]
    bad = [t for t in link_targets(outputs) if browser_scheme(t[2]) not in SAFE_SCHEMES]
    assert bad == []
    assert "<img" not in outputs and "onclick" not in outputs
    assert 'href="https://example.org/a?b=1&amp;c=2"' in outputs  # safe links still work


def test_clicking_every_link_of_the_report_runs_nothing(tmp_path):
    _notebook(tmp_path)
    shot = artifacts_dir() / "report-hostile-links.png"
    with chromium() as browser, serve_dir(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        try:
            page.route("**/*", lambda route: route.abort()
                       if not route.request.url.startswith(url) else route.continue_())
            page.goto(url + "hostile.html")
            links = page.locator(".jp-OutputArea-output a[href]")
            assert links.count() >= 15  # most payloads are links, blocked ones
            protocols = links.evaluate_all("as => as.map(a => a.protocol)")
            assert set(protocols) <= {"http:", "https:", "mailto:"}, protocols
            page.screenshot(path=str(shot), full_page=True)
            for i in range(links.count()):
                if links.nth(i).get_attribute("href").startswith("#"):
                    links.nth(i).click()
            assert page.evaluate("window.__pwned") is None
        finally:
            page.close()
