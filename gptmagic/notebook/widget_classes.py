"""The public widget classes: the views of :mod:`gptmagic.views.widgets`, wired to the client.

``gptmagic.TokenCounter("hi")`` and ``gptmagic.TokenView("hi", model="local")``
default to the model the magics use and count or tokenize the embedded model
on its engine, as :func:`gptmagic.token_counter` does. Imported on first use
(it imports anywidget).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gptmagic.client.config import model_name
from gptmagic.client.facade import count_tokens, engine_tokens
from gptmagic.views.widgets import views
from gptmagic.views.widgets.views import LogprobHeatmap

__all__ = ["LogprobHeatmap", "TokenCounter", "TokenView"]


class TokenCounter(views.TokenCounter):
    __doc__ = views.TokenCounter.__doc__

    def __init__(
        self,
        messages_or_text: str | Sequence[Mapping[str, Any]] | None = None,
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        mode: str | None = None,
        count: Any = None,
        tools: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(messages_or_text, model=model_name(model), max_tokens=max_tokens,
                         mode=mode, count=count or count_tokens, tools=tools, **kwargs)
        #: The server's exact prompt count, when ``%%tokens --exact-count`` asked for it.
        self.exact_count: int | None = None


class TokenView(views.TokenView):
    __doc__ = views.TokenView.__doc__

    def __init__(self, text: str, *, model: str | None = None, compare: str | None = None,
                 engine_tokens: Any = engine_tokens, **kwargs: Any) -> None:
        super().__init__(text, model=model_name(model), compare=compare,
                         engine_tokens=engine_tokens, **kwargs)
