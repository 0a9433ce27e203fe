"""``%chat log``: the last logged calls as a compact table (text and escaped HTML; the
request and the reply are user- and model-written, so a terminal control in them is
shown as its escape, ``\\x1b``, never sent: :func:`gptmagic.views.text.printable`)."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

from gptmagic.core.text import preview
from gptmagic.views.text import printable

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["log_table"]

_HEAD = ("id", "when", "model", "thread", "request", "reply", "tokens", "cost", "seconds")


def _text(x: Any) -> str:
    return "" if x is None or _nan(x) else printable(str(x))


def _cells(row: Any) -> tuple[str, ...]:
    tokens = ("" if row["prompt_tokens"] is None or _nan(row["prompt_tokens"]) else
              f"{int(row['prompt_tokens'])}+{int(row['completion_tokens'] or 0)}")
    cost = "" if row["cost"] is None or _nan(row["cost"]) else f"${row['cost']:.6f}"
    secs = "" if row["latency"] is None or _nan(row["latency"]) else f"{row['latency']:.2f}"
    request = _text(row["request"]).strip().splitlines()
    return (str(row["id"]), row["when"].strftime("%Y-%m-%d %H:%M:%S"), _text(row["model"]),
            _text(row["thread"]), preview(request[-1] if request else "", 40),
            preview(_text(row["reply"]) or _text(row["error"]), 40),
            tokens, cost, secs)


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def log_table(df: pd.DataFrame, *, logging: bool = True) -> dict[str, str]:
    """A mime bundle (``text/plain``, ``text/html``) of ``gptmagic.log()``'s rows."""
    note = "" if logging else " (logging is off: %gptmagic log on)"
    if df.empty:
        said = "no logged calls" + note
        return {"text/plain": said, "text/html": f"<p>{html.escape(said)}</p>"}
    rows = [_cells(r) for _, r in df.iterrows()]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEAD)]
    text = "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in [_HEAD, *rows])
    head = "".join(f"<th>{h}</th>" for h in _HEAD)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    more = f"<p>{html.escape(note.strip())}</p>" if note else ""
    return {"text/plain": text + (f"\n{note.strip()}" if note else ""),
            "text/html": f"<table class='gptmagic-log'><tr>{head}</tr>{body}</table>{more}"}
