"""The widget front ends (gptmagic/views/widgets/js) in chromium, without Jupyter.

A static harness page (tests/browser/harness.html) imports each ES module and
calls ``render({model, el})`` with a fake anywidget model that records
``set``/``save_changes`` calls. States come from gptmagic's own builders (tests/browser/states.py).
Screenshots go to ``artifacts_dir()``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from browser.states import XSS, big_heatmap_state, fixture
from browser_support import artifacts_dir, harness_site
from conftest_local import local_engine, local_url  # noqa: F401

from gptmagic.views.widgets import scale as _scale
from gptmagic.views.widgets import state as st

pytestmark = pytest.mark.timeout(120)


@dataclass
class Page:
    """A harness page and the errors it logged."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def mount(self, name: str, data: Any, *, text: str | None = None, live: bool | None = None,
              traits: dict[str, Any] | None = None, **opts: Any) -> int:
        """Render view ``name`` for state ``data`` (``text``/``live``/``traits``: the counter's)."""
        model: dict[str, Any] = {"data": data}
        if text is not None:
            model.update(text=text, live=True if live is None else live)
        model.update(traits or {})
        # A JSON string crosses to the page far faster than playwright's own serialisation.
        result = self.page.evaluate("([n, j, o]) => gm.mount(n, JSON.parse(j), o)",
                                    [name, json.dumps(model), opts])
        return result["id"]

    def js(self, expr: str, arg: Any = None) -> Any:
        return self.page.evaluate(expr, arg)

    def shot(self, name: str, **kw: Any) -> Path:
        path = artifacts_dir() / f"harness-{name}.png"
        self.page.screenshot(path=str(path), **kw)
        return path


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with harness_site() as url:
        yield url


@pytest.fixture
def hp(browser: Any, site: str) -> Iterator[Page]:
    ctx = browser.new_context(viewport={"width": 1000, "height": 700})
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    p = Page(page)
    page.on("pageerror", lambda e: p.errors.append(f"pageerror: {e}"))
    page.on("console",
            lambda m: p.errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.goto(f"{site}harness.html")
    page.wait_for_function("window.gm && window.gm.ready")
    yield p
    pwned = page.evaluate("window.__pwned")
    ctx.close()
    assert pwned is None, "a payload in the state ran as code"
    assert p.errors == []


def _rgb(css: str) -> tuple[int, ...]:
    inner = css[css.index("(") + 1 : css.index(")")]
    return tuple(int(float(x)) for x in inner.split(",")[:3])


def _inside(inner: dict[str, float], outer: dict[str, float], slack: float = 0.5) -> bool:
    return (inner["left"] >= outer["left"] - slack and inner["top"] >= outer["top"] - slack
            and inner["right"] <= outer["right"] + slack
            and inner["bottom"] <= outer["bottom"] + slack)


RECTS = """(i) => {
  const r = (n) => { const b = n.getBoundingClientRect();
    return {left: b.left, top: b.top, right: b.right, bottom: b.bottom}; };
  const host = gm.mounts[i].host;
  const tip = host.querySelector('.gm-tip');
  return {tip: tip.hidden ? null : r(tip), host: r(host),
          view: {left: 0, top: 0, right: document.documentElement.clientWidth,
                 bottom: window.innerHeight},
          text: tip.hidden ? '' : tip.textContent};
}"""


def _tip_fully_visible(hp: Page, mid: int) -> dict[str, Any]:
    rects = hp.js(RECTS, mid)
    assert rects["tip"] is not None, "no tooltip shown"
    assert _inside(rects["tip"], rects["view"]), rects
    assert _inside(rects["tip"], rects["host"]), rects
    return rects


# ---------------------------------------------------------------- heatmap


def test_heatmap_tokens_and_colours_match_the_python_scale(hp: Page) -> None:
    state = fixture("heatmap")
    c = state["choices"][0]
    hp.mount("heatmap", state)
    toks = hp.js("""() => [...document.querySelectorAll('.gm-heatmap .gm-tok')].map(s => ({
        i: Number(s.dataset.i), bg: getComputedStyle(s).backgroundColor,
        fg: getComputedStyle(s).color, cls: s.className, text: s.textContent}))""")
    assert len(toks) == len(c["t"])
    for tok in toks:
        lp = c["lp"][tok["i"]]
        if lp is None:
            assert "gm-nolp" in tok["cls"]
            continue
        want_bg = _scale.colour(math.exp(lp))
        want = tuple(int(want_bg[k : k + 2], 16) for k in (1, 3, 5))
        got = _rgb(tok["bg"])
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 1, (tok, want_bg)
        want_fg = (0, 0, 0) if _scale.text_colour(want_bg) == "#000" else (255, 255, 255)
        assert _rgb(tok["fg"]) == want_fg, tok
    # Echoed prompt tokens are styled apart; the rest are not.
    prompt = [t["i"] for t in toks if "gm-prompt" in t["cls"]]
    assert prompt == list(range(c["n_prompt"]))
    # Dark stops get white text.
    assert any(_rgb(t["fg"]) == (255, 255, 255) for t in toks)
    # Summary.
    summary = hp.js("() => document.querySelector('.gm-summary').textContent")
    assert f"tokens {c['summary']['tokens']}" in summary
    assert f"perplexity {c['summary']['perplexity']:.2f}" in summary
    chips = hp.js("() => document.querySelectorAll('.gm-chip').length")
    assert chips == len(c["summary"]["least"])
    # Legend with ticks.
    assert hp.js("() => document.querySelectorAll('.gm-legend-tick').length") == 5


def test_payloads_in_every_view_stay_text(hp: Page) -> None:
    for name in ("heatmap", "tokenview", "counter"):
        hp.mount(name, fixture({"tokenview": "tokens"}.get(name, name)))
    # The token view cuts payloads into tokens: each token is its own text node.
    hp.mount("counter", fixture("counter"), text=XSS[1])
    found = hp.js("""() => ({
        elements: document.querySelectorAll('#mounts script, #mounts img, #mounts style').length
            + [...document.querySelectorAll('#mounts b')]
                .filter(b => b.textContent === 'bold').length,
        text: document.getElementById('mounts').textContent,
        area: document.querySelector('textarea').value})""")
    assert found["elements"] == 0
    for payload in XSS:
        assert payload in found["text"] or payload.replace(" ", "·") in found["text"]
    assert found["area"] == XSS[1]
    # Alternatives in a tooltip are text too.
    hp.page.hover(".gm-heatmap .gm-tok[data-i='5']")
    tip = hp.js("() => document.querySelector('.gm-heatmap .gm-tip').textContent")
    assert "<img·src=x·onerror=alert(1)>" in tip
    assert hp.js("() => document.querySelectorAll('#mounts img').length") == 0


def test_heatmap_hover_shows_alternatives_fully_visible(hp: Page) -> None:
    state = fixture("heatmap")
    c = state["choices"][0]
    mid = hp.mount("heatmap", state, clip=True)
    hp.page.hover(".gm-tok[data-i='5']")
    rects = _tip_fully_visible(hp, mid)
    text = rects["text"]
    assert "·Paris" in text and "p = 93.0%" in text
    alts = c["top"][5]
    cover = sum(math.exp(lp) for _, lp in alts)
    assert f"top-{len(alts)} cover {cover * 100:.1f}%" in text
    rows = hp.js("() => [...document.querySelectorAll('.gm-alts tr')].map(r => r.className)")
    assert len(rows) == len(alts) and rows[0] == "gm-chosen"
    bars = hp.js("() => [...document.querySelectorAll('.gm-alt-bar')].map(b => b.style.width)")
    assert bars[0] == f"{math.exp(alts[0][1]) * 100:.4g}%".replace("%", "") + "%" or bars[0]
    hp.shot("heatmap-hover", full_page=True)
    # Moving out hides it.
    hp.page.mouse.move(5, 5)
    assert hp.js("() => document.querySelector('.gm-tip').hidden")


@pytest.mark.parametrize("where", ["right", "bottom", "bottom-clipped"])
def test_heatmap_tooltip_stays_inside_viewport_and_output_area(hp: Page, where: str) -> None:
    state = big_heatmap_state(150, top_k=5, seed=3)  # fits without scrolling the text box
    if where == "bottom-clipped":
        # The widget is the last thing on the page and its host clips (an output area).
        mid = hp.mount("heatmap", state, clip=True, style="margin-top: 30px")
    else:
        mid = hp.mount("heatmap", state, clip=True)
    # Tokens drawn in one box (a token may wrap over two lines).
    spans = hp.js("""(i) => [...gm.mounts[i].host.querySelectorAll('.gm-tok')]
        .filter(s => s.getClientRects().length === 1).map(s => {
        const b = s.getBoundingClientRect(); return [Number(s.dataset.i), b.right, b.bottom]; })""",
                  mid)
    if where == "right":
        idx = max(spans, key=lambda s: (s[1], -s[2]))[0]
    else:
        idx = max(spans, key=lambda s: (s[2], s[1]))[0]
        if where == "bottom":
            # Bring the last line of tokens to the bottom edge of the viewport.
            hp.js("""([m, i]) => { const s = document.querySelector(`.gm-tok[data-i="${i}"]`);
                const b = s.getBoundingClientRect();
                document.body.style.paddingBottom = '2000px';
                gm.mounts[m].host.style.marginTop = `${window.innerHeight - b.bottom - 8}px`;
                }""", [mid, idx])
        else:
            hp.js("""(i) => document.querySelector(`.gm-tok[data-i="${i}"]`)
                .scrollIntoView({block: 'center'})""", idx)
    hp.page.hover(f".gm-tok[data-i='{idx}']", timeout=5000)
    rects = _tip_fully_visible(hp, mid)
    side = hp.js("() => document.querySelector('.gm-tip').dataset.side")
    if where == "bottom":
        assert side == "above", rects
    hp.shot(f"heatmap-edge-{where}")


def test_heatmap_keyboard_focus_and_arrows(hp: Page) -> None:
    mid = hp.mount("heatmap", big_heatmap_state(300, top_k=3, seed=1))
    tabbable = hp.js("() => document.querySelectorAll('.gm-tok[tabindex=\"0\"]').length")
    assert tabbable == 1  # one tab stop (roving tabindex); arrows move inside
    hp.page.keyboard.press("Tab")  # the slider comes first
    for _ in range(3):
        if hp.js("() => document.activeElement.classList.contains('gm-tok')"):
            break
        hp.page.keyboard.press("Tab")
    assert hp.js("() => document.activeElement.dataset.i") == "0"
    _tip_fully_visible(hp, mid)
    hp.page.keyboard.press("ArrowRight")
    hp.page.keyboard.press("ArrowRight")
    assert hp.js("() => document.activeElement.dataset.i") == "2"
    text = _tip_fully_visible(hp, mid)["text"]
    assert "#2" in text and "cover" in text
    top_before = hp.js("() => document.activeElement.getBoundingClientRect().top")
    hp.page.keyboard.press("ArrowDown")
    after = hp.js("""() => ({i: Number(document.activeElement.dataset.i),
        top: document.activeElement.getBoundingClientRect().top})""")
    assert after["i"] > 2 and after["top"] > top_before
    hp.page.keyboard.press("ArrowUp")
    assert hp.js("() => Number(document.activeElement.dataset.i)") < after["i"]
    hp.page.keyboard.press("End")
    assert hp.js("() => Number(document.activeElement.dataset.i)") == 299
    _tip_fully_visible(hp, mid)
    hp.page.keyboard.press("Escape")
    assert hp.js("() => document.querySelector('.gm-tip').hidden")


def test_heatmap_threshold_outlines_tokens_below(hp: Page) -> None:
    state = fixture("heatmap")
    c = state["choices"][0]
    hp.mount("heatmap", state)

    def expected(t: float) -> list[int]:
        return [i for i, lp in enumerate(c["lp"])
                if i >= c["n_prompt"] and lp is not None and math.exp(lp) < t]

    def outlined() -> list[int]:
        return hp.js("() => [...document.querySelectorAll('.gm-tok.gm-below')]"
                     ".map(s => Number(s.dataset.i))")

    assert outlined() == expected(state["threshold"])
    for t in (0.5, 0.01, 1e-4, 1.0):
        hp.js("""(v) => { const s = document.querySelector('.gm-threshold input');
            s.value = String(Math.log10(v)); s.dispatchEvent(new Event('input')); }""", t)
        want = expected(t)
        assert outlined() == want, t
        count = hp.js("() => document.querySelector('.gm-count').textContent")
        assert count.startswith(f"{len(want)} of {c['summary']['tokens']} generated"), count
    # A drag with the mouse works too (the slider is a real control).
    hp.page.locator(".gm-threshold input").focus()
    hp.page.keyboard.press("Home")
    assert outlined() == []


def test_heatmap_choice_switch_chips_and_redraw(hp: Page) -> None:
    state = fixture("heatmap")
    hp.mount("heatmap", state)
    n0, n1 = (len(ch["t"]) for ch in state["choices"])
    assert hp.js("() => document.querySelectorAll('.gm-tok').length") == n0
    hp.page.click(".gm-choices button[data-choice='1']")
    assert hp.js("() => document.querySelectorAll('.gm-tok').length") == n1
    assert hp.js("() => document.querySelector('.gm-choices button[data-choice=\"1\"]')"
                 ".getAttribute('aria-pressed')") == "true"
    # The least likely chips focus their token (and show its tooltip).
    least = state["choices"][1]["summary"]["least"][0][0]
    hp.page.click(".gm-chip >> nth=0")
    assert hp.js("() => Number(document.activeElement.dataset.i)") == least
    assert not hp.js("() => document.querySelector('.gm-tip').hidden")
    # A new state from the kernel redraws; the chosen choice is kept.
    state2 = json.loads(json.dumps(state))
    state2["choices"][1]["t"] = state2["choices"][1]["t"][:5]
    hp.js("(s) => gm.mounts[0].model.push('data', s)", state2)
    assert hp.js("() => document.querySelectorAll('.gm-tok').length") == 5
    # Cleanup removes every listener it added.
    assert hp.js("() => { gm.mounts[0].cleanup(); return gm.mounts[0].model.listeners(); }") == 0


def test_heatmap_partial_tokens_and_newlines(hp: Page) -> None:
    state = fixture("heatmap")
    c = state["choices"][0]
    hp.mount("heatmap", state)
    parts = hp.js("""() => [...document.querySelectorAll('.gm-tok.gm-partial')].map(s =>
        [Number(s.dataset.i), s.querySelector('.gm-hex').textContent])""")
    assert parts == c["partial"]
    hp.page.hover(f".gm-tok[data-i='{c['partial'][0][0]}']")
    tip = hp.js("() => document.querySelector('.gm-tip').textContent")
    assert f"bytes {c['partial'][0][1]}" in tip
    # Joining the drawn tokens gives the text back (the newline marker aside).
    text = hp.js("""() => [...document.querySelectorAll('.gm-tok')].map(s =>
        s.classList.contains('gm-partial') ? '' : s.textContent.replace('↵', '')).join('')""")
    assert text == "".join(c["t"])


@pytest.mark.parametrize(("state", "why"), [
    ({"v": 2, "kind": "heatmap", "choices": []}, "version 2"),
    ({"v": 1, "kind": "counter"}, "kind counter"),
    (None, "no state"),
])
@pytest.mark.parametrize("name", ["heatmap", "tokenview", "counter"])
def test_unknown_state_is_refused(hp: Page, name: str, state: Any, why: str) -> None:
    if name == "counter" and state and state["kind"] == "counter":
        state = {"v": 1, "kind": "heatmap"}
        why = "kind heatmap"
    hp.mount(name, state)
    msg = hp.js("() => document.querySelector('.gm-refuse').textContent")
    assert why in msg


# ---------------------------------------------------------------- token view


def _ws(piece: str) -> str:
    return piece.replace(" ", "·").replace("\t", "→\t").replace("\n", "↵\n")


PANE_TEXT = """(k) => [...document.querySelectorAll('.gm-pane')[k].querySelectorAll('.gm-tok')]
    .map(s => s.textContent)"""


def test_tokenview_panes_hover_partial_and_whitespace(hp: Page) -> None:
    state = fixture("tokens")
    mid = hp.mount("tokenview", state, clip=True)
    panes = hp.js("""() => [...document.querySelectorAll('.gm-pane')].map(p => {
        const b = p.getBoundingClientRect();
        return {left: b.left, right: b.right, top: b.top,
                label: p.querySelector('.gm-pane-label').textContent,
                count: p.querySelector('.gm-count').textContent}; })""")
    assert len(panes) == 2
    assert panes[1]["left"] >= panes[0]["right"] and panes[1]["top"] == panes[0]["top"]
    for k, (pane, got) in enumerate(zip(state["panes"], panes, strict=True)):
        assert got["label"] == pane["label"]
        assert got["count"] == f"{pane['count']} tokens"
        # Every piece drawn as it is (multi-byte characters whole); partial ones as hex.
        hexes = dict(pane["partial"])
        want = [hexes.get(i, p) for i, p in enumerate(pane["pieces"])]
        want = [w.replace("\n", "↵\n") for w in want]
        assert hp.js(PANE_TEXT, k) == want
    colours = hp.js("""() => [...document.querySelectorAll('.gm-pane')[0]
        .querySelectorAll('.gm-tok')].slice(0, 4).map(s => getComputedStyle(s).backgroundColor)""")
    assert colours[0] == colours[2] != colours[1] == colours[3]
    assert " 🙂" in state["panes"][0]["pieces"] and "本" in state["panes"][1]["pieces"]
    # Hover shows the id; keyboard focus too; a partial token shows its bytes.
    first, second = state["panes"]
    hp.page.hover(".gm-pane[data-pane='0'] .gm-tok[data-i='2']")
    tip = _tip_fully_visible(hp, mid)["text"]
    assert f"id {first['ids'][2]}" in tip
    part, hexed = second["partial"][0]
    hp.page.focus(f".gm-pane[data-pane='1'] .gm-tok[data-i='{part}']")
    hp.page.mouse.move(1, 1)
    tip = _tip_fully_visible(hp, mid)["text"]
    assert f"id {second['ids'][part]}" in tip and f"bytes {hexed}" in tip
    hp.page.keyboard.press("ArrowRight")
    assert f"id {second['ids'][part + 1]}" in _tip_fully_visible(hp, mid)["text"]
    hp.shot("tokenview", full_page=True)
    # Whitespace toggle: · for space, → for tab, ↵ before a line break.
    hp.page.check(".gm-ws-toggle")
    drawn = hp.js(PANE_TEXT, 0)
    assert drawn == [_ws(p) for p in first["pieces"]]
    assert "→\t" in drawn and "↵\n" in drawn and "·world" in drawn
    hp.shot("tokenview-whitespace", full_page=True)
    hp.page.uncheck(".gm-ws-toggle")
    assert hp.js(PANE_TEXT, 0)[2] == first["pieces"][2]


def test_tokenview_approximate_pane_shows_its_note(hp: Page) -> None:
    state = fixture("tokens")
    state["panes"][1].update(exact=False, note="unknown model 'x': estimated with o200k_base")
    hp.mount("tokenview", state)
    head = hp.js("() => document.querySelectorAll('.gm-pane-head')[1].textContent")
    assert "approximate" in head and "estimated with o200k_base" in head


# ---------------------------------------------------------------- counter


def test_counter_static_table_fill_and_cost(hp: Page) -> None:
    data = fixture("counter")
    hp.mount("counter", data, text="", live=False)  # a counter of a given prompt
    got = hp.js("""() => ({
        area: document.querySelectorAll('textarea, .gm-tools, input').length,
        rows: [...document.querySelectorAll('.gm-table tbody tr')].map(r =>
            [...r.children].map(td => td.textContent)),
        total: document.querySelector('.gm-total').textContent,
        fill: document.querySelector('.gm-fill-label').textContent,
        bar: document.querySelector('.gm-fill-bar').style.width,
        cost: document.querySelector('.gm-cost').textContent,
        source: document.querySelector('.gm-source').textContent})""")
    assert got["area"] == 0
    assert got["total"] == f"{data['total']} tokens"
    assert [r[:7] for r in got["rows"][: len(data["rows"])]] == [
        [role, name or "", str(c), str(n), str(o), str(c + n + o), preview]
        for role, name, c, n, o, preview in data["rows"]
    ]
    assert got["rows"][-2][0] == "reply priming" and got["rows"][-2][5] == "3"
    assert got["rows"][-1][0] == "total" and got["rows"][-1][5] == str(data["total"])
    assert f"{data['total']} of 128,000 context tokens ({data['fill'] * 100:.2f}%)" in got["fill"]
    assert "max output 16,384" in got["fill"]
    assert got["bar"].endswith("%")
    for key in ("low", "expected", "high"):
        assert f"${data['cost'][key]}" in got["cost"]
    assert "+256 completion" in got["cost"]
    assert data["cost"]["source"] in got["source"]
    # Error and approximation note.
    bad = dict(data, error="model 'foo' is unknown; pass encoding=", exact=False,
               note="cl100k_base used as an approximation")
    hp.js("(s) => gm.mounts[0].model.push('data', s)", bad)
    shown = hp.js("() => [document.querySelector('.gm-error').textContent,"
                  " document.querySelector('.gm-approx').textContent]")
    assert shown[0] == bad["error"]
    assert "approximate" in shown[1] and bad["note"] in shown[1]
    hp.shot("counter-static", full_page=True)
    # The state of a failed count (the builder's own): the message, no number.
    failed = st.error_counter_state("gpt-4o", "line 2: unknown role 'usr:'; use user: or system:")
    hp.js("(s) => gm.mounts[0].model.push('data', s)", failed)
    assert hp.js("() => document.querySelector('.gm-error').textContent") == failed["error"]
    assert hp.js("() => document.querySelector('.gm-total').textContent") == "– tokens"


def test_live_counter_debounces_and_keeps_focus(hp: Page) -> None:
    text_state = st.counter_state("", "gpt-4o", mode="chat")  # what the live form starts with
    hp.mount("counter", text_state, text="")
    area = hp.page.locator("textarea")
    area.click()
    typed = "user: hello there, how many tokens is this?"
    # Type in the page, one character every 20 ms (faster than the 150 ms debounce),
    # as real input events that move the caret.
    hp.js("""(t) => new Promise((done) => { let k = 0; const id = setInterval(() => {
        document.execCommand('insertText', false, t[k++]);
        if (k === t.length) { clearInterval(id); done(); } }, 20); })""", typed)
    calls = hp.js("() => ({sets: gm.mounts[0].model.sets.length, saves: gm.mounts[0].model.saves})")
    assert calls == {"sets": 0, "saves": 0}, calls
    assert hp.js("() => document.querySelector('.gm-status').textContent") == "counting…"
    hp.page.wait_for_function("gm.mounts[0].model.saves >= 1", timeout=3000)
    hp.page.wait_for_timeout(300)
    model = hp.js("() => ({sets: gm.mounts[0].model.sets, saves: gm.mounts[0].model.saves})")
    assert model["saves"] == 1 and model["sets"] == [["text", typed]]
    assert hp.js("() => document.querySelector('.gm-root').classList.contains('gm-counting')")
    # The kernel recounts and replaces data: the count updates, focus and caret stay.
    recount = st.counter_state(typed, "gpt-4o", mode="chat")
    hp.js("(s) => gm.mounts[0].model.push('data', s)", recount)
    got = hp.js("""() => ({total: document.querySelector('.gm-total').textContent,
        rows: document.querySelectorAll('.gm-table tr.gm-row').length,
        status: document.querySelector('.gm-status').textContent,
        focused: document.activeElement === document.querySelector('textarea'),
        caret: document.querySelector('textarea').selectionStart})""")
    assert got == {"total": f"{recount['total']} tokens", "rows": 1, "status": "",
                   "focused": True, "caret": len(typed)}
    # A recount that changes nothing sends no data: the kernel going idle ends "counting…".
    area.press("End")
    area.type(" ")
    hp.page.wait_for_function("gm.mounts[0].model.saves >= 2", timeout=3000)
    status = "() => document.querySelector('.gm-status').textContent"
    hp.js("() => gm.mounts[0].model.kernelStatus('busy')")
    assert hp.js(status) == "counting…"
    hp.js("() => gm.mounts[0].model.kernelStatus('idle')")
    assert hp.js(status) == ""
    # Editing in the middle keeps the caret where it is through a redraw.
    area.press("Home")
    area.press("ArrowRight")
    area.type("X")
    hp.page.wait_for_function("gm.mounts[0].model.saves >= 3", timeout=3000)
    hp.js("(s) => gm.mounts[0].model.push('data', s)", dict(text_state, total=12))
    assert hp.js("() => document.querySelector('textarea').selectionStart") == 2
    hp.shot("counter-live")


SAVES = "() => ({sets: gm.mounts[0].model.sets, saves: gm.mounts[0].model.saves})"


def test_live_counter_toolbar_writes_model_and_max_tokens(hp: Page) -> None:
    start = st.counter_state("user: hi", "gpt-4o", mode="chat")
    hp.mount("counter", start, text="user: hi", traits={"model": "gpt-4o", "max_tokens": None})
    field = hp.page.locator(".gm-model-input")
    budget = hp.page.locator(".gm-max-input")
    got = hp.js("""() => { const m = document.querySelector('.gm-model-input');
        const n = document.querySelector('.gm-max-input');
        return {model: m.value, max: n.value, type: n.type,
          labels: [m, n].map(i => i.labels[0].textContent),
          options: [...m.list.options].map(o => o.value)}; }""")
    assert got["model"] == "gpt-4o" and got["max"] == "" and got["type"] == "number"
    assert got["labels"] == ["model", "max_tokens"]
    # The current model first (it is not among the common ones), then current models.
    assert got["options"] == ["gpt-4o", "gpt-4.1-nano", "gpt-5-nano", "gpt-5-mini", "gpt-5",
                              "o3-mini", "gpt-4", "gpt-3.5-turbo", "local"]
    # A model typed and entered: exactly one set and one save; focus stays; counting shows.
    field.click()
    field.fill("gpt-4")
    hp.page.wait_for_timeout(250)  # typing alone sends nothing
    assert hp.js(SAVES) == {"sets": [], "saves": 0}
    field.press("Enter")
    assert hp.js(SAVES) == {"sets": [["model", "gpt-4"]], "saves": 1}
    assert hp.js("() => document.activeElement.className").endswith("gm-model-input")
    assert hp.js("() => document.querySelector('.gm-status').textContent") == "counting…"
    field.press("Tab")  # blur: the same name again sends nothing
    assert hp.js("() => gm.mounts[0].model.saves") == 1
    hp.js("(s) => gm.mounts[0].model.push('data', s)",
          st.counter_state("user: hi", "gpt-4", mode="chat"))
    assert hp.js("() => document.querySelector('.gm-status').textContent") == ""
    assert "cl100k_base" in hp.js("() => document.querySelector('.gm-headline').textContent")
    # Python changes the model: the field follows, and the list offers it.
    hp.js("() => gm.mounts[0].model.push('model', 'my-finetune')")
    assert field.input_value() == "my-finetune"
    assert "my-finetune" in hp.js("() => [...document.querySelector('.gm-model-input')"
                                  ".list.options].map(o => o.value)")
    # An unknown model is counted approximately; the note says so.
    hp.js("(s) => gm.mounts[0].model.push('data', s)",
          st.counter_state("user: hi", "my-finetune", mode="chat"))
    note = hp.js("() => document.querySelector('.gm-approx').textContent")
    assert "approximate" in note and "unknown model 'my-finetune'" in note, note
    # An empty model is not sent: a message says why.
    field.fill("")
    field.press("Enter")
    assert hp.js("() => gm.mounts[0].model.saves") == 1
    assert "model name" in hp.js("() => document.querySelector('.gm-field-msg').textContent")
    field.press("Escape")
    assert field.input_value() == "my-finetune"
    # A bad max_tokens sends nothing and says what is wanted.
    budget.click()
    for bad in ("-3", "2.5", "0"):
        budget.fill(bad)
        hp.page.wait_for_timeout(300)
        assert hp.js("() => gm.mounts[0].model.saves") == 1, bad
        msg = hp.js("""() => ({text: document.querySelector('.gm-field-msg').textContent,
            shown: document.querySelector('.gm-field-msg').offsetHeight > 0,
            invalid: document.querySelector('.gm-max-input').getAttribute('aria-invalid')})""")
        assert msg == {"text": "max_tokens: a whole number above 0, or empty for none",
                       "shown": True, "invalid": "true"}, bad
    hp.shot("counter-toolbar-invalid")
    # A good one is sent as a number (debounced), the message goes, focus stays.
    budget.fill("500")
    hp.page.wait_for_function("gm.mounts[0].model.saves === 2", timeout=3000)
    hp.page.wait_for_timeout(300)
    model = hp.js(SAVES)
    assert model["saves"] == 2 and model["sets"][-1] == ["max_tokens", 500]
    assert hp.js("() => typeof gm.mounts[0].model.get('max_tokens')") == "number"
    assert hp.js("() => document.querySelector('.gm-field-msg').textContent") == ""
    assert hp.js("() => document.activeElement.className").endswith("gm-max-input")
    # Emptied: none (null).
    budget.fill("")
    hp.page.wait_for_function("gm.mounts[0].model.saves === 3", timeout=3000)
    assert hp.js(SAVES)["sets"][-1] == ["max_tokens", None]
    # Python sets max_tokens: the field follows.
    hp.page.locator("textarea").focus()
    hp.js("() => gm.mounts[0].model.push('max_tokens', 1000)")
    assert budget.input_value() == "1000"
    hp.js("() => gm.mounts[0].model.push('max_tokens', null)")
    assert budget.input_value() == ""
    hp.shot("counter-toolbar")
    assert hp.js("() => { gm.mounts[0].cleanup(); return gm.mounts[0].model.listeners(); }") == 0


def test_live_counter_keeps_a_large_text(hp: Page) -> None:
    text_state = st.counter_state("", "gpt-4o")
    hp.mount("counter", text_state, text="")
    big = "The quick brown fox jumps over the lazy dog. " * 1200  # ~12k tokens
    hp.js("""(t) => { const a = document.querySelector('textarea'); a.focus();
        a.value = t; a.dispatchEvent(new Event('input')); }""", big)
    hp.page.wait_for_function("gm.mounts[0].model.saves === 1", timeout=3000)
    ms = hp.js("""() => { const a = document.querySelector('textarea');
        const t0 = performance.now();
        for (let k = 0; k < 50; k++) { a.value += 'x'; a.dispatchEvent(new Event('input')); }
        return performance.now() - t0; }""")
    print(f"50 inputs on a 54k-character text: {ms:.0f} ms")  # benchmarks/bench_widgets.py
    assert len(hp.js("() => gm.mounts[0].model.get('text')")) == len(big)


# ---------------------------------------------------------------- scale and themes


def test_large_heatmap_renders_and_hovers(hp: Page) -> None:
    state = big_heatmap_state(16_000, top_k=5, seed=7)
    timed = hp.js("(j) => gm.time('heatmap', JSON.parse(j))", json.dumps(state))
    assert timed["tokens"] == 16_000
    mid = hp.mount("heatmap", state, clip=True)
    assert hp.js("() => document.querySelectorAll('.gm-tok').length") == 16_000
    hp.page.hover(".gm-tok[data-i='3']")
    _tip_fully_visible(hp, mid)


def test_dark_theme_screenshot(hp: Page) -> None:
    hp.js("() => document.body.classList.add('gm-dark')")
    hp.mount("heatmap", fixture("heatmap"), clip=True)
    hp.mount("tokenview", fixture("tokens"))
    hp.mount("counter", fixture("counter"))
    hp.mount("counter", fixture("counter"), text="user: hi", traits={"model": "gpt-4o"})
    hp.page.locator(".gm-max-input").fill("-1")  # the toolbar's message, in the dark
    hp.page.hover(".gm-heatmap .gm-tok[data-i='8']")
    colour = hp.js("() => getComputedStyle(document.querySelector('.gm-total')).color")
    assert _rgb(colour) == (230, 230, 230)  # --jp-content-font-color1 of the dark theme
    hp.shot("dark", full_page=True)


@pytest.mark.engine
def test_heatmap_of_a_japanese_reply_has_one_cell_per_token(hp: Page, local_url: str) -> None:  # noqa: F811
    """From the real engine: each token of a multi-token character is its own cell."""
    import gptmagic

    result = gptmagic.chat([{"role": "user", "content": "Translate to Japanese: Good morning, "
                                                        "how are you? Answer in Japanese only."}],
                           model="local", max_tokens=20, temperature=0, logprobs=True,
                           top_logprobs=3)
    assert result.usage.completion_tokens == 20 == len(result.logprobs)
    hp.mount("heatmap", st.heatmap_state(result))
    cells = hp.js("() => document.querySelectorAll('.gm-tok').length")
    partial = hp.js("() => document.querySelectorAll('.gm-tok.gm-partial').length")
    assert cells == 20 and partial >= 2
    hp.shot("heatmap-japanese", full_page=True)
