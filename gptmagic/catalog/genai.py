"""Looking a model up in genai-prices' bundled table (no network).

:mod:`.pricing` prices with what it finds; :mod:`.models` takes the context
window from it for models it has no fact of its own about.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

__all__ = ["Found", "lookup"]

_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{4})$")


class Found(NamedTuple):
    """A genai-prices entry: its provider, its model, the name that matched, a source line."""

    provider: Any  # genai_prices.types.Provider
    model: Any  # genai_prices.types.ModelInfo
    ref: str  # the name that matched
    source: str


def lookup(model: str, provider: str | None = None,
                  base_url: str | None = None) -> Found | None:
    """Find ``model`` in genai-prices' table (bundled, or fetched if the user asked)."""
    from genai_prices.data_snapshot import get_snapshot

    snapshot = get_snapshot()
    # A lookup walks the table (~0.6 ms for an unknown name); the batch runner prices
    # thousands of calls of a few models. Keyed by the snapshot, which only an
    # explicit price update replaces.
    memo_key = (id(snapshot), model, provider, base_url)
    if memo_key in _LOOKUPS:
        return _LOOKUPS[memo_key]
    found = _find(snapshot, model, provider, base_url)
    if len(_LOOKUPS) > 4096:
        _LOOKUPS.clear()
    _LOOKUPS[memo_key] = found
    return found


_LOOKUPS: dict[tuple[Any, ...], Found | None] = {}


def _find(snapshot: Any, model: str, provider: str | None,
                base_url: str | None) -> Found | None:
    import genai_prices

    attempts: list[tuple[str | None, str | None]] = [(provider, None)]  # (provider id, api url)
    if provider in (None, "compatible"):
        attempts = [(None, base_url)] if base_url else []
        attempts += [(None, None), ("openai", None)]
    refs = [model]
    if (family := _SNAPSHOT.sub("", model)) != model:
        refs.append(family)
    for ref in refs:
        for provider_id, url in attempts:
            try:
                prov, info = snapshot.find_provider_model(ref, None, provider_id, url)
            except LookupError:
                continue
            source = f"genai-prices {genai_prices.__version__} ({prov.id}/{info.id}"
            source += ")" if ref == model else f", priced as {ref!r})"
            return Found(prov, info, ref, source)
    return None
