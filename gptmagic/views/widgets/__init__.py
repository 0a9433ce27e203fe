"""Token counter, token view and logprob heatmap: widgets with static fallbacks.

Each widget displays itself as a cell's last expression: live in JupyterLab
and Notebook 7 (tested in a browser) and other anywidget front ends; as
static HTML in nbconvert, GitHub and front ends without widgets; as text in
IPython. The widget classes (and anywidget) are imported on first use. See
``docs/widgets.md`` for the state every form draws.

Render only: a widget that needs the embedded engine's counts or tokens is
handed the function that gets them. The public functions that wire in the
shared client (``gptmagic.token_counter`` ...) are in
:mod:`gptmagic.notebook.widgets`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gptmagic.views.widgets.state import NoLogprobsError

if TYPE_CHECKING:
    from gptmagic.views.widgets.views import LogprobHeatmap, TokenCounter, TokenView

__all__ = ["LogprobHeatmap", "NoLogprobsError", "TokenCounter", "TokenView"]

_VIEWS = ("LogprobHeatmap", "TokenCounter", "TokenView")


def __getattr__(name: str) -> Any:
    if name in _VIEWS:
        from gptmagic.views.widgets import views

        return getattr(views, name)
    raise AttributeError(f"module 'gptmagic.views.widgets' has no attribute {name!r}")
