"""The public widget functions, wired to the shared client.

:func:`token_counter` and :func:`token_view` default to the model the magics
use and count or tokenize on the embedded engine through the shared client;
the widgets themselves (:mod:`gptmagic.views.widgets`) only render what they
are given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gptmagic.views.widgets.state import NoLogprobsError

if TYPE_CHECKING:
    from gptmagic.notebook.widget_classes import LogprobHeatmap, TokenCounter, TokenView

__all__ = ["LogprobHeatmap", "NoLogprobsError", "TokenCounter", "TokenView", "logprob_heatmap",
           "token_counter", "token_view"]

_VIEWS = ("LogprobHeatmap", "TokenCounter", "TokenView")


def __getattr__(name: str) -> Any:
    if name in _VIEWS:
        from gptmagic.notebook import widget_classes

        return getattr(widget_classes, name)
    raise AttributeError(f"module 'gptmagic.widgets' has no attribute {name!r}")


def token_counter(
    messages_or_text: str | Sequence[Mapping[str, Any]] | None = None,
    *,
    model: str | None = None,
    max_tokens: int | None = None,
    tools: Sequence[Any] | None = None,
) -> TokenCounter:
    """Count a prompt's tokens, context-window fill and cost.

    ``messages_or_text`` is a prompt string or a chat message list; None gives
    the live form, a text area recounted as you type (``user:`` / ``system:``
    markers as in ``%%chat`` cells). ``model`` defaults to the one the magics
    use. ``max_tokens`` bounds the completion in the cost estimate. ``tools``
    (what :func:`gptmagic.chat` takes: functions, ``Tool``s, OpenAI dicts) are
    counted with the messages, their share in a row of its own.
    """
    from gptmagic.notebook.widget_classes import TokenCounter

    return TokenCounter(messages_or_text, model=model, max_tokens=max_tokens, tools=tools)


def token_view(text: str, *, model: str | None = None, compare: str | None = None) -> TokenView:
    """Show ``text`` cut into the tokens of ``model`` (or a tiktoken encoding name).

    ``compare`` adds a second pane with another model or encoding, side by side.
    """
    from gptmagic.notebook.widget_classes import TokenView

    return TokenView(text, model=model, compare=compare)


def logprob_heatmap(result: Any, *, threshold: float = 0.1) -> LogprobHeatmap:
    """Colour a result's tokens by probability; hover or focus one for its alternatives.

    ``result`` is a :class:`~gptmagic.Result`, a :class:`~gptmagic.Choice`, a
    list of choices or a list of :class:`~gptmagic.TokenLogprob`, requested
    with logprobs (``logprobs=True, top_logprobs=5`` or ``--logprobs``).
    Tokens below ``threshold`` probability are outlined.
    """
    from gptmagic.views.widgets.views import LogprobHeatmap

    return LogprobHeatmap(result, threshold=threshold)
