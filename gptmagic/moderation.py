"""The moderation layer the OpenAI guide recommends: check input and reply.

Providers without a moderation endpoint (the embedded model) give a clear
error instead of a silent pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import MalformedResponseError

__all__ = ["ModerationResult", "describe", "moderate"]


@dataclass
class ModerationResult:
    flagged: bool
    categories: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    model: str | None = None
    input_kind: str = "input"


async def moderate(client: Any, text: str, *, kind: str, provider: Any = None
                   ) -> ModerationResult:
    """Moderate one text (``kind`` is "input" or "reply")."""
    data = await client.moderate(text, provider=provider)
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        raise MalformedResponseError("moderation response has no 'results' list")
    first = results[0]
    cats = first.get("categories") or {}
    scores = first.get("category_scores") or {}
    if not isinstance(cats, dict) or not isinstance(scores, dict):
        raise MalformedResponseError("moderation result has malformed categories")
    return ModerationResult(
        flagged=bool(first.get("flagged")),
        categories=sorted(k for k, v in cats.items() if v),
        scores={k: float(v) for k, v in scores.items() if isinstance(v, int | float)},
        model=data.get("model"),
        input_kind=kind,
    )


def describe(results: Sequence[ModerationResult]) -> str:
    """``moderation: input not flagged; reply flagged for violence (0.91)``."""
    parts = []
    for r in results:
        if not r.flagged:
            parts.append(f"{r.input_kind} not flagged")
        else:
            cats = ", ".join(f"{c} ({r.scores.get(c, 0):.2f})" for c in r.categories)
            parts.append(f"{r.input_kind} flagged for {cats or 'unspecified categories'}")
    return "moderation: " + "; ".join(parts)
