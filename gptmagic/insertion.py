"""Completions with a suffix: splitting the cell, and resampling until ``stop``.

In a ``%%complete`` cell the marker ``[insert]`` (exact, case-sensitive)
splits the text into prompt and suffix; ``\\[insert]`` is a literal marker.
For insertions OpenAI's advice is to sample several times and keep the
samples that end with ``finish_reason == "stop"`` (the model reached the
suffix); :func:`resample` does that. Engines without suffix support (the
embedded model) answer with a clear error, which is passed on: insertion is
never faked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import RequestError
from .types import Choice, Result, Usage

__all__ = ["INSERT_MARKER", "ResampleResult", "resample", "split_insertion"]

INSERT_MARKER = "[insert]"


def split_insertion(text: str, marker: str = INSERT_MARKER) -> tuple[str, str | None]:
    """``(prompt, suffix)``; suffix is None when the text has no marker."""
    if not marker:
        raise RequestError("the insertion marker must not be empty", param="--marker")
    escaped = "\\" + marker
    hits: list[int] = []
    pos = 0
    while (i := text.find(marker, pos)) != -1:
        if not (i > 0 and text[i - 1] == "\\"):
            hits.append(i)
        pos = i + len(marker)
    if len(hits) > 1:
        lines = [text.count("\n", 0, h) + 1 for h in hits[:2]]
        raise RequestError(
            f"cell line {lines[0]} and cell line {lines[1]}: the insertion marker {marker} "
            "appears more than once; expected one (escape others as \\" + marker + ")",
            param="cell")
    if not hits:
        return text.replace(escaped, marker), None
    i = hits[0]
    prompt, suffix = text[:i], text[i + len(marker):]
    return prompt.replace(escaped, marker), suffix.replace(escaped, marker)


@dataclass
class ResampleResult:
    """Every attempt, and the choices that reached the suffix (``stop``)."""

    kept: list[Choice] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    attempts: int = 0
    all_length: bool = False
    advice: str | None = None

    @property
    def best(self) -> Choice | None:
        return self.kept[0] if self.kept else None

    @property
    def usage_total(self) -> Usage:
        u = Usage()
        for r in self.results:
            if r.usage:
                u.prompt_tokens += r.usage.prompt_tokens
                u.completion_tokens += r.usage.completion_tokens
                u.total_tokens += r.usage.total_tokens
        return u


async def resample(client: Any, prompt: str, *, suffix: str | None, k: int, keep: int = 1,
                   **params: Any) -> ResampleResult:
    """Sample up to ``k`` times; stop once ``keep`` samples ended with ``stop``."""
    if not isinstance(k, int) or k < 1:
        raise RequestError(f"--resample must be >= 1, got {k!r}", param="--resample")
    if not isinstance(keep, int) or keep < 1:
        raise RequestError(f"keep must be >= 1, got {keep!r}", param="--resample")
    out = ResampleResult()
    seed = params.pop("seed", None)
    for i in range(k):
        attempt = dict(params)
        if seed is not None:
            attempt["seed"] = seed + i
        if suffix is not None:
            attempt["suffix"] = suffix
        r = await client.complete(prompt, **attempt)
        out.results.append(r)
        out.attempts += 1
        out.kept += [c for c in r.choices if c.finish_reason == "stop"]
        if len(out.kept) >= keep:
            break
    reasons = [c.finish_reason for r in out.results for c in r.choices]
    out.all_length = bool(reasons) and all(x == "length" for x in reasons)
    if out.all_length:
        mt = params.get("max_tokens")
        limit = f"max_tokens={mt}" if mt else "the token limit"
        out.advice = (f"all {out.attempts} sample(s) stopped at {limit} before reaching the "
                      "suffix; raise --max-tokens")
    elif not out.kept:
        out.advice = f"no sample of {out.attempts} ended with 'stop'"
    return out
