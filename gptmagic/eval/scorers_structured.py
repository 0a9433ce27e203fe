"""Scorers of what a reply holds besides its text: the object parsed against a schema,
and the functions a tool loop called.

:func:`schema_valid` and :func:`field_equals` read the reply parsed against the
run's ``schema=`` (``Result.validation``); :func:`tool_called` and
:func:`tool_sequence` read the trace of a run with ``tools=`` (``Result.steps``).
:func:`on_field` gives the text scorers their ``field=`` argument: the text they
grade is then one field of the parsed reply instead of the whole output.

A reply that did not validate (or was refused) scores 0 here: a wrong shape is a
wrong answer, and counting it as unscored (NaN) would leave it out of the mean.
A row that cannot be graded at all, because its prompt ran without a schema or
the path names no field of a valid reply, is a :class:`ScorerError`: the row's
``score_error`` says why, the run goes on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from pydantic_core import to_jsonable_python

from gptmagic.core.text import json_path
from gptmagic.eval.scoring import Case, Scorer, ScorerError, _FnScorer, _value

__all__ = ["as_text", "field_equals", "jsonable", "on_field", "parse_path", "schema_valid",
           "tool_called", "tool_sequence"]

#: One step of a path: ``.name`` (or a leading ``name``), or ``[index]``.
_STEP = re.compile(r"(?P<key>(?:^|\.)[^.\[\]]+)|\[(?P<index>-?\d+)\]")


def parse_path(path: str) -> tuple[str | int, ...]:
    """``"items[0].name"`` as ``("items", 0, "name")``; a ScorerError names the bad part."""
    if not isinstance(path, str) or not path.strip():
        raise ScorerError(f"a field path must be text such as 'answer' or 'items[0].name', "
                          f"not {path!r}")
    steps: list[str | int] = []
    at = 0
    for m in _STEP.finditer(path):
        if m.start() != at:
            break
        steps.append(int(m["index"]) if m["index"] is not None else m["key"].lstrip("."))
        at = m.end()
    if at != len(path):
        raise ScorerError(f"field path {path!r}: cannot read it from {path[at:]!r} on; write "
                          f"keys with dots and list indexes in brackets, e.g. 'items[0].name'")
    return tuple(steps)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: a Pydantic model dumped, a dataclass as a dict,
    dates as ISO text (pydantic's own rules); what has no JSON form becomes its str."""
    return to_jsonable_python(value, fallback=str)


def as_text(value: Any) -> str:
    """A parsed field as a text scorer reads it: text as is, anything else as JSON
    (``4``, ``2.5``, ``true``, ``null``, ``["a", "b"]``)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _where(steps: Sequence[str | int]) -> str:
    return json_path(steps, "the reply")


def _walk(value: Any, path: str) -> Any:
    """The value at ``path`` in plain JSON data; a ScorerError says where it stops."""
    steps = parse_path(path)
    for i, step in enumerate(steps):
        here = _where(steps[:i])
        if isinstance(step, int):
            if not isinstance(value, list):
                raise ScorerError(f"field {path!r}: {here} is {_kind(value)}, not a list")
            if not -len(value) <= step < len(value):
                raise ScorerError(f"field {path!r}: {here} has {len(value)} item(s), "
                                  f"no [{step}]")
            value = value[step]
        else:
            if not isinstance(value, Mapping):
                raise ScorerError(f"field {path!r}: {here} is {_kind(value)}, not an object "
                                  f"with a {step!r} key")
            if step not in value:
                keys = ", ".join(map(str, value)) or "none"
                raise ScorerError(f"field {path!r}: {here} has no {step!r} (its keys: {keys})")
            value = value[step]
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


class _Invalid(Exception):
    """The reply did not validate against its schema (or was refused): it scores 0."""


def _validation(case: Case, label: str) -> Any:
    """The row's reply parsed against its schema; a ScorerError when it had none."""
    validation = case.result.validation if case.result is not None else None
    if validation is None:
        raise ScorerError(f"scorer {label!r} reads the reply parsed against a schema, and "
                          f"this row's prompt ran without one: evaluate with schema=Model "
                          f"(or schema={{prompt: Model}})")
    return validation


def _field(case: Case, path: str, label: str) -> Any:
    """The value at ``path`` in the row's valid parsed reply (raises :class:`_Invalid`
    when the reply is not valid)."""
    validation = _validation(case, label)
    if not validation.valid:
        raise _Invalid
    try:
        return _walk(jsonable(validation.value), path)
    except ScorerError as e:
        raise ScorerError(f"scorer {label!r}: {e}") from None


def on_field(score: Callable[[Case], Any], field: str | None,
             label: str) -> Callable[[Case], Any]:
    """``score`` itself without ``field``; with it, ``score`` grading the text of that
    field of the parsed reply (see :func:`as_text`), 0 for a reply that is not valid."""
    if field is None:
        return score
    parse_path(field)  # a bad path fails when the scorer is made, not on every row

    def graded(case: Case) -> Any:
        try:
            value = _field(case, field, label)
        except _Invalid:
            return False
        return score(replace(case, output=as_text(value)))

    return graded


# -- schemas ----------------------------------------------------------------------


def schema_valid(*, name: str | None = None, weight: float = 1.0) -> Scorer:
    """1 if the reply validated against the run's ``schema=``; 0 if it did not or the
    model refused. A row whose prompt ran without a schema cannot be graded."""
    label = name or "schema_valid"
    return _FnScorer(lambda case: bool(_validation(case, label).valid), label, weight)


def field_equals(path: str, column: str = "expected", *, name: str | None = None,
                 weight: float = 1.0) -> Scorer:
    """1 if the field at ``path`` of the parsed reply (``"city"``, ``"address.city"``,
    ``"items[0].name"``) equals ``row[column]``.

    Compared as JSON values (``3`` equals ``3.0``; a dict or list equals one of the
    same content), and as text when one side is text and the other is not (a CSV
    column of ``"42"`` equals a field ``42``). 0 for a reply that did not validate.
    """
    parse_path(path)
    label = name or f"field_equals[{path}]"

    def score(case: Case) -> bool:
        want = _value(case, column, label)
        try:
            got = _field(case, path, label)
        except _Invalid:
            return False
        want = jsonable(want)
        if isinstance(got, str) != isinstance(want, str):
            return as_text(got).strip() == as_text(want).strip()
        return bool(got == want)

    return _FnScorer(score, label, weight)


# -- tools -------------------------------------------------------------------------


def _calls(case: Case) -> list[Any]:
    """Every tool call of the row's loop, in the order the model made them."""
    steps = case.result.steps if case.result is not None else []
    return [call for step in steps for call in step.calls]


def _arguments(call: Any) -> Any:
    """A call's arguments as data: validated, else as the model sent them (None if they
    were not JSON)."""
    if call.args is not None:
        return jsonable(call.args)
    try:
        return json.loads(call.arguments)
    except (TypeError, ValueError):
        return None


def _subset(want: Any, got: Any) -> bool:
    """Whether ``want`` is in ``got``: every key of a dict (recursively), else equal."""
    if isinstance(want, Mapping):
        return isinstance(got, Mapping) and all(
            k in got and _subset(v, got[k]) for k, v in want.items())
    return bool(want == got)


def tool_called(tool: str, args: Mapping[str, Any] | None = None, *,
                name: str | None = None, weight: float = 1.0) -> Scorer:
    """1 if the model called ``tool`` in the row's tool loop; with ``args``, with
    arguments that hold those (a subset: other arguments may be there too; nested
    dicts are subsets as well). A call whose arguments were not JSON matches no
    ``args``. Needs ``tools=`` in the run (a row without a loop called nothing)."""
    if not isinstance(tool, str) or not tool:
        raise ScorerError(f"tool_called(): give the tool's name, not {tool!r}")
    if args is not None and not isinstance(args, Mapping):
        raise ScorerError(f"tool_called(): args must be a dict of arguments to match, "
                          f"not {type(args).__name__}")
    want = None if args is None else jsonable(dict(args))

    def score(case: Case) -> bool:
        return any(call.name == tool and (want is None or _subset(want, _arguments(call)))
                   for call in _calls(case))

    return _FnScorer(score, name or f"tool_called[{tool}]", weight)


def tool_sequence(tools: Sequence[str], *, exact: bool = True, name: str | None = None,
                  weight: float = 1.0) -> Scorer:
    """1 if the model called these tools in this order: all of its calls and no other
    (``exact=True``), or these among others, in this order (``exact=False``).
    Parallel calls of one step count in the order the model listed them."""
    if isinstance(tools, str) or not all(isinstance(t, str) for t in tools):
        raise ScorerError(f"tool_sequence(): give a list of tool names, e.g. "
                          f"['search', 'answer'], not {tools!r}")
    wanted = list(tools)

    def score(case: Case) -> bool:
        names = [call.name for call in _calls(case)]
        if exact:
            return names == wanted
        it = iter(names)
        return all(any(n == w for n in it) for w in wanted)

    return _FnScorer(score, name or "tool_sequence", weight)
