"""The embedded local models: find the weights, run the engine, speak OpenAI's API.

Importing this package is cheap: neither aiohttp nor xllamacpp is loaded
until the engine starts (in a child process, see :mod:`.engine`).

* :mod:`.model` -- the weights' paths, the model ids and their aliases; :mod:`.gemma`
  -- Gemma 3 270M's weights assembled into the cache (optional; Gemma terms of use);
* :mod:`.engine` -- the parent side: :func:`ensure_started` returns the URL;
* :mod:`.served` -- the child's models: one llama.cpp engine per model, started on
  its first request;
* :mod:`.server` -- the child: an OpenAI-compatible aiohttp app over llama.cpp,
  with its handlers in :mod:`.routes`, the engine relay in :mod:`.relay`, the
  slot gate in :mod:`.gate` and a watchdog for clients that leave;
* :mod:`.adapt`, :mod:`.checks`, :mod:`.plans`, :mod:`.stream`, :mod:`.collect`,
  :mod:`.logprobs`, :mod:`.fragments` -- pure OpenAI <-> llama.cpp translation;
* :mod:`.toolcalls`, :mod:`.toolreply` -- tool calls for a model whose template has none:
  the tools described in the prompt and the reply decoded under a JSON schema, then
  read back as OpenAI's ``tool_calls`` (streamed or whole);
* :mod:`.responses`, :mod:`.response_events` -- the Responses API planned as chat, and
  the chat answer or stream rebuilt as a ``Response`` or its events;
* :mod:`.rescore` -- asks the engine for the logprobs it drops (one entry per token);
* :mod:`.verbatim` (pure), :mod:`.verbatim_engine`, :mod:`.vocab` -- control-token text
  in a message sent to the model as text, and counted as text;
* :mod:`.llama` -- starting xllamacpp's in-process server.
"""

from __future__ import annotations

from gptmagic.local.engine import LocalEngine, ensure_started, get_engine, stop_engine
from gptmagic.local.model import ALIASES, CONTEXT_WINDOW, MODEL_ID, is_local_model, model_path

__all__ = [
    "ALIASES", "CONTEXT_WINDOW", "LocalEngine", "MODEL_ID", "ensure_started", "get_engine",
    "is_local_model", "model_path", "stop_engine"
]
