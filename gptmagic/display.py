"""Pure renderers of what the ``%%chat`` and ``%%complete`` magics show.

Every function returns plain data: a Jupyter mime dict (``text/plain``,
``text/markdown``, some ``text/html``) and, for final outputs, JSON-safe
metadata. Nothing here imports IPython.

Model output is untrusted. :func:`safe_markdown` keeps its Markdown (headings,
lists, emphasis, links, tables, code) but makes it inert in *any* renderer, not
only a CommonMark-exact one: JupyterLab (marked), VS Code (markdown-it) and the
classic notebook disagree on edge cases, and a disagreement about where a code
block ends must never turn text into HTML.

- Prose: ``&``, ``<``, ``>`` become entities (leading blockquote markers stay);
  ``![`` becomes ``!`` + a link (an image loads its URL unasked: the classic way
  injected output leaks data); a link destination whose scheme is not http,
  https or mailto gets a ``#blocked:`` prefix; ``]:`` is broken, so no reference
  definition forms (marked lets their titles run over blank lines).
- Inline code becomes ``<code>`` with its punctuation as entities: shown
  verbatim however it is parsed.
- A fence at the left margin stays a fence, verbatim (so it is highlighted),
  re-fenced with more backticks than any run inside and set off by blank lines,
  so no renderer can end it early or miss its start. An indented fence (in a
  list item) cannot be delimited as surely: it becomes a one-line ``<pre>``
  with its text as entities (shown verbatim, not highlighted).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._markdown import _fence, escape_markdown, safe_markdown
from .types import Choice, Result, Timings, Usage

if TYPE_CHECKING:
    from .pricing import Cost, Estimate
    from .tokens import TokenCount

__all__ = ["Bundle", "HistoryRow", "PREVIEW_CHARS", "SideBySideRow", "dry_run_bundle",
           "error_bundle", "escape_markdown", "explain_finish", "history_bundle", "plain_footer",
           "reply_bundle", "safe_markdown", "side_by_side_bundle", "stream_bundle", "summary_line"]

#: ``(data, metadata)``: a Jupyter mime dict and JSON-safe output metadata.
Bundle = tuple[dict[str, Any], dict[str, Any]]

#: Characters of a message shown in the history table.
PREVIEW_CHARS = 200
# Key names are compared lower-case without "-", "_" and spaces; "...apikey" counts too.
_CREDENTIAL_KEYS = frozenset({"authorization", "proxyauthorization", "apikey"})
_DROPPED_KEYS = _CREDENTIAL_KEYS | {"headers", "extraheaders", "defaultheaders", "cookie"}
_SECRET_PARAM = re.compile(r"key|token|sig|secret|passw|auth|cred", re.I)
_CELL = "text-align: left; vertical-align: top; white-space: pre-wrap"


# -- finish reasons and the summary line ----------------------------------------------------

_FINISH = {
    "stop": "The model stopped on its own: it reached a natural end or a stop sequence.",
    "length": "The reply was cut off: it hit max_tokens or the context window; raise "
              "--max-tokens ({now}) or ask for a shorter answer.",
    "content_filter": "The provider's content filter withheld part or all of the reply; "
                      "rephrase the prompt, or (Azure) review the deployment's filter settings.",
    "tool_calls": "The model asked to call a tool instead of answering; run it and send its "
                  "result back in a 'tool' message to get the answer.",
    "function_call": "The model asked to call a function (legacy function calling); run it "
                     "and send its result back in a 'function' message to get the answer.",
    None: "The stream ended without a finish reason: the reply may be incomplete.",
}
_FINISH_SHORT = {"length": "hit {limit}; raise --max-tokens",
                 "content_filter": "filtered by the provider",
                 "tool_calls": "the model called a tool",
                 "function_call": "the model called a function",
                 None: "the stream ended without a finish reason"}


def explain_finish(reason: str | None, *, max_tokens: int | None = None) -> str:
    """One plain sentence saying why a choice ended and, if it matters, what to do."""
    if reason not in _FINISH:
        return f"The provider gave the finish reason '{reason}', which is not a standard one."
    return _FINISH[reason].format(now="not set" if max_tokens is None else f"now {max_tokens}")


def _finish_text(result: Result, max_tokens: int | None) -> str:
    """``stop``, or ``length — hit max_tokens=48; raise --max-tokens``."""
    reasons = list(dict.fromkeys(c.finish_reason for c in result.choices))
    if not reasons:
        return "none — no choices returned"
    limit = "the token limit" if max_tokens is None else f"max_tokens={max_tokens}"
    why = "; ".join(_FINISH_SHORT[r].format(limit=limit) for r in reasons if r in _FINISH_SHORT)
    text = ", ".join("none" if r is None else r for r in reasons)
    return f"{text} — {why}" if why else text


def _tokens_text(usage: Usage | None) -> str:
    if usage is None:
        return "not reported"
    cached = f" ({usage.cached_tokens:,} cached)" if usage.cached_tokens else ""
    reasoning = f" ({usage.reasoning_tokens:,} reasoning)" if usage.reasoning_tokens else ""
    return (f"{usage.prompt_tokens:,} prompt{cached} + "
            f"{usage.completion_tokens:,} completion{reasoning}")


def _cost_text(cost: Cost | None) -> str:
    return str(cost) if cost is not None and cost.known else "unknown"


def _time_text(t: Timings) -> str | None:
    parts = [] if t.total is None else [f"{t.total:.2f} s"]
    if t.ttft is not None:
        parts.append("first token " + (f"{t.ttft * 1000:.0f} ms" if t.ttft < 1
                                       else f"{t.ttft:.2f} s"))
    if t.attempts > 1:
        parts.append(f"{t.attempts} attempts")
    return ", ".join(parts) or None


def summary_line(result: Result, cost: Cost | None = None, *,
                 max_tokens: int | None = None) -> str:
    """``finish: stop · tokens: 25 prompt + 48 completion · cost $0.000012 · 0.64 s · model``.

    Unknown cost reads ``cost unknown``; missing usage ``tokens: not reported``.
    """
    parts = [f"finish: {_finish_text(result, max_tokens)}", f"tokens: {_tokens_text(result.usage)}",
             f"cost {_cost_text(cost)}", _time_text(result.timings), result.model]
    return " · ".join(p for p in parts if p)


def _small(text: str, style: str = "") -> str:
    lines = "<br>".join(escape_markdown(t) for t in text.splitlines())
    return f'<small style="{style}">{lines}</small>' if style else f"<small>{lines}</small>"


# -- tables and simple documents, rendered three ways -----------------------------------------


def _md_table(cols: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(escape_markdown(c).replace("\n", " ") for c in cells) + " |"

    return "\n".join([line(cols), "|---" * len(cols) + "|", *map(line, rows)])


def _html_table(cols: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    def tr(cells: Sequence[str], tag: str) -> str:
        return "<tr>" + "".join(f'<{tag} style="{_CELL}">{html.escape(c)}</{tag}>'
                                for c in cells) + "</tr>"

    return (f'<table class="{cls}"><thead>{tr(cols, "th")}</thead>'
            f"<tbody>{''.join(tr(r, 'td') for r in rows)}</tbody></table>")


def _plain_table(cols: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [cols, *rows]) for i in range(len(cols) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]])
                     .rstrip() for r in [cols, *rows])


def _render(blocks: Sequence[tuple[str, Any]], cls: str) -> dict[str, str]:
    """Render ``("title" | "p" | "small" | "json", text)`` and ``("table", (cols, rows))``."""
    plain, md, page = [], [], []
    for kind, x in blocks:
        if kind == "table":
            plain.append(_plain_table(*x))
            md.append(_md_table(*x))
            page.append(_html_table(*x))
            continue
        plain.append(x)
        if kind == "json":
            md.append(_fence(x, "json"))
            page.append(f"<pre>{html.escape(x)}</pre>")
        elif kind == "small":
            md.append(_small(x))
            page.append(f"<p><small>{html.escape(x)}</small></p>")
        else:
            text = "  \n".join(escape_markdown(line) for line in x.splitlines())
            md.append(f"**{text}**" if kind == "title" else text)
            body = html.escape(x)
            page.append(f'<p style="white-space: pre-wrap">'
                        f'{f"<strong>{body}</strong>" if kind == "title" else body}</p>')
    return {"text/plain": "\n".join(plain), "text/markdown": "\n\n".join(md),
            "text/html": f'<div class="{cls}">{"".join(page)}</div>'}


# -- replies ------------------------------------------------------------------------------------


def _tool_calls_json(calls: Sequence[Any]) -> str:
    shown = []
    for call in calls:
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping):
            shown.append(call)
            continue
        args = fn.get("arguments")
        try:
            args = json.loads(args) if isinstance(args, str) else args
        except ValueError:
            pass  # shown as the model wrote it
        shown.append({"id": call.get("id"), "name": fn.get("name"), "arguments": args})
    return json.dumps(shown, indent=2, ensure_ascii=False, default=str)


def _choice_views(c: Choice) -> tuple[str, str]:
    """A choice as (markdown, plain): its text, refusal and tool calls."""
    md, plain = [], []
    if c.text:
        md.append(safe_markdown(c.text))
        plain.append(c.text)
    if c.refusal:
        md += ["**refusal**", safe_markdown(c.refusal)]
        plain.append(f"refusal: {c.refusal}")
    if c.tool_calls:
        calls = _tool_calls_json(c.tool_calls)
        md += ["**tool calls**", _fence(calls, "json")]
        plain.append(f"tool calls:\n{calls}")
    if not md:
        md, plain = ["*(empty reply)*"], ["(empty reply)"]
    return "\n\n".join(md), "\n\n".join(plain)


def plain_footer(result: Result, cost: Cost | None = None, *, max_tokens: int | None = None,
                 note: str | None = None) -> str:
    """How :func:`reply_bundle`'s ``text/plain`` ends: ``── <summary line>``, then the note."""
    line = f"── {summary_line(result, cost, max_tokens=max_tokens)}"
    return f"{line}\n{note}" if note else line


def _response_meta(result: Result | None, cost: Cost | None) -> dict[str, Any] | None:
    """The listed fields only: never ``raw`` (it may echo what the request carried)."""
    if result is None:
        return None
    usage = result.usage and {k: v if isinstance(v, int) else None
                              for k, v in asdict(result.usage).items()}
    usd = cost is not None and cost.total is not None and cost.currency == "USD"
    t = result.timings
    return {"id": _str(result.id), "model": _str(result.model),
            "finish_reasons": [_str(c.finish_reason) for c in result.choices], "usage": usage,
            "cost_usd": str(cost.total) if usd else None,  # type: ignore[union-attr]
            "ttft_s": _jsonable(t.ttft), "total_s": _jsonable(t.total),
            "request_id": _str(result.request_id)}


def _str(x: Any) -> str | None:
    return None if x is None else str(x)


def _key_name(key: Any) -> str:
    return re.sub(r"[\s_-]", "", str(key).lower())


def _is_credential(key: Any) -> bool:
    name = _key_name(key)
    return name in _CREDENTIAL_KEYS or name.endswith("apikey")


def _jsonable(value: Any) -> Any:
    """A JSON-safe copy: Decimal as str, no bytes, header- and key-like entries dropped."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal | bytes | bytearray):
        return str(value) if isinstance(value, Decimal) else f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()
                if not _is_credential(k) and _key_name(k) not in _DROPPED_KEYS}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


def reply_bundle(result: Result, *, cost: Cost | None = None, max_tokens: int | None = None,
                 note: str | None = None,
                 request_summary: Mapping[str, Any] | None = None) -> Bundle:
    """The final view of a chat or completion: the reply, a summary line, the note.

    ``text/plain`` is the reply, a blank line, then :func:`plain_footer`.
    """
    n = len(result.choices)
    md, plain = [], []
    for pos, c in enumerate(result.choices, 1):
        if n > 1:
            head = f"choice {pos} of {n} · finish: {c.finish_reason or 'none'}"
            md.append(f"#### {escape_markdown(head)}")
            plain.append(f"── {head} ──")
        body_md, body_plain = _choice_views(c)
        md.append(body_md)
        plain.append(body_plain)
        if n > 1 and c.finish_reason != "stop":
            why = explain_finish(c.finish_reason, max_tokens=max_tokens)
            md.append(_small(why))
            plain.append(why)
    if not n:
        md, plain = ["*(no choices returned)*"], ["(no choices returned)"]
    md += ["---", _small(summary_line(result, cost, max_tokens=max_tokens))]
    md += [_small(note)] if note else []
    plain.append(plain_footer(result, cost, max_tokens=max_tokens, note=note))
    meta = {"gptmagic": {"request": _jsonable(dict(request_summary or {})),
                         "response": _response_meta(result, cost)}}
    return {"text/plain": "\n\n".join(plain), "text/markdown": "\n\n".join(md)}, meta


def stream_bundle(texts: Mapping[int, str], *, model: str,
                  elapsed: float | None = None) -> dict[str, Any]:
    """The live view while a reply streams in: the text so far and a faint status line."""
    n = max(len(texts), max(texts, default=-1) + 1)
    md, plain = [], []
    for index in sorted(texts):
        if n > 1:
            md.append(f"#### choice {index + 1} of {n}")
            plain.append(f"── choice {index + 1} of {n} ──")
        md.append(safe_markdown(texts[index]))
        plain.append(texts[index])
    status = f"streaming… {model} · {sum(map(len, texts.values())):,} chars"
    status += "" if elapsed is None else f" · {elapsed:.1f} s"
    md.append(_small(status, "opacity: 0.6"))
    plain.append(status)
    return {"text/plain": "\n\n".join(plain), "text/markdown": "\n\n".join(md)}


# -- several models side by side ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SideBySideRow:
    """One model's outcome in a side-by-side comparison: a result, or an error."""

    model: str
    result: Result | None
    error: str | None
    cost: Cost | None
    max_tokens: int | None = None


def _reply_text(result: Result) -> str:
    views = [_choice_views(c)[1] for c in result.choices]
    if len(views) == 1:
        return views[0]
    return "\n\n".join(f"[choice {i} of {len(views)}]\n{v}" for i, v in enumerate(views, 1))


def side_by_side_bundle(rows: Sequence[SideBySideRow]) -> Bundle:
    """One column per model: reply, finish, tokens, cost, latency; an error in its column."""
    table = {k: ["" if k == "reply" else "—" for _ in rows]
             for k in ("reply", "finish", "tokens", "cost", "latency")}
    md, plain = [], []
    for i, r in enumerate(rows):
        md.append(f"#### {escape_markdown(r.model)}")
        if r.result is None:
            table["reply"][i] = f"error: {r.error or 'no result'}"
            md.append(f"**error**: {escape_markdown(r.error or 'no result')}")
            plain.append(f"== {r.model} ==\nerror: {r.error or 'no result'}")
            continue
        res, text = r.result, _reply_text(r.result)
        table["reply"][i] = text
        table["finish"][i] = _finish_text(res, r.max_tokens)
        table["tokens"][i] = _tokens_text(res.usage)
        table["cost"][i] = _cost_text(r.cost)
        table["latency"][i] = _time_text(res.timings) or "—"
        line = summary_line(res, r.cost, max_tokens=r.max_tokens)
        md += [_choice_views(res.choices[0])[0] if len(res.choices) == 1 else safe_markdown(text),
               _small(line)]
        plain.append(f"== {r.model} ==\n{text}\n── {line}")
    page = _html_table(["", *(r.model for r in rows)], [[k, *v] for k, v in table.items()],
                       "gptmagic-side-by-side")
    meta = {"gptmagic": {"side_by_side": [
        {"model": r.model, "error": r.error if r.result is None else None,
         "response": _response_meta(r.result, r.cost)} for r in rows]}}
    return {"text/plain": "\n\n".join(plain), "text/markdown": "\n\n".join(md),
            "text/html": page}, meta


# -- conversation history -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One message of a thread: turn, role, name, text, tokens and the cell it came from."""

    turn: int
    role: str
    name: str | None
    content: str
    tokens: int | None
    cell: str | None


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def _fill(total: int | None, context_window: int | None) -> str:
    if total is None:
        return "tokens not counted"
    if not context_window:
        return f"{total:,} tokens (context window unknown)"
    text = f"{total:,} of {context_window:,} tokens ({100 * total / context_window:.0f}%)"
    return text + " — over the context window" if total > context_window else text


def history_bundle(rows: Sequence[HistoryRow], *, thread: str, context_window: int | None,
                   total: int | None) -> Bundle:
    """A table of a conversation thread, and how full the context window is."""
    head = f"thread {thread!r}: {len(rows)} message(s) · {_fill(total, context_window)}"
    cells = [[str(r.turn), r.role, r.name or "", "" if r.tokens is None else f"{r.tokens:,}",
              _preview(r.content)] for r in rows]
    blocks: list[tuple[str, Any]] = [("p", head)]
    if rows:
        blocks.append(("table", (["turn", "role", "name", "tokens", "content"], cells)))
    meta = {"gptmagic": {"history": {"thread": thread, "messages": len(rows),
                                     "total_tokens": total, "context_window": context_window}}}
    return _render(blocks, "gptmagic-history"), meta


# -- dry runs and errors --------------------------------------------------------------------------


def _check_no_credentials(value: Any, path: str = "request") -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _is_credential(key):
                raise ValueError(f"{path}[{key!r}] looks like a credential: a dry run shows the "
                                 "request body only, never headers or keys")
            _check_no_credentials(item, f"{path}[{key!r}]")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_no_credentials(item, f"{path}[{i}]")


def _redact_url(url: str) -> tuple[str, list[str]]:
    """The URL without user info, fragment and query parameters named like secrets."""
    from urllib.parse import unquote_plus, urlsplit, urlunsplit

    parts = urlsplit(url)
    kept, hidden = [], ["user info"] if "@" in parts.netloc else []
    for piece in filter(None, parts.query.split("&")):
        name = unquote_plus(piece.split("=", 1)[0])
        if _SECRET_PARAM.search(name):
            hidden.append(name)
        else:
            kept.append(piece)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(kept), "")), hidden


def _count_blocks(count: TokenCount | int | None) -> list[tuple[str, Any]]:
    if count is None or isinstance(count, int):
        return [("p", "Tokens: " + ("not counted" if count is None else f"{count:,}"))]
    line = f"Tokens: {count.total:,} prompt tokens "
    line += f"({'exact' if count.exact else 'approximate'}, {count.encoding})"
    line += f": {count.note}" if count.note else ""
    rows = [[str(m.index), m.role, str(m.content), str(m.name), str(m.overhead), str(m.total)]
            for m in count.messages]
    if count.reply_priming:
        rows.append(["", "reply priming", "", "", *[str(count.reply_priming)] * 2])
    if count.tools:
        rows.append(["", "tools", str(count.tools), "", "", str(count.tools)])
    cols = ["#", "role", "content", "name", "format", "total"]
    return [("p", line), *([("table", (cols, rows))] if rows else [])]


def _estimate_text(est: Estimate | None) -> str:
    if est is None:
        return "Cost estimate: not available"
    high = (f"high {est.high} (with {est.max_completion_tokens:,} completion tokens)"
            if est.high.known and est.max_completion_tokens is not None else "high unknown")
    return (f"Cost estimate: expected {est.expected} (with {est.expected_completion_tokens:,} "
            f"completion tokens) · low {est.low} (prompt only) · {high}")


def dry_run_bundle(request: Mapping[str, Any], *, url: str, count: TokenCount | int | None,
                   estimate: Estimate | None, note: str | None = None,
                   counts_below: bool = False) -> Bundle:
    """What a request would send: endpoint, exact JSON body, token count and cost estimate.

    With ``counts_below`` the count and estimate are left to the token counter
    widget shown under it (the metadata keeps them).

    Raises ValueError if any key of ``request``, at any depth, is named like a
    credential (``Authorization``, ``api-key``, ...): the body shown never carries one.
    """
    _check_no_credentials(request)
    shown_url, hidden = _redact_url(url)
    blocks: list[tuple[str, Any]] = [("title", "Dry run — nothing sent"),
                                     ("p", f"POST {shown_url}")]
    if hidden:
        blocks.append(("small", f"hidden from the URL: {', '.join(hidden)}"))
    blocks.append(("json", json.dumps(request, indent=2, ensure_ascii=False, default=str)))
    if counts_below:
        blocks.append(("small", "Tokens and cost: see the counter below."))
    else:
        blocks += [*_count_blocks(count), ("p", _estimate_text(estimate))]
    blocks += [("small", note)] if note else []

    def usd(c: Cost) -> str | None:
        return None if c.total is None else str(c.total)

    total = getattr(count, "total", count)
    meta = {"gptmagic": {"dry_run": {
        "url": shown_url, "model": _jsonable(request.get("model")),
        "prompt_tokens": total if isinstance(total, int) else None,
        "exact": getattr(count, "exact", None),
        "cost_usd": estimate and {"low": usd(estimate.low), "expected": usd(estimate.expected),
                                  "high": usd(estimate.high)}}}}
    return _render(blocks, "gptmagic-dry-run"), meta


def error_bundle(message: str, *, title: str = "gptmagic error") -> dict[str, Any]:
    """A short, readable error block (no traceback)."""
    data = _render([("title", title), ("p", message)], "gptmagic-error")
    data["text/plain"] = f"{title}: {message}"
    return data
