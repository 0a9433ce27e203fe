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

The reply views (a reply, a stream, models side by side) live here; the tables
(history, dry run, error) and the secret-free metadata in
:mod:`gptmagic._display_tables`, re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from gptmagic.catalog.embedded import embedded_model
from gptmagic.catalog.money import INPUT_RATE_WRITES
from gptmagic.core.text import count_of
from gptmagic.core.types import Choice, Result, Timings, Usage
from gptmagic.views import structured
from gptmagic.views.markdown import _fence, escape_markdown, safe_markdown
from gptmagic.views.tables import (
    PREVIEW_CHARS,
    Bundle,
    HistoryRow,
    _html_table,
    _jsonable,
    _small,
    dry_run_bundle,
    history_bundle,
)

if TYPE_CHECKING:
    from gptmagic.catalog.pricing import Cost

__all__ = ["Bundle", "HistoryRow", "PREVIEW_CHARS", "SideBySideRow", "dry_run_bundle",
           "escape_markdown", "explain_finish", "history_bundle", "plain_footer",
           "reasoning_views", "reply_bundle", "safe_markdown", "side_by_side_bundle",
           "stream_bundle", "summary_line"]

# Re-exported names belong to this module, as httpx does (see gptmagic.scorers).
for _view in (HistoryRow, dry_run_bundle, history_bundle):
    _view.__module__ = __name__
del _view


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
    "interrupted": "You stopped the reply (Kernel ▸ Interrupt or Ctrl-C): the text is what "
                   "had arrived; the server reports usage only at the end.",
    None: "The stream ended without a finish reason: the reply may be incomplete.",
}
_FINISH_SHORT = {"length": "hit {limit}; raise --max-tokens",
                 "content_filter": "filtered by the provider",
                 "tool_calls": "the model called a tool",
                 "function_call": "the model called a function",
                 "interrupted": "stopped by you; the text is partial",
                 None: "the stream ended without a finish reason"}


def explain_finish(reason: str | None, *, max_tokens: int | None = None,
                   cap: str | None = None) -> str:
    """One plain sentence saying why a choice ended and, if it matters, what to do
    (``cap``: the default cap that cut it, from :func:`_default_cap`)."""
    if reason not in _FINISH:
        return f"The provider gave the finish reason '{reason}', which is not a standard one."
    if reason == "length" and cap is not None:
        return f"The reply was cut off at {cap}; pass --max-tokens to change it."
    return _FINISH[reason].format(now="not set" if max_tokens is None else f"now {max_tokens}")


#: ``max_tokens`` of ``POST /completions`` when a request sets none (OpenAI's reference).
_COMPLETIONS_DEFAULT = 16


def _default_cap(result: Result, max_tokens: int | None) -> str | None:
    """``the embedded base model gemma-3-270m's default cap of 256 tokens`` when that cap
    (the engine's, for a chat without max_tokens) is what ended ``result``, ``the
    completions endpoint's default of 16 tokens`` for a completion that set none, else
    None.

    Without it a user who set no limit reads "hit the token limit" and cannot
    tell which: the embedded engine caps such a reply (see
    :attr:`gptmagic.catalog.embedded.EmbeddedModel.default_max_tokens`).
    """
    if max_tokens is not None:
        return None
    if result.kind == "completion":  # OpenAI's legacy endpoint (and the engine): 16
        u, n = result.usage, max(1, len(result.choices))
        return (f"the completions endpoint's default of {_COMPLETIONS_DEFAULT} tokens"
                if u is not None and u.completion_tokens == _COMPLETIONS_DEFAULT * n else None)
    model = embedded_model(result.model)
    if model is None:
        return None
    if result.usage is not None and result.usage.completion_tokens < model.default_max_tokens:
        return None  # cut by something else (the window), or not this engine's model
    return (f"the embedded {model.kind} model {model.id}'s default cap of "
            f"{model.default_max_tokens} tokens")


def _finish_text(result: Result, max_tokens: int | None) -> str:
    """``stop``, or ``length — hit max_tokens=48; raise --max-tokens``."""
    reasons = list(dict.fromkeys(c.finish_reason for c in result.choices))
    if not reasons:
        return "none — no choices returned"
    limit = "the token limit" if max_tokens is None else f"max_tokens={max_tokens}"
    short = dict(_FINISH_SHORT)
    if (cap := _default_cap(result, max_tokens)) is not None:
        short["length"] = f"hit {cap}; pass --max-tokens to change it"
    if not any(_has_reply(c) for c in result.choices):  # stopped while it reasoned
        short["interrupted"] = "stopped by you before any reply text"
    why = "; ".join(short[r].format(limit=limit) for r in reasons if r in short)
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


#: The parts of a usage priced on their own, as :func:`summary_line` names them.
_PARTS = (("reasoning", "reasoning_tokens", "reasoning"),
          ("cached", "cached_tokens", "cached input"),
          ("cache_write", "cache_write_tokens", "cache writes"))


def _parts_text(usage: Usage | None, parts: Mapping[str, Cost | None]) -> list[str]:
    """``reasoning 1,024 tok $0.0102``, ``cached input 512 tok $0.00004``, ``cache writes
    64 tok $0.000016 (at the input rate: no cache-write price published)``: each part
    the usage has, what it cost, and ``(price unknown)`` where that is unknown."""
    out = []
    for key, attr, label in _PARTS:
        n = getattr(usage, attr, None) if usage is not None else None
        if not n:
            continue
        cost = parts.get(key)
        if cost is None or not cost.known:
            out.append(f"{label} {n:,} tok (price unknown)")
            continue
        note = (" (at the input rate: no cache-write price published)"
                if key == "cache_write" and INPUT_RATE_WRITES in cost.source else "")
        out.append(f"{label} {n:,} tok {cost}{note}")
    return out


def summary_line(result: Result, cost: Cost | None = None, *,
                 max_tokens: int | None = None,
                 parts: Mapping[str, Cost | None] | None = None, steps: int = 0) -> str:
    """``finish: stop · tokens: 25 prompt + 48 completion · cost $0.000012 · 0.64 s · model``.

    Unknown cost reads ``cost unknown``; missing usage ``tokens: not reported``.
    With ``parts`` (the costs of the usage's ``reasoning``, ``cached`` and
    ``cache_write`` tokens, None where unknown), each part the usage has is
    shown after the tokens: ``reasoning 1,024 tok $0.0102``. ``steps`` (a tool loop's
    model calls) is said last: the tokens, cost and time are then the whole loop's.
    """
    shown = _parts_text(result.usage, parts) if parts is not None else []
    items = [f"finish: {_finish_text(result, max_tokens)}", f"tokens: {_tokens_text(result.usage)}",
             *shown, f"cost {_cost_text(cost)}", _time_text(result.timings), result.model,
             "responses" if result.kind == "response" else None,  # which API answered
             f"summed over {count_of(steps, 'step')}" if steps else None]
    return " · ".join(p for p in items if p)


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


def _json_mode(request_summary: Mapping[str, Any] | None) -> bool:
    """Whether the request asked for JSON (``--json``: ``response_format`` json_object
    or json_schema)."""
    params = (request_summary or {}).get("params")
    if not isinstance(params, Mapping):
        return False
    text = params.get("text")  # the Responses API's text.format
    fmt = params.get("response_format") or (text.get("format") if isinstance(text, Mapping)
                                             else None)
    return isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema")


def _json_views(c: Choice) -> tuple[str, str, str | None]:
    """A JSON reply as (markdown, plain, problem): pretty-printed when it parses; as
    written, with what is wrong and where, when it does not."""
    try:
        value = json.loads(c.text)
    except ValueError as e:
        where = f"line {e.lineno}, column {e.colno}" if isinstance(e, json.JSONDecodeError) \
            else "the reply"
        msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
        problem = f"the reply is not valid JSON: {msg} ({where})"
        if c.finish_reason == "length":
            problem += " — it was cut off by the token limit before the JSON was complete; " \
                       "raise --max-tokens"
        return _fence(c.text, "json"), c.text, problem
    pretty = json.dumps(value, indent=2, ensure_ascii=False)
    return _fence(pretty, "json"), pretty, None


def _has_reply(c: Choice) -> bool:
    return bool(c.text or c.refusal or c.tool_calls)


def _choice_views(c: Choice, json_mode: bool = False, looped: bool = False,
                  checked: bool = False) -> tuple[str, str]:
    """A choice as (markdown, plain): its text (pretty JSON under ``json_mode``),
    refusal and tool calls. ``checked``: a schema's badge follows, which says
    whether the reply is JSON (so its complaint is not said twice)."""
    md, plain = [], []
    if c.text and json_mode:
        body_md, body_plain, problem = _json_views(c)
        md.append(body_md)
        plain.append(body_plain)
        if problem and not checked:
            md.append(f"**{escape_markdown(problem)}**")
            plain.append(problem)
    elif c.text:
        md.append(safe_markdown(c.text))
        plain.append(c.text)
    if c.refusal:
        md += ["**refusal**", safe_markdown(c.refusal)]
        plain.append(f"refusal: {c.refusal}")
    if c.tool_calls:
        calls = _tool_calls_json(c.tool_calls)
        md += ["**tool calls**", _fence(calls, "json")]
        plain.append(f"tool calls:\n{calls}")
    if not md and c.finish_reason == "interrupted":  # a stream stopped before its text
        why = ("(no reply text: stopped during the tool steps above)" if looped
               else "(no reply text: stopped while the model was reasoning)")
        md, plain = [f"*{why}*"], [why]
    elif not md:
        md, plain = ["*(empty reply)*"], ["(empty reply)"]
    return "\n\n".join(md), "\n\n".join(plain)


def _notes(result: Result, note: str | None) -> str | None:
    """The result's warnings (usage a server under-reported, a parameter it ignored),
    one ``warning:`` line each, then the caller's note."""
    lines = [f"warning: {w}" for w in result.warnings]
    return "\n".join([*lines, note] if note else lines) or None


def plain_footer(result: Result, cost: Cost | None = None, *, max_tokens: int | None = None,
                 note: str | None = None,
                 request_summary: Mapping[str, Any] | None = None,
                 parts: Mapping[str, Cost | None] | None = None, steps: int = 0) -> str:
    """How :func:`reply_bundle`'s ``text/plain`` ends: ``── <summary line>``, then the
    result's warnings and the note. A terminal shows only this under the streamed
    reply, so a ``--json`` reply that does not parse says so here too."""
    line = f"── {summary_line(result, cost, max_tokens=max_tokens, parts=parts, steps=steps)}"
    checked = structured.badge(result, structured.schema_name(request_summary)) \
        if request_summary is not None else None  # --schema: said here in a terminal
    problems = [p for pos, c in enumerate(result.choices)
                if c.text and _json_mode(request_summary) and not (checked and pos == 0)
                for p in [_json_views(c)[2]] if p]
    notes = "\n".join(x for x in (*problems, checked and checked[1], _notes(result, note))
                      if x)
    return f"{line}\n{notes}" if notes else line


def _json_valid(result: Result) -> list[bool]:
    valid = []
    for c in result.choices:
        try:
            json.loads(c.text)
            valid.append(True)
        except ValueError:
            valid.append(False)
    return valid


def _response_meta(result: Result | None, cost: Cost | None) -> dict[str, Any] | None:
    """The listed fields only: never ``raw`` (it may echo what the request carried)."""
    if result is None:
        return None
    usage = result.usage and {k: v if isinstance(v, int) else None
                              for k, v in asdict(result.usage).items()}
    usd = cost is not None and cost.total is not None and cost.currency == "USD"
    t = result.timings
    return {"id": _str(result.id), "model": _str(result.model), "status": _str(result.status),
            "reasoning": _str(result.reasoning),
            "finish_reasons": [_str(c.finish_reason) for c in result.choices], "usage": usage,
            "cost_usd": str(cost.total) if usd else None,  # type: ignore[union-attr]
            "ttft_s": _jsonable(t.ttft), "total_s": _jsonable(t.total),
            "request_id": _str(result.request_id),
            "warnings": [str(w) for w in result.warnings]}


def _str(x: Any) -> str | None:
    return None if x is None else str(x)


def reasoning_views(result: Result) -> tuple[str, str] | None:
    """A reasoning summary as (markdown, plain): collapsed in a ``<details>`` element,
    its text made inert (it is model output); in plain text, set off above the reply."""
    return _summary_views(result.reasoning) if result.reasoning else None


def _summary_views(reasoning: str) -> tuple[str, str]:
    md = ("<details><summary>reasoning summary</summary>\n\n"
          f"{safe_markdown(reasoning)}\n\n</details>")
    return md, f"── reasoning summary ──\n{reasoning}\n── reply ──"


def reply_bundle(result: Result, *, cost: Cost | None = None, max_tokens: int | None = None,
                 note: str | None = None,
                 request_summary: Mapping[str, Any] | None = None,
                 parts: Mapping[str, Cost | None] | None = None, steps: int = 0) -> Bundle:
    """The final view of a chat or completion: a reasoning summary (collapsed), the
    reply, a summary line (with ``parts``: what reasoning and cached tokens cost), the
    result's warnings and the note.

    ``text/plain`` is the reply, a blank line, then :func:`plain_footer`. A request
    for JSON (``--json``, seen in ``request_summary``) shows each reply
    pretty-printed, or, if it does not parse, as written with the parser's
    complaint and, when ``finish: length`` cut it, that the token limit did.
    """
    json_mode = _json_mode(request_summary)
    schema = structured.schema_name(request_summary)
    n = len(result.choices)
    md, plain = [], []
    reasoning = reasoning_views(result)
    if reasoning:
        md.append(reasoning[0])
        plain.append(reasoning[1])
    for pos, c in enumerate(result.choices, 1):
        if n > 1:
            head = f"choice {pos} of {n} · finish: {c.finish_reason or 'none'}"
            md.append(f"#### {escape_markdown(head)}")
            plain.append(f"── {head} ──")
        checked = structured.badge(result, schema) if pos == 1 else None
        body_md, body_plain = _choice_views(c, json_mode, looped=steps > 0,
                                            checked=checked is not None)
        md.append(body_md)
        plain.append(body_plain)
        if checked:  # --schema: the first choice, checked against it
            md.append(checked[0])
            plain.append(checked[1])
        if n > 1 and c.finish_reason != "stop":
            why = explain_finish(c.finish_reason, max_tokens=max_tokens,
                                 cap=_default_cap(result, max_tokens))
            md.append(_small(why))
            plain.append(why)
    if not n:
        md, plain = ["*(no choices returned)*"], ["(no choices returned)"]
    md += ["---", _small(summary_line(result, cost, max_tokens=max_tokens, parts=parts,
                                      steps=steps))]
    notes = _notes(result, note)
    md += [_small(notes)] if notes else []
    plain.append(plain_footer(result, cost, max_tokens=max_tokens, note=note, parts=parts,
                              steps=steps))
    meta = {"gptmagic": {"request": _jsonable(dict(request_summary or {})),
                         "response": _response_meta(result, cost)}}
    if json_mode:
        meta["gptmagic"]["response"]["json_valid"] = _json_valid(result)
    if result.validation is not None:
        meta["gptmagic"]["response"]["schema"] = structured.schema_meta(result, schema)
    return {"text/plain": "\n\n".join(plain), "text/markdown": "\n\n".join(md)}, meta


def stream_bundle(texts: Mapping[int, str], *, model: str,
                  elapsed: float | None = None, reasoning: str | None = None) -> dict[str, Any]:
    """The live view while a reply streams in: the text so far and a faint status line.

    While a reasoning model reasons (``reasoning`` not None, no text yet) the view says
    so, with the reasoning summary so far open and faint: the view is redrawn on every
    update, so a collapsed one would close again the moment a user opened it. Once the
    text streams, a summary stays above it, collapsed: it is finished."""
    if reasoning is not None and not any(texts.values()):
        status = f"reasoning… {model}" + ("" if elapsed is None else f" · {elapsed:.1f} s")
        md, plain = [_small(status, "opacity: 0.6")], [status]
        if reasoning:
            md.append('<div style="opacity: 0.6">\n\n*reasoning summary so far*\n\n'
                      f"{safe_markdown(reasoning)}\n\n</div>")
            plain.append(reasoning)
        return {"text/plain": "\n\n".join(plain), "text/markdown": "\n\n".join(md)}
    n = max(len(texts), max(texts, default=-1) + 1)
    md, plain = [], []
    if reasoning:
        summary = _summary_views(reasoning)
        md.append(summary[0])
        plain.append(summary[1])
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
    #: What the reasoning and cached tokens cost apiece (as the single reply view shows).
    parts: Mapping[str, Cost | None] | None = None


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
        checked = structured.badge(res)
        text += f"\n{checked[1]}" if checked else ""
        table["reply"][i] = text
        table["finish"][i] = _finish_text(res, r.max_tokens)
        table["tokens"][i] = _tokens_text(res.usage)
        table["cost"][i] = _cost_text(r.cost)
        table["latency"][i] = _time_text(res.timings) or "—"
        line = summary_line(res, r.cost, max_tokens=r.max_tokens, parts=r.parts)
        notes = _notes(res, None)
        if notes:
            table["tokens"][i] += f"\n{notes}"
        reasoning = reasoning_views(res)
        shown = _parts_text(res.usage, r.parts) if r.parts is not None else []
        if shown:
            table["cost"][i] += "\n" + "\n".join(shown)
        if reasoning:
            table["reply"][i] = f"{reasoning[1]}\n{text}"
            md.append(reasoning[0])
        md += [_choice_views(res.choices[0])[0] if len(res.choices) == 1 else safe_markdown(text),
               *([checked[0]] if checked and len(res.choices) == 1 else []),
               _small(f"{line}\n{notes}" if notes else line)]
        plain.append(f"== {r.model} ==\n" + (f"{reasoning[1]}\n" if reasoning else "") +
                     f"{text}\n{plain_footer(res, r.cost, max_tokens=r.max_tokens, parts=r.parts)}")
    page = _html_table(["", *(r.model for r in rows)], [[k, *v] for k, v in table.items()],
                       "gptmagic-side-by-side")
    meta = {"gptmagic": {"side_by_side": [
        {"model": r.model, "error": r.error if r.result is None else None,
         "response": _response_meta(r.result, r.cost)} for r in rows]}}
    return {"text/plain": "\n\n".join(plain), "text/markdown": "\n\n".join(md),
            "text/html": page}, meta
