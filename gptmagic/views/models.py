"""``gptmagic models`` as text: one line per model, prices per million tokens, shutdown dates."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from gptmagic.catalog.lifecycle import ModelRow

__all__ = ["models_text"]

_HEAD = ("model", "context", "input/1M", "cached/1M", "output/1M", "shutdown")


def _price(rate: Decimal | None) -> str:
    return "?" if rate is None else f"${rate:f}"


def _shutdown(row: ModelRow) -> str:
    if row.shutdown_date is not None:
        return f"{row.shutdown_date} {row.status.upper()}"
    return "-" if row.recorded else "?"


def models_text(rows: Sequence[ModelRow], note: str) -> str:
    """A plain-text table of ``rows`` under ``note``; retiring models are marked.

    A shutdown of ``-`` is none announced (the provider says so); ``?`` is not
    recorded: neither the provider nor gptmagic's table says, so the model may
    long be gone (the legend says which is which).
    """
    lines = [(r.model, "?" if r.context_window is None else f"{r.context_window:,}",
              _price(r.input), "-" if r.cached_input is None else _price(r.cached_input),
              _price(r.output), _shutdown(r))
             for r in rows]
    widths = [max(len(c) for c in col) for col in zip(_HEAD, *lines, strict=True)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i in (0, 5) else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [note, fmt(_HEAD), *(fmt(line) for line in lines)]
    if rows:
        out.append("RETIRING: a shutdown date is announced; SHUT DOWN: it has passed. "
                   "Shutdown '-': none announced (the provider's /models says so); "
                   "'?': not recorded (no date known either way). Prices: '?' unknown, "
                   "'-' none.")
    return "\n".join(out)
