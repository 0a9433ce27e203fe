"""The explorer's static HTML and plain text (pure strings).

The HTML is one self-contained piece for front ends without widgets (nbconvert,
the offline report, JupyterLab without the widget manager): a plain table of the
first cases, coloured as the widget colours them, that a reader without scripts
still reads; then the state as ``<script type="application/json">`` (``<``, ``>``
and ``&`` written as ``\\u003c`` ...: no text in it can close the script) and an
inline module holding the widget's own JS, which replaces the table with the
interactive explorer: search, filters, the side panel, the diff. No CDN, no network.
"""

from __future__ import annotations

import functools
import html
import json
import uuid
from pathlib import Path
from typing import Any

from gptmagic.views.explorer.state import SCORE_STOPS, matrix_only
from gptmagic.views.markdown import NO_MATH
from gptmagic.views.text import printable
from gptmagic.views.widgets.scale import colour, text_colour

__all__ = ["FALLBACK_LIMIT", "STATIC_ROWS", "TEXT_ROWS", "call_html", "call_text",
           "explorer_html", "explorer_text", "fallback_html", "script_json"]

#: Cases the script-less table shows (the script shows them all).
STATIC_ROWS = 100
#: Bytes of state the HTML beside a widget's view carries whole (a saved notebook holds
#: the widget's state too): past it the details are dropped (``"ask"``), and past it
#: without them the HTML is the plain table alone.
FALLBACK_LIMIT = 1_000_000
#: Cases the text form shows.
TEXT_ROWS = 20

_JS = Path(__file__).resolve().parent.parent / "widgets" / "js"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def script_json(value: Any) -> str:
    """JSON safe inside ``<script>``: ``<``, ``>``, ``&`` (and the JS line separators)
    as ``\\u`` escapes, so no string in it can end the element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for ch, rep in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, rep)
    return text


@functools.cache
def _css() -> str:
    return (_JS / "gptmagic.css").read_text(encoding="utf-8")


@functools.cache
def _module() -> str:
    from gptmagic.views.widgets.views import esm_source

    return esm_source("explorer")


_BOOT = """
{
  const host = document.getElementById(%(id)s);
  const data = JSON.parse(document.getElementById(%(data)s).textContent);
  if (host && !host.dataset.mounted) {
    host.dataset.mounted = "1";
    const model = { get: (k) => (k === "data" ? data : undefined), on() {}, off() {} };
    host.replaceChildren();
    renderExplorer({ model, el: host });
  }
}
"""


def _live(state: dict[str, Any], fallback: str, cls: str) -> str:
    uid = f"gmx-{uuid.uuid4().hex[:12]}"
    boot = _BOOT % {"id": json.dumps(uid), "data": json.dumps(uid + "-data")}
    return (f"<style>{_css()}</style>"
            f'<div class="gm-x-host {NO_MATH}" id="{uid}">'
            f'<div class="gm-root {cls} gm-x-static">{fallback}</div></div>'
            f'<script type="application/json" id="{uid}-data">{script_json(state)}</script>'
            f'<script type="module">{_module()}\n{boot}</script>')


def _cell_style(score: Any) -> str:
    if not isinstance(score, int | float):
        return ""
    bg = colour(float(score), SCORE_STOPS)
    return f' style="background:{bg};color:{text_colour(bg)}"'


def _mark(score: Any, threshold: float) -> str:
    if not isinstance(score, int | float):
        return "·"
    return "✓" if score >= threshold else "✗"


def _cells(state: dict[str, Any]) -> dict[tuple[int, int], list[Any]]:
    return {(c[0], c[1]): c for c in state.get("cells", [])}


def _table(state: dict[str, Any]) -> str:
    variants = state.get("variants", [])
    cases = state.get("cases", [])
    inputs = state.get("inputs", [])
    t = float(state.get("threshold", 0.5))
    cells = _cells(state)
    head = "".join(f"<th>{esc(v['label'])}</th>" for v in variants)
    rows = []
    for c, (row_id, vals) in enumerate(cases[:STATIC_ROWS]):
        desc = " · ".join(f"{k}: {'–' if v is None else v}" for k, v in zip(inputs, vals,
                                                                           strict=False))
        tds = [f"<th>#{esc(row_id)} {esc(desc)}</th>"]
        for v in range(len(variants)):
            cell = cells.get((c, v))
            if cell is None:
                tds.append("<td>—</td>")
            elif cell[7] is not None:
                tds.append(f'<td class="gm-x-error">error: {esc(cell[7])}</td>')
            else:
                marks = "".join(_mark(s, t) for s in cell[6])
                more = "…" if cell[4] else ""
                tds.append(f"<td{_cell_style(cell[5])}><b>{marks}</b> {esc(cell[3])}{more}</td>")
        rows.append(f"<tr>{''.join(tds)}</tr>")
    note = (f'<p class="gm-muted">{len(cases) - STATIC_ROWS:,} more cases in the interactive '
            "view</p>" if len(cases) > STATIC_ROWS else "")
    return (f"<p><b>{esc(state.get('title') or 'evaluation')}</b>: {len(cases):,} cases × "
            f"{len(variants)} variants</p><table><tr><th>case</th>{head}</tr>"
            f"{''.join(rows)}</table>{note}")


def explorer_html(state: dict[str, Any]) -> str:
    """The explorer as self-contained HTML: a plain table, made interactive by its script."""
    return _live(state, _table(state), "gm-explorer")


def fallback_html(state: dict[str, Any], limit: int = FALLBACK_LIMIT) -> str:
    """The HTML a notebook saves beside the explorer widget's view, which has the whole
    state already: all of it up to ``limit`` bytes; the matrix alone (details asked of
    a kernel) past it; past that too, the plain table of the first cases and a note."""
    if _size(state) <= limit:
        return explorer_html(state)
    lean = matrix_only(state)
    if _size(lean) <= limit:
        return explorer_html(lean)
    return (f'<div class="gm-x-host {NO_MATH}"><style>{_css()}</style>'
            f'<div class="gm-root gm-explorer gm-x-static">{_table(state)}'
            '<p class="gm-muted">The interactive explorer is the widget: run the notebook '
            "(or save it with its widget state) to see it.</p></div></div>")


def _size(state: dict[str, Any]) -> int:
    return len(json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode())


def call_html(state: dict[str, Any]) -> str:
    """One call's panel as self-contained HTML (reply and request readable without JS)."""
    d = state.get("detail", {})
    fallback = (f"<p><b>{esc(d.get('model') or '')}</b></p>"
                f"<pre>{esc(d.get('request') or '')}</pre><pre>{esc(d.get('reply') or '')}</pre>")
    return _live(state, fallback, "gm-callpanel")


def explorer_text(state: dict[str, Any]) -> str:
    """A compact matrix of pass marks for the terminal: ✓ pass, ✗ fail, ! error, · no score."""
    variants = state.get("variants", [])
    cases = state.get("cases", [])
    t = float(state.get("threshold", 0.5))
    cells = _cells(state)
    scorers = state.get("scorers", [])
    letters = [chr(ord("A") + k) if k < 26 else f"V{k}" for k in range(len(variants))]
    lines = [f"{state.get('title') or 'evaluation'}: {len(cases):,} cases × {len(variants)} "
             f"variants; scorers {', '.join(scorers) or 'none'} (✓ pass at {t:g}, ✗ fail, "
             "! error)"]
    for k, v in enumerate(variants):
        col = [cells[(c, k)] for c in range(len(cases)) if (c, k) in cells]
        scored = [x[5] for x in col if isinstance(x[5], int | float)]
        rate = (f"pass {sum(s >= t for s in scored) / len(scored):.0%}" if scored
                else "no scores")
        errs = sum(x[7] is not None for x in col)
        lines.append(f"  {letters[k]}  {v['label']}  {rate}" + (f", {errs} errors" if errs else ""))
    width = max([len(scorers), 1, *(len(x) for x in letters)]) + 1
    lines.append(("case    " + "".join(x.ljust(width) for x in letters)).rstrip())
    for c, (row_id, _) in enumerate(cases[:TEXT_ROWS]):
        marks = []
        for k in range(len(variants)):
            cell = cells.get((c, k))
            marks.append("-" if cell is None else "!" if cell[7] is not None
                         else "".join(_mark(s, t) for s in cell[6]) or "·")
        lines.append((f"#{str(row_id):<6} " + "".join(m.ljust(width) for m in marks)).rstrip())
    if len(cases) > TEXT_ROWS:
        lines.append(f"… {len(cases) - TEXT_ROWS:,} more cases (res.df has them all)")
    return printable("\n".join(lines))


def call_text(state: dict[str, Any]) -> str:
    """One call as text: model, request, reply, scores, usage (a terminal control in any
    of them shown as its escape: :func:`~gptmagic.views.text.printable`)."""
    d = state.get("detail", {})
    scores = ", ".join(f"{k} {s.get('score')}" for k, s in d.get("scores", {}).items())
    parts = [f"{d.get('model') or '?'}" + (f" · prompt {d['prompt']}" if d.get("prompt") else ""),
             d.get("request") or "", f"→ {d.get('reply')}"]
    if d.get("error"):
        parts.append(f"error: {d['error']}")
    if scores:
        parts.append(f"scores: {scores}")
    usage = ", ".join(f"{k} {v:g}" for k, v in d.get("usage", {}).items())
    if usage:
        parts.append(f"usage: {usage}")
    return printable("\n".join(p for p in parts if p))
