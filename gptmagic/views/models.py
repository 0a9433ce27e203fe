"""``gptmagic models`` as text: one line per model, prices per million tokens, shutdown dates."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from gptmagic.catalog.lifecycle import ModelRow

__all__ = ["models_text"]

_HEAD = ("model", "context", "input/1M", "cached/1M", "output/1M", "shutdown")


def _price(rate: Decimal | None) -> str:
    return "?" if rate is None else f"${rate:f}"


def models_text(rows: Sequence[ModelRow], note: str) -> str:
    """A plain-text table of ``rows`` under ``note``; retiring models are marked."""
    lines = [(r.model, "?" if r.context_window is None else f"{r.context_window:,}",
              _price(r.input), "-" if r.cached_input is None else _price(r.cached_input),
              _price(r.output),
              "-" if r.shutdown_date is None else f"{r.shutdown_date} {r.status.upper()}")
             for r in rows]
    widths = [max(len(c) for c in col) for col in zip(_HEAD, *lines, strict=True)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i in (0, 5) else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [note, fmt(_HEAD), *(fmt(line) for line in lines)]
    if any(r.status for r in rows):
        out.append("RETIRING: a shutdown date is announced; SHUT DOWN: it has passed. "
                   "'?' is unknown, '-' none.")
    return "\n".join(out)
