"""``%load_ext gptmagic`` / ``%unload_ext gptmagic``.

The loaded magics live in the shell's own registry (``magics_manager.registry``),
not in a module global, so each shell loads and unloads on its own, and
unloading removes exactly the magics that loading added.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load", "unload"]

_NAME = "GptMagics"
#: The class whose display a text-only shell asks for as text alone.
_RESULTS = "gptmagic.eval.results.EvalResults"


def load(ipython: Any) -> None:
    from gptmagic.notebook.magics import GptMagics

    if _NAME in ipython.magics_manager.registry:
        return
    magics = GptMagics(ipython, parent=ipython)
    ipython.register_magics(magics)

    def pre_run_cell(info: Any) -> None:
        # Jupyter sends the cell's id: a re-run of the same cell replaces its turn.
        magics.cell_id = getattr(info, "cell_id", None)

    magics.pre_run_cell_hook = pre_run_cell
    ipython.events.register("pre_run_cell", pre_run_cell)
    _text_only_results(ipython)


def _text_only_results(ipython: Any) -> None:
    """A shell that shows text only (a terminal: IPython's ``active_types``) gets an
    evaluation's text form, built alone: IPython asks every ``_repr_mimebundle_`` with no
    ``include``, and the explorer's widget and HTML of a big run take seconds."""
    formatter = getattr(ipython, "display_formatter", None)
    active = list(getattr(formatter, "active_types", None) or ())
    if formatter is None or not active or "text/html" in active:
        return
    formatter.mimebundle_formatter.for_type_by_name(
        *_RESULTS.rsplit(".", 1), lambda obj: obj._repr_mimebundle_(include=active))


def unload(ipython: Any) -> None:
    magics = ipython.magics_manager.registry.pop(_NAME, None)
    if magics is not None:
        hook = getattr(magics, "pre_run_cell_hook", None)
        if hook is not None:
            try:
                ipython.events.unregister("pre_run_cell", hook)
            except ValueError:
                pass
        table = ipython.magics_manager.magics
        for kind, names in magics.magics.items():  # every magic this instance registered
            for name in names:
                table[kind].pop(name, None)
        formatter = getattr(ipython, "display_formatter", None)
        if formatter is not None:
            formatter.mimebundle_formatter.pop(_RESULTS, None)
    from gptmagic.client.facade import shutdown

    shutdown()  # closes the client and stops the embedded engine if we started it
