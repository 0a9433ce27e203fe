"""Which API a call of a run goes to, and the request it sends there.

A run speaks Chat Completions unless told otherwise: ``api="responses"`` for
every model, ``api={"gpt-5-mini": "responses"}`` per model (named as in
``models``), ``grid={"api": ["chat", "responses"]}`` to compare the two, or a
profile's own ``api`` setting. Prompts and parameters are written once, in
chat terms; for the Responses API a leading system message becomes
``instructions`` and the other messages input items as they are (as a
``%%chat --api responses`` cell sends them, so the same prompt is the same
request), and the parameters with another name or shape there are translated
(:func:`response_params`). A chat parameter the Responses API has no
equivalent for is an error before anything is sent, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gptmagic.client.config import APIS, Provider
from gptmagic.errors import RequestError

__all__ = ["call_body", "check_api", "choose_api", "response_params"]

#: Chat parameters the Responses API has no equivalent for, and what to do instead.
_NO_EQUIVALENT = {
    "n": "repeat the call with repeats=N",  # n=1 is no request for more, and passes
    "stop": "end the text with a scorer or post-processing instead",
    "seed": "the Responses API takes no seed",
    "frequency_penalty": "the Responses API takes no penalties",
    "presence_penalty": "the Responses API takes no penalties",
    "logit_bias": "the Responses API takes no logit_bias",
    "functions": "give tools=[...] instead",
    "function_call": "give tool_choice instead",
    "stream_options": "evaluate() asks for usage itself",
}
#: The same limit under the chat names: the Responses API's is max_output_tokens.
_MAX_TOKENS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_LOGPROBS_INCLUDE = "message.output_text.logprobs"


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
    chosen = api.get(spec) if isinstance(api, Mapping) else api
    return chosen or provider.api or "chat"


def response_params(params: Mapping[str, Any], model: str) -> dict[str, Any]:
    """Chat-style ``params`` as Responses API fields.

    ``max_tokens`` / ``max_completion_tokens`` -> ``max_output_tokens``;
    ``logprobs`` -> ``include: ["message.output_text.logprobs"]`` (``top_logprobs``
    keeps its name); ``response_format`` -> ``text.format``; ``verbosity`` ->
    ``text.verbosity``; ``reasoning_effort`` -> ``reasoning.effort``; chat-shaped
    function tools -> the Responses shape. Responses fields pass through unchanged.
    """
    out: dict[str, Any] = {}
    text: dict[str, Any] = dict(params.get("text") or {})
    reasoning: dict[str, Any] = dict(params.get("reasoning") or {})
    include = list(params.get("include") or [])
    for name, value in params.items():
        if name == "n" and value in (None, 1):
            continue
        if name in _NO_EQUIVALENT:
            raise RequestError(
                f"parameter {name!r} has no equivalent in the Responses API (model {model!r} "
                f"is evaluated with api='responses'): {_NO_EQUIVALENT[name]}, or evaluate "
                f"{model!r} with api='chat'", param=name)
        if value is None or name in ("text", "reasoning", "include"):
            continue
        if name in _MAX_TOKENS:
            out["max_output_tokens"] = value
        elif name == "logprobs":
            if value and _LOGPROBS_INCLUDE not in include:
                include.append(_LOGPROBS_INCLUDE)
        elif name == "response_format":
            text["format"] = _text_format(value)
        elif name == "verbosity":
            text["verbosity"] = value
        elif name == "reasoning_effort":
            reasoning["effort"] = value
        elif name == "tools":
            out["tools"] = [_tool(t) for t in value]
        elif name == "tool_choice" and isinstance(value, Mapping) and "function" in value:
            out["tool_choice"] = {"type": "function", "name": value["function"]["name"]}
        else:
            out[name] = value
    out.update({k: v for k, v in (("text", text), ("reasoning", reasoning),
                                  ("include", include)) if v})
    return out


def _text_format(fmt: Any) -> Any:
    """A chat ``response_format`` as a Responses ``text.format``: the json_schema's
    name, schema and strict move up a level."""
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema" and "json_schema" in fmt:
        return {"type": "json_schema", **fmt["json_schema"]}
    return fmt


def _tool(tool: Any) -> Any:
    """A chat function tool (``{"type": "function", "function": {...}}``) in the Responses
    shape (the function's fields at the top); other tools as they are."""
    if isinstance(tool, Mapping) and tool.get("type") == "function" and "function" in tool:
        return {"type": "function", **tool["function"]}
    return tool


def call_body(api: str, messages: list[dict[str, Any]], params: Mapping[str, Any],
              model: str) -> dict[str, Any]:
    """What is sent besides the model: ``messages`` and ``params`` for chat; for the
    Responses API ``instructions`` (a leading system message, unless ``params`` give
    their own), ``input`` (the other messages), ``store: false`` (unless ``params``
    say otherwise) and the translated parameters."""
    if api != "responses":
        return {"messages": messages, **params}
    for i, m in enumerate(messages):
        if m.get("name"):
            raise RequestError(
                f"message {i} ({m.get('role')}) has a name ({m['name']!r}), which the "
                f"Responses API does not take (model {model!r}): drop it from the prompt "
                f"or evaluate {model!r} with api='chat'", param="prompt")
    # OpenAI keeps a response unless told not to; a run's calls are never chained, so
    # they are not kept unless params say store=True (as a %%chat cell does).
    body: dict[str, Any] = {"input": messages, "store": False}
    first = messages[0] if messages else {}
    if (len(messages) > 1 and first.get("role") == "system"
            and isinstance(first.get("content"), str) and "instructions" not in params):
        body.update(instructions=first["content"], input=messages[1:])
    return {**body, **response_params(params, model)}
