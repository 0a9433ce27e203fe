"""``%load_ext gptmagic`` / ``%unload_ext gptmagic``."""

from __future__ import annotations

from typing import Any

_state: dict[str, Any] = {}


def load(ipython: Any) -> None:
    from .magics import GptMagics

    if "magics" in _state:
        return
    magics = GptMagics(ipython, parent=ipython)
    ipython.register_magics(magics)

    def pre_run_cell(info: Any) -> None:
        # Jupyter sends the cell's id: a re-run of the same cell replaces its turn.
        magics.cell_id = getattr(info, "cell_id", None)

    ipython.events.register("pre_run_cell", pre_run_cell)
    _state.update(magics=magics, hook=pre_run_cell)


def unload(ipython: Any) -> None:
    magics = _state.pop("magics", None)
    hook = _state.pop("hook", None)
    if hook is not None:
        try:
            ipython.events.unregister("pre_run_cell", hook)
        except ValueError:
            pass
    if magics is not None:
        registry = ipython.magics_manager.magics
        for kind, names in (("line", ("chat", "gptmagic")), ("cell", ("chat", "complete"))):
            for name in names:
                registry[kind].pop(name, None)
    from .api import shutdown

    shutdown()  # closes the client and stops the embedded engine if we started it
