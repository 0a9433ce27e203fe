"""Scorers of the output text alone: exact, contains, regex, similarity, choice, numeric, JSON.

Each text scorer takes ``field=``: a path into the reply parsed against the run's
schema (``"answer"``, ``"address.city"``, ``"items[0].name"``), whose value it then
grades instead of the whole output (see :func:`gptmagic.eval.scorers_structured.on_field`).
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from gptmagic.errors import ConfigError
from gptmagic.eval.scorers_structured import on_field
from gptmagic.eval.scoring import _NUMBER, Case, Scorer, ScorerError, _FnScorer, _value

__all__ = ["choice", "contains", "exact", "icontains", "json_schema", "json_valid", "numeric",
           "regex", "similarity"]


def _fold(text: str, case_sensitive: bool) -> str:
    return text if case_sensitive else text.casefold()


def _first_number(text: str) -> float | None:
    """The first number in ``text`` ("1,234.5", "-3", "1e3", "−2"), or None."""
    m = _NUMBER.search(text.replace("\u2212", "-"))
    return None if m is None else float(m.group().replace(",", ""))


_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def _parse_json(text: str) -> Any:
    """Parse ``text`` as JSON, or the first ```json fenced block in it; ValueError if neither."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    m = _FENCE.search(text)
    if m is None:
        raise ValueError("not JSON and no ```json block")
    return json.loads(m.group(1))


# -- text scorers ---------------------------------------------------------------


def exact(column: str = "expected", *, strip: bool = True, case_sensitive: bool = True,
          field: str | None = None, name: str | None = None, weight: float = 1.0) -> Scorer:
    """1 if the output (or its parsed ``field``) equals ``row[column]`` (after stripping
    whitespace if ``strip``)."""
    label = name or "exact"

    def score(case: Case) -> bool:
        got, want = case.output, str(_value(case, column, label))
        if strip:
            got, want = got.strip(), want.strip()
        return _fold(got, case_sensitive) == _fold(want, case_sensitive)

    return _FnScorer(on_field(score, field, label), label, weight)


def contains(text: str | None = None, *, column: str | None = None, case_sensitive: bool = True,
             field: str | None = None, name: str | None = None, weight: float = 1.0) -> Scorer:
    """1 if the output (or its parsed ``field``) contains ``text``, or the row's value in
    ``column``.

    Give exactly one of them. A positional argument is always literal text,
    never a column name, so a row that happens to have a column named like
    the text cannot change what is searched for.
    """
    if (text is None) == (column is None):
        raise ScorerError("contains(): give either text=... or column=..., not both or neither")
    label = name or ("icontains" if not case_sensitive else "contains")
    fn = "icontains" if not case_sensitive else "contains"
    told = False

    def score(case: Case) -> bool:
        nonlocal told
        if text is not None and not told and text in case.row:
            told = True  # once per scorer: the likely slip of naming a column as text
            warnings.warn(f"{fn}({text!r}) searches every output for the literal text "
                          f"{text!r}, and the data has a column named {text!r}: to look "
                          f"for each row's value, write {fn}(column={text!r})",
                          stacklevel=2)
        needle = text if text is not None else str(_value(case, column or "", label))
        return _fold(needle, case_sensitive) in _fold(case.output, case_sensitive)

    return _FnScorer(on_field(score, field, label), label, weight)


def icontains(text: str | None = None, *, column: str | None = None, field: str | None = None,
              name: str | None = None, weight: float = 1.0) -> Scorer:
    """Case-insensitive :func:`contains`."""
    return contains(text, column=column, case_sensitive=False, field=field, name=name,
                    weight=weight)


def regex(pattern: str | re.Pattern[str], *, flags: int = 0, field: str | None = None,
          name: str | None = None, weight: float = 1.0) -> Scorer:
    """1 if ``re.search(pattern, output, flags)`` matches (in the parsed ``field``, if given)."""
    try:
        compiled = re.compile(pattern, flags) if isinstance(pattern, str) else pattern
    except re.error as e:
        raise ScorerError(f"regex(): bad pattern {pattern!r}: {e}") from None
    label = name or "regex"
    return _FnScorer(on_field(lambda case: compiled.search(case.output) is not None, field,
                              label), label, weight)


def similarity(column: str = "expected", *, field: str | None = None, name: str | None = None,
               weight: float = 1.0) -> Scorer:
    """:class:`difflib.SequenceMatcher` ratio of the stripped output (or its parsed
    ``field``) and ``row[column]``."""
    label = name or "similarity"

    def score(case: Case) -> float:
        want = str(_value(case, column, label)).strip()
        return difflib.SequenceMatcher(None, case.output.strip(), want).ratio()

    return _FnScorer(on_field(score, field, label), label, weight)


def choice(column: str = "expected", *, labels: Sequence[str] | None = None,
           case_sensitive: bool = False, field: str | None = None, name: str | None = None,
           weight: float = 1.0) -> Scorer:
    """1 if the output's (or its parsed ``field``'s) label equals ``row[column]``.

    With ``labels``, the output's label is the earliest whole-word occurrence
    of one of them (the longest wins at the same position, so "very positive"
    beats "positive"); no label found scores 0. Without ``labels`` it is the
    whole output, stripped of whitespace, quotes and trailing punctuation.
    """
    label_name = name or "choice"
    finder: re.Pattern[str] | None = None
    if labels is not None:
        if not labels:
            raise ScorerError("choice(): labels is empty")
        alts = "|".join(re.escape(x) for x in sorted(labels, key=len, reverse=True))
        finder = re.compile(rf"(?<!\w)(?:{alts})(?!\w)", 0 if case_sensitive else re.IGNORECASE)

    def score(case: Case) -> bool:
        want = str(_value(case, column, label_name)).strip()
        if finder is not None:
            m = finder.search(case.output)
            if m is None:
                return False
            got = m.group()
        else:
            got = case.output.strip().strip("\"'`*").rstrip(".!?,;:").strip()
        return _fold(got, case_sensitive) == _fold(want, case_sensitive)

    return _FnScorer(on_field(score, field, label_name), label_name, weight)


def numeric(column: str = "expected", *, tolerance: float = 0.0, relative: bool = False,
            field: str | None = None, name: str | None = None, weight: float = 1.0) -> Scorer:
    """1 if the first number in the output (or its parsed ``field``) is within
    ``tolerance`` of ``row[column]``.

    ``relative=True`` makes the tolerance a fraction of the expected value.
    An output without a number scores 0; an expected value that is not a
    number is a ScorerError.
    """
    if tolerance < 0:
        raise ScorerError(f"numeric(): tolerance must be >= 0, got {tolerance!r}")
    label = name or "numeric"

    def score(case: Case) -> bool:
        raw = _value(case, column, label)
        want = float(raw) if isinstance(raw, numbers.Real) else _first_number(str(raw))
        if want is None:
            raise ScorerError(f"scorer {label!r}: column {column!r} holds no number: {raw!r}")
        got = _first_number(case.output)
        if got is None:
            return False
        bound = tolerance * abs(want) if relative else tolerance
        # A little slack so 0.1 + 0.2-style float noise never flips a verdict.
        return abs(got - want) <= bound or math.isclose(got, want, rel_tol=1e-9)

    return _FnScorer(on_field(score, field, label), label, weight)


# -- JSON -------------------------------------------------------------------------


def json_valid(*, name: str | None = None, weight: float = 1.0) -> Scorer:
    """1 if the output is JSON (or holds a ```json fenced block that is)."""

    def score(case: Case) -> bool:
        try:
            _parse_json(case.output)
        except ValueError:
            return False
        return True

    return _FnScorer(score, name or "json_valid", weight)


def json_schema(schema: Mapping[str, Any], *, name: str | None = None,
                weight: float = 1.0) -> Scorer:
    """1 if the output parses as JSON (see :func:`json_valid`) and validates against ``schema``.

    Needs the ``jsonschema`` package; a bad schema fails here, not per case.
    """
    try:
        import jsonschema
    except ImportError:
        raise ConfigError(
            "json_schema() needs the jsonschema package: pip install jsonschema"
        ) from None
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise ScorerError(f"json_schema(): invalid schema: {e.message}") from None
    validator = cls(schema)

    def score(case: Case) -> bool:
        try:
            data = _parse_json(case.output)
        except ValueError:
            return False
        return bool(validator.is_valid(data))

    return _FnScorer(score, name or "json_schema", weight)
