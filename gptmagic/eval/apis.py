"""Which API a call of a run goes to, and the request it sends there.

A run speaks Chat Completions unless told otherwise: ``api="responses"`` for
every model, ``api={"gpt-5-mini": "responses"}`` per model (named as in
``models``), ``grid={"api": ["chat", "responses"]}`` to compare the two, or a
profile's own ``api`` setting. Prompts and parameters are written once, in
chat terms; for the Responses API they are translated by
:mod:`gptmagic.core.to_responses`, the translation a ``%%chat --api responses``
cell uses, so the same prompt is the same request. A chat parameter the
Responses API has no equivalent for is an error before anything is sent, never
dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gptmagic.client.config import Provider
from gptmagic.core import to_responses
from gptmagic.core.to_responses import APIS
from gptmagic.errors import RequestError

__all__ = ["call_body", "check_api", "choose_api"]


def check_api(api: str | Mapping[str, str] | None, models: Sequence[str]) -> None:
    """Refuse an ``api=`` argument that names an unknown API or a model not in the run."""
    if api is None:
        return
    if isinstance(api, str):
        _known(api, "api")
        return
    if not isinstance(api, Mapping):
        raise RequestError(f"api must be 'chat', 'responses' or a dict of model -> api, "
                           f"not {type(api).__name__}", param="api")
    for spec, name in api.items():
        if spec not in models:
            raise RequestError(f"api names model {spec!r}, which is not in models "
                               f"({', '.join(map(repr, models))}); name it as models does",
                               param="api")
        _known(name, f"api[{spec!r}]")


def _known(name: Any, where: str) -> None:
    if name not in APIS:
        raise RequestError(f"{where} is {name!r}; use 'chat' or 'responses'", param="api")


def choose_api(api: str | Mapping[str, str] | None, spec: str, provider: Provider) -> str:
    """The API of model ``spec`` (as written in ``models``; ``api`` checked by
    :func:`check_api`): the ``api=`` argument's entry for it, else its value when one
    name is given, else the profile's ``api`` setting, else chat."""
    # Looked up exactly: a model's name is not a pattern here, as it is in the magics.
    given = api.get(spec) if isinstance(api, Mapping) else api
    return to_responses.choose_api(given, model=spec, profile=provider.api)


def call_body(api: str, messages: list[dict[str, Any]], params: Mapping[str, Any],
              model: str, provider: Provider) -> dict[str, Any]:
    """What is sent besides the model: ``messages`` and ``params`` for chat; for the
    Responses API their translation (:func:`gptmagic.core.to_responses.responses_body`),
    which refuses, before anything is sent, what the provider's server would answer
    with a 400 (a ``max_tokens`` below 16 on OpenAI or Azure). A run's calls are
    never chained, so they are not kept unless ``params`` say ``store=True``."""
    if api != "responses":
        return {"messages": messages, **params}
    return to_responses.responses_body(messages, params, model=model,
                                       instead=f"evaluate {model!r} with api='chat'",
                                       hosted=provider.kind in ("openai", "azure"))
