"""The heatmap's colour scale: probability 0..1 to a colour, and a readable text colour.

The stops are matplotlib's perceptually uniform "magma" map sampled at nine
points (viridisLite's ``magma(9)``), ordered so that likely tokens are light
(cream, p = 1) and unlikely ones dark (near black, p = 0). Between stops the
colour is interpolated in sRGB; the stops are close enough for that to stay
on the map's path. The same stops ship in the heatmap state, so the
JavaScript view and the static HTML draw the same colours.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["STOPS", "colour", "contrast", "is_hex_colour", "text_colour"]

_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")

_MAGMA_9 = ("#000004", "#1d1146", "#50127c", "#822681", "#b63779",
            "#e65164", "#fb8761", "#fec387", "#fcfdbf")

#: ``[[probability, "#rrggbb"], ...]`` from 0.0 to 1.0, as shipped in heatmap states.
STOPS: list[list[float | str]] = [
    [i / (len(_MAGMA_9) - 1), c] for i, c in enumerate(_MAGMA_9)
]


def is_hex_colour(value: object) -> bool:
    """True for ``#rgb`` / ``#rrggbb`` strings (safe inside a style attribute)."""
    return isinstance(value, str) and _HEX.fullmatch(value) is not None


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    if not is_hex_colour(hex_colour):
        raise ValueError(f"not a #rrggbb colour: {hex_colour!r}")
    h = hex_colour[1:]
    if len(h) == 3:
        h = "".join(ch * 2 for ch in h)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def colour(prob: float | None, stops: Sequence[Sequence[Any]] | None = None) -> str:
    """The colour for a probability (clamped to 0..1; None counts as 1).

    ``stops`` defaults to :data:`STOPS`; others (a state's ``scale``) must be
    ``[[p, "#rrggbb"], ...]`` sorted by ``p`` from 0 to 1.
    """
    p = 1.0 if prob is None or prob != prob else min(1.0, max(0.0, float(prob)))
    if stops is None or stops == STOPS:
        return _colour_at(round(p, 4))
    return _interpolate(p, [(float(q), str(c)) for q, c in stops])


@functools.lru_cache(maxsize=20_000)
def _colour_at(p: float) -> str:
    return _interpolate(p, [(float(q), str(c)) for q, c in STOPS])


def _interpolate(p: float, stops: list[tuple[float, str]]) -> str:
    for (p0, c0), (p1, c1) in zip(stops, stops[1:], strict=False):
        if p <= p1 or (p1, c1) == stops[-1]:
            frac = 0.0 if p1 <= p0 else min(1.0, max(0.0, (p - p0) / (p1 - p0)))
            a, b = _rgb(c0), _rgb(c1)
            r, g, bl = (round(x + (y - x) * frac) for x, y in zip(a, b, strict=True))
            return f"#{r:02x}{g:02x}{bl:02x}"
    return stops[0][1] if stops else "#ffffff"


def _luminance(hex_colour: str) -> float:
    """WCAG 2 relative luminance."""
    def lin(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = _rgb(hex_colour)
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two colours (1 to 21)."""
    a, b = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


@functools.lru_cache(maxsize=20_000)
def text_colour(bg: str) -> str:
    """``"#000"`` or ``"#fff"``, whichever contrasts more with ``bg``."""
    return "#000" if contrast("#000", bg) >= contrast("#fff", bg) else "#fff"
