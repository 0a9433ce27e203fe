"""How one call is kept in the store: its key, and its result as a JSON row.

The key hashes what decides a call's answer (the provider's base URL, the
endpoint or API (``chat``, ``completion``, ``response``: a chat answer is never
reused for a Responses call), the model, every parameter, the messages, prompt or
input, and the repeat index); never a key or a header. A row carries its format
number, so a row this version cannot read is a miss (asked again), never an error.
Format 2 adds what the Responses API returns (cache writes, status, reasoning
summary) and what a reply said besides its text (refusal, tool calls, warnings);
format 3 the reply parsed against a schema (``validation``: the parsed value as JSON,
its validity, errors and refusal) and a tool loop's steps (each model call with the
function calls it asked for: names, arguments, outputs, errors); rows of formats 1
and 2 are still read. A row may carry ``engine``, the embedded engine's own timings
(llama.cpp's ``timings``: its numbers only); rows without it (older ones, hosted
models) read with none, and older versions ignore it.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from gptmagic.core.structured import Parsed
from gptmagic.core.types import (
    Choice,
    Result,
    Step,
    Timings,
    TokenLogprob,
    ToolCall,
    TopLogprob,
    Usage,
)

__all__ = ["ROW_FORMAT", "call_key", "result_from_dict", "result_to_dict", "row_result"]

#: The row format written by :func:`result_to_dict`; rows without one are format 1.
ROW_FORMAT = 3
#: The formats :func:`result_from_dict` reads, and the length of each one's usage list.
_USAGE_LENGTH = {1: 5, 2: 6, 3: 6}
_KINDS = ("chat", "completion", "response")


def call_key(base_url: str, kind: str, body: dict[str, Any], repeat: int) -> str:
    """The cache key of one call (stable across runs and machines)."""
    blob = json.dumps({"base_url": base_url.rstrip("/"), "kind": kind, "body": body,
                       "repeat": repeat}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _lp(t: TokenLogprob) -> dict[str, Any]:
    return {"t": t.token, "l": t.logprob, "b": None if t.bytes is None else t.bytes.hex(),
            "o": t.offset, "p": t.prompt,
            "k": [[a.token, a.logprob, None if a.bytes is None else a.bytes.hex()]
                  for a in t.top]}


def _unlp(d: dict[str, Any]) -> TokenLogprob:
    return TokenLogprob(
        d["t"], d["l"], None if d["b"] is None else bytes.fromhex(d["b"]),
        tuple(TopLogprob(a[0], a[1], None if a[2] is None else bytes.fromhex(a[2]))
              for a in d["k"]), d["o"], d["p"])


def _jsonable(value: Any) -> Any:
    """Plain JSON data of a parsed value or validated arguments (a Pydantic model dumped)."""
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value, fallback=str)


def _validation(v: Parsed | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {"parsed": _jsonable(v.value), "valid": v.valid, "errors": list(v.errors),
            "refusal": v.refusal}


def _call(c: ToolCall) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "arguments": c.arguments,
            "args": None if c.args is None else _jsonable(c.args), "output": c.output,
            "error": c.error, "approved": c.approved, "seconds": c.seconds}


def _number(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, int | float) and math.isfinite(x)


def _engine(timings: dict[str, Any]) -> dict[str, Any]:
    """The engine's timings as stored: its numeric fields (``prompt_ms``, ...)."""
    return {str(k): v for k, v in timings.items() if _number(v)}


def result_to_dict(r: Result) -> dict[str, Any]:
    """A JSON-safe copy of a result (the raw body is not kept)."""
    u = r.usage
    return {
        "format": ROW_FORMAT,
        "kind": r.kind, "model": r.model, "id": r.id, "created": r.created,
        "request_id": r.request_id, "fingerprint": r.system_fingerprint,
        "status": r.status, "reasoning": r.reasoning, "warnings": list(r.warnings),
        "usage": None if u is None else [u.prompt_tokens, u.completion_tokens, u.total_tokens,
                                         u.cached_tokens, u.reasoning_tokens,
                                         u.cache_write_tokens],
        "timings": [r.timings.total, r.timings.ttft, r.timings.attempts],
        **({} if r.timings.engine is None else {"engine": _engine(r.timings.engine)}),
        "choices": [{"i": c.index, "text": c.text, "finish": c.finish_reason, "role": c.role,
                     "refusal": c.refusal, "tools": c.tool_calls,
                     "lp": None if c.logprobs is None else [_lp(t) for t in c.logprobs],
                     "plp": None if c.prompt_logprobs is None else [
                         _lp(t) for t in c.prompt_logprobs]}
                    for c in r.choices],
        "validation": _validation(r.validation),
        "steps": [{"result": result_to_dict(s.result), "calls": [_call(c) for c in s.calls]}
                  for s in r.steps],
    }


def _whole(x: Any, *, optional: bool = False, least: int = 0) -> None:
    if x is None and optional:
        return
    if isinstance(x, bool) or not isinstance(x, int) or x < least:
        raise ValueError(f"{x!r} is not a whole number >= {least}")


def _seconds(x: Any) -> None:
    if x is not None and (isinstance(x, bool) or not isinstance(x, int | float)
                          or not math.isfinite(x) or x < 0):
        raise ValueError(f"{x!r} is not a time in seconds")


def _logprob(x: Any, *, optional: bool = False) -> None:
    if x is None and optional:
        return
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or x > 0:
        raise ValueError(f"{x!r} is not a logprob")


def _check_lps(lps: Any) -> None:
    if lps is None:
        return
    for t in lps:
        if not isinstance(t["t"], str):
            raise ValueError("a logprob's token is not text")
        _logprob(t["l"], optional=True)
        for alt in t["k"]:
            if not isinstance(alt[0], str):
                raise ValueError("an alternative's token is not text")
            _logprob(alt[1])


def _texts(*values: Any) -> None:
    if not all(x is None or isinstance(x, str) for x in values):
        raise ValueError("a text field of another type")


def _check_validation(v: Any) -> None:
    if v is None:
        return
    if not isinstance(v["valid"], bool) or not all(isinstance(e, str) for e in v["errors"]):
        raise ValueError("a validation of another type")
    _texts(v["refusal"])


def _check_steps(steps: Any) -> None:
    if not isinstance(steps, list):
        raise ValueError("steps of another type")
    for step in steps:
        _check(step["result"])
        for c in step["calls"]:
            _texts(c["id"], c["name"], c["arguments"], c["output"], c["error"])
            if c["args"] is not None and not isinstance(c["args"], dict):
                raise ValueError("a tool call's arguments of another type")
            if c["approved"] is not None and not isinstance(c["approved"], bool):
                raise ValueError("a tool call's approval of another type")
            _seconds(c["seconds"])


def _check(d: dict[str, Any]) -> None:
    """Every value of a row has the type and range it was written with, so a row
    changed by hand or by another program is a miss, not a wrong result or a crash
    later (pricing, summaries)."""
    fmt = d.get("format", 1)
    if fmt not in _USAGE_LENGTH:
        raise ValueError(f"row format {fmt!r}, this version reads {list(_USAGE_LENGTH)}")
    if d["kind"] not in _KINDS or not isinstance(d["model"], str):
        raise ValueError("kind or model of another type")
    _texts(d.get("fingerprint"), d.get("status"), d.get("reasoning"), *d.get("warnings", []))
    u = d.get("usage")
    if u is not None:
        if len(u) != _USAGE_LENGTH[fmt]:
            raise ValueError("usage of another shape")
        for i, x in enumerate(u):
            _whole(x, optional=i >= 3)
    t = d.get("timings")
    if t is not None:
        _seconds(t[0])
        _seconds(t[1])
        _whole(t[2], least=1)
    engine = d.get("engine")
    if engine is not None and not (isinstance(engine, dict)
                                   and all(_number(v) for v in engine.values())):
        raise ValueError("engine timings of another type")
    if not d["choices"]:
        raise ValueError("no choices")
    for c in d["choices"]:
        _whole(c["i"])
        if not isinstance(c["text"], str):
            raise ValueError("a choice's text of another type")
        _texts(c["finish"], c["role"], c.get("refusal"))
        tools = c.get("tools")
        if tools is not None and not (isinstance(tools, list)
                                      and all(isinstance(t, dict) for t in tools)):
            raise ValueError("a choice's tool calls of another type")
        _check_lps(c["lp"])
        _check_lps(c["plp"])
    _check_validation(d.get("validation"))
    _check_steps(d.get("steps", []))


def result_from_dict(d: dict[str, Any]) -> Result:
    """The result :func:`result_to_dict` made (raises on a row of another shape or with
    values of another type or range)."""
    _check(d)
    u = d.get("usage")
    t = d.get("timings") or [None, None, 1]
    return Result(
        kind=d["kind"], model=d["model"], id=d.get("id"), created=d.get("created"),
        request_id=d.get("request_id"), system_fingerprint=d.get("fingerprint"),
        status=d.get("status"), reasoning=d.get("reasoning"),
        warnings=list(d.get("warnings", [])),
        usage=None if u is None else Usage(*u),
        timings=Timings(total=t[0], ttft=t[1], attempts=t[2], engine=d.get("engine")),
        choices=[Choice(index=c["i"], text=c["text"], finish_reason=c["finish"], role=c["role"],
                        refusal=c.get("refusal"), tool_calls=c.get("tools"),
                        logprobs=None if c["lp"] is None else [_unlp(x) for x in c["lp"]],
                        prompt_logprobs=None if c["plp"] is None else [
                            _unlp(x) for x in c["plp"]])
                 for c in d["choices"]],
        **_extras_from_dict(d),
    )


def _extras_from_dict(d: dict[str, Any]) -> dict[str, Any]:
    """A row's parsed reply and tool steps, as :class:`Result` keywords."""
    v = d.get("validation")
    validation = None if v is None else Parsed(value=v["parsed"], valid=v["valid"],
                                               errors=tuple(v["errors"]),
                                               refusal=v["refusal"])
    steps = [Step(result=result_from_dict(s["result"]),
                  calls=[ToolCall(**c) for c in s["calls"]]) for s in d.get("steps", [])]
    return {"validation": validation, "steps": steps,
            "parsed": validation.value if validation is not None and validation.valid
            else None}


def row_result(blob: Any) -> Result | None:
    """A stored row (its JSON text, or that parsed) as a result, or None for a row this
    version cannot read (a miss)."""
    try:
        return result_from_dict(blob if isinstance(blob, dict) else json.loads(blob))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
