"""The widgets in real JupyterLab and Notebook 7, driven by Debian chromium.

A notebook written into a temporary root builds a logprob heatmap (from a
synthetic Result, no model call), a token view, a counter of a given prompt
and a live counter. The server and browser recipes are in browser_support and
the project notes on browser tests (cold-server race: kernel auto-start, wait for an idle
kernel that stays the same, retry Run All).
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    artifacts_dir,
    jupyter_server,
    notebook_page,
    wait_kernel_settled,
)
from hostile_markdown import ENCODED_LINKS
from lazy import lazy

from gptmagic.views.widgets import state as st

nbformat = lazy("nbformat")

pytestmark = pytest.mark.timeout(150)

NOTEBOOK = "widgets.ipynb"
TYPED = "system: be brief\nuser: hello there, how many tokens is this?"

# Page errors Notebook 7.6.5 logs by itself (TESTING.md).
KNOWN_ERRORS = {
    "notebook": ("reading 'schema'", "'filebrowser:open-path' not registered"),
    "lab": (),
}

CELLS = [
    """\
    import math
    import gptmagic
    from gptmagic import Choice, Result, TokenLogprob, TopLogprob

    def tok(text, p, prompt=False):
        lp = math.log(p)
        alts = [(" city", 0.6), (" town", 0.25), ("<img src=x onerror=alert(1)>", 0.1)]
        top = (TopLogprob(text, lp, text.encode()),
               *(TopLogprob(a, math.log((1 - p) * s), a.encode()) for a, s in alts))
        return TokenLogprob(text, lp, text.encode(), top, prompt=prompt)

    words = [" The", " capital", " of", " France", " is", " Paris", ".", " It", " is", " a",
             " city", " of", " <script>window.__pwned=1</script>", " light", " and", " art",
             ".", "\\n", "Next", " line", " is", " short", "."]
    probs = [0.8, 0.05, 0.9, 0.6, 0.97, 0.93, 0.7, 0.4, 0.8, 0.3, 0.2, 0.85, 0.002, 0.5, 0.6,
             0.07, 0.9, 0.3, 0.1, 0.6, 0.7, 0.04, 0.95]
    result = Result(kind="chat", model="gpt-4o", choices=[Choice(
        index=0, text="".join(words), finish_reason="stop",
        logprobs=[tok(w, p) for w, p in zip(words, probs)])])
    gptmagic.logprob_heatmap(result)""",
    """gptmagic.token_view("Hello, world 🙂 <b>x</b>", model="gpt-4o", compare="cl100k_base")""",
    """gptmagic.token_counter([{"role": "user", "content": "Say hi"}], model="gpt-4o")""",
    """gptmagic.token_counter(model="gpt-4o")""",
]


def _write_notebook(root: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(src)) for src in CELLS]
    nbformat.write(nb, root / NOTEBOOK)


RAN = """() => [...document.querySelectorAll('.jp-InputArea-prompt')]
    .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))"""


def _run_all(page: Any) -> None:
    """Run > Run All Cells; again if no cell shows it ran or is running within 10 s."""
    for _ in range(3):
        page.locator(".lm-MenuBar-itemLabel:text-is('Run')").click()
        page.locator(".lm-Menu-itemLabel:text-is('Run All Cells')").click()
        try:
            page.wait_for_function(RAN, timeout=10_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; retry
            page.keyboard.press("Escape")
    raise AssertionError("Run All did not start a cell in 3 attempts")


FULLY_VISIBLE = """(tip) => {
  const r = tip.getBoundingClientRect();
  let clip = {left: 0, top: 0, right: document.documentElement.clientWidth,
              bottom: window.innerHeight};
  // Ancestors that clip (overflow or paint containment); the body's overflow is the
  // viewport's.
  for (let a = tip.parentElement; a && a !== document.body; a = a.parentElement) {
    const cs = getComputedStyle(a);
    if (cs.overflowX !== 'visible' || cs.overflowY !== 'visible'
        || /paint|strict|content/.test(cs.contain)) {
      const b = a.getBoundingClientRect();
      clip = {left: Math.max(clip.left, b.left), top: Math.max(clip.top, b.top),
              right: Math.min(clip.right, b.right), bottom: Math.min(clip.bottom, b.bottom)};
    }
  }
  const ok = r.width > 0 && r.left >= clip.left - 0.5 && r.top >= clip.top - 0.5
    && r.right <= clip.right + 0.5 && r.bottom <= clip.bottom + 0.5;
  return {ok, tip: [r.left, r.top, r.right, r.bottom],
          clip: [clip.left, clip.top, clip.right, clip.bottom]};
}"""


DARK = {"@jupyterlab/apputils-extension/themes": {"theme": "JupyterLab Dark"}}


@pytest.mark.parametrize("kind", ["lab", "notebook", "lab-dark"])
def test_widgets_in_jupyter(kind: str, browser: Any, tmp_path: Path) -> None:
    _write_notebook(tmp_path)
    expected_live = st.counter_state(TYPED, "gpt-4o", mode="chat")["total"]
    app, _, theme = kind.partition("-")
    path = "lab/tree" if app == "lab" else "notebooks"
    with jupyter_server(app, tmp_path, settings=DARK if theme else None) as (url, token):
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(f"{url}{path}/{NOTEBOOK}?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=45_000)
            wait_kernel_settled(url, token, NOTEBOOK)
            _run_all(page)
            if theme:
                # The theme's CSS has loaded: the layout colour is dark.
                page.wait_for_function("""() => {
                    const c = getComputedStyle(document.body)
                        .getPropertyValue('--jp-layout-color0').trim();
                    const m = /^#([0-9a-f]{2})/i.exec(c);
                    return m !== null && parseInt(m[1], 16) < 0x60; }""", timeout=20_000)
            _check_widgets(page, kind, expected_live)
            if theme:  # the views take the theme's colours
                colour = page.locator(".gm-counter .gm-total").first.evaluate(
                    "e => getComputedStyle(e).color")
                rgb = [int(c) for c in colour[colour.index("(") + 1 : -1].split(",")[:3]]
                assert min(rgb) > 150, colour
        except Exception:
            page.screenshot(path=str(artifacts_dir() / f"jupyter-{kind}-failure.png"))
            raise
        finally:
            ctx.close()
    unexpected = [e for e in errors if not any(k in e for k in KNOWN_ERRORS[app])]
    assert unexpected == [], unexpected


def _check_widgets(page: Any, kind: str, expected_live: int) -> None:
    shots = artifacts_dir()
    # Every view renders its gm- root (the widget, not the static fallback).
    for root in (".gm-heatmap", ".gm-tokenview", ".gm-counter >> nth=1"):
        page.locator(root).first.wait_for(state="visible", timeout=45_000)
    assert page.locator(".gm-counter").count() == 2
    assert page.locator(".gm-root").count() == 4
    assert page.evaluate("window.__pwned") is None
    heat = page.locator(".gm-heatmap")
    assert heat.locator(".gm-tok").count() == 23
    # Hover the last token (the bottom line): the alternatives, fully visible.
    last = heat.locator(".gm-tok").last
    last.scroll_into_view_if_needed()
    last.hover()
    tip = heat.locator(".gm-tip")
    tip.wait_for(state="visible", timeout=5_000)
    text = tip.text_content()
    assert "·city" in text and "cover" in text and "<img·src=x·onerror=alert(1)>" in text
    seen = tip.evaluate(FULLY_VISIBLE)
    assert seen["ok"], seen
    page.screenshot(path=str(shots / f"jupyter-{kind}-heatmap.png"))
    # Keyboard focus: arrows move between tokens (not between Jupyter's cells).
    heat.locator(".gm-tok").first.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    focused = heat.evaluate("h => Number(h.querySelector('.gm-tok:focus').dataset.i)")
    assert focused > 1
    page.keyboard.press("ArrowUp")
    page.mouse.move(2, 2)
    seen = tip.evaluate(FULLY_VISIBLE)
    assert seen["ok"], seen
    assert "#1" in tip.text_content()
    # The live counter: typing makes the kernel recount.
    live = page.locator(".gm-counter").nth(1)
    area = live.locator("textarea")
    area.scroll_into_view_if_needed()
    area.click()
    page.keyboard.type(TYPED, delay=5)
    live.locator(".gm-total").filter(has_text=f"{expected_live} tokens").wait_for(timeout=20_000)
    assert live.locator(".gm-table tr.gm-row").count() == 2
    assert page.evaluate("document.activeElement.tagName") == "TEXTAREA"
    assert area.input_value() == TYPED  # Enter typed a line break, not a Jupyter shortcut
    # A recount that changes nothing: "counting…" ends when the kernel is idle again,
    # well before the front end's 5 s fallback.
    assert st.counter_state(TYPED + "\n", "gpt-4o", mode="chat") == st.counter_state(
        TYPED, "gpt-4o", mode="chat")
    page.keyboard.press("Enter")
    status = live.locator(".gm-status")
    page.wait_for_function("s => s.textContent === 'counting…'", arg=status.element_handle(),
                           timeout=2_000)
    t0 = time.monotonic()
    page.wait_for_function("s => s.textContent === ''", arg=status.element_handle(),
                           timeout=4_000)
    assert time.monotonic() - t0 < 4
    # The toolbar: a model entered in the widget makes the kernel recount with its encoding.
    field = live.locator(".gm-model-input")
    assert field.input_value() == "gpt-4o"
    field.fill("gpt-4")
    field.press("Enter")
    gpt4 = st.counter_state(TYPED, "gpt-4", mode="chat")
    assert gpt4["encoding"] == "cl100k_base"
    live.locator(".gm-headline").filter(has_text="gpt-4 · cl100k_base").filter(
        has_text=f"{gpt4['total']} tokens").wait_for(timeout=10_000)
    assert page.evaluate("document.activeElement.classList.contains('gm-model-input')")
    static = page.locator(".gm-counter").nth(0)
    assert static.locator("textarea").count() == 0
    assert static.locator(".gm-tools").count() == 0
    assert static.locator(".gm-total").text_content().endswith("tokens")
    page.screenshot(path=str(shots / f"jupyter-{kind}-counter.png"))


# -- a hostile reply rendered by JupyterLab's own Markdown renderer ------------------------------

HOSTILE = "hostile.ipynb"
HOSTILE_CELL = """\
from IPython.display import display
from gptmagic.core.types import Choice, Result
from gptmagic.views import reply, tables
links = LINKS
text = "\\n\\n".join(f"{i}. {link} after" for i, link in enumerate(links, 1))
data, meta = reply.reply_bundle(Result("chat", "gpt-4o", [Choice(0, text, "length")]),
                                note=text, max_tokens=9)
display(data, raw=True, metadata=meta)
display(reply.stream_bundle({0: text}, model="gpt-4o"), raw=True)
hist, _ = tables.history_bundle([tables.HistoryRow(1, "assistant", None, text, 3, None)],
                                thread="t", context_window=100, total=3)
display({"text/markdown": hist["text/markdown"]}, raw=True)
print("done")
""".replace("LINKS", repr(ENCODED_LINKS))


def test_hostile_reply_in_jupyterlab_has_no_live_link(browser: Any, tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(HOSTILE_CELL)]
    nbformat.write(nb, tmp_path / HOSTILE)
    shot = artifacts_dir() / "jupyter-lab-hostile-links.png"
    with jupyter_server("lab", tmp_path) as (url, token), notebook_page(
            browser, url, token, HOSTILE, height=1400,
            failure="jupyter-lab-hostile-failure.png") as page:
            _run_all(page)
            page.locator(".jp-OutputArea-output pre").filter(has_text="done").wait_for(
                timeout=45_000)
            outputs = page.locator(".jp-RenderedMarkdown")
            links = page.locator(".jp-RenderedMarkdown a[href]")
            # JupyterLab renders Markdown asynchronously: "done" (plain text) can be on
            # screen before the Markdown outputs above it are (seen under load).
            outputs.nth(2).wait_for(timeout=45_000)
            links.nth(14).wait_for(timeout=45_000)
            assert outputs.count() == 3
            assert links.count() >= 15  # the payloads are links, blocked ones
            # The browser's own reading of every href, after marked and entity decoding.
            seen = links.evaluate_all(
                "as => as.map(a => [a.protocol, a.getAttribute('href')])")
            live = [s for s in seen if s[0] not in ("http:", "https:", "mailto:")]
            assert live == [], live
            page.screenshot(path=str(shot), full_page=True)
            for i in range(links.count()):  # a click on each (they point into the page)
                link = links.nth(i)
                if link.get_attribute("href").startswith("#"):
                    link.scroll_into_view_if_needed()
                    link.click()
            assert page.evaluate("window.__pwned") is None

