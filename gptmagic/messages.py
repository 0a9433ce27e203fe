"""Public face of the cell grammar (the rules live in :mod:`gptmagic.core.messages`)."""

from __future__ import annotations

from gptmagic.core.messages import (
    ROLES,
    Cell,
    CellSyntaxError,
    interpolate,
    parse_cell,
    read_cell,
    render_cell,
)

__all__ = ["Cell", "CellSyntaxError", "ROLES", "interpolate", "parse_cell", "read_cell",
           "render_cell"]
