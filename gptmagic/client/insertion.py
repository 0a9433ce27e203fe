"""Completions with a suffix: splitting the cell, and resampling until ``stop``.

In a ``%%complete`` cell the marker ``[insert]`` splits the text into prompt
and suffix. Matching is exact and case-sensitive (``[Insert]`` is plain text),
and ``\\[insert]`` stands for a literal ``[insert]`` that does not split.

For insertions OpenAI's advice is to sample several times and keep the samples
that end with ``finish_reason == "stop"`` (the model reached the suffix); a
sample cut off by ``max_tokens`` ends with ``"length"`` and did not join up.
:func:`resample` does that. Engines without suffix support (the embedded
model) answer with a clear 400 naming ``suffix``; it is passed on, because
insertion is never faked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gptmagic.core.types import Choice, Result, Usage
from gptmagic.errors import RequestError

if TYPE_CHECKING:
    from gptmagic.client.client import Client

__all__ = ["INSERT_MARKER", "ResampleResult", "resample", "split_insertion"]

INSERT_MARKER = "[insert]"


def split_insertion(text: str, marker: str = INSERT_MARKER) -> tuple[str, str | None]:
    """``(prompt, suffix)`` around ``marker``; suffix is None when there is none.

    The marker matches exactly and case-sensitively. A backslash right before
    it (``\\[insert]``) makes it literal text: it does not split, and the
    backslash is dropped. More than one unescaped marker is a
    :class:`RequestError` naming the cell lines of the first two.
    """
    if not marker:
        raise RequestError("the insertion marker must not be empty", param="--marker")
    escaped = "\\" + marker
    hits: list[int] = []
    pos = 0
    while (i := text.find(marker, pos)) != -1:
        if i == 0 or text[i - 1] != "\\":
            hits.append(i)
        pos = i + len(marker)
    if len(hits) > 1:
        first, second = (text.count("\n", 0, h) + 1 for h in hits[:2])
        raise RequestError(
            f"cell line {first} and cell line {second}: the insertion marker {marker} appears "
            f"{len(hits)} times; keep one, and write any other as {escaped} to make it literal",
            param="cell",
        )
    if not hits:
        return text.replace(escaped, marker), None
    i = hits[0]
    prompt, suffix = text[:i], text[i + len(marker) :]
    return prompt.replace(escaped, marker), suffix.replace(escaped, marker)


@dataclass
class ResampleResult:
    """Every attempt of :func:`resample`, and the choices that reached the suffix.

    ``kept`` holds the choices whose ``finish_reason`` is ``"stop"``, in the
    order they arrived; ``all_length`` says every sample was cut off by
    ``max_tokens``; ``advice`` says what to change when too few were kept.
    """

    kept: list[Choice] = field(default_factory=list)
    results: list[Result] = field(default_factory=list, repr=False)
    attempts: int = 0
    all_length: bool = False
    advice: str | None = None

    @property
    def best(self) -> Choice | None:
        """The first kept choice, or None when no sample ended with ``stop``."""
        return self.kept[0] if self.kept else None

    @property
    def usage_total(self) -> Usage:
        """Tokens summed over every attempt (they are all billed, kept or not)."""
        u = Usage()
        for r in self.results:
            if r.usage:
                u.prompt_tokens += r.usage.prompt_tokens
                u.completion_tokens += r.usage.completion_tokens
                u.total_tokens += r.usage.total_tokens
        return u


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


async def resample(
    client: Client,
    prompt: str,
    *,
    suffix: str | None,
    k: int,
    keep: int = 1,
    **params: Any,
) -> ResampleResult:
    """Sample up to ``k`` times, one call at a time; stop once ``keep`` ended with ``stop``.

    ``params`` go to :meth:`Client.complete` unchanged, except ``seed``: the
    i-th attempt (from 0) sends ``seed + i``, so attempts differ yet the run
    is reproducible. Errors from the client propagate as they are.
    """
    for name, value in (("k", k), ("keep", keep)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RequestError(
                f"--resample: {name} must be a whole number >= 1, got {value!r}",
                param="--resample",
            )
    seed = params.pop("seed", None)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError(f"seed must be an integer, got {seed!r}", param="seed")
    if suffix is not None:
        params["suffix"] = suffix
    out = ResampleResult()
    for i in range(k):
        attempt = dict(params) if seed is None else {**params, "seed": seed + i}
        r = await client.complete(prompt, **attempt)
        out.results.append(r)
        out.attempts += 1
        out.kept += [c for c in r.choices if c.finish_reason == "stop"]
        if len(out.kept) >= keep:
            break
    out.all_length = _all_length(out.results)
    out.advice = _advice(out, keep, params.get("max_tokens"), suffix is not None)
    return out


def _all_length(results: list[Result]) -> bool:
    reasons = [c.finish_reason for r in results for c in r.choices]
    return bool(reasons) and all(x == "length" for x in reasons)


def _advice(out: ResampleResult, keep: int, max_tokens: Any, has_suffix: bool) -> str | None:
    samples = sum(len(r.choices) for r in out.results)
    goal = "reaching the suffix" if has_suffix else "finishing"
    if out.all_length:
        limit = f"max_tokens={max_tokens}" if max_tokens else "the default max_tokens"
        every = "the only sample" if samples == 1 else f"all {samples} samples"
        return f"{every} stopped at {limit} before {goal}; raise --max-tokens"
    if not out.kept:
        reasons = sorted({str(c.finish_reason) for r in out.results for c in r.choices})
        return (
            f"none of {_count(samples, 'sample')} ended with 'stop' "
            f"(finish reasons: {', '.join(reasons) or 'none'}); raise --resample or --max-tokens"
        )
    if len(out.kept) < keep:
        return (
            f"kept {len(out.kept)} of the {keep} wanted after "
            f"{_count(out.attempts, 'attempt')}; raise --resample"
        )
    return None
