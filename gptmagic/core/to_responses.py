"""A chat-shaped call (messages and chat parameters) as a Responses API request (pure).

Prompts and parameters are written once, in Chat Completions' terms, whether a
``%%chat`` cell or an ``evaluate()`` run sends them; this module is the one
translation to ``CreateResponse``, so the same prompt and parameters are the
same request from either (the embedded engine's adapter,
:mod:`gptmagic.local.responses`, maps the other way):

- a leading system message is ``instructions`` and the other messages input
  items (chat's ``{"role", "content"}`` messages are valid items), through
  :func:`input_items`: content parts get their Responses names (``text`` ->
  ``input_text``, an ``image_url`` part -> ``input_image`` with its ``detail``,
  ``auto`` when chat left it out, as ``InputImageContent`` requires one; an
  assistant's text parts joined into its text); a tool loop's assistant message's
  ``tool_calls`` are ``function_call`` items, a ``tool`` message a
  ``function_call_output``; a message with a ``name`` is refused, the Responses
  API having no field for it;
- ``max_tokens`` / ``max_completion_tokens`` -> ``max_output_tokens``;
  ``logprobs`` -> ``include: ["message.output_text.logprobs"]`` (``top_logprobs``
  keeps its name); ``response_format`` -> ``text.format`` (a ``json_schema``'s
  name, schema and strict a level up); ``verbosity`` -> ``text.verbosity``;
  ``reasoning_effort`` -> ``reasoning.effort``; chat-shaped function ``tools``
  and a named ``tool_choice`` -> the Responses shape; ``store`` is ``false``
  unless given (OpenAI keeps a response unless told not to);
- a chat parameter the Responses API has no equivalent for (``stop``, ``n``
  above 1, ``seed``, the penalties, ...) is an error naming it, the model, what
  to do instead, and the caller's way back to chat; never dropped silently;
- on OpenAI's and Azure's servers (``hosted``: the caller says which it sends
  to), a max tokens below :data:`MIN_OUTPUT_TOKENS` is refused before it is
  sent, as those servers would refuse it with a 400 (the embedded model and
  other servers take what they take).

Responses fields pass through unchanged. Callers name parameters their own way
(the magics by flag, ``--stop``): ``names`` maps a chat parameter to that name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from gptmagic.errors import RequestError

__all__ = ["APIS", "LOGPROBS_INCLUDE", "MIN_OUTPUT_TOKENS", "api_choice", "choose_api",
           "input_items", "response_fields", "responses_body", "split_instructions"]

#: The endpoints a chat-shaped call can go to: Chat Completions and the Responses API.
APIS = ("chat", "responses")

#: ``CreateResponse.max_output_tokens``' minimum in OpenAI's spec (reasoning included):
#: OpenAI's and Azure's servers answer a smaller one with a 400.
MIN_OUTPUT_TOKENS = 16

#: The ``include`` value that asks for the output text's per-token logprobs.
LOGPROBS_INCLUDE = "message.output_text.logprobs"

#: Chat parameters the Responses API has no equivalent for, and what to do instead.
_NO_EQUIVALENT = {
    "n": "a response is one reply: make one call per reply (evaluate()'s repeats=N)",
    "stop": "cut the text after it arrives (a scorer or post-processing)",
    "seed": "drop it (the Responses API takes no seed)",
    "frequency_penalty": "drop it (the Responses API takes no penalties)",
    "presence_penalty": "drop it (the Responses API takes no penalties)",
    "logit_bias": "drop it (the Responses API takes no logit_bias)",
    "functions": "give tools=[...] instead",
    "function_call": "give tool_choice instead",
    "stream_options": "drop it (a Responses stream reports usage in its last event)",
}
#: The same limit under chat's names: the Responses API's is max_output_tokens.
_MAX_TOKENS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def choose_api(given: str | None, *, model: str, per_model: Mapping[str, str] | None = None,
               profile: str | None = None, default: str | None = None,
               labels: tuple[str, str] = ("api", "api")) -> str:
    """The endpoint of a call to ``model``: ``given``; else the first ``per_model``
    pattern (shell-style, case ignored: ``{"gpt-5*": "responses"}``; an exact name is a
    pattern matching itself) matching ``model``; else the profile's ``api``; else
    ``default``; else ``"chat"``. ``labels`` name ``given`` and ``per_model`` in errors
    (``("--api", "model_api")`` in the magics)."""
    return api_choice(given, model=model, per_model=per_model, profile=profile,
                      default=default, labels=labels)[0]


def api_choice(given: str | None, *, model: str, per_model: Mapping[str, str] | None = None,
               profile: str | None = None, default: str | None = None,
               labels: tuple[str, str] = ("api", "api")) -> tuple[str, str, str | None]:
    """:func:`choose_api`'s endpoint, what chose it (``"given"``, ``"per_model"``,
    ``"profile"``, ``"default"`` or ``"builtin"``) and the ``per_model`` pattern that
    matched (None for the others), so a refusal can name the setting to change."""
    if given is not None:
        return _api(given, labels[0]), "given", None
    for pattern, api in (per_model or {}).items():
        if fnmatchcase(model.lower(), pattern.lower()):
            return _api(api, f"{labels[1]}[{pattern!r}]"), "per_model", pattern
    if profile:
        return _api(profile, "api"), "profile", None
    if default:
        return _api(default, "api"), "default", None
    return "chat", "builtin", None


def _api(value: Any, label: str) -> str:
    if not isinstance(value, str) or value.lower() not in APIS:
        raise RequestError(f"{label} must be one of {', '.join(APIS)}; got {value!r}",
                           param=label)
    return value.lower()


def split_instructions(messages: Sequence[Mapping[str, Any]],
                       params: Mapping[str, Any] | None = None
                       ) -> tuple[str | None, list[dict[str, Any]]]:
    """A leading system message (text, with more after it) as ``instructions``, the rest
    as input items; all as input items when ``params`` give their own ``instructions``.

    ``instructions`` are not carried over by ``previous_response_id``, so a chained
    thread sends its system message again with every turn."""
    items = input_items(messages)
    first = items[0] if items else {}
    if (len(items) > 1 and first.get("role") == "system"
            and isinstance(first.get("content"), str) and "instructions" not in (params or {})):
        return str(first["content"]), items[1:]
    return None, items


def input_items(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages as Responses input items: a tool loop's assistant message with
    ``tool_calls`` is its text (if any) then one ``function_call`` item per call; a
    ``tool`` message is a ``function_call_output``; other messages get their content
    parts in the Responses shape (see the module's docstring); items (anything with a
    ``type``) and string contents are as they are."""
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.get("role") == "tool" and "type" not in m:
            items.append({"type": "function_call_output", "call_id": m.get("tool_call_id"),
                          "output": _output(m.get("content"))})
        elif m.get("role") == "assistant" and m.get("tool_calls") and "type" not in m:
            if m.get("content"):
                items.append(_item({"role": "assistant", "content": m["content"]}))
            items += [_function_call(c) for c in m["tool_calls"]]
        else:
            items.append(_item(m))
    return items


def _function_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {"type": "function_call", "call_id": call.get("id"), "name": function.get("name"),
            "arguments": function.get("arguments") or ""}


def _output(content: Any) -> str:
    """A tool message's content as a function_call_output's text (parts joined)."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


def _item(message: Mapping[str, Any]) -> dict[str, Any]:
    item = dict(message)
    content = item.get("content")
    if not isinstance(content, list):
        return item
    if item.get("role") == "assistant":  # chat's text parts; the Responses API's are output
        if all(isinstance(p, Mapping) and p.get("type") == "text" for p in content):
            item["content"] = "".join(str(p.get("text", "")) for p in content)
        return item
    item["content"] = [_part(p) for p in content]
    return item


def _part(part: Any) -> Any:
    """A chat content part as a Responses input part (``InputContent``)."""
    if not isinstance(part, Mapping):
        return part
    kind = part.get("type")
    if kind == "text":
        return {"type": "input_text", "text": part.get("text")}
    if kind == "image_url":
        inner = part.get("image_url")
        url, detail = ((inner.get("url"), inner.get("detail")) if isinstance(inner, Mapping)
                       else (inner, None))
        return {"type": "input_image", "image_url": url, "detail": detail or "auto"}
    if kind == "file" and isinstance(part.get("file"), Mapping):
        return {"type": "input_file", **part["file"]}
    return part


def response_fields(params: Mapping[str, Any], *, model: str | None = None,
                    names: Mapping[str, str] | None = None,
                    instead: str = "send it to the chat API",
                    hosted: bool = False) -> dict[str, Any]:
    """Chat-style ``params`` as Responses API fields (see the module's docstring).

    A parameter with no equivalent is a :class:`~gptmagic.errors.RequestError` naming
    it as ``names`` does (else ``parameter 'stop'``), the ``model``, and ``instead``,
    the caller's way back to chat (``"send this cell with --api chat"``). ``hosted``
    (OpenAI's or Azure's server) also refuses a max tokens below
    :data:`MIN_OUTPUT_TOKENS`."""
    out: dict[str, Any] = {}
    text: dict[str, Any] = dict(params.get("text") or {})
    reasoning: dict[str, Any] = dict(params.get("reasoning") or {})
    include = list(params.get("include") or [])
    for name, value in params.items():
        if name == "n" and value in (None, 1):
            continue  # one reply is no request for more
        if name in _NO_EQUIVALENT:
            said = (names or {}).get(name)
            where = f" (model {model!r})" if model else ""
            raise RequestError(f"{said or f'parameter {name!r}'} has no equivalent in the "
                               f"Responses API{where}: {_NO_EQUIVALENT[name]}, or {instead}",
                               param=said or name)
        if value is None or name in ("text", "reasoning", "include"):
            continue
        if name in _MAX_TOKENS:
            if hosted:
                _check_max_tokens(name, value, model, names)
            out["max_output_tokens"] = value
        elif name == "logprobs":
            if value and LOGPROBS_INCLUDE not in include:
                include.append(LOGPROBS_INCLUDE)
        elif name == "response_format":
            text["format"] = _text_format(value)
        elif name == "verbosity":
            text["verbosity"] = value
        elif name == "reasoning_effort":
            reasoning["effort"] = value
        elif name == "tools":
            out["tools"] = [_tool(t) for t in value]
        elif name == "tool_choice":
            out["tool_choice"] = _tool_choice(value)
        else:
            out[name] = value
    out.update({k: v for k, v in (("text", text), ("reasoning", reasoning),
                                  ("include", include)) if v})
    return out


def _check_max_tokens(name: str, value: Any, model: str | None,
                      names: Mapping[str, str] | None) -> None:
    """Refuse a max tokens OpenAI's and Azure's Responses API would answer with a 400."""
    if isinstance(value, int) and not isinstance(value, bool) and value < MIN_OUTPUT_TOKENS:
        said = (names or {}).get(name) or f"parameter {name!r}"
        where = f" (model {model!r})" if model else ""
        raise RequestError(f"{said} must be at least {MIN_OUTPUT_TOKENS} on the Responses API"
                           f"{where}, where max_output_tokens counts reasoning too; got {value}",
                           param=(names or {}).get(name) or name)


def _text_format(fmt: Any) -> Any:
    """A chat ``response_format`` as a Responses ``text.format``: the json_schema's
    name, schema and strict move up a level."""
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema" and "json_schema" in fmt:
        return {"type": "json_schema", **fmt["json_schema"]}
    return fmt


def _tool(tool: Any) -> Any:
    """A chat function tool (``{"type": "function", "function": {...}}``) in the Responses
    shape (the function's fields at the top); other tools as they are.

    ``FunctionTool`` requires ``strict`` and ``parameters``, which chat may leave out;
    they are filled with what chat means by leaving them out (``strict: false``, no
    parameters), not the Responses API's own default (OpenAI's is strict)."""
    if isinstance(tool, Mapping) and tool.get("type") == "function" and "function" in tool:
        return {"type": "function", "strict": False,
                "parameters": {"type": "object", "properties": {}}, **tool["function"]}
    return tool


def _tool_choice(choice: Any) -> Any:
    """Chat's named choice (``{"type": "function", "function": {"name"}}``) in the
    Responses shape; ``"auto"``, ``"none"``, ``"required"`` as they are."""
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        return {"type": "function", "name": choice["function"]["name"]}
    return choice


def responses_body(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any], *,
                   model: str, names: Mapping[str, str] | None = None,
                   instead: str = "send it to the chat API",
                   hosted: bool = False) -> dict[str, Any]:
    """What a Responses request sends besides the model (and ``stream``): ``input``,
    ``instructions`` (:func:`split_instructions`), ``store: false`` unless ``params``
    say otherwise, and :func:`response_fields` of ``params`` (``hosted``: sent to
    OpenAI's or Azure's server)."""
    for i, m in enumerate(messages):
        if m.get("name"):
            raise RequestError(
                f"message {i} ({m.get('role')}) has a name ({m['name']!r}), which the "
                f"Responses API does not take (model {model!r}): drop it from the prompt, "
                f"or {instead}", param="prompt")
    instructions, items = split_instructions(messages, params)
    body: dict[str, Any] = {"input": input_items(items), "store": False}
    if instructions is not None:
        body["instructions"] = instructions
    return {**body, **response_fields(params, model=model, names=names, instead=instead,
                                      hosted=hosted)}
