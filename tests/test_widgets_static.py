"""The colour scale and the static HTML / text renderers of widget states."""

from __future__ import annotations

import math
import re
import time
from html.parser import HTMLParser

import pytest

from gptmagic.core.types import Choice, Result, TokenLogprob, TopLogprob
from gptmagic.views.widgets import scale as _scale
from gptmagic.views.widgets.scale import STOPS, colour, contrast, is_hex_colour, text_colour
from gptmagic.views.widgets.state import counter_state, heatmap_state, tokenview_state
from gptmagic.views.widgets.static import (
    counter_html,
    counter_text,
    heatmap_html,
    heatmap_text,
    tokenview_html,
    tokenview_text,
)

PAYLOADS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "</style><script>",
            "\"' onmouseover=alert(1) x=\"", "javascript:alert(1)"]
EVIL = " ".join(PAYLOADS)


class Page(HTMLParser):
    """Every element, attribute and text node of an HTML string."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def title_of(self, needle: str) -> str:
        return next(v for k, v in self.attrs if k == "title" and v and needle in v)


def assert_inert(html: str) -> Page:
    page = Page(html)
    assert "script" not in page.tags and "img" not in page.tags
    assert page.tags.count("style") == 1
    assert not [k for k, _ in page.attrs if k.startswith("on")]
    assert not [v for k, v in page.attrs if k in ("href", "src") or
                (v or "").lower().startswith("javascript:")]
    assert "<script" not in html and "<img" not in html and html.count("</style>") == 1
    return page


# -- colour scale ------------------------------------------------------------------


def test_scale_is_ordered_light_for_likely_and_readable() -> None:
    assert len(STOPS) == 9 and STOPS[0][0] == 0.0 and STOPS[-1][0] == 1.0
    assert all(is_hex_colour(c) and len(c) == 7 for _, c in STOPS)
    assert colour(0) == STOPS[0][1] and colour(1) == STOPS[-1][1] and colour(0.5) == STOPS[4][1]
    assert colour(None) == colour(1.0) == colour(7) and colour(-3) == colour(0)
    lum = [_scale._luminance(colour(p / 100)) for p in range(101)]
    assert all(a <= b for a, b in zip(lum, lum[1:], strict=False))  # darker = less likely
    for p in range(101):
        bg = colour(p / 100)
        assert contrast(text_colour(bg), bg) >= 4.5  # WCAG AA for normal text
    assert text_colour(colour(0.01)) == "#fff" and text_colour(colour(0.99)) == "#000"


def test_scale_with_other_stops_and_bad_colours() -> None:
    grey = [[0.0, "#000000"], [1.0, "#ffffff"]]
    assert colour(0.5, grey) == "#808080" and colour(0.0, grey) == "#000000"
    assert not is_hex_colour("red") and not is_hex_colour("#12345g")
    assert not is_hex_colour("#fff;background:url(x)")
    with pytest.raises(ValueError):
        colour(0.5, [[0.0, "red"], [1.0, "#fff"]])


# -- escaping ----------------------------------------------------------------------


def evil_counter() -> dict:
    s = counter_state([{"role": "user", "name": "bob", "content": EVIL}], "gpt-4o")
    s.update(model=EVIL, encoding=EVIL, note=EVIL, exact=False)
    s["rows"][0][0] = EVIL
    s["rows"][0][1] = EVIL
    s["cost"]["source"] = EVIL
    return s


def evil_heatmap() -> dict:
    toks = [TokenLogprob(p, -3.0, p.encode(), (TopLogprob(p, -3.0, p.encode()),
                                                 TopLogprob(EVIL, -0.1, EVIL.encode())))
            for p in PAYLOADS]
    s = heatmap_state([Choice(0, finish_reason=EVIL, logprobs=toks),
                       Choice(1, logprobs=toks[:1])])
    s["scale"] = [[0.0, "red;background:url(javascript:alert(1))"], [1.0, "#fff"]]
    return s


@pytest.mark.parametrize("render, make", [
    (counter_html, evil_counter),
    (counter_html, lambda: {**evil_counter(), "error": EVIL}),
    (tokenview_html, lambda: tokenview_state(EVIL, ["gpt-4o", "cl100k_base"])),
    (heatmap_html, evil_heatmap),
])
def test_payloads_show_as_text_never_markup(render, make) -> None:
    html = render(make())
    page = assert_inert(html)
    shown = "".join(page.text)
    titles = " ".join(v or "" for k, v in page.attrs if k == "title")
    for payload in PAYLOADS:
        # Visible as text (token pieces show whitespace as dots) or in a tooltip.
        assert payload in shown or payload.replace(" ", "·") in shown or payload in titles
    assert "url(javascript" not in html  # a bad colour in a state falls back to the stops


def test_a_mistyped_state_still_renders_inertly() -> None:
    for render in (counter_html, tokenview_html, heatmap_html):
        assert_inert(render({}))
    for render in (counter_text, tokenview_text, heatmap_text):
        assert isinstance(render({}), str)


# -- counter -------------------------------------------------------------------------


def test_counter_html_table_fill_cost_and_note() -> None:
    msgs = [{"role": "system", "content": "Be terse."},
            {"role": "user", "name": "alice", "content": "Hi\nthere"}]
    s = counter_state(msgs, "gpt-4o", max_tokens=100)
    page = assert_inert(counter_html(s))
    cells = [t.strip() for t in page.text if t.strip()]
    for header in ("role", "name", "content", "overhead", "total", "preview"):
        assert header in cells
    assert "alice" in cells and "Hi there" in cells and "reply priming" in cells
    assert f"{s['total']:,} of 128,000 context tokens (0.01%)" in cells
    cost = next(t for t in cells if t.startswith("cost"))
    assert "prompt only" in cost and "expected (100 completion tokens)" in cost
    assert "at most (100 completion tokens)" in cost and "$0.00" in cost
    assert any("genai-prices" in t for t in cells)
    assert "approximate" not in " ".join(cells)
    assert 'width:0.01%' in counter_html(s)
    rough = counter_state("hi", "mystery-model")
    text = " ".join(Page(counter_html(rough)).text)
    assert "cost unknown" in text and "approximate count" in text and "mystery" in text
    assert "context window unknown" in text
    full = {**s, "fill": 1.25}
    assert "width:100.00%" in counter_html(full) and "#dc2626" in counter_html(full)


def test_an_exact_count_with_a_note_is_not_called_approximate() -> None:
    """The embedded engine's count is exact and may carry a note (its template's default
    system prompt): the note is shown, as the widget's own JS shows it, without "≈"."""
    said = "the engine's chat template adds its default system prompt"
    exact = {**counter_state("hi", "gpt-4o"), "exact": True, "note": said}
    for shown in (" ".join(Page(counter_html(exact)).text), counter_text(exact)):
        assert said in shown and "approximate" not in shown
    rough = {**exact, "exact": False}
    for shown in (" ".join(Page(counter_html(rough)).text), counter_text(rough)):
        assert f"≈ approximate count: {said}" in shown


def test_counter_text_form() -> None:
    s = counter_state("system: Be terse.\nuser (alice): Hi", "gpt-4o", mode="chat")
    text = counter_text(s)
    assert text.splitlines()[0] == f"{s['total']} tokens · gpt-4o (o200k_base)"
    assert "alice" in text and "reply priming" in text and "cost $" in text
    assert counter_text({**s, "error": "bad cell"}) == "gpt-4o: bad cell"
    local = counter_text(counter_state("hi", "gpt-4o", mode="text"))
    assert "role" not in local and "context tokens" in local


# -- token view ----------------------------------------------------------------------


def test_tokenview_html_pieces_ids_whitespace_and_panes() -> None:
    text = "a b\tc\nd 🎉"
    s = tokenview_state(text, ["gpt-4o", "cl100k_base"])
    html = tokenview_html(s)
    page = assert_inert(html)
    assert html.count('class="gm-pane"') == 2 and "display:flex" in html
    shown = "".join(page.text)
    assert "·b" in shown and "→" in shown and "↵\n" in shown
    gpt = s["panes"][0]
    for i, tid in enumerate(gpt["ids"]):
        assert any(v and v.startswith(f"#{i} id {tid} ·") for k, v in page.attrs if k == "title")
    assert 'class="gm-t gm-a"' in html and 'class="gm-t gm-b"' in html
    index, hexed = s["panes"][1]["partial"][0]
    assert page.title_of(f"bytes {hexed}").startswith(f"#{index} id ")
    assert f"gpt-4o · o200k_base · {gpt['count']} tokens" in shown


def test_tokenview_text_form() -> None:
    s = tokenview_state("Hi there 🎉", "cl100k_base")
    lines = tokenview_text(s).splitlines()
    assert lines[0] == f"cl100k_base: {s['panes'][0]['count']} tokens"
    assert lines[1].startswith("Hi|·there|") and "⟨" in lines[1] and lines[1].endswith("🎉")
    assert lines[2] == "ids: " + " ".join(map(str, s["panes"][0]["ids"]))


# -- heatmap -------------------------------------------------------------------------


def tok(text: str | bytes, lp: float | None, alts=(), prompt: bool = False) -> TokenLogprob:
    raw = text if isinstance(text, bytes) else text.encode()
    return TokenLogprob(raw.decode("utf-8", "replace"), lp, raw,
                        tuple(TopLogprob(a, v, a.encode()) for a, v in alts), prompt=prompt)


def heatmap_example(n: int = 1) -> dict:
    prompt = [tok("Q:", None, prompt=True), tok(" sky", -0.7, prompt=True)]
    gen = [tok(" Paris", math.log(0.05), [(" Lyon", math.log(0.6)), (" Paris", math.log(0.05))]),
           tok(b"\xf0\x9f", -0.1), tok(b"\x8c\x8a", -0.2), tok("\n", -0.01, [("\n", -0.01)])]
    choices = [Choice(i, finish_reason="stop", prompt_logprobs=prompt, logprobs=gen)
               for i in range(n)]
    return heatmap_state(Result("completion", "m", choices))


def test_heatmap_html_colours_tooltips_prompt_and_threshold() -> None:
    s = heatmap_example()
    html = heatmap_html(s)
    page = assert_inert(html)
    spans = re.findall(r'<span class="([^"]+)" tabindex="0"( style="[^"]*")? title="', html)
    assert len(spans) == 6
    assert "gm-prompt" in spans[0][0] and "gm-prompt" in spans[1][0]
    assert "gm-low" in spans[2][0] and "gm-low" not in spans[3][0]
    bg = colour(0.05)
    assert f'style="background:{bg};color:{text_colour(bg)}"' in html
    title = page.title_of('" Paris" · p 5.0%')
    assert 'top 2 · coverage 65.0%' in title and '" Lyon"  60.0%' in title
    assert "logprob -2.9957" in title
    assert "echoed prompt token" in page.title_of('" sky"')
    # The split emoji: a hex box, then the character in the token that completes it.
    assert page.title_of("bytes f0 9f (part of a character) · p 90.5%")
    assert ">f0 9f</span>" in html and "gm-partial" in html
    assert "🌊" in "".join(page.text) and "↵\n" in "".join(page.text)
    assert ":focus-within::after" in html and "content:attr(title)" in html
    assert "linear-gradient(to right,#000004 0%" in html and "below 10.0%" in html
    summary = next(t for t in page.text if "generated tokens" in t)
    assert summary.startswith("4 generated tokens · mean logprob") and "perplexity" in summary
    assert 'least likely: " Paris" 5.0%, "🌊" 81.9%, ⟨f0 9f⟩ 90.5%' in summary
    assert "finish: stop" in summary
    assert "Choice 0" not in html


def test_heatmap_html_n_choices_and_partial_tokens() -> None:
    html = heatmap_html(heatmap_example(3))
    assert [m for m in re.findall(r"Choice (\d) · finish: stop", html)] == ["0", "1", "2"]
    partial = heatmap_state([tok(b"\xe6", -1.0), tok(b"x", -1.0)])
    html = heatmap_html(partial)
    assert "gm-partial" in html and ">e6<" in html
    assert "bytes e6 (part of a character)" in Page(html).title_of("bytes e6")


def test_heatmap_text_brackets_and_least_likely_table() -> None:
    text = heatmap_text(heatmap_example())
    lines = text.splitlines()
    assert lines[0] == "prompt (echoed): Q: sky"
    assert lines[1] == "[ Paris]🌊"
    assert any(line.startswith("4 generated tokens") for line in lines)
    row = next(line for line in lines if '" Paris"' in line and "Lyon" in line)
    assert "5.0%" in row and '" Lyon" 60.0%' in row and "(65.0%)" in row
    many = heatmap_text(heatmap_example(2))
    assert many.count("Choice ") == 2


def test_heatmap_html_of_4k_tokens() -> None:
    from test_widgets_state import synthetic_tokens

    toks = synthetic_tokens(4000)
    heatmap_html(heatmap_state(toks[:50]))  # warm up
    t0 = time.perf_counter()
    s = heatmap_state(toks)
    mid = time.perf_counter()
    html = heatmap_html(s)
    end = time.perf_counter()
    print(f"\nheatmap 4k tokens: state {(mid - t0) * 1000:.0f} ms + static HTML "
          f"{(end - mid) * 1000:.0f} ms, {len(html.encode()) / 1e6:.2f} MB")
    assert html.count('tabindex="0"') == 4000
