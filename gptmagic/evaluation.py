"""Evaluation (public face): :func:`evaluate` and :func:`aevaluate` whose results show
the explorer.

The runner lives in :mod:`gptmagic.eval`, which may not import the views; these
wrappers set each result's ``viewer`` to :func:`gptmagic.views.explorer.explore`,
so ``res.explore()`` and a notebook's display of ``res`` draw it (and
``res.rescore(...)`` keeps it).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from gptmagic.eval import runner
from gptmagic.eval.results import EvalResults
from gptmagic.views.explorer import explore

__all__ = ["EvalResults", "aevaluate", "evaluate", "explore", "with_viewer"]

#: What the wrappers take from the runner's functions (and ``__wrapped__``: their signature).
_DOC = ("__name__", "__qualname__", "__doc__")


def with_viewer(results: Any) -> Any:
    """``results`` with the explorer as its viewer (an EvalResults; anything else as is)."""
    if isinstance(results, EvalResults):
        results.viewer = explore
    return results


@functools.wraps(runner.evaluate, assigned=_DOC)
def evaluate(data: Any, prompt: Any, models: Sequence[str] | str, **kwargs: Any) -> Any:
    return with_viewer(runner.evaluate(data, prompt, models, **kwargs))


@functools.wraps(runner.aevaluate, assigned=_DOC)
async def aevaluate(data: Any, prompt: Any, models: Sequence[str] | str, **kwargs: Any) -> Any:
    return with_viewer(await runner.aevaluate(data, prompt, models, **kwargs))

