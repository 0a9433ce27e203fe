"""Scorers: grade one model output against its data row, from 0 (bad) to 1 (good).

A scorer is called with a :class:`Case` (the output text, the data row and,
when available, the full :class:`~gptmagic.types.Result`) and returns a float
in ``[0, 1]``, or raises :class:`ScorerError` when it cannot grade the case
(missing column, no logprobs, an unparseable judge reply). The batch runner
records the error and a NaN score; it never stops the run.

Sync scorers implement ``__call__``; async ones (:func:`judge`, async
:func:`custom`) set ``is_async = True`` and implement ``ascore``.
:func:`score_async` awaits either kind.

Every constructor takes ``name=`` (the score's column in the results) and
``weight=`` (its share in :func:`combine`).
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
import numbers
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, GptmagicError
from .types import Result

__all__ = [
    "Case",
    "Scorer",
    "ScorerError",
    "choice",
    "combine",
    "contains",
    "custom",
    "exact",
    "icontains",
    "json_schema",
    "json_valid",
    "judge",
    "logprob_confidence",
    "numeric",
    "regex",
    "score_async",
    "similarity",
]

_REPLY_PREVIEW = 200  # characters of a judge reply quoted in an error


class ScorerError(GptmagicError):
    """A scorer could not grade a case (or was built with bad arguments)."""


@dataclass(frozen=True)
class Case:
    """What a scorer sees: the output, its data row and the full result if any.

    ``result`` is None when re-scoring stored text (no logprobs available).
    """

    output: str
    row: Mapping[str, Any]
    result: Result | None = None


class Scorer:
    """Base class: ``name``, ``weight`` and a sync ``__call__`` or async ``ascore``."""

    name: str
    weight: float
    is_async: bool = False

    def __init__(self, name: str, weight: float = 1.0) -> None:
        if not isinstance(weight, numbers.Real) or weight < 0 or math.isnan(weight):
            raise ScorerError(f"scorer {name!r}: weight must be a number >= 0, got {weight!r}")
        self.name = name
        self.weight = float(weight)

    def __call__(self, case: Case) -> float:
        """Score ``case`` synchronously."""
        if self.is_async:
            raise ScorerError(
                f"scorer {self.name!r} is async: use `await score_async(scorer, case)`"
            )
        raise NotImplementedError

    async def ascore(self, case: Case) -> float:
        """Score ``case``; sync scorers just call themselves."""
        return self(case)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} weight={self.weight:g}>"


async def score_async(scorer: Scorer, case: Case) -> float:
    """Score ``case`` with a sync or async scorer; the result is checked to be in [0, 1]."""
    # Duck-typed scorers (a class with name, weight and __call__) work too.
    if isinstance(scorer, Scorer) or getattr(scorer, "is_async", False):
        value: Any = await scorer.ascore(case)
    else:
        value = scorer(case)
    return _to_score(value, getattr(scorer, "name", "scorer"))


class _FnScorer(Scorer):
    """A sync scorer from a function of the case."""

    def __init__(self, fn: Callable[[Case], Any], name: str, weight: float) -> None:
        super().__init__(name, weight)
        self._fn = fn

    def __call__(self, case: Case) -> float:
        return _to_score(self._fn(case), self.name)


# -- helpers ----------------------------------------------------------------


def _to_score(value: Any, name: str) -> float:
    """bool → 0/1; a real number in [0, 1] → float; anything else is an error."""
    if not isinstance(value, bool | numbers.Real) and callable(getattr(value, "item", None)):
        value = value.item()  # numpy/pandas scalars (np.bool_ is not a bool)
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, numbers.Real):
        raise ScorerError(f"scorer {name!r} returned {type(value).__name__}, not a number or bool")
    score = float(value)
    if math.isnan(score) or not 0.0 <= score <= 1.0:
        raise ScorerError(f"scorer {name!r} returned {score!r}, outside [0, 1]")
    return score


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _value(case: Case, column: str, name: str) -> Any:
    """The row's value in ``column``; a missing column or empty cell is a ScorerError."""
    if column not in case.row:
        cols = ", ".join(repr(str(c)) for c in case.row) or "none"
        raise ScorerError(
            f"scorer {name!r}: the row has no column {column!r} (columns: {cols}); "
            "pass column=... to pick one"
        )
    value = case.row[column]
    if _is_empty(value):
        raise ScorerError(f"scorer {name!r}: column {column!r} is empty in this row")
    return value


def _fold(text: str, case_sensitive: bool) -> str:
    return text if case_sensitive else text.casefold()


# A number as people write it: thousands separators, decimals, exponents.
_NUMBER = re.compile(
    r"[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
)


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
          name: str | None = None, weight: float = 1.0) -> Scorer:
    """1 if the output equals ``row[column]`` (after stripping whitespace if ``strip``)."""
    label = name or "exact"

    def score(case: Case) -> bool:
        got, want = case.output, str(_value(case, column, label))
        if strip:
            got, want = got.strip(), want.strip()
        return _fold(got, case_sensitive) == _fold(want, case_sensitive)

    return _FnScorer(score, label, weight)


def contains(text: str | None = None, *, column: str | None = None, case_sensitive: bool = True,
             name: str | None = None, weight: float = 1.0) -> Scorer:
    """1 if the output contains ``text``, or the row's value in ``column``.

    Give exactly one of them. A positional argument is always literal text,
    never a column name, so a row that happens to have a column named like
    the text cannot change what is searched for.
    """
    if (text is None) == (column is None):
        raise ScorerError("contains(): give either text=... or column=..., not both or neither")
    label = name or ("icontains" if not case_sensitive else "contains")

    def score(case: Case) -> bool:
        needle = text if text is not None else str(_value(case, column or "", label))
        return _fold(needle, case_sensitive) in _fold(case.output, case_sensitive)

    return _FnScorer(score, label, weight)


def icontains(text: str | None = None, *, column: str | None = None,
              name: str | None = None, weight: float = 1.0) -> Scorer:
    """Case-insensitive :func:`contains`."""
    return contains(text, column=column, case_sensitive=False, name=name, weight=weight)


def regex(pattern: str | re.Pattern[str], *, flags: int = 0,
          name: str | None = None, weight: float = 1.0) -> Scorer:
    """1 if ``re.search(pattern, output, flags)`` matches."""
    try:
        compiled = re.compile(pattern, flags) if isinstance(pattern, str) else pattern
    except re.error as e:
        raise ScorerError(f"regex(): bad pattern {pattern!r}: {e}") from None
    return _FnScorer(lambda case: compiled.search(case.output) is not None,
                     name or "regex", weight)


def similarity(column: str = "expected", *, name: str | None = None,
               weight: float = 1.0) -> Scorer:
    """:class:`difflib.SequenceMatcher` ratio of the stripped output and ``row[column]``."""
    label = name or "similarity"

    def score(case: Case) -> float:
        want = str(_value(case, column, label)).strip()
        return difflib.SequenceMatcher(None, case.output.strip(), want).ratio()

    return _FnScorer(score, label, weight)


def choice(column: str = "expected", *, labels: Sequence[str] | None = None,
           case_sensitive: bool = False, name: str | None = None,
           weight: float = 1.0) -> Scorer:
    """1 if the output's label equals ``row[column]``.

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

    return _FnScorer(score, label_name, weight)


def numeric(column: str = "expected", *, tolerance: float = 0.0, relative: bool = False,
            name: str | None = None, weight: float = 1.0) -> Scorer:
    """1 if the first number in the output is within ``tolerance`` of ``row[column]``.

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

    return _FnScorer(score, label, weight)


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
        import jsonschema  # type: ignore[import-untyped]
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


# -- logprobs -----------------------------------------------------------------------


def logprob_confidence(column: str = "expected", *, name: str | None = None,
                       weight: float = 1.0) -> Scorer:
    """The probability the model gave to the expected answer at its first token.

    Looks at the first generated token that is not only whitespace and sums
    exp(logprob) over its distinct alternatives (the chosen token included)
    whose stripped text is, ignoring case, a prefix of the expected label, so
    "Yes" and " yes" both count. 0 if none is. Needs a result with logprobs.
    """
    label = name or "logprob_confidence"

    def score(case: Case) -> float:
        logprobs = case.result.logprobs if case.result is not None else None
        generated = [t for t in logprobs or () if not t.prompt and t.token.strip()]
        if not generated:
            raise ScorerError("needs logprobs: run with logprobs=True, top_logprobs=k")
        want = str(_value(case, column, label)).strip().casefold()
        if not want:
            raise ScorerError(f"scorer {label!r}: column {column!r} is empty in this row")
        first = generated[0]
        alternatives: dict[str, float] = {t.token: t.logprob for t in first.top}
        if first.logprob is not None:
            alternatives.setdefault(first.token, first.logprob)
        total = 0.0
        for token, logprob in alternatives.items():
            stripped = token.strip().casefold()
            if stripped and want.startswith(stripped):
                total += math.exp(logprob)
        return min(total, 1.0)

    return _FnScorer(score, label, weight)


# -- LLM as judge ---------------------------------------------------------------------


class _Judge(Scorer):
    is_async = True

    def __init__(self, rubric: str, *, model: str, provider: str | None, client: Any,
                 scale: tuple[float, float], column: str, max_tokens: int, name: str,
                 weight: float) -> None:
        super().__init__(name, weight)
        lo, hi = scale
        if not lo < hi:
            raise ScorerError(f"judge(): scale must be (low, high) with low < high, got {scale!r}")
        self.rubric, self.model, self.provider = rubric, model, provider
        self.scale, self.column, self.max_tokens = (lo, hi), column, max_tokens
        self._client = client

    def prompt(self, case: Case) -> str:
        """The judge's prompt for ``case``: rubric, inputs, expected answer, response."""
        lo, hi = self.scale
        inputs = "\n".join(f"{k}: {v}" for k, v in case.row.items()
                           if k != self.column and not _is_empty(v))
        parts = [f"Grade the response below against this rubric.\n\nRubric:\n{self.rubric}"]
        if inputs:
            parts.append(f"Input:\n{inputs}")
        expected = case.row.get(self.column)
        if not _is_empty(expected):
            parts.append(f"Expected answer:\n{expected}")
        parts.append(f"Response:\n{case.output}")
        parts.append(f"Answer with a single number from {lo:g} to {hi:g} and nothing else.")
        return "\n\n".join(parts)

    async def ascore(self, case: Case) -> float:
        messages = [{"role": "user", "content": self.prompt(case)}]
        reply = await self._chat(messages)
        text = str(getattr(reply, "text", reply) or "")
        lo, hi = self.scale
        for m in _NUMBER.finditer(text):
            value = float(m.group().replace(",", ""))
            if lo <= value <= hi:
                return (value - lo) / (hi - lo)
        quoted = text if len(text) <= _REPLY_PREVIEW else text[:_REPLY_PREVIEW] + "…"
        raise ScorerError(
            f"scorer {self.name!r}: the judge's reply has no number from {lo:g} to {hi:g}: "
            f"{quoted!r}"
        )

    async def _chat(self, messages: list[dict[str, str]]) -> Any:
        kwargs = {"model": self.model, "provider": self.provider, "temperature": 0,
                  "max_tokens": self.max_tokens}
        if self._client is not None:
            return await self._client.chat(messages, **kwargs)
        # The shared client lives on the portal loop; achat awaits it from any loop.
        from . import api

        return await api.achat(messages, **kwargs)


def judge(rubric: str, *, model: str, provider: str | None = None, client: Any = None,
          scale: tuple[float, float] = (1, 5), column: str = "expected",
          max_tokens: int = 16, name: str = "judge", weight: float = 1.0) -> Scorer:
    """LLM-as-judge (async): a model grades the output on ``scale``, normalised to 0..1.

    The prompt holds the rubric, the row's other columns as input, the
    expected answer (``row[column]``) if present, and the output. ``client``
    is anything with an async ``chat(messages, **kwargs)`` returning an object
    with ``.text``; by default the shared :func:`gptmagic.api.get_client`.
    The first number within the scale in the reply is the grade.
    """
    return _Judge(rubric, model=model, provider=provider, client=client, scale=scale,
                  column=column, max_tokens=max_tokens, name=name, weight=weight)


# -- custom and combined ------------------------------------------------------------


def _takes_case(fn: Callable[..., Any]) -> bool:
    """True if ``fn`` takes one positional argument (the case), not (output, row)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return False
    return sum(p.kind in kinds for p in params) == 1


class _Custom(Scorer):
    def __init__(self, fn: Callable[..., Any], name: str, weight: float) -> None:
        super().__init__(name, weight)
        self._fn = fn
        self._takes_case = _takes_case(fn)
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
        )

    def _call(self, case: Case) -> Any:
        return self._fn(case) if self._takes_case else self._fn(case.output, case.row)

    def __call__(self, case: Case) -> float:
        if self.is_async:
            return super().__call__(case)
        value = self._call(case)
        if inspect.isawaitable(value):
            close = getattr(value, "close", None)
            if close is not None:
                close()
            raise ScorerError(f"scorer {self.name!r} returned an awaitable: use score_async")
        return _to_score(value, self.name)

    async def ascore(self, case: Case) -> float:
        value = self._call(case)
        if inspect.isawaitable(value):
            value = await value
        return _to_score(value, self.name)


def custom(fn: Callable[..., bool | float | Awaitable[bool | float]], *,
           name: str | None = None, weight: float = 1.0) -> Scorer:
    """Wrap ``fn(output, row)`` or ``fn(case)`` (one positional parameter), sync or async.

    ``fn`` returns a bool (0/1) or a number in [0, 1]; anything else raises ScorerError.
    """
    default = getattr(fn, "__name__", "custom")
    return _Custom(fn, name or (default if default.isidentifier() else "custom"), weight)


class _Combined(Scorer):
    def __init__(self, parts: Sequence[Scorer], name: str, weight: float) -> None:
        super().__init__(name, weight)
        if not parts:
            raise ScorerError("combine(): give at least one scorer")
        if sum(p.weight for p in parts) <= 0:
            raise ScorerError("combine(): the parts' weights sum to 0")
        self.parts = tuple(parts)
        self.is_async = any(getattr(p, "is_async", False) for p in parts)

    def _mean(self, scores: Sequence[float]) -> float:
        total = sum(p.weight for p in self.parts)
        return min(1.0, sum(p.weight * s for p, s in zip(self.parts, scores, strict=True)) / total)

    def __call__(self, case: Case) -> float:
        if self.is_async:
            return super().__call__(case)
        return self._mean([_to_score(p(case), p.name) for p in self.parts])

    async def ascore(self, case: Case) -> float:
        return self._mean([await score_async(p, case) for p in self.parts])


def combine(*scorers: Scorer, name: str = "combined", weight: float = 1.0) -> Scorer:
    """The weighted mean of ``scorers`` (each weighted by its ``weight``).

    Async if any part is; a part's ScorerError propagates.
    """
    return _Combined(scorers, name, weight)
