"""The scorer base: :class:`Scorer`, :class:`Case`, :class:`Score`, :class:`ScorerError`
and :func:`score_async`.

A scorer returns a number (or bool), or a :class:`Score`: the number with a sentence
saying why (a judge's reasoning), which the results keep as ``explain.<scorer>``.

Also the helpers every scorer shares: turning a return value into a score in
``[0, 1]``, reading a row's column, and finding numbers in text. The concrete
scorers live in :mod:`gptmagic.eval.scorers_text`,
:mod:`gptmagic.eval.scorers_structured` and :mod:`gptmagic.eval.scorers_model`;
users import them all from :mod:`gptmagic.scorers`.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gptmagic.core.types import Result
from gptmagic.errors import GptmagicError

__all__ = ["Case", "Score", "Scorer", "ScorerError", "ask_scorer_keys", "score_async",
           "score_explained"]


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


@dataclass(frozen=True)
class Score:
    """A score and why: what a scorer may return instead of a bare number.

    ``value`` is a bool or a number in ``[0, 1]``, as a plain return value is;
    ``explanation`` is shown beside the score (``explain.<scorer>`` in the results,
    the explorer's side panel).
    """

    value: float
    explanation: str | None = None


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

    def __call__(self, case: Case) -> float | Score:
        """Score ``case`` synchronously."""
        if self.is_async:
            raise ScorerError(
                f"scorer {self.name!r} is async: use `await score_async(scorer, case)`"
            )
        raise NotImplementedError

    async def ascore(self, case: Case) -> float | Score:
        """Score ``case``; sync scorers just call themselves."""
        return self(case)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} weight={self.weight:g}>"


async def score_async(scorer: Scorer, case: Case) -> float:
    """Score ``case`` with a sync or async scorer; the result is checked to be in [0, 1]."""
    return (await score_explained(scorer, case)).value


async def score_explained(scorer: Scorer, case: Case) -> Score:
    """:func:`score_async` with the scorer's explanation, if it gave one."""
    # Duck-typed scorers (a class with name, weight and __call__) work too.
    if isinstance(scorer, Scorer) or getattr(scorer, "is_async", False):
        value: Any = await scorer.ascore(case)
    else:
        value = scorer(case)
    return _explained(value, getattr(scorer, "name", "scorer"))


class _FnScorer(Scorer):
    """A sync scorer from a function of the case."""

    def __init__(self, fn: Callable[[Case], Any], name: str, weight: float) -> None:
        super().__init__(name, weight)
        self._fn = fn

    def __call__(self, case: Case) -> float | Score:
        return _checked(self._fn(case), self.name)


# -- helpers ----------------------------------------------------------------


def _explained(value: Any, name: str) -> Score:
    """A scorer's return value as a checked :class:`Score` (a bare number explains
    nothing)."""
    if isinstance(value, Score):
        why = value.explanation
        if why is not None and not isinstance(why, str):
            raise ScorerError(f"scorer {name!r} returned an explanation of type "
                              f"{type(why).__name__}, not text")
        return Score(_to_score(value.value, name), why or None)
    return Score(_to_score(value, name))


def _checked(value: Any, name: str) -> float | Score:
    """A scorer's return value checked: a float, or a :class:`Score` when it explains."""
    score = _explained(value, name)
    return score if score.explanation is not None else score.value


def _to_score(value: Any, name: str) -> float:
    """bool → 0/1; a real number in [0, 1] → float; anything else is an error."""
    if isinstance(value, Score):
        return _explained(value, name).value
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


# A number as people write it: thousands separators, decimals, exponents.
_NUMBER = re.compile(
    r"[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
)


def ask_scorer_keys(scorers: Sequence[Any]) -> None:
    """On the caller's thread: the keys of the providers that judge scorers call."""
    for scorer in scorers:
        ask_scorer_keys(getattr(scorer, "parts", ()))
        if getattr(scorer, "is_judge", False) and getattr(scorer, "uses_shared_client", False):
            from gptmagic.client.config import ask_key

            ask_key(scorer.provider, scorer.model)
