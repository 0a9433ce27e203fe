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

def __getattr__(name: str) -> Any:
    # The classes import anywidget: they load on first use, from the notebook layer.
    from gptmagic.notebook import widgets

    if name in __all__:
        return getattr(widgets, name)
    raise AttributeError(f"module 'gptmagic.widgets' has no attribute {name!r}")
