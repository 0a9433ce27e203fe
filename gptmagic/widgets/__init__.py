"""Token counter, token view and logprob heatmap (public face).

The widgets render in :mod:`gptmagic.views.widgets`; these functions wire
them to the shared client (:mod:`gptmagic.notebook.widgets`). See
``docs/widgets.md`` for the state every form draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gptmagic.notebook.widgets import (
    NoLogprobsError,
    logprob_heatmap,
    token_counter,
    token_view,
)

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
