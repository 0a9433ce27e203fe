"""Widget cost by size: state bytes, Python build time, static HTML, JS render in chromium.

For a logprob heatmap of 1k / 4k / 16k generated tokens with top-5
alternatives each, and a token view of a text of about as many tokens:

- state: the JSON Jupyter sends for the synced ``data`` trait (``json.dumps``
  as jupyter_client packs it: default separators, UTF-8), bytes and bytes/token;
- build: Python time of the state builder (``heatmap_state`` / ``tokenview_state``);
- html: Python time of the static renderer and its size;
- render: the ES module's ``render()`` plus the first layout in headless
  chromium (the test harness with a fake model), median of 5.

Run: python benchmarks/bench_widgets.py   (needs Debian chromium, see TESTING.md)
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser.states import big_logprob_tokens, big_text  # noqa: E402
from browser_support import chromium, harness_site  # noqa: E402

from gptmagic.views.widgets import state as st  # noqa: E402
from gptmagic.views.widgets import static  # noqa: E402

SIZES = (1_000, 4_000, 16_000)
RUNS = 5


def median_time(fn: Callable[[], Any], runs: int = RUNS) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def wire_bytes(state: dict[str, Any]) -> int:
    return len(json.dumps(state, ensure_ascii=False).encode("utf-8"))


def js_render_ms(page: Any, view: str, state: dict[str, Any], tokens: int) -> float:
    # The state crosses as JSON text, parsed once in the page; only render() is timed.
    page.evaluate("(j) => { window.__state = JSON.parse(j); }", json.dumps(state))
    page.evaluate("(v) => gm.time(v, window.__state)", view)  # warm-up: module load, JIT
    times = []
    for _ in range(RUNS):
        timed = page.evaluate("(v) => gm.time(v, window.__state)", view)
        assert timed["tokens"] == tokens, timed  # drawn, not refused
        times.append(timed["ms"])
    return statistics.median(times)


def main() -> None:
    rows = []
    with harness_site() as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(f"{url}harness.html")
        page.wait_for_function("window.gm && window.gm.ready")
        for n in SIZES:
            tokens = big_logprob_tokens(n, top_k=5, seed=n)
            build, state = median_time(lambda t=tokens: st.heatmap_state(t))
            html_t, html = median_time(lambda s=state: static.heatmap_html(s))
            rows.append(("heatmap", n, wire_bytes(state), build, html_t, len(html),
                         js_render_ms(page, "heatmap", state, n)))
        for n in SIZES:
            text = big_text(n, seed=n)
            build, state = median_time(lambda t=text: st.tokenview_state(t, "gpt-4o"))
            count = state["panes"][0]["count"]
            html_t, html = median_time(lambda s=state: static.tokenview_html(s))
            rows.append(("tokens", count, wire_bytes(state), build, html_t, len(html),
                         js_render_ms(page, "tokenview", state, count)))
    print(f"{'view':<8} {'tokens':>7} {'state':>10} {'B/tok':>6} {'build':>9} "
          f"{'html':>9} {'html size':>10} {'JS render':>10}")
    for view, n, size, build, html_t, html_size, js in rows:
        print(f"{view:<8} {n:>7,} {size / 1024:>8.0f} kB {size / n:>6.0f} "
              f"{build * 1e3:>6.1f} ms {html_t * 1e3:>6.1f} ms {html_size / 1024:>7.0f} kB "
              f"{js:>7.0f} ms")


if __name__ == "__main__":
    main()
