"""Fixed facts about the embedded models: their ids, the names that reach them, their windows.

These are values, not a running engine: the catalog prices and counts with
them, the client routes with them, and :mod:`gptmagic.local` serves each
model under its id. Two models are served by one engine manager:

* ``local`` -- SmolLM2-135M-Instruct (the default; Apache-2.0), an instruct model;
* ``local:gemma-3-270m`` -- Gemma 3 270M (Q4_K_M), a *base* model: the natural
  fit for ``%%complete``; in ``%%chat`` it continues the Gemma turn format
  rather than answering as an assistant. Optional (the ``local-gemma``
  extra); Google's Gemma terms of use apply to it.

A name other providers use too is no claim on the embedded engine: Ollama calls its
Gemma ``gemma``, and a llama.cpp or LM Studio server holding the same GGUF may report
``gemma-3-270m``. So Gemma answers to ``gemma-3-270m`` only, and only on the ``local``
profile (``local:gemma-3-270m``, or a bare name when the default profile is local); a bare
``gemma-3-270m`` goes to the default profile like any hosted name (:func:`claims`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALIASES", "CONTEXT_WINDOW", "EMBEDDED_MODELS", "EmbeddedModel", "GEMMA", "MODEL_ID",
           "SMOLLM2", "claims", "embedded_model", "is_local_model", "models_note"]


@dataclass(frozen=True)
class EmbeddedModel:
    """One model the embedded engine can serve."""

    id: str  #: the id the engine reports in every response
    aliases: frozenset[str]  #: names a request may use (compared case-insensitively)
    context_window: int  #: tokens the engine is started with
    kind: str  #: "instruct" or "base"
    licence: str  #: one line: the licence, and terms that apply
    #: llama.cpp's built-in template by name, for a GGUF that carries none (None: the GGUF's).
    chat_template: str | None = None
    #: The template folds a system message into the first user turn (no segment of its own).
    merges_system: bool = False
    #: Aliases other providers use too: a bare one goes to the default profile, as any
    #: hosted name does; ``local:<alias>`` (or the local profile) reaches this model.
    shared: frozenset[str] = frozenset()
    #: The reply's cap when a request sets none (the engine's own is unlimited):
    #: a model that never ends its turn would otherwise run to the window.
    default_max_tokens: int = 256

    @property
    def encoding(self) -> str:
        """The encoding name a count of this model carries (its engine's own tokenizer)."""
        return f"{self.id.split('-')[0]} (engine)"

    def answers_to(self, name: str) -> bool:
        """True if ``name`` (any case) is this model's id or one of its aliases."""
        lowered = name.lower()
        return lowered == self.id or lowered in {a.lower() for a in self.aliases}


SMOLLM2 = EmbeddedModel(
    id="smollm2-135m-instruct",
    aliases=frozenset({"local", "smollm2", "smollm2-135m-instruct", "SmolLM2-135M-Instruct"}),
    context_window=8192,  # SmolLM2 was trained with 8192
    kind="instruct",
    licence="Apache-2.0",
    # Measured on 12 open prompts (stories, essays, recipes, code) x 3 samplings: the
    # 20 replies that ended themselves took 57-630 tokens; the other 16 looped (greedy
    # decoding loops on 10 of 12). 1024 cuts no reply seen and ends a loop in ~10 s.
    default_max_tokens=1024,
)

GEMMA = EmbeddedModel(
    id="gemma-3-270m",
    aliases=frozenset({"gemma-3-270m"}),
    shared=frozenset({"gemma-3-270m"}),
    # Gemma 3 270M was trained with 32K; its sliding-window layers keep the cache small
    # (measured: ~75 MB more resident memory than at 8192).
    context_window=32768,
    kind="base",
    licence="Gemma terms of use apply (https://ai.google.dev/gemma/terms)",
    # The GGUF carries no chat template (llama.cpp would fall back to ChatML, whose
    # markers are plain text to Gemma); llama.cpp's own Gemma turn format instead.
    chat_template="gemma",
    merges_system=True,
    # A base model seldom emits an end of turn: without a cap it loops until the window.
    default_max_tokens=256,
)

#: Every model the engine can serve, the default first.
EMBEDDED_MODELS = (SMOLLM2, GEMMA)

#: The default model's id, reported in every response it gives.
MODEL_ID = SMOLLM2.id

#: Names a request may use for the default local model (compared case-insensitively).
ALIASES = SMOLLM2.aliases

#: Tokens the default model's engine is started with.
CONTEXT_WINDOW = SMOLLM2.context_window


def models_note(installed: frozenset[str], hint: str) -> list[str]:
    """Lines for ``gptmagic models`` about the embedded models: each one's kind and
    licence, and ``hint`` (how to install) for one that is not ``installed``."""
    lines = []
    for m in EMBEDDED_MODELS:
        name = "local" if m is SMOLLM2 else f"local:{m.id}"
        state = "" if m.id in installed else f" -- not installed: {hint}"
        lines.append(f"{name} ({m.id}): {m.kind} model; {m.licence}{state}")
    return lines


def embedded_model(name: object) -> EmbeddedModel | None:
    """The embedded model ``name`` names (an id or alias, any case, also after the
    ``local:`` profile, as in ``local:gemma-3-270m``), else ``None``."""
    if not isinstance(name, str):
        return None
    bare = name[len("local:"):] if name.lower().startswith("local:") else name
    return next((m for m in EMBEDDED_MODELS if m.answers_to(bare)), None)


def claims(name: object) -> bool:
    """True if a bare ``name`` means an embedded model whatever the default profile is:
    one of its names that is not :attr:`EmbeddedModel.shared` (``local``, SmolLM2's;
    not ``gemma-3-270m``, see the module's docstring)."""
    model = embedded_model(name)
    return model is not None and isinstance(name, str) and \
        name.lower() not in {a.lower() for a in model.shared}


def is_local_model(name: object, gguf_path: str | None = None) -> bool:
    """True if ``name`` names an embedded model (any case) or is the GGUF path itself."""
    if embedded_model(name) is not None:
        return True
    return gguf_path is not None and name == gguf_path
