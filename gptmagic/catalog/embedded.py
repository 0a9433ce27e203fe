"""Fixed facts about the embedded model: its id, the names that reach it, its window.

These are values, not a running engine: the catalog prices and counts with
them, the client routes with them, and :mod:`gptmagic.local` serves the
model under this id.
"""

from __future__ import annotations

__all__ = ["ALIASES", "CONTEXT_WINDOW", "MODEL_ID", "is_local_model"]

#: The one model id the local engine reports in every response.
MODEL_ID = "smollm2-135m-instruct"

#: Names a request may use for the local model (compared case-insensitively).
ALIASES = frozenset({"local", "smollm2", "smollm2-135m-instruct", "SmolLM2-135M-Instruct"})

#: Tokens the engine is started with; SmolLM2 was trained with 8192.
CONTEXT_WINDOW = 8192

_LOWER_ALIASES = frozenset(a.lower() for a in ALIASES)


def is_local_model(name: object, gguf_path: str | None = None) -> bool:
    """True if ``name`` is one of :data:`ALIASES` (any case) or the GGUF path itself."""
    if not isinstance(name, str):
        return False
    if name.lower() in _LOWER_ALIASES:
        return True
    return gguf_path is not None and name == gguf_path
