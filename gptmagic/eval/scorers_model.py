"""Scorers that look past the text: the model's logprobs, an LLM judge, your function, a mix.

:func:`logprob_confidence` reads the result's logprobs; :func:`judge` asks a
model (async); :func:`custom` wraps a sync or async function; :func:`combine`
takes the weighted mean of other scorers.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gptmagic.core.text import preview
from gptmagic.eval.scoring import (
    _NUMBER,
    Case,
    Score,
    Scorer,
    ScorerError,
    _checked,
    _explained,
    _FnScorer,
    _is_empty,
    _value,
    score_explained,
)

__all__ = ["combine", "custom", "judge", "logprob_confidence"]

_REPLY_PREVIEW = 200  # characters of a judge reply quoted in an error
_GRADE_TOKENS = 16  # room for a grade alone
_REASON_TOKENS = 80  # a grade and one sentence why


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
                 scale: tuple[float, float], column: str, max_tokens: int | None,
                 reason: bool, name: str, weight: float) -> None:
        super().__init__(name, weight)
        lo, hi = scale
        if not lo < hi:
            raise ScorerError(f"judge(): scale must be (low, high) with low < high, got {scale!r}")
        self.rubric, self.model, self.provider = rubric, model, provider
        self.is_judge = True
        self.scale, self.column, self.reason = (lo, hi), column, reason
        self.max_tokens = max_tokens or (_REASON_TOKENS if reason else _GRADE_TOKENS)
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
        parts.append(
            f"Answer with the grade, a single number from {lo:g} to {hi:g}, first; then, "
            "after it, one short sentence saying why." if self.reason else
            f"Answer with a single number from {lo:g} to {hi:g} and nothing else.")
        return "\n\n".join(parts)

    async def ascore(self, case: Case) -> Score:
        messages = [{"role": "user", "content": self.prompt(case)}]
        reply = await self._chat(messages)
        text = str(getattr(reply, "text", reply) or "")
        lo, hi = self.scale
        for m in _NUMBER.finditer(text):
            value = float(m.group().replace(",", ""))
            if lo <= value <= hi:
                # The judge's whole reply is its reasoning (the grade leads it).
                return Score((value - lo) / (hi - lo), text.strip() or None)
        quoted = preview(text, _REPLY_PREVIEW + 1, flatten=False)
        raise ScorerError(
            f"scorer {self.name!r}: the judge's reply has no number from {lo:g} to {hi:g}: "
            f"{quoted!r}"
        )

    @property
    def uses_shared_client(self) -> bool:
        """True when the judge calls through the shared client (its key is asked up front)."""
        return self._client is None

    async def _chat(self, messages: list[dict[str, str]]) -> Any:
        kwargs: dict[str, Any] = {"model": self.model, "provider": self.provider, "temperature": 0,
                  "max_tokens": self.max_tokens}
        if self._client is not None:
            return await self._client.chat(messages, **kwargs)
        # The shared client lives on the portal loop; achat awaits it from any loop.
        from gptmagic.client import facade as api

        return await api.achat(messages, **kwargs)


def judge(rubric: str, *, model: str, provider: str | None = None, client: Any = None,
          scale: tuple[float, float] = (1, 5), column: str = "expected",
          max_tokens: int | None = None, reason: bool = True, name: str = "judge",
          weight: float = 1.0) -> Scorer:
    """LLM-as-judge (async): a model grades the output on ``scale``, normalised to 0..1.

    The prompt holds the rubric, the row's other columns as input, the
    expected answer (``row[column]``) if present, and the output. ``client``
    is anything with an async ``chat(messages, **kwargs)`` returning an object
    with ``.text``; by default the shared :func:`gptmagic.get_client`.
    The first number within the scale in the reply is the grade. With ``reason``
    (the default) the judge is asked for one sentence why after the grade, and its
    reply is the score's explanation (``explain.<name>`` in the results);
    ``reason=False`` asks for the number alone (fewer tokens). ``max_tokens``
    defaults to 80 with a reason, 16 without.
    """
    return _Judge(rubric, model=model, provider=provider, client=client, scale=scale,
                  column=column, max_tokens=max_tokens, reason=reason, name=name,
                  weight=weight)


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

    def __call__(self, case: Case) -> float | Score:
        if self.is_async:
            return super().__call__(case)
        value = self._call(case)
        if inspect.isawaitable(value):
            close = getattr(value, "close", None)
            if close is not None:
                close()
            raise ScorerError(f"scorer {self.name!r} returned an awaitable: use score_async")
        return _checked(value, self.name)

    async def ascore(self, case: Case) -> float | Score:
        value = self._call(case)
        if inspect.isawaitable(value):
            value = await value
        return _checked(value, self.name)


def custom(fn: Callable[..., bool | float | Score | Awaitable[bool | float | Score]], *,
           name: str | None = None, weight: float = 1.0) -> Scorer:
    """Wrap ``fn(output, row)`` or ``fn(case)`` (one positional parameter), sync or async.

    ``fn`` returns a bool (0/1), a number in [0, 1], or a :class:`Score` (the number
    and why); anything else raises ScorerError.
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

    def _mean(self, scores: Sequence[Score]) -> float | Score:
        """The weighted mean, explained by the parts that explained theirs."""
        total = sum(p.weight for p in self.parts)
        mean = min(1.0, sum(p.weight * s.value
                            for p, s in zip(self.parts, scores, strict=True)) / total)
        why = "; ".join(f"{p.name}: {s.explanation}"
                        for p, s in zip(self.parts, scores, strict=True) if s.explanation)
        return Score(mean, why) if why else mean

    def __call__(self, case: Case) -> float | Score:
        if self.is_async:
            return super().__call__(case)
        return self._mean([_explained(p(case), p.name) for p in self.parts])

    async def ascore(self, case: Case) -> float | Score:
        return self._mean([await score_explained(p, case) for p in self.parts])


def combine(*scorers: Scorer, name: str = "combined", weight: float = 1.0) -> Scorer:
    """The weighted mean of ``scorers`` (each weighted by its ``weight``).

    Async if any part is; a part's ScorerError propagates.
    """
    return _Combined(scorers, name, weight)
