"""Tool calling for a model whose chat template has none: the prompt and the grammar (pure).

SmolLM2's template knows nothing of tools (llama.cpp renders it "content
only" and drops ``tools``), so the adapter emulates them the way llama.cpp's
own *generic* tool format does (``common/chat.cpp``,
``docs/function-calling.md``):

* **the prompt** -- the tools the model may call are described in the system
  message (appended to the first system or developer message, or a system
  message of their own first, as llama.cpp's ``add_system`` does): each
  tool's name, description and parameters schema, then the two answers it
  may give (:func:`system_text`);
* **the grammar** -- the reply is decoded under a JSON schema (the engine's
  ``json_schema`` field, turned into a grammar by llama.cpp) that allows only
  ``{"tool_calls": [{"name": <one of the tools>, "arguments": <its
  parameters schema>}, ...]}`` or ``{"response": "<text>"}``
  (:func:`reply_schema`). ``tool_choice: "required"`` leaves only the first
  branch; a named tool (or ``allowed_tools``) only those tools;
  ``parallel_tool_calls: false`` at most one call. With ``response_format``,
  the ``response`` branch holds that schema's JSON instead of text;
* **the answer** -- :mod:`.toolreply` turns the decoded JSON back into
  OpenAI's ``tool_calls`` (ids ``call_...``, arguments a JSON string) or
  text, streamed or whole.

Earlier turns are written as text the template shows (:func:`render_history`):
an assistant message's ``tool_calls`` become its text ``I call
get_weather({"city": "Paris"}).``, and a tool result is a *user* message
``get_weather returned: 21 C and sunny`` (llama.cpp's own polyfill for
templates without a tool role also sends results as user messages). Chosen
by measurement, because the failure that matters is a model that calls the
same tool again instead of answering: over 40 tries each (5 questions, 8
seeds, after one call and its result, ``auto``), SmolLM2 answered in text
15 times with the call shown as its JSON and the result in a ``tool``
message, 18 with the result in a user message, and 25 with the call shown
as text and the result in a user message. This is done for every request,
with tools or without, so ``/v1/tokenize`` counts what a chat request sends.

``tool_choice: "none"`` sends no tools and no grammar: a plain reply, as
OpenAI's "none" gives. The prompt tokens of a request with tools include
the description (usage stays what the engine processed), and its
completion tokens are the JSON the model wrote.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gptmagic.local.checks import bad

__all__ = ["ToolPlan", "explain_schema_error", "plan_tools", "render_history", "reply_schema",
           "system_text"]

#: The arguments of a function given no ``parameters``: none (OpenAI's reading).
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {},
                                  "additionalProperties": False}


@dataclass(frozen=True)
class ToolPlan:
    """How one chat request's tools are emulated, and how its reply is read back.

    ``required``: the reply must call a tool; ``parallel``: it may call more
    than one; ``structured``: the ``response`` branch is JSON (a
    ``response_format`` schema), not a string.
    """

    names: tuple[str, ...]
    required: bool = False
    parallel: bool = True
    structured: bool = False


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    return tool["function"]


def _parameters(function: dict[str, Any]) -> dict[str, Any]:
    params = function.get("parameters")
    return params if isinstance(params, dict) and params else _NO_PARAMETERS


def _call_example(names: tuple[str, ...]) -> str:
    name = names[0] if len(names) == 1 else "<tool name>"
    return '{"tool_calls": [{"name": "' + name + '", "arguments": {...}}]}'


def system_text(functions: list[dict[str, Any]], plan: ToolPlan) -> str:
    """What the model is told about the tools it may call and how to answer.

    The text answer is described in words, with no placeholder to copy: told
    ``{"response": "<your reply>"}``, SmolLM2 answered 4 of 40 general
    questions with the literal ``<your reply>``, and called a tool for too few
    questions that needed one (``benchmarks/bench_local_tool_prompt.py``; the
    README gives the figures before and after)."""
    lines = ["You can call these tools:"]
    for function in functions:
        about = str(function.get("description") or "").strip()
        lines.append(f"- {function['name']}: {about + ' ' if about else ''}Arguments: "
                     f"{json.dumps(_parameters(function))}")
    call = _call_example(plan.names)
    if plan.required:
        how = f"Respond in JSON: {call} to call {'the tool' if len(plan.names) == 1 else 'tools'}."
    elif plan.structured:
        how = (f"Respond in JSON, either {call} to call tools, or "
               '{"response": <your reply as JSON>} to reply to the user.')
    else:
        how = (f"Respond in JSON: {call} to call a tool when the question needs one, or "
               '{"response": ...} where the value is your whole answer to the user, as a JSON '
               "string.")
    return "\n".join(lines) + "\n\n" + how


def _rebased(node: Any, base: str) -> Any:
    """``node`` with every local ``$ref`` (``#/$defs/X``) made to point below ``base``."""
    if isinstance(node, list):
        return [_rebased(item, base) for item in node]
    if not isinstance(node, dict):
        return node
    return {key: base + value[1:] if key == "$ref" and isinstance(value, str) and
            value.startswith("#") else _rebased(value, base) for key, value in node.items()}


def reply_schema(functions: list[dict[str, Any]], plan: ToolPlan,
                 response: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON schema the reply is decoded under (see the module docstring).

    ``response`` is the schema of the ``response`` branch's value (a string
    when ``None``). Each of these schemas is a definition of its own
    (``$defs``: ``tool-<name>``, ``response-format``), with its local
    ``$ref``s rebased there, so a Pydantic model's ``#/$defs/...`` still
    resolves inside the larger schema.
    """
    defs = {f"tool-{f['name']}": _rebased(_parameters(f), f"#/$defs/tool-{f['name']}")
            for f in functions}
    if response is not None:
        defs["response-format"] = _rebased(response, "#/$defs/response-format")
    calls = [{"type": "object",
              "properties": {"name": {"const": f["name"]},
                             "arguments": {"$ref": f"#/$defs/tool-{f['name']}"}},
              "required": ["name", "arguments"], "additionalProperties": False}
             for f in functions]
    items: dict[str, Any] = calls[0] if len(calls) == 1 else {"anyOf": calls}
    array: dict[str, Any] = {"type": "array", "items": items, "minItems": 1}
    if not plan.parallel:
        array["maxItems"] = 1
    branch = {"type": "object", "properties": {"tool_calls": array},
              "required": ["tool_calls"], "additionalProperties": False}
    if plan.required:
        return {**branch, "$defs": defs}
    value = {"$ref": "#/$defs/response-format"} if response is not None else {"type": "string"}
    text = {"type": "object", "properties": {"response": value},
            "required": ["response"], "additionalProperties": False}
    return {"anyOf": [branch, text], "$defs": defs}


def _response_schema(fmt: Any) -> dict[str, Any] | None:
    """The schema of a ``response_format`` (already checked), ``None`` for text."""
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        schema = fmt["json_schema"].get("schema")
        return schema if isinstance(schema, dict) and schema else {"type": "object"}
    return None


def _with_system(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """``text`` appended to the first system or developer message, or a system message first."""
    if messages and messages[0].get("role") in ("system", "developer"):
        first = dict(messages[0])
        content = first.get("content")
        if isinstance(content, list):
            first["content"] = [*content, {"type": "text", "text": text}]
        else:
            first["content"] = f"{content}\n\n{text}" if content else text
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def plan_tools(req: dict[str, Any], mode: str, allowed: tuple[str, ...] | None
               ) -> ToolPlan | None:
    """Rewrite ``req`` (checked) to emulate its ``tools``; ``None`` when there are none to call.

    ``mode`` and ``allowed`` are what :func:`gptmagic.local.checks.check_tool_choice`
    read from ``tool_choice``. ``tools``, ``tool_choice``, ``parallel_tool_calls``
    and ``response_format`` leave the body; the description joins the
    messages and the schema goes in ``json_schema``.
    """
    tools = req.pop("tools", None) or []
    req.pop("tool_choice", None)
    parallel = req.pop("parallel_tool_calls", None) is not False
    if not tools or mode == "none":
        return None
    for field in ("grammar", "json_schema"):
        if req.get(field) is not None:
            raise bad(f"'{field}' cannot be used with 'tools': the local engine constrains a "
                      "reply with tools to its own grammar. Drop one of them.", field)
    functions = [_function(t) for t in tools
                 if allowed is None or _function(t)["name"] in allowed]
    response = _response_schema(req.pop("response_format", None))
    plan = ToolPlan(names=tuple(f["name"] for f in functions), required=mode == "required",
                    parallel=parallel, structured=response is not None)
    req["messages"] = _with_system(req["messages"], system_text(functions, plan))
    req["json_schema"] = reply_schema(functions, plan, response)
    return plan


#: llama.cpp's complaint about a tool's parameters inside :func:`reply_schema`'s schema.
_PARAMETERS_ERROR = re.compile(r"JSON schema error at #/\$defs/tool-(?P<name>[A-Za-z0-9_-]+)"
                               r"(?P<at>\S*): (?P<why>.*)", re.S)


def explain_schema_error(message: str) -> tuple[str, str] | None:
    """``(param, message)`` for the engine's error about a tool's ``parameters``, else ``None``.

    The engine names the place in the whole reply schema, which means nothing
    to the caller; this names the tool, and the place in its own schema.
    """
    found = _PARAMETERS_ERROR.search(message)
    if found is None:
        return None
    why = found["why"].strip().replace(f"#/$defs/tool-{found['name']}", "#")
    return "tools", (f"In 'tools', the 'parameters' of {found['name']!r} is a JSON schema the "
                     f"local engine cannot turn into a grammar: {why} (at #{found['at'] or '/'}"
                     "). Simplify that schema, or use a hosted model.")


# --- earlier turns ----------------------------------------------------------------------------


def _arguments(raw: str) -> Any:
    """A call's arguments as the model would write them: JSON, or the raw text when not JSON."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _shown_call(function: dict[str, Any]) -> str:
    arguments = _arguments(function["arguments"])
    shown = json.dumps(arguments) if not isinstance(arguments, str) else arguments
    return f"{function['name']}({shown})"


def render_history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Checked ``messages`` with tool calls and tool results written as text the template shows.

    An assistant message's ``tool_calls`` (or legacy ``function_call``) are
    appended to its text as ``I call f({...}) and g({...}).``; a tool
    message becomes a user message ``"<name> returned: <content>"``, named
    after the call it answers (see the module docstring for why).
    """
    names: dict[str, str] = {}
    out = []
    for message in messages:
        calls = message.get("tool_calls") or []
        legacy = message.get("function_call")
        if message.get("role") == "assistant" and (calls or legacy):
            listed = [c["function"] for c in calls] + ([legacy] if legacy else [])
            names.update({c["id"]: c["function"]["name"] for c in calls if c.get("id")})
            shown = "I call " + " and ".join(_shown_call(f) for f in listed) + "."
            text = _text(message.get("content"))
            message = {k: v for k, v in message.items() if k not in ("tool_calls",
                                                                      "function_call")}
            message["content"] = f"{text}\n{shown}" if text else shown
        elif message.get("role") == "tool":
            name = names.get(str(message.get("tool_call_id")), "the tool")
            message = {"role": "user",
                       "content": f"{name} returned: {_text(message.get('content'))}"}
        out.append(message)
    return out
