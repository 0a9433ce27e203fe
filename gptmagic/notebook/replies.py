"""What a chat or completion cell returns: a :class:`Reply` (or a :class:`DryRun`) that
renders itself in Jupyter and keeps the result, its cost and the request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gptmagic.catalog.pricing import Cost
from gptmagic.core.images import ImageRef, elide
from gptmagic.core.types import Parsed, Result, Step, Usage
from gptmagic.views import reply as display

__all__ = ["DryRun", "Reply", "price_parts"]


def price_parts(cost: Cost | None, usage: Usage | None) -> dict[str, Cost | None]:
    """What the reasoning, cached-input and cache-write tokens of a call cost, apiece,
    from the cost's breakdown (:class:`~gptmagic.catalog.pricing.CostBreakdown`): only
    the parts the usage has, each None where its price is unknown (never zero)."""
    if usage is None:
        return {}
    parts: dict[str, Cost | None] = {}
    split = cost.breakdown if cost is not None else None
    for key, tokens, field_name in (("reasoning", usage.reasoning_tokens, "reasoning"),
                                    ("cached", usage.cached_tokens, "cached_input"),
                                    ("cache_write", usage.cache_write_tokens, "cache_write")):
        if not tokens:
            continue
        amount = getattr(split, field_name) if split is not None else None
        parts[key] = None if amount is None or cost is None else Cost(
            None, None, amount, currency=cost.currency, source=cost.source)
    return parts


@dataclass
class Reply:
    """The result of a chat or completion cell; renders itself in Jupyter."""

    text: str
    messages: list[dict[str, Any]]
    result: Result | None
    cost: Cost | None
    request: dict[str, Any]
    thread: str | None = None
    note: str | None = None
    results: dict[str, Result | str] = field(default_factory=dict)
    costs: dict[str, Cost | None] = field(default_factory=dict)
    moderation: str | None = None
    bundle: tuple[dict[str, Any], dict[str, Any]] | None = field(default=None, repr=False)
    #: The text/plain footer (summary line and notes), shown alone in a terminal
    #: where the reply itself has already streamed.
    footer: str | None = field(default=None, repr=False)
    #: The logprob heatmap the magic showed under the reply (when logprobs were asked
    #: for); with several models, ``heatmaps`` has one per model and this is the first.
    heatmap: Any = field(default=None, repr=False)
    heatmaps: dict[str, Any] = field(default_factory=dict, repr=False)
    #: What the reply's reasoning, cached-input and cache-write tokens cost
    #: (:func:`price_parts`); a part is None where its price is unknown.
    cost_parts: dict[str, Cost | None] = field(default_factory=dict, repr=False)

    @property
    def finish_reason(self) -> str | None:
        """Why the (first) reply ended: ``stop``, ``length``, ``interrupted``, ..."""
        return self.result.finish_reason if self.result else None

    @property
    def reasoning(self) -> str | None:
        """The reasoning summary the model returned (Responses API with
        ``--reasoning-summary``), else None."""
        return self.result.reasoning if self.result else None

    @property
    def status(self) -> str | None:
        """The Responses API's ``status`` (``completed``, ``incomplete``...); None for chat."""
        return self.result.status if self.result else None

    @property
    def parsed(self) -> Any:
        """``--schema``: the reply as the schema's type (a model instance, a dict...);
        None when it is not valid (``validation.errors`` say where) or was refused."""
        return self.result.parsed if self.result else None

    @property
    def validation(self) -> Parsed | None:
        """``--schema``: valid or the errors with their paths, or the refusal; else None."""
        return self.result.validation if self.result else None

    @property
    def usage(self) -> Any:
        return self.result.usage if self.result else None

    @property
    def steps(self) -> list[Step]:
        """A tool loop's steps (``--tools``): every model call, the last (the answer)
        included, each with the function calls it asked for; empty otherwise."""
        return list(self.result.steps) if self.result else []

    @property
    def logprobs(self) -> Any:
        return self.result.logprobs if self.result else None

    @property
    def raw(self) -> Any:
        return self.result.raw if self.result else None

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        return self.bundle

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"<gptmagic.Reply {len(self.results) or 1} model(s) cost={self.cost} text={text!r}>"


@dataclass
class DryRun:
    """What would be sent: the request, its URL, the count and the estimate."""

    request: dict[str, Any]
    url: str
    count: Any
    estimate: Any
    note: str | None = None
    #: The token counter widget shown under the dry run; it then carries the counts.
    counter: Any = field(default=None, repr=False)
    #: The embedded model: the text its engine receives (chat template applied).
    engine_prompt: str | None = None
    #: The server's exact prompt count (``--exact-count``), else None.
    exact_count: int | None = None
    #: Why ``count`` is an estimate, or why no exact count was asked for.
    exact_note: str | None = None
    #: What the token counter shown under it must say of its count (an estimate of a
    #: Responses prompt; chained turns not in it), if anything.
    counter_note: str | None = None
    #: ``--tools``: what each tool definition adds to the prompt, then ``("all", total)``.
    tool_costs: list[tuple[str, int]] | None = None
    #: ``--tools``: the definitions sent (chat's shape), counted with the prompt.
    tools: list[dict[str, Any]] | None = field(default=None, repr=False)
    #: The images the request holds, as the cell and the thread's turns named them
    #: (alt text, path, line): their thumbnails' labels.
    images: tuple[ImageRef, ...] = field(default=(), repr=False)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        return display.dry_run_bundle(self.request, url=self.url, count=self.count,
                                      estimate=self.estimate, note=self.note,
                                      counts_below=self.counter is not None,
                                      engine_prompt=self.engine_prompt,
                                      exact=self.exact_count, exact_note=self.exact_note,
                                      tool_costs=self.tool_costs,
                                      images=self.images)

    def __repr__(self) -> str:  # the request may hold megabytes of base64
        return (f"DryRun(url={self.url!r}, request={elide(self.request)!r}, "
                f"count={self.count!r}, exact_count={self.exact_count!r})")
