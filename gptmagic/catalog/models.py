"""Context windows and output limits of models.

:func:`model_info` answers from, in order:

1. models the user described with :func:`register_model`;
2. the embedded local model;
3. OpenAI's documented figures for the current families (:data:`_OPENAI`);
   a dated snapshot maps to its family by the longest name that it equals or
   continues with ``-`` (``gpt-4o-mini-2024-07-18`` is ``gpt-4o-mini``, not
   ``gpt-4o``; ``gpt-4o`` and ``gpt-4.1`` are not ``gpt-4``);
4. genai-prices' ``context_window`` (it carries no output limit), for models
   the table leaves out, such as newer OpenAI releases and other providers;
5. otherwise unknown: ``ModelInfo(name, None, None, source="unknown")``.

The table comes first because genai-prices 0.2.3 has some legacy figures wrong
(``gpt-3.5-turbo-0613`` and ``gpt-3.5-turbo-instruct`` as 16,385 rather than
4,096; ``gpt-4-32k`` as 32,000 rather than 32,768).
"""

from __future__ import annotations

from dataclasses import dataclass

from gptmagic.catalog.embedded import embedded_model
from gptmagic.errors import ConfigError
from gptmagic.state import current

__all__ = ["ModelInfo", "model_info", "openai_models", "register_model"]

_TABLE_SOURCE = "OpenAI model docs (gptmagic table, 2025)"

# (context window, max output tokens) from https://platform.openai.com/docs/models
# as published in 2025 (the gpt-5 family as launched in August 2025). The
# context window counts input and output together (gpt-5: 272k in + 128k out).
# Legacy models without a separate output cap are given their context window.
_OPENAI: dict[str, tuple[int, int]] = {
    "gpt-5": (400_000, 128_000),
    "gpt-5-mini": (400_000, 128_000),
    "gpt-5-nano": (400_000, 128_000),
    "gpt-5-pro": (400_000, 272_000),
    "gpt-5-chat-latest": (128_000, 16_384),
    "gpt-4.1": (1_047_576, 32_768),
    "gpt-4.1-mini": (1_047_576, 32_768),
    "gpt-4.1-nano": (1_047_576, 32_768),
    "gpt-4o": (128_000, 16_384),
    "gpt-4o-2024-05-13": (128_000, 4_096),
    "gpt-4o-mini": (128_000, 16_384),
    "chatgpt-4o-latest": (128_000, 16_384),
    # Realtime and transcription variants are smaller than gpt-4o itself.
    "gpt-4o-realtime-preview": (32_000, 4_096),
    "gpt-4o-mini-realtime-preview": (16_000, 4_096),
    "gpt-4o-transcribe": (16_000, 2_000),
    "gpt-4o-mini-transcribe": (16_000, 2_000),
    "o1": (200_000, 100_000),
    "o1-mini": (128_000, 65_536),
    "o1-preview": (128_000, 32_768),
    "o3": (200_000, 100_000),
    "o3-mini": (200_000, 100_000),
    "o4-mini": (200_000, 100_000),
    "gpt-4-turbo": (128_000, 4_096),
    # gpt-4 turbo previews, whose names start like the 8k gpt-4
    "gpt-4-1106": (128_000, 4_096),
    "gpt-4-0125": (128_000, 4_096),
    "gpt-4-vision-preview": (128_000, 4_096),
    "gpt-4": (8_192, 8_192),
    "gpt-4-32k": (32_768, 32_768),
    "gpt-3.5-turbo": (16_385, 4_096),
    "gpt-3.5-turbo-0613": (4_096, 4_096),
    "gpt-3.5-turbo-0301": (4_096, 4_096),
    "gpt-3.5-turbo-16k": (16_385, 16_385),
    "gpt-3.5-turbo-instruct": (4_096, 4_096),
    "davinci-002": (16_384, 16_384),
    "babbage-002": (16_384, 16_384),
}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """How many tokens a model takes in (``context_window``) and may write.

    None means not known. ``source`` says where the figures come from.
    """

    name: str
    context_window: int | None
    max_output_tokens: int | None
    source: str




def register_model(
    name: str, *, context_window: int | None, max_output_tokens: int | None
) -> None:
    """Describe a custom model (an Azure deployment, a fine-tune, a local server's model).

    The name is matched exactly, ignoring case, and wins over every other source.
    """
    for option, value in (("context_window", context_window),
                          ("max_output_tokens", max_output_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value <= 0):
            raise ConfigError(f"register_model({name!r}): {option} must be a positive "
                              f"integer or None, got {value!r}")
    current().models[name.lower()] = ModelInfo(name, context_window, max_output_tokens,
                                               "registered")


def model_info(model: str) -> ModelInfo:
    """Context window and output limit of ``model``; never raises for unknown names."""
    registered = current().models.get(model.lower())
    if registered is not None:
        return ModelInfo(model, registered.context_window, registered.max_output_tokens,
                         registered.source)
    local = embedded_model(model)
    if local is not None:
        # An embedded model may spend its whole window on the reply.
        return ModelInfo(model, local.context_window, local.context_window,
                         f"local model {local.id}")
    family = _family(_normalise(model))
    if family is not None:
        context, output = _OPENAI[family]
        return ModelInfo(model, context, output, _TABLE_SOURCE)
    return _from_genai_prices(model) or ModelInfo(model, None, None, "unknown")


def openai_models() -> tuple[str, ...]:
    """The OpenAI model families this table knows (``gptmagic models`` offline)."""
    return tuple(_OPENAI)


def _normalise(model: str) -> str:
    """The OpenAI base name inside provider and fine-tune spellings of it."""
    name = model.strip().lower().removeprefix("openai/")
    if name.startswith("ft:"):  # ft:gpt-4o-mini-2024-07-18:org:suffix:id
        name = name[3:].split(":", 1)[0]
    if name.startswith("gpt-35-"):  # Azure spells gpt-3.5 without the dot
        name = "gpt-3.5-" + name[7:]
    return name


def _family(name: str) -> str | None:
    """The longest table key that ``name`` equals or continues with ``-``."""
    best: str | None = None
    for key in _OPENAI:
        if (name == key or name.startswith(key + "-")) and (best is None or len(key) > len(best)):
            best = key
    return best


def _from_genai_prices(model: str) -> ModelInfo | None:
    from gptmagic.catalog.genai import lookup  # imports genai-prices (~0.2 s, once)

    found = lookup(model)
    if found is None or found.model.context_window is None:
        return None
    return ModelInfo(model, found.model.context_window, None, found.source)
