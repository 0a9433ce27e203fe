"""Public face of the cell grammar (the rules live in :mod:`gptmagic.core.messages`)."""

from __future__ import annotations

from gptmagic.core.messages import ROLES, CellSyntaxError, interpolate, parse_cell, render_cell

__all__ = ["CellSyntaxError", "ROLES", "interpolate", "parse_cell", "render_cell"]
