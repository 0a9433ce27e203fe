"""Evaluation (public face): :func:`evaluate` and :func:`aevaluate` whose results show
the explorer; :func:`run` (a recorded run, rebuilt) and :func:`compare` (its flips) show it
too, and :func:`show_call` shows one logged call in the explorer's panel.

The runner lives in :mod:`gptmagic.eval`, which may not import the views; these
wrappers set each result's ``viewer`` to :func:`gptmagic.views.explorer.explore`,
so ``res.explore()`` and a notebook's display of ``res`` draw it (and
``res.rescore(...)`` keeps it).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from gptmagic.eval import compare as comparing
from gptmagic.eval import runner, runs
from gptmagic.eval.results import EvalResults
from gptmagic.views.explorer import explore, explore_text

__all__ = ["EvalResults", "aevaluate", "compare", "evaluate", "explore", "run", "show_call",
           "with_viewer"]

#: What the wrappers take from the runner's functions (and ``__wrapped__``: their signature).
_DOC = ("__name__", "__qualname__", "__doc__")


def with_viewer(results: Any) -> Any:
    """``results`` with the explorer as its viewer, and its text form as the text viewer
    (an EvalResults; anything else as is)."""
    if isinstance(results, EvalResults):
        results.viewer = explore
        results.text_viewer = explore_text
    return results


@functools.wraps(runner.evaluate, assigned=_DOC)
def evaluate(data: Any, prompt: Any, models: Sequence[str] | str, **kwargs: Any) -> Any:
    return with_viewer(runner.evaluate(data, prompt, models, **kwargs))


@functools.wraps(runner.aevaluate, assigned=_DOC)
async def aevaluate(data: Any, prompt: Any, models: Sequence[str] | str, **kwargs: Any) -> Any:
    return with_viewer(await runner.aevaluate(data, prompt, models, **kwargs))



@functools.wraps(runs.run, assigned=_DOC)
def run(name_or_id: str, cache: Any = None) -> Any:
    return with_viewer(runs.run(name_or_id, cache))


@functools.wraps(comparing.compare, assigned=_DOC)
def compare(a: Any, b: Any, threshold: float = 0.5, cache: Any = None) -> Any:
    c = comparing.compare(a, b, threshold, cache)
    with_viewer(c.flips)
    with_viewer(c.both)  # c.explore() shows the flipped cases, before and after
    return c


def show_call(id: int, cache: Any = None) -> Any:
    """One call of the log (``gptmagic.log()``'s ``id``) in the explorer's side panel:
    request, reply, usage, cost, latency, logprobs. ``cache`` is the log's file
    (default: ``$GPTMAGIC_CACHE`` or the default cache)."""
    from pathlib import Path

    from gptmagic.errors import ConfigError
    from gptmagic.eval.calllog import call_detail
    from gptmagic.eval.store import Store, default_path
    from gptmagic.views.explorer import CallPanel

    if not isinstance(cache, Store) and not Path(cache or default_path()).is_file():
        raise ConfigError(f"there is no call log at {Path(cache or default_path())}: the file "
                          "does not exist (%%chat and %%complete log to $GPTMAGIC_CACHE or the "
                          "default cache; cache= names another file)")
    store = cache if isinstance(cache, Store) else Store(cache)
    try:
        return CallPanel(call_detail(store, id))
    finally:
        if store is not cache:
            store.close()
