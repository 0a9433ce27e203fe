"""Static HTML and plain-text renderings of the widget states (pure strings).

The HTML is what front ends without widgets show (nbconvert, GitHub,
nbviewer): self-contained, per-token colours as inline styles, one ``<style>``
block scoped by the ``gm-`` class prefix for CSS tooltips (``:hover`` and
``:focus-within``; tokens take focus with the keyboard). A tooltip's text is
the token's ``title`` attribute, drawn by ``::after { content: attr(title) }``,
so it is written once and still shows (natively) where styles are stripped. Every string from a
state is escaped, attributes included; colours are checked to be ``#rrggbb``.
The text forms are for the IPython terminal.
"""

from __future__ import annotations

import functools
import html
import json
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from gptmagic.catalog.pricing import _money
from gptmagic.views.markdown import NO_MATH
from gptmagic.views.widgets.scale import STOPS, colour, is_hex_colour, text_colour

__all__ = ["counter_html", "counter_text", "heatmap_html", "heatmap_text", "tokenview_html",
           "tokenview_text"]

STYLE = """<style>
.gm-root{font:13px/1.6 system-ui,-apple-system,"Segoe UI",sans-serif;padding-bottom:4px}
.gm-text{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;
word-break:break-word;line-height:1.9}
.gm-t{position:relative;border-radius:2px;padding:1px 0}
.gm-t:focus{outline:2px solid #2563eb;outline-offset:1px}
.gm-heatmap .gm-t:hover::after,.gm-heatmap .gm-t:focus-within::after{content:attr(title);
position:absolute;left:0;top:1.6em;z-index:20;background:#fff;color:#111;border:1px solid #888;
border-radius:4px;padding:4px 6px;white-space:pre;font:12px/1.4 ui-monospace,monospace;
box-shadow:0 2px 6px rgba(0,0,0,.25);pointer-events:none}
.gm-low{outline:2px solid #e11d48;outline-offset:-1px}
.gm-prompt{font-style:italic;text-decoration:underline dotted;border:1px dashed #888}
.gm-partial{font-size:75%;border:1px dashed #888;padding:0 2px;color:#555;background:#f4f4f4}
.gm-a{background:#dbeafe}.gm-b{background:#fde68a}
.gm-head{font-weight:600;margin:6px 0 2px}.gm-muted{color:#666}.gm-err{color:#b91c1c}
.gm-panes{display:flex;gap:16px;flex-wrap:wrap}.gm-pane{flex:1 1 22em;min-width:0}
.gm-table{border-collapse:collapse;font-size:12px}
.gm-table td,.gm-table th{padding:1px 8px;text-align:right;border-bottom:1px solid #ddd}
.gm-table td.gm-l,.gm-table th.gm-l{text-align:left}
.gm-bar{width:20em;height:8px;background:#e5e7eb;border-radius:4px;overflow:hidden;
display:inline-block;vertical-align:middle}
.gm-fill{height:100%}
.gm-grad{display:inline-block;width:12em;height:10px;vertical-align:middle;border:1px solid #aaa}
</style>"""


def esc(value: Any) -> str:
    """HTML-escape any value (quotes too: safe in attributes)."""
    return html.escape(str(value), quote=True)


def _pct(p: float) -> str:
    pct = p * 100
    if pct >= 1 or pct == 0:
        return f"{pct:.1f}%"
    return f"{pct:.2f}%" if pct >= 0.01 else "<0.01%"


def _prob(lp: float | None) -> float | None:
    return None if lp is None else math.exp(lp)


_quote = json.JSONEncoder(ensure_ascii=False).encode


@functools.lru_cache(maxsize=8192)
def _show(piece: str) -> str:
    """A piece quoted with its whitespace visible (for titles and tables)."""
    return _quote(piece)


def _dollars(amount: str | None, currency: str) -> str:
    return _money(None if amount is None else Decimal(amount), currency)


def _wrap(body: str, cls: str) -> str:
    # Literal text: a preview or a cost line with two "$" must not become maths.
    return f'{STYLE}<div class="gm-root {cls} {NO_MATH}">{body}</div>'


# -- counter -------------------------------------------------------------------------

_COUNTER_COLS = ("role", "name", "content", "name", "overhead", "total", "preview")


def _fill_line(state: dict[str, Any]) -> tuple[str, float | None]:
    window, fill = state.get("context_window"), state.get("fill")
    if not window or fill is None:
        return "context window unknown", None
    return f"{state['total']:,} of {window:,} context tokens ({_pct(fill)})", fill


def _cost_line(cost: dict[str, Any] | None) -> str:
    if cost is None:
        return "cost unknown (no price for this model)"
    cur = cost.get("currency", "USD")
    high = cost.get("high")
    most = (f"{_dollars(high, cur)} at most ({cost.get('max_completion_tokens') or 0:,} "
            "completion tokens)" if high is not None else "no upper bound")
    return (f"cost {_dollars(cost.get('low'), cur)} prompt only · "
            f"{_dollars(cost.get('expected'), cur)} expected "
            f"({cost.get('expected_completion_tokens', 0):,} completion tokens) · {most}")


def _counter_title(state: dict[str, Any]) -> str:
    approx = "" if state.get("exact") else "~"
    return (f"{approx}{state.get('total', 0):,} tokens · {state.get('model')} "
            f"({state.get('encoding')})")


def counter_html(state: dict[str, Any]) -> str:
    """The token counter as self-contained HTML."""
    if state.get("error"):
        return _wrap(f'<div class="gm-head">{esc(state.get("model"))}</div>'
                     f'<div class="gm-err">{esc(state["error"])}</div>', "gm-counter")
    parts = [f'<div class="gm-head">{esc(_counter_title(state))}</div>']
    rows = state.get("rows") or []
    if state.get("mode") == "chat":
        head = "".join(f'<th class="{"gm-l" if c in ("role", "name", "preview") else ""}">'
                       f"{esc(c)}</th>" for c in _COUNTER_COLS)
        body = []
        for role, name, content, name_t, overhead, preview in rows:
            cells = [f'<td class="gm-l">{esc(role)}</td>',
                     f'<td class="gm-l">{esc(name) if name is not None else ""}</td>',
                     *(f"<td>{int(n):,}</td>" for n in (content, name_t, overhead,
                                                        content + name_t + overhead)),
                     f'<td class="gm-l gm-muted">{esc(preview)}</td>']
            body.append(f"<tr>{''.join(cells)}</tr>")
        for label, key in (("reply priming", "reply_priming"), ("tools", "tools")):
            if state.get(key) or key == "reply_priming":
                body.append(f'<tr><td class="gm-l" colspan="5">{label}</td>'
                            f"<td>{int(state.get(key) or 0):,}</td><td></td></tr>")
        body.append(f'<tr><td class="gm-l" colspan="5"><b>total</b></td>'
                    f"<td><b>{int(state.get('total', 0)):,}</b></td><td></td></tr>")
        parts.append(f'<table class="gm-table"><thead><tr>{head}</tr></thead>'
                     f"<tbody>{''.join(body)}</tbody></table>")
    line, fill = _fill_line(state)
    bar = ""
    if fill is not None:
        tint = "#16a34a" if fill < 0.75 else "#d97706" if fill < 1 else "#dc2626"
        bar = (f'<span class="gm-bar"><span class="gm-fill" style="display:block;'
               f'width:{min(fill * 100, 100):.2f}%;background:{tint}"></span></span> ')
    parts.append(f"<div>{bar}{esc(line)}</div>")
    cost = state.get("cost")
    parts.append(f"<div>{esc(_cost_line(cost))}"
                 + (f' <span class="gm-muted">({esc(cost["source"])})</span>' if cost else "")
                 + "</div>")
    if not state.get("exact") or state.get("note"):
        parts.append(f'<div class="gm-muted">{esc(_count_note(state))}</div>')
    return _wrap("".join(parts), "gm-counter")


def _count_note(state: dict[str, Any]) -> str:
    """The count's note, marked approximate only when the count is (as counter.js does:
    the embedded engine's exact count may carry a note too)."""
    note = str(state.get("note") or "")
    if state.get("exact"):
        return note
    return f"≈ approximate count: {note}" if note else "≈ approximate count"


def counter_text(state: dict[str, Any]) -> str:
    """The token counter as terminal text."""
    if state.get("error"):
        return f"{state.get('model')}: {state['error']}"
    lines = [_counter_title(state)]
    if state.get("mode") == "chat":
        lines.append(f"  {'role':<10} {'name':<12} {'content':>7} {'name':>4} {'overhead':>8} "
                     f"{'total':>6}  preview")
        for role, name, content, name_t, overhead, preview in state.get("rows") or []:
            total = content + name_t + overhead
            lines.append(f"  {role:<10} {name or '-':<12} {content:>7,} {name_t:>4,} "
                         f"{overhead:>8,} {total:>6,}  {preview[:40]}")
        lines.append(f"  {'reply priming':<47} {state.get('reply_priming', 0):>6,}")
        if state.get("tools"):
            lines.append(f"  {'tools':<47} {state['tools']:>6,}")
    lines.append(_fill_line(state)[0])
    cost = state.get("cost")
    lines.append(_cost_line(cost) + (f" ({cost['source']})" if cost else ""))
    if not state.get("exact") or state.get("note"):
        lines.append(_count_note(state))
    return "\n".join(lines)


# -- token view ----------------------------------------------------------------------

_VISIBLE = str.maketrans({" ": "·", "\t": "→", "\n": "↵\n"})


def tokenview_html(state: dict[str, Any]) -> str:
    """The token view as self-contained HTML (panes side by side)."""
    panes = []
    for pane in state.get("panes") or []:
        partial = {int(i): h for i, h in pane.get("partial") or []}
        spans = []
        for i, (tid, piece) in enumerate(zip(pane.get("ids") or [], pane.get("pieces") or [],
                                             strict=False)):
            if i in partial:
                spans.append(f'<span class="gm-t gm-partial" title="{esc(f"#{i} id {tid}")} · '
                             f'{esc("bytes " + partial[i])}">{esc(partial[i])}</span>')
                continue
            title = f"#{i} id {tid} · {_show(piece)}"
            spans.append(f'<span class="gm-t gm-{"ab"[i % 2]}" title="{esc(title)}">'
                         f"{esc(piece.translate(_VISIBLE))}</span>")
        note = f'<div class="gm-muted">≈ {esc(pane["note"])}</div>' if pane.get("note") else ""
        approx = "" if pane.get("exact", True) else "~"
        panes.append(f'<div class="gm-pane"><div class="gm-head">{esc(pane.get("label"))} · '
                     f"{approx}{int(pane.get('count', 0)):,} tokens</div>{note}"
                     f'<div class="gm-text">{"".join(spans)}</div></div>')
    return _wrap(f'<div class="gm-panes">{"".join(panes)}</div>', "gm-tokens")


def tokenview_text(state: dict[str, Any]) -> str:
    """The token view as terminal text: pieces between bars, then the ids."""
    out = []
    for pane in state.get("panes") or []:
        partial = {int(i): h for i, h in pane.get("partial") or []}
        shown = [f"⟨{partial[i]}⟩" if i in partial else p.translate(_VISIBLE)
                 for i, p in enumerate(pane.get("pieces") or [])]
        approx = "" if pane.get("exact", True) else "~"
        out.append(f"{pane.get('label')}: {approx}{pane.get('count', 0):,} tokens"
                   + (f" ({pane['note']})" if pane.get("note") else ""))
        out.append("|".join(shown))
        out.append("ids: " + " ".join(str(t) for t in pane.get("ids") or []))
    return "\n".join(out)


# -- heatmap -------------------------------------------------------------------------


def _top_lines(top: Sequence[Sequence[Any]]) -> list[str]:
    if not top:
        return []
    cover = sum(math.exp(lp) for _, lp in top if lp is not None)
    lines = [f"top {len(top)} · coverage {_pct(cover)}"]
    lines += [f"  {_show(alt)}  {_pct(math.exp(lp)) if lp is not None else '?'}"
              for alt, lp in top]
    return lines


def _token_title(choice: dict[str, Any], i: int, partial: dict[int, str]) -> str:
    piece, lp = choice["t"][i], choice["lp"][i]
    shown = f"bytes {partial[i]} (part of a character)" if i in partial else _show(piece)
    head = shown if lp is None else f"{shown} · p {_pct(math.exp(lp))} · logprob {lp}"
    lines = [head]
    if i < choice.get("n_prompt", 0):
        lines.append("echoed prompt token (not scored)")
    return "\n".join(lines + _top_lines(choice["top"][i] if i < len(choice["top"]) else []))


def _label(choice: dict[str, Any], i: int) -> str:
    """A token quoted, or its bytes when it completes no character."""
    for index, hexed in choice.get("partial") or []:
        if index == i:
            return f"⟨{hexed}⟩"
    return _show(choice["t"][i])


def _summary_text(choice: dict[str, Any], sep: str = " · ") -> str:
    s = choice.get("summary") or {}
    parts = [f"{s.get('tokens', 0):,} generated tokens"]
    if s.get("mean_logprob") is not None:
        parts.append(f"mean logprob {s['mean_logprob']}")
    if s.get("perplexity") is not None:
        parts.append(f"perplexity {s['perplexity']}")
    least = [f"{_label(choice, i)} {_pct(math.exp(lp))}" for i, lp in s.get("least") or []]
    if least:
        parts.append("least likely: " + ", ".join(least))
    return sep.join(parts)


def _choice_html(choice: dict[str, Any], threshold: float, stops: Any, many: bool) -> str:
    partial = {int(i): h for i, h in choice.get("partial") or []}
    n_prompt = int(choice.get("n_prompt") or 0)
    spans = []
    for i, (piece, lp) in enumerate(zip(choice.get("t") or [], choice.get("lp") or [],
                                        strict=False)):
        cls = ["gm-t"]
        p = _prob(lp)
        style = ""
        if p is not None:
            bg = colour(p, stops)
            style = f' style="background:{bg};color:{text_colour(bg)}"'
        if i < n_prompt:
            cls.append("gm-prompt")
        elif p is not None and p < threshold:
            cls.append("gm-low")
        text = esc(partial[i]) if i in partial else esc(piece.replace("\n", "↵\n"))
        if i in partial:
            cls.append("gm-partial")
        title = esc(_token_title(choice, i, partial))
        spans.append(f'<span class="{" ".join(cls)}" tabindex="0"{style} title="{title}">'
                     f"{text}</span>")
    head = ""
    if many:
        head = (f'<div class="gm-head">Choice {esc(choice.get("index"))} · finish: '
                f'{esc(choice.get("finish_reason"))}</div>')
    summary = _summary_text(choice)
    if not many and choice.get("finish_reason"):
        summary += f" · finish: {choice['finish_reason']}"
    return (f'{head}<div class="gm-text">{"".join(spans)}</div>'
            f'<div class="gm-muted">{esc(summary)}</div>')


def _legend(stops: Any, threshold: float) -> str:
    grad = ",".join(f"{c} {float(q) * 100:g}%" for q, c in stops)
    return (f'<div class="gm-muted">probability 0% <span class="gm-grad" '
            f'style="background:linear-gradient(to right,{grad})"></span> 100% · '
            f'<span class="gm-low">outlined</span>: below {esc(_pct(threshold))} · '
            '<span class="gm-prompt">dashed italic</span>: echoed prompt · hover or focus a '
            "token for its alternatives</div>")


def _stops(state: dict[str, Any]) -> list[list[Any]]:
    stops = state.get("scale")
    if (isinstance(stops, list) and len(stops) >= 2
            and all(isinstance(s, list) and len(s) == 2 and is_hex_colour(s[1])
                    and isinstance(s[0], int | float) for s in stops)):
        return stops
    return STOPS


def heatmap_html(state: dict[str, Any]) -> str:
    """The logprob heatmap as self-contained HTML (n > 1 choices one after another)."""
    stops, threshold = _stops(state), float(state.get("threshold", 0.1))
    choices = state.get("choices") or []
    fast = None if stops == STOPS else stops  # the default scale's colours are cached
    body = "".join(_choice_html(c, threshold, fast, len(choices) > 1) for c in choices)
    return _wrap(_legend(stops, threshold) + body, "gm-heatmap")


def heatmap_text(state: dict[str, Any]) -> str:
    """The heatmap as terminal text: tokens below the threshold in [brackets], then a table."""
    threshold = float(state.get("threshold", 0.1))
    out = []
    choices = state.get("choices") or []
    for c in choices:
        if len(choices) > 1:
            out.append(f"Choice {c.get('index')} · finish: {c.get('finish_reason')}")
        n_prompt = int(c.get("n_prompt") or 0)
        marked = [f"[{piece}]" if i >= n_prompt and lp is not None and math.exp(lp) < threshold
                  else piece for i, (piece, lp) in enumerate(zip(c["t"], c["lp"], strict=False))]
        if n_prompt:
            out.append("prompt (echoed): " + "".join(marked[:n_prompt]))
        out.append("".join(marked[n_prompt:]))
        out.append(_summary_text(c))
        least = (c.get("summary") or {}).get("least") or []
        if least:
            out.append(f"  {'#':>5}  {'token':<16} {'p':>7}  top alternatives (coverage)")
        for i, lp in least:
            top = c["top"][i] if i < len(c["top"]) else []
            cover = sum(math.exp(a_lp) for _, a_lp in top if a_lp is not None)
            alts = ", ".join(f"{_show(a)} {_pct(math.exp(a_lp))}" for a, a_lp in top
                             if a_lp is not None)
            row = f"  {i:>5}  {_label(c, i):<16} {_pct(math.exp(lp)):>7}  {alts}"
            out.append((row + (f" ({_pct(cover)})" if top else "")).rstrip())
    return "\n".join(out)
