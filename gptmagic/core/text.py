"""Short previews of text for tables, counters and messages, paths into JSON, and the
"did you mean" hint of an error naming a missing name (pure)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["count_of", "did_you_mean", "json_path", "preview"]


def preview(content: Any, limit: int, *, flatten: bool = True) -> str:
    """``content`` shortened to at most ``limit`` characters, ending in "…" when cut.

    ``content`` is a string, None, or a list of message parts (their text is
    joined; an image shows as ``[image]``, another part as ``[part]``). ``flatten``
    folds runs of white space, newlines included, into one space.
    """
    if isinstance(content, list):
        content = " ".join(_part(p) for p in content)
    text = "" if content is None else str(content)
    if flatten:
        text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def count_of(k: int, word: str) -> str:
    """``"1 token"``, ``"3 tokens"``: a count with its noun, singular for one."""
    return f"{k} {word}" if k == 1 else f"{k} {word}s"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" (did you mean 'Person'?)"``: the name in ``known`` closest to a mistyped
    ``name`` (difflib's), or ``""`` when none is close; for an error naming ``name``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _part(part: Any) -> str:
    if not isinstance(part, Mapping):
        return "[part]"
    if part.get("type") in ("image_url", "input_image"):
        return "[image]"
    return str(part.get("text", "")) if "text" in part else "[part]"


def json_path(loc: Iterable[Any], empty: str) -> str:
    """A path into JSON (a validation error's location) as ``friends[0].name``: keys
    joined by dots, list indices in brackets; ``empty`` for the root."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or empty
