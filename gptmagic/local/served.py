"""The models one adapter app serves: one llama.cpp engine per model, each started on first use.

One child process (:mod:`gptmagic.local.server`) serves every embedded model
behind one URL, as a hosted API serves many: a request names its model, and
:meth:`Models.get` hands back that model's running engine, with its own slot
gate and its own memo (its document-start token, its control tokens). The
first request for a model loads it (SmolLM2 ~0.7 s, Gemma 3 270M ~1.5 s;
see ``benchmarks/bench_models.py``); a model nobody asks for costs nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gptmagic.catalog.embedded import EMBEDDED_MODELS, SMOLLM2, EmbeddedModel, embedded_model
from gptmagic.errors import ConfigError
from gptmagic.local.checks import LocalRequestError
from gptmagic.local.gate import SlotGate
from gptmagic.local.gemma import GEMMA_INSTALL_HINT, GEMMA_PACKAGE
from gptmagic.local.llama import LlamaServer
from gptmagic.local.model import INSTALL_HINT, installed

__all__ = ["Models", "Served"]

#: ``start(model) -> LlamaServer``: loads one model (blocking; run on a worker thread).
Start = Callable[[EmbeddedModel], LlamaServer]


@dataclass
class Served:
    """One model's running engine and what the app keeps for it."""

    engine: LlamaServer
    gate: SlotGate
    #: Facts asked of this engine once and kept for the app's life (document start, controls).
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> EmbeddedModel:
        """The model this engine serves."""
        return self.engine.model


class Models:
    """The embedded models of one app: which are installed, which run, starting them."""

    def __init__(self, start: Start, *, gemma_package: str = GEMMA_PACKAGE) -> None:
        self._start = start
        self.gemma_package = gemma_package
        self._served: dict[str, Served] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def installed(self) -> tuple[EmbeddedModel, ...]:
        """The models whose weights are here (what ``/v1/models`` lists)."""
        return tuple(m for m in EMBEDDED_MODELS if installed(m, self.gemma_package))

    def running(self) -> list[Served]:
        """The engines started so far, in start order."""
        return list(self._served.values())

    def add(self, engine: LlamaServer) -> Served:
        """Serve ``engine`` (already running) for its model."""
        served = Served(engine, SlotGate(engine.parallel))
        self._served[engine.model.id] = served
        return served

    def chosen(self, name: object) -> EmbeddedModel:
        """The model a request's ``model`` names; the default for none, or for a name no
        model answers to (the request's own check then says it does not exist), except
        the GGUF path of a running engine, which is that engine's model."""
        if name is None:
            return SMOLLM2
        model = embedded_model(name)
        if model is not None:
            return model
        for served in self._served.values():
            if name == served.engine.gguf_path:
                return served.model
        return SMOLLM2

    async def get(self, model: EmbeddedModel) -> Served:
        """``model``'s engine, started first if it is not running (once, however many ask)."""
        served = self._served.get(model.id)
        if served is not None:
            return served
        lock = self._locks.setdefault(model.id, asyncio.Lock())
        async with lock:
            served = self._served.get(model.id)
            if served is not None:
                return served
            if not installed(model, self.gemma_package):
                raise LocalRequestError(
                    f"The model '{model.id}' is not installed on the local engine. "
                    f"{GEMMA_INSTALL_HINT if model is not SMOLLM2 else INSTALL_HINT}",
                    param="model", status=404, code="model_not_found")
            try:
                engine = await asyncio.to_thread(self._start, model)
            except ConfigError as exc:
                raise LocalRequestError(f"The local engine could not load '{model.id}': {exc}",
                                        param="model", status=500,
                                        type="server_error") from None
            return self.add(engine)

    def stop(self) -> None:
        """Stop every engine (each stops when its object is freed)."""
        for served in self._served.values():
            served.engine.stop()
        self._served.clear()

