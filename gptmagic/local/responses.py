"""A Responses API request (``POST /v1/responses``) as a chat plan for the engine.

Pure, no I/O. llama.cpp has a ``/v1/responses`` of its own, but measured
with xllamacpp 2026.10 it ignores ``text.format`` (no constrained JSON),
gives no logprobs, says ``completed`` for a reply cut by
``max_output_tokens``, and streams events without ``sequence_number`` or
``output_index``. So a ``CreateResponse`` is translated into a chat request
and goes the chat way (:func:`gptmagic.local.adapt.prepare_chat`: its checks,
``name`` emulation, per-token logprobs, control-token text kept as text);
:mod:`.response_events` turns the chat answer or stream back into a
``Response`` or its events.

What is honoured, emulated or refused (every refusal a 400 naming the
parameter, in OpenAI's error shape):

* ``input`` (a string, or message items with ``input_text`` / ``output_text``
  / ``refusal`` parts, ``function_call`` and ``function_call_output`` items),
  ``instructions`` (a system message first), ``max_output_tokens``,
  ``temperature``, ``top_p``, ``text.format`` (``json_object`` and
  ``json_schema`` are grammar-constrained), ``include:
  ["message.output_text.logprobs"]`` with ``top_logprobs``, ``metadata``
  echoed;
* function ``tools``, called for real as on chat (grammar-constrained, see
  :mod:`.toolcalls`): a call is a ``function_call`` output item (streamed as
  ``response.output_item.added``, ``response.function_call_arguments.delta``
  and ``.done``), and a ``function_call_output`` input item answers the
  ``function_call`` item with its ``call_id`` (a 400 naming ``call_id``
  otherwise). ``tool_choice``: ``"none"``, ``"auto"``, ``"required"``,
  ``{"type": "function", "name"}`` and ``allowed_tools`` (of function
  tools); ``parallel_tool_calls: false`` allows one call. Hosted, MCP and
  custom tools (and choices of them) are refused;
* ``store``: accepted, but the engine keeps nothing, so the Response says
  ``store: false``; ``previous_response_id``, ``conversation``, ``background``,
  ``prompt`` and ``item_reference`` items need a store: refused;
* ``reasoning.effort`` other than ``none``, any ``reasoning.summary``,
  ``text.verbosity`` other than ``medium``, ``truncation: "auto"``,
  ``moderation``, ``context_management``: refused (the model does not
  reason, nor do the rest);
* ``user``, ``safety_identifier``, ``prompt_cache_key``, ``service_tier`` and
  the like are echoed where a Response has them and otherwise dropped;
  ``seed`` (not OpenAI's) is passed to the engine; any other unknown
  parameter is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gptmagic.catalog.embedded import EMBEDDED_MODELS
from gptmagic.local.checks import LocalRequestError, bad, boolean, integer, number
from gptmagic.local.plans import ChatPlan

__all__ = ["LOGPROBS_INCLUDE", "ResponsePlan", "chat_messages", "prepare_response", "repoint"]

#: The ``include`` value that asks for per-token logprobs.
LOGPROBS_INCLUDE = "message.output_text.logprobs"

#: ``include`` values about tools and inputs the engine never has: nothing to add.
_VACUOUS_INCLUDES = frozenset({
    "file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
    "message.input_image.image_url", "computer_call_output.output.image_url",
    "code_interpreter_call.outputs", "reasoning.encrypted_content"})

#: Accepted and only echoed (or dropped): they change nothing a local model does.
_ECHOED = frozenset({"user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention",
                     "prompt_cache_options", "service_tier", "parallel_tool_calls",
                     "max_tool_calls", "stream_options", "store", "metadata"})
#: Read by the translation below.
_READ = frozenset({"model", "input", "instructions", "max_output_tokens", "temperature",
                   "top_p", "top_logprobs", "include", "text", "tools", "tool_choice",
                   "stream", "reasoning", "truncation", "seed"})
#: Each needs a store of past responses or a service the engine does not run.
_NEEDS_STORE = {
    "previous_response_id": "chains to a stored response, and the local engine stores none; "
                            "send the earlier turns in 'input' instead",
    "conversation": "names a stored conversation, and the local engine stores none; send "
                    "the earlier turns in 'input' instead",
    "prompt": "names a stored prompt template, and the local engine stores none; send the "
              "prompt text in 'instructions' / 'input'",
    "moderation": "asks for moderation, which the local engine does not run",
    "context_management": "asks for context compaction, which the local engine does not do",
    "personality": "asks for a style preset, and the local model has none; describe the "
                   "style in 'instructions'",
}
_MAX_LOGPROBS = 20
_MAX_METADATA = 16


@dataclass
class ResponsePlan:
    """A Responses request as a chat plan, and what its answer echoes back."""

    chat: ChatPlan
    echo: dict[str, Any] = field(default_factory=dict)  # Response fields copied from the request
    logprobs: bool = False
    #: Chat message index -> the Responses parameter it came from (to name it in errors).
    sources: list[str] = field(default_factory=list)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text_parts(content: Any, where: str, kinds: frozenset[str]) -> str | list[dict[str, Any]]:
    """Message content as chat content: a string, or text parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise bad(f"{where} must be a string or a non-empty list of content parts, got "
                  f"{_short(content)}.", where)
    parts = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_image", "input_file", "input_audio"):
            raise bad(f"{at} is {kind.removeprefix('input_')} input ('{kind}'), but the local "
                      "model reads text only. Send text, or use a hosted model.", at)
        if kind not in kinds:
            raise bad(f"{at} must be a part of type {' or '.join(sorted(kinds))}, got "
                      f"{_short(part)}.", f"{at}.type")
        key = "refusal" if kind == "refusal" else "text"
        if not isinstance(part.get(key), str):
            raise bad(f"{at}.{key} must be a string, got {_short(part.get(key))}.",
                      f"{at}.{key}")
        parts.append({"type": "text", "text": part[key]})
    return parts


_PARTS = {"user": frozenset({"input_text"}), "system": frozenset({"input_text"}),
          "developer": frozenset({"input_text"}),
          "assistant": frozenset({"output_text", "refusal", "input_text"})}


def _message(item: dict[str, Any], at: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _PARTS:
        raise bad(f"{at}.role must be 'user', 'assistant', 'system' or 'developer', got "
                  f"{_short(role)}.", f"{at}.role")
    if "content" not in item:
        raise bad(f"{at} ({role}) needs 'content'.", f"{at}.content")
    return {"role": role, "content": _text_parts(item["content"], f"{at}.content",
                                                 _PARTS[role])}


def _string(item: dict[str, Any], key: str, at: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise bad(f"{at}.{key} must be a non-empty string, got {_short(value)}.", f"{at}.{key}")
    return value


def _function_call(item: dict[str, Any], at: str) -> dict[str, Any]:
    arguments = item.get("arguments")
    if not isinstance(arguments, str):
        raise bad(f"{at}.arguments must be a string (JSON), got {_short(arguments)}.",
                  f"{at}.arguments")
    return {"id": _string(item, "call_id", at), "type": "function",
            "function": {"name": _string(item, "name", at), "arguments": arguments}}


def _call_output(item: dict[str, Any], at: str) -> dict[str, Any]:
    output = item.get("output")
    content = output if isinstance(output, str) else \
        _text_parts(output, f"{at}.output", frozenset({"input_text"}))
    return {"role": "tool", "tool_call_id": _string(item, "call_id", at), "content": content}


def chat_messages(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """``instructions`` and ``input`` as chat messages, and where each came from.

    Consecutive ``function_call`` items become the ``tool_calls`` of one
    assistant message (joined to the assistant message just before them).
    """
    messages: list[dict[str, Any]] = []
    sources: list[str] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise bad(f"'instructions' must be a string, got {_short(instructions)}.",
                      "instructions")
        messages.append({"role": "system", "content": instructions})
        sources.append("instructions")
    given = body.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
        sources.append("input")
    elif isinstance(given, list):
        for i, item in enumerate(given):
            at = f"input[{i}]"
            if not isinstance(item, dict):
                raise bad(f"{at} must be an object (a message or an item), got "
                          f"{_short(item)}.", at)
            kind = item.get("type", "message")
            if kind == "message":
                messages.append(_message(item, at))
            elif kind == "function_call":
                call = _function_call(item, at)
                last = messages[-1] if messages else None
                if last is not None and last["role"] == "assistant":
                    last.setdefault("tool_calls", []).append(call)
                    continue
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            elif kind == "function_call_output":
                messages.append(_call_output(item, at))
            elif kind == "item_reference":
                raise bad(f"{at} refers to a stored item, and the local engine stores none; "
                          "send the item itself.", f"{at}.type")
            else:
                raise bad(f"{at} has type {_short(kind)}; the local model takes 'message', "
                          "'function_call' and 'function_call_output' items.", f"{at}.type")
            sources.append(at)
    elif given is not None:
        raise bad(f"'input' must be a string or a list of items, got {_short(given)}.", "input")
    if not messages:
        raise bad("Give 'input' (a string or a list of items) or 'instructions'.", "input")
    return messages, sources


def _refused(body: dict[str, Any]) -> None:
    for key, why in _NEEDS_STORE.items():
        if body.get(key) is not None:
            raise bad(f"'{key}' {why}.", key)
    if boolean(body, "background"):
        raise bad("'background' runs a response to fetch later, and the local engine stores "
                  "none; send it without 'background'.", "background")
    truncation = body.get("truncation")
    if truncation not in (None, "disabled"):
        raise bad(f"'truncation' {_short(truncation)} is not emulated: the local engine "
                  "refuses an input over its window (a 400). Use 'disabled', and fit the "
                  "input yourself (gptmagic's fit_messages).", "truncation")
    reasoning = body.get("reasoning")
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise bad(f"'reasoning' must be an object, got {_short(reasoning)}.", "reasoning")
    for key, value in reasoning.items():
        if key != "effort" and value is not None:
            raise bad(f"'reasoning.{key}' {_short(value)}: the local model (SmolLM2) does not "
                      "reason, so it has no reasoning to summarise or configure.",
                      f"reasoning.{key}")


def _unknown(body: dict[str, Any]) -> None:
    known = _READ | _ECHOED | set(_NEEDS_STORE) | {"background"}
    for key in body:
        if key not in known:
            raise bad(f"Unknown parameter: '{key}'. The local engine's /v1/responses takes "
                      "OpenAI's CreateResponse fields (and 'seed').", key)


def _include(body: dict[str, Any]) -> bool:
    include = body.get("include")
    if include is None:
        return False
    if not isinstance(include, list):
        raise bad(f"'include' must be a list of strings, got {_short(include)}.", "include")
    for i, value in enumerate(include):
        if value != LOGPROBS_INCLUDE and value not in _VACUOUS_INCLUDES:
            raise bad(f"include[{i}] {_short(value)} is not something a response can include; "
                      f"use '{LOGPROBS_INCLUDE}' for logprobs.", f"include[{i}]")
    return LOGPROBS_INCLUDE in include


def _text_format(body: dict[str, Any]) -> dict[str, Any] | None:
    """``text.format`` as chat's ``response_format`` (``None`` for plain text)."""
    text = body.get("text")
    if text is None:
        return None
    if not isinstance(text, dict):
        raise bad(f"'text' must be an object, got {_short(text)}.", "text")
    fmt = text.get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        name, schema = fmt.get("name"), fmt.get("schema")
        if not isinstance(name, str) or not isinstance(schema, dict):
            raise bad("'text.format' json_schema needs a 'name' (a string) and a 'schema' (an "
                      "object).", "text.format")
        spec = {"name": name, "schema": schema}
        for key, kinds in (("strict", bool), ("description", str)):
            if fmt.get(key) is not None:
                if not isinstance(fmt[key], kinds):
                    raise bad(f"'text.format.{key}' has the wrong type: {_short(fmt[key])}.",
                              f"text.format.{key}")
                spec[key] = fmt[key]
        return {"type": "json_schema", "json_schema": spec}
    raise bad("'text.format' must be an object with type 'text', 'json_object' or "
              f"'json_schema', got {_short(fmt)}.", "text.format")


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Responses function tools as chat tools (chat's checks then apply)."""
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise bad(f"'tools' must be a list of tools, got {_short(tools)}.", "tools")
    out = []
    for j, tool in enumerate(tools):
        at = f"tools[{j}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise bad(f"{at} has type {_short(kind)}; the local model can be given function "
                      "tools only (no built-in, MCP or custom tools).", f"{at}.type")
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict")
                    if tool.get(k) is not None}
        out.append({"type": "function", "function": function})
    return out


def _chat_named(tool: Any, at: str) -> dict[str, Any]:
    """A Responses ``{"type": "function", "name"}`` as chat's named function."""
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function" or not isinstance(tool.get("name"), str):
        raise bad(f"'{at}' must be {{\"type\": \"function\", \"name\": ...}}: the local model "
                  f"can call function tools only, got {_short(tool)}.",
                  f"{at}.type" if kind != "function" else f"{at}.name")
    return {"type": "function", "function": {"name": tool["name"]}}


def _tool_choice(body: dict[str, Any]) -> Any:
    """``tool_choice`` in chat's shape (chat's check then decides what it allows).

    ``{"type": "function", "name"}`` names a function, ``allowed_tools``
    lists function tools; hosted, MCP and custom tool choices are refused
    (the local model has function tools only).
    """
    choice = body.get("tool_choice")
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        listed = choice.get("tools")
        if not isinstance(listed, list):
            raise bad(f"'tool_choice.tools' must be a list of tools, got {_short(listed)}.",
                      "tool_choice.tools")
        return {"type": "allowed_tools", "allowed_tools": {
            "mode": choice.get("mode"),
            "tools": [_chat_named(t, f"tool_choice.tools[{j}]") for j, t in enumerate(listed)]}}
    return _chat_named(choice, "tool_choice")


def _metadata(body: dict[str, Any]) -> dict[str, str]:
    metadata = body.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > _MAX_METADATA or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
            for k, v in metadata.items()):
        raise bad("'metadata' must be an object of at most 16 string values (keys up to 64 "
                  "characters, values up to 512).", "metadata")
    return dict(metadata)


def _echo(body: dict[str, Any]) -> dict[str, Any]:
    """The request's fields a Response reports back (OpenAI's defaults when absent)."""
    temperature, top_p = body.get("temperature"), body.get("top_p")
    echo: dict[str, Any] = {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": _metadata(body),
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
        "store": False,  # accepted, but nothing is kept: see the module docstring
        "temperature": 1.0 if temperature is None else temperature,
        "text": {"format": (body.get("text") or {}).get("format") or {"type": "text"},
                 "verbosity": "medium"},
        "tool_choice": body.get("tool_choice") or "auto",
        # A Response's function tool always has 'strict' and 'parameters' (null when not given).
        "tools": [{**tool, "strict": tool.get("strict"), "parameters": tool.get("parameters")}
                  for tool in body.get("tools") or []],
        "top_logprobs": body.get("top_logprobs") or 0,
        "top_p": 1.0 if top_p is None else top_p,
        "truncation": "disabled",
        "service_tier": "default",
    }
    for key in ("user", "safety_identifier", "prompt_cache_key"):
        if isinstance(body.get(key), str):
            echo[key] = body[key]
    return echo


def prepare_response(body: Any, prepare_chat: Callable[[dict[str, Any]], ChatPlan]
                     ) -> ResponsePlan:
    """Check a ``CreateResponse`` and plan it as a chat request.

    ``prepare_chat`` is :func:`gptmagic.local.adapt.prepare_chat` with the
    engine's GGUF path bound; a 400 it raises about a chat message is
    re-pointed at the Responses parameter the message came from.
    """
    if not isinstance(body, dict):
        raise LocalRequestError("The request body must be a JSON object.")
    _unknown(body)
    _refused(body)
    messages, sources = chat_messages(body)
    # The widest window here; the chat plan checks the chosen model's own.
    integer(body, "max_output_tokens", None, 1, max(m.context_window for m in EMBEDDED_MODELS))
    number(body, "temperature", 0, 2)
    number(body, "top_p", 0, 1)
    top = integer(body, "top_logprobs", None, 0, _MAX_LOGPROBS)
    logprobs = _include(body)
    if top is not None and top > 0 and not logprobs:
        raise bad(f"'top_logprobs' needs include: ['{LOGPROBS_INCLUDE}'] (without it no "
                  "logprobs are returned).", "top_logprobs")
    stream = boolean(body, "stream")
    chat: dict[str, Any] = {"model": body.get("model", "local"), "messages": messages}
    for src, dst in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"),
                     ("top_p", "top_p"), ("seed", "seed")):
        if body.get(src) is not None:
            chat[dst] = body[src]
    if (fmt := _text_format(body)) is not None:
        chat["response_format"] = fmt
    if (tools := _tools(body)) is not None:
        chat["tools"] = tools
    if (choice := _tool_choice(body)) is not None:
        chat["tool_choice"] = choice
    if body.get("parallel_tool_calls") is not None:
        chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    # Refused, or dropped when they ask for what SmolLM2 does anyway, by chat's own
    # check (gptmagic.local.checks.check_no_reasoning), under their Responses names.
    if (effort := (body.get("reasoning") or {}).get("effort")) is not None:
        chat["reasoning_effort"] = effort
    if (verbosity := (body.get("text") or {}).get("verbosity")) is not None:
        chat["verbosity"] = verbosity
    if logprobs:
        chat["logprobs"] = True
        chat["top_logprobs"] = top or 0
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    try:
        plan = prepare_chat(chat)
    except LocalRequestError as exc:
        raise repoint(exc, sources) from None
    return ResponsePlan(chat=plan, echo=_echo(body), logprobs=logprobs, sources=sources)


_CHAT_PARAMS = {"max_tokens": "max_output_tokens", "response_format": "text.format",
                "logprobs": "include",
                "seed": "seed", "model": "model", "reasoning_effort": "reasoning.effort",
                "verbosity": "text.verbosity"}


def repoint(exc: LocalRequestError, sources: list[str]) -> LocalRequestError:
    """A chat-side 400 named after the Responses parameter it is about.

    ``sources[k]`` is where chat message ``k`` came from (see :func:`chat_messages`).
    """
    param = exc.param or ""
    if param.startswith("messages["):
        index, _, rest = param[len("messages["):].partition("]")
        if index.isdigit() and int(index) < len(sources):
            # A chat tool message is a function_call_output item: its id is 'call_id'.
            rest = ".call_id" if rest == ".tool_call_id" else rest
            param = sources[int(index)] + (rest if sources[int(index)] != "instructions" else "")
    elif param.startswith(("tools[", "tool_choice")):
        param = param.replace(".function.", ".").replace(".allowed_tools", "")
    else:
        param = _CHAT_PARAMS.get(param, param)
    message = str(exc)
    if exc.param and exc.param != param:
        message = message.replace(exc.param, param)
    if exc.param is None:
        return exc
    return LocalRequestError(message, param=param, status=exc.status, code=exc.code,
                             type=exc.type)
