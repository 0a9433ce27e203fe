"""The moderation layer the OpenAI guide recommends: check the input and the reply.

:func:`moderate` asks the provider's ``/moderations`` endpoint about one text
and :func:`describe` turns the verdicts into one line for the reply. A reply
whose shape is wrong is an error, never a silent "not flagged", and the
embedded model, which has no moderation endpoint, raises a clear
:class:`~gptmagic.errors.RequestError` from :meth:`Client.moderate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gptmagic.errors import MalformedResponseError, RequestError

if TYPE_CHECKING:
    from gptmagic.client.client import Client
    from gptmagic.client.config import Provider

__all__ = ["KINDS", "ModerationResult", "describe", "moderate"]

KINDS = ("input", "reply")
"""What a moderated text was: the user's input or the model's reply."""


@dataclass
class ModerationResult:
    """The provider's verdict on one text.

    ``categories`` are the flagged category names, sorted; ``scores`` holds
    every category's score as the provider sent it (0 to 1).
    """

    flagged: bool
    categories: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict, repr=False)
    model: str | None = None
    input_kind: str = "input"


async def moderate(
    client: Client, text: str, *, kind: str, provider: str | Provider | None = None
) -> ModerationResult:
    """Moderate one text; ``kind`` is ``"input"`` or ``"reply"``."""
    if kind not in KINDS:
        raise RequestError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", param="kind")
    data = await client.moderate(text, provider=provider)
    return _parse(data, kind)


def _parse(data: Any, kind: str) -> ModerationResult:
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        raise MalformedResponseError(
            "moderation response has no 'results' list of objects "
            f"(got {_shape(data, 'results')}); is this an OpenAI-compatible /moderations?"
        )
    first = results[0]
    flagged, cats, scores = (first.get(k) for k in ("flagged", "categories", "category_scores"))
    if not isinstance(flagged, bool):
        raise MalformedResponseError(
            f"moderation result has no boolean 'flagged' (got {_shape(first, 'flagged')})"
        )
    if not isinstance(cats, dict):
        raise MalformedResponseError(
            f"moderation result has no 'categories' object (got {_shape(first, 'categories')})"
        )
    if not isinstance(scores, dict):
        raise MalformedResponseError(
            "moderation result has no 'category_scores' object "
            f"(got {_shape(first, 'category_scores')})"
        )
    model = data.get("model")
    return ModerationResult(
        flagged=flagged,
        categories=sorted(str(k) for k, v in cats.items() if v is True),
        scores={
            str(k): float(v)
            for k, v in scores.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        },
        model=None if model is None else str(model),
        input_kind=kind,
    )


def _shape(obj: Any, key: str) -> str:
    if not isinstance(obj, dict):
        return type(obj).__name__
    if key not in obj:
        return f"keys {sorted(obj)}" if obj else "an empty object"
    return f"{type(obj[key]).__name__} {obj[key]!r:.40}"


def describe(results: Sequence[ModerationResult]) -> str:
    """One line for all checked texts.

    >>> describe([ModerationResult(False), ModerationResult(
    ...     True, ["violence"], {"violence": 0.91}, input_kind="reply")])
    'moderation: input not flagged; reply flagged for violence (0.91)'
    """
    if not results:
        return "moderation: nothing checked"
    parts = []
    for r in results:
        if not r.flagged:
            parts.append(f"{r.input_kind} not flagged")
            continue
        cats = ", ".join(f"{c} ({r.scores[c]:.2f})" if c in r.scores else c for c in r.categories)
        parts.append(f"{r.input_kind} flagged for {cats or 'unspecified categories'}")
    return "moderation: " + "; ".join(parts)
