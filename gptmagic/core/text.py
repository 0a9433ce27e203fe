"""Short previews of text for tables, counters and messages (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["count_of", "preview"]


def preview(content: Any, limit: int, *, flatten: bool = True) -> str:
    """``content`` shortened to at most ``limit`` characters, ending in "…" when cut.

    ``content`` is a string, None, or a list of message parts (their text is
    joined; other parts show as ``[part]``). ``flatten`` folds runs of white
    space, newlines included, into one space.
    """
    if isinstance(content, list):
        content = " ".join(str(p.get("text", "")) if isinstance(p, Mapping) else "[part]"
                           for p in content)
    text = "" if content is None else str(content)
    if flatten:
        text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def count_of(k: int, word: str) -> str:
    """``"1 token"``, ``"3 tokens"``: a count with its noun, singular for one."""
    return f"{k} {word}" if k == 1 else f"{k} {word}s"
