"""Views of a tool loop (pure): each step, live and then collapsed, and the tool messages
of a thread in ``%chat history``.

A step is one model call that asked for tools and the calls it asked for
(:class:`gptmagic.core.tools.Step`). While the loop runs, the step being worked on
is shown open and the steps done are collapsed in a ``<details>`` element, as a
reasoning summary is (:mod:`gptmagic.views.reply`): the call, its arguments
(pretty JSON), the result (the first :data:`RESULT_CHARS` characters; the whole
of it one click further), the error if any, the model call's tokens and time and
the function's time. The final answer is rendered below by
:func:`gptmagic.views.reply.reply_bundle` with the summed usage.

Everything the model wrote (a tool name, its arguments) and everything a function
returned is untrusted: names are escaped, arguments and results are fenced
(:func:`gptmagic.views.markdown._fence` picks a fence no backtick run inside can
close), so nothing in them becomes HTML or a link.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from gptmagic.core.images import part_text
from gptmagic.core.text import preview
from gptmagic.core.types import Result
from gptmagic.views.markdown import _fence, escape_markdown, safe_markdown
from gptmagic.views.tables import _jsonable, _small

__all__ = ["CallView", "RESULT_CHARS", "StepView", "call_text", "live_bundle", "message_text",
           "steps_meta", "steps_views"]

#: Characters of a tool's result shown before it is expanded.
RESULT_CHARS = 300
#: Characters of a call's arguments in a step's one-line summary.
_LINE_CHARS = 80


class CallView(Protocol):
    """What a view reads of a tool call (:class:`gptmagic.core.tools.ToolCall`)."""

    id: str
    name: str
    arguments: str
    output: str
    error: str | None
    approved: bool | None
    seconds: float


class StepView(Protocol):
    """What a view reads of a step (:class:`gptmagic.core.tools.Step`)."""

    @property
    def result(self) -> Result: ...

    @property
    def calls(self) -> Sequence[CallView]: ...


def _pretty(arguments: str) -> tuple[str, str]:
    """A call's arguments as (text, fence language): pretty JSON when they parse, else
    as the model wrote them."""
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False), "json"
    except (TypeError, ValueError):
        return arguments, "text"


def call_text(call: CallView) -> str:
    """``get_weather({"city": "Paris"})``: a call on one line, its arguments cut short."""
    try:
        args = json.dumps(json.loads(call.arguments), ensure_ascii=False)
    except (TypeError, ValueError):
        args = call.arguments or ""
    return f"{call.name}({preview(args, _LINE_CHARS)})"


def _seconds(s: float | None) -> str:
    if s is None:
        return "?"
    if s < 0.001:
        return "<1 ms"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def _outcome(call: CallView, running: CallView | None = None) -> str:
    """What became of a call, in a few words; ``running``: the call whose function runs
    now (the live view's)."""
    if call is running:
        return "running…"
    if call.approved is False:
        return "declined by you"
    if call.error and call.error.startswith("interrupted"):
        return f"{call.error} (stopped by you)"
    if call.error:
        return "error"
    if not call.output and not call.seconds:  # the loop has not come to it yet
        return "not run yet"
    return f"ran in {_seconds(call.seconds)}" + (", approved" if call.approved else "")


def _model_line(result: Result) -> str:
    """The step's model call: its tokens and time."""
    u = result.usage
    tokens = (f"{u.prompt_tokens:,} prompt + {u.completion_tokens:,} completion tokens"
              if u is not None else "tokens not reported")
    return f"model call: {tokens} · {_seconds(result.timings.total)}"


def _summary(n: int, step: StepView, running: CallView | None = None) -> str:
    calls = step.calls
    if len(calls) == 1:
        what = f"{call_text(calls[0])} · {_outcome(calls[0], running)}"
    else:
        names = ", ".join(c.name for c in calls)
        bad = sum(1 for c in calls if c.error or c.approved is False)
        what = f"{len(calls)} calls: {names}" + (f" ({bad} failed or declined)" if bad else "")
    return f"step {n} · {what}"


def _result_md(output: str) -> str:
    if len(output) <= RESULT_CHARS:
        return _fence(output, "text")
    return (_fence(output[:RESULT_CHARS] + "…", "text") +
            f"\n\n<details><summary>whole result ({len(output):,} characters)</summary>\n\n"
            f"{_fence(output, 'text')}\n\n</details>")


def _call_views(call: CallView, running: CallView | None = None) -> tuple[str, str]:
    args, lang = _pretty(call.arguments)
    outcome = _outcome(call, running)
    head = f"{call.name} ({call.id}) · {outcome}"
    md = [f"**{escape_markdown(call.name)}** {escape_markdown(f'({call.id}) · {outcome}')}",
          "*arguments*", _fence(args, lang)]
    plain = [f"→ {head}", "  arguments: " + args.replace("\n", "\n  ")]
    if call.error:
        md.append(f"**error**: {escape_markdown(call.error)}")
        plain.append(f"  error: {call.error}")
    if call.output and call.output != call.error:
        label = "sent to the model" if call.error else "result"
        md += [f"*{label}" + ("" if len(call.output) <= RESULT_CHARS else
                              f" (first {RESULT_CHARS:,} of {len(call.output):,} characters)")
               + "*",
               _result_md(call.output)]
        plain.append(f"  {label}: " + preview(call.output, RESULT_CHARS, flatten=False)
                     .replace("\n", "\n  "))
    return "\n\n".join(md), "\n".join(plain)


def _inline_html(text: str) -> str:
    """Text inside an HTML element, where Markdown is not read: entities for ``<>&``, and
    each ``$`` in an element of its own, which MathJax never pairs with another (as
    :func:`gptmagic.views.markdown.escape_markdown` does in Markdown)."""
    return html.escape(text, quote=False).replace("$", "<span>$</span>")


def _step_views(n: int, step: StepView, *, open_: bool,
                running: CallView | None = None) -> tuple[str, str]:
    parts = [_model_line(step.result)]
    if step.result.text:  # words the model said alongside its calls
        parts.append(safe_markdown(step.result.text))
    views = [_call_views(c, running) for c in step.calls]
    summary = _inline_html(_summary(n, step, running))
    body = "\n\n".join([*parts, *(v[0] for v in views)])
    md = (f"<details{' open' if open_ else ''}><summary>{summary}</summary>\n\n{body}\n\n"
          "</details>")
    plain = "\n".join([f"── {_summary(n, step, running)} ──", _model_line(step.result),
                       *([step.result.text] if step.result.text else []),
                       *(v[1] for v in views)])
    return md, plain


def steps_views(steps: Sequence[StepView], *, open_last: bool = False,
                first: int = 1, running: CallView | None = None) -> tuple[str, str]:
    """The steps as (markdown, plain): each collapsed in a ``<details>`` (the last one open
    with ``open_last``, while it is being worked on); plain text with every step whole.
    ``first`` is the number of the first step given; ``running`` the call whose function
    runs now, said to be running (the others not run yet are "not run yet")."""
    views = [_step_views(n, s, open_=open_last and n == first + len(steps) - 1,
                         running=running)
             for n, s in enumerate(steps, first)]
    return "\n\n".join(v[0] for v in views), "\n\n".join(v[1] for v in views)


def live_bundle(steps: Sequence[StepView], status: str,
                text: Mapping[int, str] | None = None,
                running: CallView | None = None) -> dict[str, Any]:
    """The live view while the loop runs: the steps so far (the latest open, ``running``
    its call whose function runs now), the text of the model call streaming now, if any,
    and a faint status line (``running get_weather…``, ``model call 2… 1.2 s``)."""
    md, plain = steps_views(steps, open_last=True, running=running) if steps else ("", "")
    mds, plains = [md] if md else [], [plain] if plain else []
    for i in sorted(text or {}):
        if (text or {})[i]:
            mds.append(safe_markdown((text or {})[i]))
            plains.append((text or {})[i])
    mds.append(_small(status, "opacity: 0.6"))
    plains.append(status)
    return {"text/plain": "\n\n".join(plains), "text/markdown": "\n\n".join(mds)}


def steps_meta(steps: Sequence[StepView]) -> list[dict[str, Any]]:
    """The steps as JSON-safe output metadata: what was called, with what, and how it went
    (results cut to :data:`RESULT_CHARS`; a notebook keeps this)."""
    out = []
    for step in steps:
        u = step.result.usage
        out.append({
            "usage": None if u is None else {"prompt_tokens": u.prompt_tokens,
                                             "completion_tokens": u.completion_tokens},
            "seconds": _jsonable(step.result.timings.total),
            "calls": [{"id": str(c.id), "name": str(c.name), "arguments": str(c.arguments),
                       "output": preview(c.output, RESULT_CHARS, flatten=False),
                       "error": c.error, "approved": c.approved,
                       "seconds": _jsonable(c.seconds)} for c in step.calls]})
    return out


def message_text(message: Mapping[str, Any]) -> str:
    """A thread's message as ``%chat history`` shows it: its text, an assistant's tool
    calls as ``→ get_weather({"city": "Paris"})`` lines, a tool result as
    ``(call_1) 18 °C``."""
    content = message.get("content")
    text = part_text(content)  # an image as [image], never its data URL
    calls = message.get("tool_calls") or []
    lines = [text] if text else []
    for call in calls:
        fn = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(fn, Mapping):
            args = str(fn.get("arguments") or "")
            lines.append(f"→ {fn.get('name')}({preview(args, _LINE_CHARS)})")
    if message.get("role") == "tool" and message.get("tool_call_id"):
        return f"({message['tool_call_id']}) {text}"
    return "\n".join(lines)
