"""The results explorer: an evaluation as cases × variants, and one call's panel.

``explore(results)`` is the ``viewer`` the public faces (:mod:`gptmagic.evaluation`)
give an :class:`~gptmagic.eval.results.EvalResults`: ``res.explore()`` and the
notebook's rich display of ``res`` call it. Like the other widgets it has three
forms drawn from one state (``docs/widgets.md``): the anywidget, self-contained
static HTML (a table, made interactive by an inline script: no kernel, no
network), and text. The widget classes (and anywidget) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gptmagic.views.explorer.state import call_state, explorer_state

if TYPE_CHECKING:
    from gptmagic.views.explorer.widget import CallPanel, Explorer

__all__ = ["CallPanel", "Explorer", "call_state", "explore", "explore_text", "explorer_state"]


def explore(results: Any, **options: Any) -> Explorer:
    """The explorer widget of ``results``; ``options`` go to
    :func:`~gptmagic.views.explorer.state.explorer_state` (``threshold``,
    ``cell_chars``, ``inline_limit``, ``title``)."""
    from gptmagic.views.explorer.widget import Explorer

    return Explorer(results, explorer_state(results, **options))


def explore_text(results: Any, **options: Any) -> str:
    """The explorer's text form of ``results`` alone (a terminal's display): the matrix
    of marks, built with no call details, no widget and no HTML."""
    from gptmagic.views.explorer.static import explorer_text

    return explorer_text(explorer_state(results, **{"inline_limit": 0, **options}))


def __getattr__(name: str) -> Any:
    if name in ("CallPanel", "Explorer"):
        from gptmagic.views.explorer import widget

        return getattr(widget, name)
    raise AttributeError(f"module 'gptmagic.views.explorer' has no attribute {name!r}")
