"""Pure renderers of what the magics show: mime bundles, no IPython.

A bundle is ``(data, metadata)``: ``data`` a Jupyter mime dict, ``metadata``
JSON-safe facts about the request and response (never a key or header).
Model output is untrusted: raw HTML in it is escaped outside code, and
``javascript:`` links are defused, so a reply can never run script in a view.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .types import Result

__all__ = [
    "HistoryRow",
    "SideBySideRow",
    "dry_run_bundle",
    "error_bundle",
    "explain_finish",
    "history_bundle",
    "reply_bundle",
    "safe_markdown",
    "side_by_side_bundle",
    "stream_bundle",
    "summary_line",
]

_FENCE = re.compile(r"(```.*?(?:```|\Z)|`[^`\n]*`)", re.S)
_JS_LINK = re.compile(r"\]\(\s*(javascript|data|vbscript):", re.I)
_SECRET_NAMES = re.compile(r"(authorization|api[-_]?key|token|secret|sig|password)", re.I)


def safe_markdown(text: str) -> str:
    """Markdown that shows raw HTML as text; code spans and fences stay verbatim."""
    parts = _FENCE.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # inside code: Markdown already shows it literally
            out.append(part)
        else:
            part = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            out.append(_JS_LINK.sub(lambda m: "](#blocked-" + m.group(1).lower() + ":", part))
    return "".join(out)


def explain_finish(reason: str | None, *, max_tokens: int | None = None) -> str:
    """One plain sentence about why generation stopped, with a fix where there is one."""
    if reason == "stop":
        return "the model finished (natural end or a stop sequence)"
    if reason == "length":
        where = f"max_tokens={max_tokens}" if max_tokens else "the token limit"
        return (f"cut off at {where}: raise --max-tokens"
                f"{f' (now {max_tokens})' if max_tokens else ''} or ask for a shorter answer")
    if reason == "content_filter":
        return ("the provider's content filter removed output: rephrase the prompt, "
                "or check the provider's content policy")
    if reason in ("tool_calls", "function_call"):
        return "the model asked to call a tool: run it and send the result back"
    if reason is None:
        return "the stream ended without a finish reason"
    return f"finish reason {reason!r}"


def _money(cost: Any) -> str:
    if cost is None or getattr(cost, "total", None) is None:
        return "cost unknown"
    return f"cost {cost}"


def summary_line(result: Result, cost: Any = None, *, max_tokens: int | None = None) -> str:
    """``finish · tokens · cost · timings · model`` in one line."""
    reason = result.finish_reason
    finish = f"finish: {reason}" if reason == "stop" else (
        f"finish: {reason} — {explain_finish(reason, max_tokens=max_tokens)}")
    u = result.usage
    tokens = (f"tokens: {u.prompt_tokens} prompt + {u.completion_tokens} completion"
              if u else "tokens: not reported")
    t = result.timings
    timing = f"{t.total:.2f} s" if t.total is not None else "time n/a"
    if t.ttft is not None:
        timing += f", first token {t.ttft * 1000:.0f} ms"
    return " · ".join([finish, tokens, _money(cost), timing, result.model or "?"])


def _response_meta(result: Result, cost: Any) -> dict[str, Any]:
    u = result.usage
    return {
        "id": result.id,
        "model": result.model,
        "finish_reasons": [c.finish_reason for c in result.choices],
        "usage": None if u is None else {
            "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens, "cached_tokens": u.cached_tokens},
        "cost_usd": None if cost is None or cost.total is None else str(cost.total),
        "ttft_s": result.timings.ttft,
        "total_s": result.timings.total,
        "request_id": result.request_id,
    }


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _check_no_secrets(value: Any, where: str = "request") -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str) and re.fullmatch(r"(authorization|api[-_]?key)", k, re.I):
                raise ValueError(f"{where} holds a {k!r} field; refusing to display it")
            _check_no_secrets(v, where)
    elif isinstance(value, list):
        for v in value:
            _check_no_secrets(v, where)


def reply_bundle(
    result: Result,
    *,
    cost: Any = None,
    max_tokens: int | None = None,
    note: str | None = None,
    request_summary: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The final view of a chat or completion result."""
    line = summary_line(result, cost, max_tokens=max_tokens)
    md, plain = [], []
    many = len(result.choices) > 1
    for k, ch in enumerate(result.choices, 1):
        if many:
            head = f"choice {k} of {len(result.choices)} · finish: {ch.finish_reason}"
            md.append(f"**{head}**\n")
            plain.append(f"--- {head} ---")
        md.append(safe_markdown(ch.text or "") + "\n")
        plain.append(ch.text or "")
    md.append(f"\n---\n<small>{html.escape(line)}</small>")
    plain.append(f"[{line}]")
    if note:
        md.append(f"\n\n<small>{html.escape(note)}</small>")
        plain.append(f"[{note}]")
    meta = {"gptmagic": _json_safe({"request": dict(request_summary or {}),
                                    "response": _response_meta(result, cost)})}
    _check_no_secrets(meta)
    return {"text/markdown": "\n".join(md), "text/plain": "\n".join(plain)}, meta


def stream_bundle(texts: Mapping[int, str], *, model: str, elapsed: float | None = None
                  ) -> dict[str, Any]:
    """The live view while a reply streams."""
    parts = []
    for i in sorted(texts):
        if len(texts) > 1:
            parts.append(f"**choice {i + 1}**\n")
        parts.append(safe_markdown(texts[i]) + "\n")
    size = sum(len(t) for t in texts.values())
    when = f" · {elapsed:.1f} s" if elapsed is not None else ""
    status = f"streaming… {model} · {size} chars{when}"
    return {"text/markdown": "\n".join(parts) + f"\n<small>{html.escape(status)}</small>",
            "text/plain": "\n".join(texts[i] for i in sorted(texts)) + f"\n[{status}]"}


@dataclass
class SideBySideRow:
    model: str
    result: Result | None
    error: str | None
    cost: Any
    max_tokens: int | None = None


def side_by_side_bundle(rows: Sequence[SideBySideRow]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One column per model: reply, finish, tokens, cost, latency."""
    e = html.escape
    cells: dict[str, list[str]] = {"reply": [], "finish": [], "tokens": [], "cost": [],
                                   "latency": []}
    plain, md = [], []
    for row in rows:
        r = row.result
        if r is None:
            cells["reply"].append(f'<td style="color:#b00">{e(row.error or "error")}</td>')
            for k in ("finish", "tokens", "cost", "latency"):
                cells[k].append("<td>–</td>")
            plain.append(f"== {row.model} ==\nerror: {row.error}")
            md.append(f"### {e(row.model)}\n\n**error:** {e(row.error or '')}")
            continue
        u = r.usage
        tok = f"{u.prompt_tokens} + {u.completion_tokens}" if u else "not reported"
        lat = f"{r.timings.total:.2f} s" if r.timings.total is not None else "n/a"
        cells["reply"].append(f'<td style="white-space:pre-wrap;vertical-align:top;'
                              f'text-align:left">{e(r.text)}</td>')
        cells["finish"].append(f"<td>{e(str(r.finish_reason))}</td>")
        cells["tokens"].append(f"<td>{e(tok)}</td>")
        cells["cost"].append(f"<td>{e(_money(row.cost))}</td>")
        cells["latency"].append(f"<td>{e(lat)}</td>")
        line = summary_line(r, row.cost, max_tokens=row.max_tokens)
        plain.append(f"== {row.model} ==\n{r.text}\n[{line}]")
        md.append(f"### {e(row.model)}\n\n{safe_markdown(r.text)}\n\n<small>{e(line)}</small>")
    head = "".join(f"<th>{e(row.model)}</th>" for row in rows)
    body = "".join(f"<tr><th>{k}</th>{''.join(v)}</tr>" for k, v in cells.items())
    table = f'<table class="gptmagic-compare"><tr><th></th>{head}</tr>{body}</table>'
    meta = {"gptmagic": _json_safe({"compare": [
        {"model": row.model, "error": row.error,
         "response": _response_meta(row.result, row.cost) if row.result else None}
        for row in rows]})}
    return {"text/html": table, "text/markdown": "\n\n".join(md),
            "text/plain": "\n\n".join(plain)}, meta


@dataclass
class HistoryRow:
    turn: int
    role: str
    name: str | None
    content: str
    tokens: int | None
    cell: str | None


def history_bundle(rows: Sequence[HistoryRow], *, thread: str, context_window: int | None,
                   total: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The thread as a table with tokens per message and the context-window fill."""
    e = html.escape
    fill = ""
    if total is not None:
        fill = f"{total:,} tokens"
        if context_window:
            fill = f"{total:,} of {context_window:,} tokens ({100 * total / context_window:.0f}%)"
    trs, plain = [], [f"thread {thread!r}: {len(rows)} message(s); {fill or 'empty'}"]
    for r in rows:
        preview = r.content if len(r.content) <= 200 else r.content[:197] + "…"
        tok = "" if r.tokens is None else str(r.tokens)
        trs.append(f"<tr><td>{r.turn}</td><td>{e(r.role)}</td><td>{e(r.name or '')}</td>"
                   f"<td>{tok}</td><td style='white-space:pre-wrap;text-align:left'>"
                   f"{e(preview)}</td></tr>")
        plain.append(f"{r.turn:>3} {r.role:<9} {tok:>6}  {preview!r}")
    table = (f"<p><b>thread {e(thread)}</b> · {len(rows)} message(s) · {e(fill or 'empty')}</p>"
             "<table><tr><th>turn</th><th>role</th><th>name</th><th>tokens</th>"
             f"<th>content</th></tr>{''.join(trs)}</table>")
    meta = {"gptmagic": {"thread": thread, "messages": len(rows), "tokens": total,
                         "context_window": context_window}}
    return {"text/html": table, "text/plain": "\n".join(plain)}, meta


def _clean_url(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if not _SECRET_NAMES.search(k)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def dry_run_bundle(request: Mapping[str, Any], *, url: str, count: Any, estimate: Any,
                   note: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The exact request that would be sent, its token count and cost; nothing is sent."""
    _check_no_secrets(request)
    body = json.dumps(request, indent=2, ensure_ascii=False)
    url = _clean_url(url)
    kind = "exact" if count.exact else "approximate"
    lines = [f"Dry run — nothing sent. POST {url}",
             f"prompt tokens: {count.total} ({kind}, {count.encoding})"]
    for m in count.messages:
        lines.append(f"  [{m.index}] {m.role}: {m.total} (content {m.content}, name {m.name}, "
                     f"format {m.overhead})")
    if count.messages:
        lines.append(f"  reply priming: {count.reply_priming}")
    if count.note:
        lines.append(f"note: {count.note}")
    lines.append(f"cost: {estimate.low} prompt only · {estimate.expected} expected · "
                 f"{estimate.high} at most")
    if note:
        lines.append(note)
    text = "\n".join(lines)
    md = f"**{html.escape(lines[0])}**\n\n```json\n{body}\n```\n\n" + "\n".join(
        f"    {line}" for line in lines[1:])
    meta = {"gptmagic": _json_safe({"dry_run": True, "url": url, "prompt_tokens": count.total,
                                    "exact": count.exact})}
    return {"text/plain": f"{text}\n{body}", "text/markdown": md}, meta


def error_bundle(message: str, *, title: str = "gptmagic error") -> dict[str, Any]:
    """A short readable error block (no traceback)."""
    return {"text/plain": f"{title}: {message}",
            "text/html": f"<div style='color:#b00'><b>{html.escape(title)}</b>: "
                         f"{html.escape(message)}</div>"}
