"""The embedded local model: find the weights, run the engine, speak OpenAI's API.

Importing this package is cheap: neither aiohttp nor xllamacpp is loaded
until the engine starts (in a child process, see :mod:`.engine`).

* :mod:`.model` -- the weights' path, the model id and its aliases;
* :mod:`.engine` -- the parent side: :func:`ensure_started` returns the URL;
* :mod:`.server` -- the child: an OpenAI-compatible aiohttp app over llama.cpp,
  with its handlers in :mod:`.routes` and the engine relay in :mod:`.relay`;
* :mod:`.adapt`, :mod:`.stream`, :mod:`.logprobs` -- pure OpenAI <-> llama.cpp translation;
* :mod:`.llama` -- starting xllamacpp's in-process server.
"""

from __future__ import annotations

from gptmagic.local.engine import LocalEngine, ensure_started, get_engine, stop_engine
from gptmagic.local.model import ALIASES, CONTEXT_WINDOW, MODEL_ID, is_local_model, model_path

__all__ = [
    "ALIASES", "CONTEXT_WINDOW", "LocalEngine", "MODEL_ID", "ensure_started", "get_engine",
    "is_local_model", "model_path", "stop_engine"
]
