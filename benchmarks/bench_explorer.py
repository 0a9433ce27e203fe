"""Explorer cost by size: state bytes per cell, Python build, static HTML, render in chromium.

For matrices of 100 / 2,000 / 12,000 (2,000 cases × 6 variants) / 20,000 cells of a
synthetic evaluation (outputs of ~300 characters, two scorers, a request per call):

- state: the JSON Jupyter sends for ``data`` (as jupyter_client packs it), with every
  cell's detail inline and matrix-only (``inline_limit=0``: details asked per cell),
  bytes per cell;
- build: Python time of ``explorer_state``;
- html: size of the static HTML (``explorer_html``);
- render: ``render()`` plus the first layout in headless Debian chromium (the widget
  harness, a fake model), median of 5; and, in the same page, the baseline: a plain
  ``<table>`` of the same cells' cut outputs built with the DOM, plus its layout;
  the ratio render / baseline;
- static: the static HTML page loaded from a loopback server until its matrix is
  drawn (parse the JSON + the same render), median of 3.

- notebook: what a saved .ipynb grows by when ``res`` is displayed (the output's
  bundle plus the widget state in the metadata), for 100 and 12,000 cells.

Run: python benchmarks/bench_explorer.py   (needs Debian chromium, see TESTING.md);
``--notebook``: the notebook sizes only.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import pandas as pd  # noqa: E402
from bench_widgets import median_time, wire_bytes  # noqa: E402  (beside this file)
from browser_support import chromium, harness_site, serve_dir  # noqa: E402

from gptmagic.core.types import Choice, Result, Timings, Usage  # noqa: E402
from gptmagic.eval.results import EvalResults  # noqa: E402
from gptmagic.views.explorer import explorer_state  # noqa: E402
from gptmagic.views.explorer import static as xs  # noqa: E402

SIZES = ((50, 2), (500, 4), (2_000, 6), (5_000, 4))  # cases × variants
RUNS = 5
WORDS = ("the answer is yes no maybe because Paris capital of France it depends on context "
         "and a longer explanation follows here with numbers 42 17 and 3.14").split()


class _Job:
    def __init__(self, messages: list[dict[str, Any]], text: str) -> None:
        self.messages = messages
        self.params = {"temperature": 0}
        self.result = Result("chat", "m", [Choice(0, text, "stop")],
                             usage=Usage(40, 60), timings=Timings(total=0.5))


def synthetic(cases: int, variants: int, seed: int = 0) -> EvalResults:
    rnd = random.Random(seed)
    rows, jobs = [], []
    for c in range(cases):
        q = " ".join(rnd.choices(WORDS, k=12))
        for v in range(variants):
            text = " ".join(rnd.choices(WORDS, k=50))
            rows.append({"input.question": q, "input.kind": "ab"[c % 2], "row": c,
                         "prompt": f"prompt-{v % 2}", "model": f"model-{v // 2}", "repeat": 0,
                         "api": "chat", "output": text, "finish_reason": "stop",
                         "prompt_tokens": 40, "completion_tokens": 60, "cost": 1e-5,
                         "latency": 0.5, "ttft": None, "error": None, "cached": False,
                         "score.exact": float(rnd.random() > 0.4),
                         "score.length": round(rnd.random(), 3)})
            jobs.append(_Job([{"role": "system", "content": "Answer briefly."},
                              {"role": "user", "content": q}], text))
    df = pd.DataFrame(rows)
    df["score"] = (df["score.exact"] + df["score.length"]) / 2
    return EvalResults(df, jobs, [], [], ["prompt", "model"])


RENDER = """async (n) => {
  const mod = await import('./explorer.js');
  const times = [];
  let drawn = 0;
  for (let k = 0; k < n; k += 1) {
    const el = document.createElement('div');
    document.getElementById('mounts').append(el);
    const model = { get: () => window.__state, on() {}, off() {} };
    const t0 = performance.now();
    const cleanup = mod.default.render({ model, el });
    void el.offsetHeight;
    times.push(performance.now() - t0);
    drawn = el.querySelectorAll('.gm-x-cell').length;
    cleanup();
    el.remove();
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(n / 2)], drawn };
}"""

BASELINE = """(n) => {
  const s = window.__state;
  const nv = s.variants.length;
  const times = [];
  for (let k = 0; k < n; k += 1) {
    const el = document.createElement('div');
    document.getElementById('mounts').append(el);
    const t0 = performance.now();
    const table = document.createElement('table');
    const rows = new Map();
    for (const cell of s.cells) {
      let tr = rows.get(cell[0]);
      if (!tr) { tr = document.createElement('tr'); rows.set(cell[0], tr); table.append(tr); }
      const td = document.createElement('td');
      td.textContent = cell[3];
      tr.append(td);
    }
    el.append(table);
    void el.offsetHeight;
    times.push(performance.now() - t0);
    el.remove();
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(n / 2)];
}"""


def static_load_ms(browser: Any, url: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        t0 = time.perf_counter()
        page.goto(url)
        page.wait_for_selector(".gm-explorer .gm-x-cell", timeout=60_000)
        times.append(time.perf_counter() - t0)
        page.close()
    return statistics.median(times) * 1e3


def notebook_growth() -> None:
    """Bytes a saved .ipynb grows by when ``res`` is displayed: the output's bundle
    (widget view, text/html, text/plain) plus the widget's state saved in the metadata."""
    from gptmagic.views.explorer import explore

    print(f"{'cells':>7} {'bundle':>10} {'widget state':>13} {'ipynb growth':>13}")
    for cases, variants in ((50, 2), (2_000, 6)):
        w = explore(synthetic(cases, variants))
        data, _ = w._repr_mimebundle_()
        bundle = len(json.dumps(data, ensure_ascii=False).encode())
        state = len(json.dumps(w.get_state(), ensure_ascii=False).encode())
        print(f"{cases * variants:>7,} {bundle / 1e6:>7.2f} MB {state / 1e6:>10.2f} MB "
              f"{(bundle + state) / 1e6:>10.2f} MB")


def main() -> None:
    notebook_growth()
    if "--notebook" in sys.argv:
        return
    rows = []
    with harness_site() as url, chromium() as browser, \
            tempfile.TemporaryDirectory() as tmp, serve_dir(tmp) as static_url:
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"{url}harness.html")
        page.wait_for_function("window.gm && window.gm.ready")
        for cases, variants in SIZES:
            res = synthetic(cases, variants)
            cells = cases * variants
            build, state = median_time(lambda r=res: explorer_state(r, inline_limit=10**10),
                                       runs=3)
            lean_build, lean = median_time(lambda r=res: explorer_state(r, inline_limit=0),
                                            runs=3)
            html = xs.explorer_html(state)
            name = f"x{cells}.html"
            (Path(tmp) / name).write_text(f"<!doctype html><meta charset=utf-8><body>{html}",
                                          encoding="utf-8")
            page.evaluate("(j) => { window.__state = JSON.parse(j); }",
                          json.dumps(state, ensure_ascii=False))
            page.evaluate(RENDER, 1)  # warm-up: module load, JIT
            drawn = page.evaluate(RENDER, RUNS)
            base = page.evaluate(BASELINE, RUNS)
            rows.append((cases, variants, cells, wire_bytes(state), wire_bytes(lean), build,
                         lean_build,
                         len(html.encode()), drawn["ms"], drawn["drawn"], base,
                         static_load_ms(browser, static_url + name)))
    print(f"{'matrix':>11} {'cells':>7} {'state':>9} {'B/cell':>7} {'lean B/cell':>11} "
          f"{'build':>8} {'lean':>7} {'html':>9} {'render':>8} {'drawn':>6} {'table':>8} "
          f"{'ratio':>6} {'static page':>11}")
    for cases, nv, cells, full, lean, build, lean_build, html_size, ms, drawn, base, load in rows:
        print(f"{cases:>6,} × {nv:<2} {cells:>7,} {full / 1e6:>6.2f} MB {full / cells:>7.0f} "
              f"{lean / cells:>11.0f} {build:>6.2f} s {lean_build:>5.2f} s "
              f"{html_size / 1e6:>6.2f} MB "
              f"{ms:>5.0f} ms {drawn:>6} {base:>5.0f} ms {ms / base:>6.2f} {load:>8.0f} ms")


if __name__ == "__main__":
    main()
