"""The validity badge under a structured reply (``%%chat --schema``), rendered (pure).

The reply itself is shown pretty-printed by :mod:`gptmagic.views.reply` (as for
``--json``); under it, one line says whether it matched the schema: *valid*,
*invalid* with each error and its path, or *refused* (the refusal itself is shown
above it). A reply that is not JSON has one line saying so, and why (the
parser's complaint, or the token limit that cut it off; the summary line under
the reply says to raise ``--max-tokens``): the reply view shows no JSON complaint
of its own under a schema. Error paths and messages quote the
model's output (a key it made up), so they are escaped like any model text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gptmagic.core.structured import CUT_OFF, NOT_JSON
from gptmagic.core.types import Parsed, Result
from gptmagic.views.markdown import escape_markdown

__all__ = ["badge", "schema_meta", "schema_name"]

#: Errors listed under an invalid reply; the rest are counted.
SHOWN_ERRORS = 10


def schema_name(request_summary: Mapping[str, Any] | None) -> str | None:
    """The name of the schema a request sent (chat's ``response_format`` or the Responses
    API's ``text.format``), if it sent one."""
    params = (request_summary or {}).get("params")
    if not isinstance(params, Mapping):
        return None
    text = params.get("text")
    fmt = params.get("response_format") or (text.get("format") if isinstance(text, Mapping)
                                             else None)
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema", fmt)
    name = spec.get("name") if isinstance(spec, Mapping) else None
    return str(name) if name is not None else None


def badge(result: Result, name: str | None = None) -> tuple[str, str] | None:
    """(markdown, plain) of the line under a reply checked against a schema named
    ``name``; None when no schema was asked for."""
    v: Parsed | None = result.validation
    if v is None:
        return None
    which = name or "the schema"
    lines: list[str] = []
    if v.refusal is not None:
        label, said = "⊘ refused", f"the model declined (its refusal is above); no {which}"
    elif v.valid:
        label, said = "✓ valid", f"matches {which}; the value is in _chat.parsed"
    elif len(v.errors) == 1 and v.errors[0].startswith(NOT_JSON):
        why = v.errors[0][len(NOT_JSON):]
        label = "✗ invalid"
        said = f"the reply is not valid JSON, so it cannot match {which}: {why}"
    else:
        n = len(v.errors)
        label, said = "✗ invalid", f"{n} error{'s' if n != 1 else ''} against {which}"
        if result.finish_reason == "length":  # the summary line says what to do
            said += f" (the reply was {CUT_OFF})"
        lines = list(v.errors[:SHOWN_ERRORS])
        lines += [f"… and {n - SHOWN_ERRORS} more"] if n > SHOWN_ERRORS else []
    md = "\n".join([f"**{label}** — {escape_markdown(said)}",
                    *([""] if lines else []), *(f"- {escape_markdown(e)}" for e in lines)])
    return md, "\n".join([f"{label}: {said}", *(f"  {e}" for e in lines)])


def schema_meta(result: Result, name: str | None) -> dict[str, Any] | None:
    """What a saved notebook keeps of the check (display metadata): JSON-safe, no value."""
    v = result.validation
    if v is None:
        return None
    return {"name": name, "valid": v.valid, "refused": v.refusal is not None,
            "errors": list(v.errors)}
