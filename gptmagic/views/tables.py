"""Pure renderers of tables and short documents: history, dry runs, errors.

Each is rendered three ways (``text/plain``, ``text/markdown``, ``text/html``)
from one list of blocks. Also what keeps output metadata free of secrets:
:func:`_jsonable` drops header- and key-like entries, and a dry run refuses a
request body holding a credential and hides secret-looking URL parameters.
The reply views in :mod:`gptmagic.display` build on these; users import
everything from there.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gptmagic.core.images import ImageRef, elide
from gptmagic.core.text import count_of, preview
from gptmagic.views.images import ImageView, images_blocks, views_of
from gptmagic.views.markdown import NO_MATH, _fence, escape_markdown

if TYPE_CHECKING:
    from gptmagic.catalog.pricing import Cost, Estimate
    from gptmagic.catalog.tokens import TokenCount

__all__ = ["Bundle", "HistoryRow", "PREVIEW_CHARS", "dry_run_bundle",
           "history_bundle"]

#: ``(data, metadata)``: a Jupyter mime dict and JSON-safe output metadata.
Bundle = tuple[dict[str, Any], dict[str, Any]]

#: Characters of a message shown in the history table.
PREVIEW_CHARS = 200
# Key names are compared lower-case without "-", "_" and spaces; "...apikey" counts too.
_CREDENTIAL_KEYS = frozenset({"authorization", "proxyauthorization", "apikey"})
_DROPPED_KEYS = _CREDENTIAL_KEYS | {"headers", "extraheaders", "defaultheaders", "cookie"}
_SECRET_PARAM = re.compile(r"key|token|sig|secret|passw|auth|cred", re.I)
_CELL = "text-align: left; vertical-align: top; white-space: pre-wrap"


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

    return (f'<table class="{f"{cls} {NO_MATH}".strip()}"><thead>{tr(cols, "th")}</thead>'
            f"<tbody>{''.join(tr(r, 'td') for r in rows)}</tbody></table>")


def _plain_table(cols: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [cols, *rows]) for i in range(len(cols) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]])
                     .rstrip() for r in [cols, *rows])


def _render(blocks: Sequence[tuple[str, Any]], cls: str) -> dict[str, str]:
    """Render ``("title" | "p" | "small" | "json" | "text", text)`` (the last two
    preformatted), ``("table", (cols, rows))`` and ``("raw", (plain, markdown, html))``
    (already rendered)."""
    plain, md, page = [], [], []
    for kind, x in blocks:
        if kind == "raw":
            plain.append(x[0])
            md.append(x[1])
            page.append(x[2])
            continue
        if kind == "table":
            plain.append(_plain_table(*x))
            md.append(_md_table(*x))
            page.append(_html_table(*x))
            continue
        plain.append(x)
        if kind in ("json", "text"):
            md.append(_fence(x, kind))
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
            "text/html": f'<div class="{cls} {NO_MATH}">{"".join(page)}</div>'}


# -- metadata without secrets -----------------------------------------------------------------


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
    #: The turn answered against an older version of an earlier turn.
    stale: bool = False
    #: The message's images, shown as thumbnails under the table.
    images: tuple[ImageView, ...] = ()


def _preview(text: str) -> str:
    return preview(text, PREVIEW_CHARS)


def _fill(total: int | None, context_window: int | None) -> str:
    if total is None:
        return "tokens not counted"
    if not context_window:
        return f"{total:,} tokens (context window unknown)"
    text = f"{total:,} of {context_window:,} tokens ({100 * total / context_window:.0f}%)"
    return text + " — over the context window" if total > context_window else text


def history_bundle(rows: Sequence[HistoryRow], *, thread: str, context_window: int | None,
                   total: int | None, mode: str | None = None) -> Bundle:
    """A table of a conversation thread, how full the context window is and, with
    ``mode``, how its next turn is sent (the whole history, or chained on the server)."""
    head = f"thread {thread!r}: {len(rows)} message(s) · {_fill(total, context_window)}"
    if mode:
        head += f"\nsent as: {mode}"
    cells = [[f"{r.turn} (stale)" if r.stale else str(r.turn), r.role, r.name or "",
              "" if r.tokens is None else f"{r.tokens:,}", _preview(r.content)] for r in rows]
    blocks: list[tuple[str, Any]] = [("p", head)]
    if rows:
        blocks.append(("table", (["turn", "role", "name", "tokens", "content"], cells)))
    for r in rows:
        if r.images:
            blocks += [("small", f"turn {r.turn}, {r.role}: {count_of(len(r.images), 'image')}"),
                       ("raw", images_blocks(r.images))]
    stale = sorted({r.turn for r in rows if r.stale})
    if stale:
        turns = ", ".join(map(str, stale))
        blocks.append(("p", f"stale: turn(s) {turns} answered against an older version of "
                            "what came before them (an earlier turn run again since, or a new "
                            f"system message); %chat drop-stale --thread {thread} removes turn "
                            f"{stale[0]} and every turn after it"))
    meta = {"gptmagic": {"history": {"thread": thread, "messages": len(rows),
                                     "total_tokens": total, "context_window": context_window,
                                     "stale_turns": stale}}}
    if mode:
        meta["gptmagic"]["history"]["mode"] = mode
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


def _tool_blocks(costs: Sequence[tuple[str, int]] | None,
                 count: TokenCount | int | None = None) -> list[tuple[str, Any]]:
    """What the tool definitions cost: one row per tool (what leaving it out saves).

    Counted by the embedded model's engine (an exact count), they are said to be
    exact, not OpenAI's rule, with the count's note (the description in place of
    the engine's default system prompt, which leaving them all out brings back).
    The counter widget under a dry run counts them with the messages, as here."""
    if not costs:
        return []
    total = dict(costs).get("all", 0)
    how = ("exact: the engine's count of the tools' description it writes into the prompt"
           if getattr(count, "exact", False)
           else "an estimate: OpenAI's published rule for function definitions")
    if count is not None and not isinstance(count, int) and count.exact and count.note:
        how += f"; {count.note}"
    rows = [[name, f"{n:,}"] for name, n in costs if name != "all"]
    return [("p", f"Tool definitions: {total:,} prompt tokens in all ({how})"),
            ("table", (["tool", "tokens (saved by leaving it out)"], rows))]


def _estimate_text(est: Estimate | None) -> str:
    if est is None:
        return "Cost estimate: not available"
    high = (f"high {est.high} (with {est.max_completion_tokens:,} completion tokens)"
            if est.high.known and est.max_completion_tokens is not None else "high unknown")
    return (f"Cost estimate: expected {est.expected} (with {est.expected_completion_tokens:,} "
            f"completion tokens) · low {est.low} (prompt only) · {high}")


def _exact_blocks(exact: int | None, exact_note: str | None,
                  estimate: Estimate | None) -> list[tuple[str, Any]]:
    """The server's count and the estimate priced on it; else why there is none."""
    if exact is not None:
        return [("p", f"Exact prompt tokens: {exact:,} (counted by the server: "
                      "POST /v1/responses/input_tokens)"),
                ("p", _estimate_text(estimate).replace("Cost estimate:",
                                                       "Cost estimate on the exact count:", 1))]
    return [("small", exact_note)] if exact_note else []


def dry_run_bundle(request: Mapping[str, Any], *, url: str, count: TokenCount | int | None,
                   estimate: Estimate | None, note: str | None = None,
                   counts_below: bool = False, engine_prompt: str | None = None,
                   exact: int | None = None, exact_note: str | None = None,
                   tool_costs: Sequence[tuple[str, int]] | None = None,
                   images: Sequence[ImageRef] = ()) -> Bundle:
    """What a request would send: endpoint, exact JSON body, token count and cost estimate.

    With ``counts_below`` the count and estimate are left to the token counter
    widget shown under it (the metadata keeps them). ``exact`` is the server's own
    count of the prompt (``--exact-count``), shown either way; ``exact_note`` says
    why the count is an estimate, or why no exact one was asked for. ``tool_costs``
    (``--tools``) are what each tool definition adds to the prompt, and ``("all", N)``.

    The body is shown with each image's base64 elided (``data:image/png;base64,…
    (34 KB)``) and its images as thumbnails below it, labelled by ``images`` (the
    cell's references: alt text, path, line).

    Raises ValueError if any key of ``request``, at any depth, is named like a
    credential (``Authorization``, ``api-key``, ...): the body shown never carries one.
    """
    _check_no_credentials(request)
    shown_url, hidden = _redact_url(url)
    blocks: list[tuple[str, Any]] = [("title", "Dry run — nothing sent"),
                                     ("p", f"POST {shown_url}")]
    if hidden:
        blocks.append(("small", f"hidden from the URL: {', '.join(hidden)}"))
    blocks.append(("json", json.dumps(elide(request), indent=2, ensure_ascii=False,
                                      default=str)))
    conversation = request.get("messages") or request.get("input")
    shown = views_of(conversation, images) if isinstance(conversation, list) else []
    if shown:
        blocks += [("p", f"{count_of(len(shown), 'image')} (thumbnails; the body above "
                         "elides their base64):"), ("raw", images_blocks(shown))]
    if engine_prompt is not None:
        blocks += [("p", "The engine receives this text (its chat template applied):"),
                   ("text", engine_prompt)]
    blocks += _tool_blocks(tool_costs, count)
    if counts_below:
        blocks.append(("small", "Tokens and cost: see the counter below (the offline estimate)."
                       if exact is not None else "Tokens and cost: see the counter below."))
    else:  # with the server's count, the estimate is priced on it (below)
        blocks += [*_count_blocks(count),
                   *([("p", _estimate_text(estimate))] if exact is None else [])]
    blocks += _exact_blocks(exact, exact_note, estimate)
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
    if exact is not None:  # the server's count (--exact-count)
        meta["gptmagic"]["dry_run"]["exact_prompt_tokens"] = exact
    return _render(blocks, "gptmagic-dry-run"), meta
