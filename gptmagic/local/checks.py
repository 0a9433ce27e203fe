"""Checks on OpenAI requests for the embedded engine: every bad field is a 400 naming it.

Pure, no I/O. The engine (llama.cpp) answers some malformed or unsupported
requests with a 500 (an image part, a ``custom`` tool call, a non-string
role), which clients retry; others it would take in silently (a
``tool_choice`` naming a tool that is not in ``tools``). These checks run
first, so such a request gets OpenAI's 400 ``invalid_request_error`` with
``param`` naming the field
(``messages[0].content[1]``), and the messages sent on are what the
template can render faithfully.
"""

from __future__ import annotations

import math
import re
from typing import Any

from gptmagic.errors import RequestError

__all__ = [
    "LocalRequestError",
    "bad",
    "boolean",
    "check_messages",
    "check_no_reasoning",
    "check_output",
    "check_tool_choice",
    "check_tools",
    "error_body",
    "integer",
    "number",
    "optional_string",
]

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

#: Content part types the text-only model can read, per role (OpenAI's spec).
_TEXT_PARTS = {"user": {"text"}, "system": {"text"}, "developer": {"text"}, "tool": {"text"},
               "assistant": {"text", "refusal"}}
_NOT_TEXT = {"image_url": "an image", "input_audio": "audio", "file": "a file"}


class LocalRequestError(RequestError):
    """A request the local engine answers with an OpenAI-shaped HTTP error."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400,
                 code: str | None = None, type: str = "invalid_request_error") -> None:
        super().__init__(message, param=param)
        self.status = status
        self.code = code
        self.type = type

    def body(self) -> dict[str, Any]:
        """The error as OpenAI sends it."""
        return error_body(str(self), type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """``{"error": {...}}`` with OpenAI's four fields."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def bad(message: str, param: str) -> LocalRequestError:
    """A 400 ``invalid_request_error`` naming ``param``."""
    return LocalRequestError(message, param=param)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def integer(body: dict[str, Any], key: str, default: int | None, lo: int,
            hi: int) -> int | None:
    """``body[key]`` as an int in ``lo..hi`` (``default`` when absent or null).

    JSON has one number type, so ``2.0`` is the integer 2 (OpenAI accepts it);
    the value is written back as an int, which the engine requires.
    """
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise bad(f"'{key}' must be an integer from {lo} to {hi}, got {_short(value)}.", key)
    body[key] = value
    return value


def number(body: dict[str, Any], key: str, lo: float, hi: float) -> None:
    """``body[key]``, when present and not null, must be a finite number in ``lo..hi``."""
    value = body.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or not lo <= value <= hi:
        raise bad(f"'{key}' must be a number from {lo:g} to {hi:g}, got {_short(value)}.", key)


def boolean(body: dict[str, Any], key: str) -> bool:
    """``body[key]`` as a bool (absent or null: false)."""
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise bad(f"'{key}' must be true or false, got {_short(value)}.", key)
    return bool(value)


def optional_string(body: dict[str, Any], key: str) -> str | None:
    """``body[key]`` when it is a string, ``None`` when absent or null; else a 400."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise bad(f"'{key}' must be a string or null, got {_short(value)}.", key)
    return value


def _content(role: str, content: Any, where: str) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list) or not content:
        raise bad(f"{where} must be a string or a non-empty list of content parts, got "
                   f"{_short(content)}.", where)
    allowed = _TEXT_PARTS.get(role, {"text"})
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str):
            raise bad(f"{at} must be an object with a 'type', got {_short(part)}.", at)
        if kind in _NOT_TEXT:
            raise bad(f"{at} is {_NOT_TEXT[kind]} ('{kind}'), but the local model reads text "
                       "only. Send text, or use a hosted model that accepts "
                       f"{_NOT_TEXT[kind].removeprefix('an ').removeprefix('a ')} input.", at)
        if kind not in allowed:
            raise bad(f"{at} has type {kind!r}; a {role} message may hold "
                       f"{' or '.join(sorted(allowed))} parts.", at)
        field = "refusal" if kind == "refusal" else "text"
        if not isinstance(part.get(field), str):
            raise bad(f"{at}.{field} must be a string, got {_short(part.get(field))}.",
                       f"{at}.{field}")


def _tool_calls(calls: Any, where: str) -> None:
    if calls is None:
        return
    if not isinstance(calls, list):
        raise bad(f"{where} must be a list of tool calls, got {_short(calls)}.", where)
    for j, call in enumerate(calls):
        at = f"{where}[{j}]"
        if not isinstance(call, dict):
            raise bad(f"{at} must be an object, got {_short(call)}.", at)
        if not isinstance(call.get("id"), str):
            raise bad(f"{at}.id must be a string (the id a tool message answers).", f"{at}.id")
        if call.get("type") != "function":
            raise bad(f"{at} has type {_short(call.get('type'))}; the local model's chat "
                       "template can render only 'function' tool calls.", f"{at}.type")
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) \
                or not isinstance(function.get("arguments"), str):
            raise bad(f"{at}.function must be an object with string 'name' and "
                       "'arguments'.", f"{at}.function")


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """Check chat ``messages`` and return them as the engine should get them.

    An assistant message whose ``content`` is null but which has a ``refusal``
    is sent with the refusal as its text (the template would render it empty,
    and the model said those words). ``audio`` (a reference to an earlier
    audio reply) cannot be rendered by a text model: a 400.
    """
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list of messages.", "messages")
    out = []
    called: set[Any] = set()  # the ids of the tool calls so far
    for i, msg in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise bad(f"{at} must be an object with a 'role', got {_short(msg)}.", at)
        role = msg.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise bad(f"{at}.role must be one of {sorted(ROLES)}, got {_short(role)}.",
                       f"{at}.role")
        if "content" not in msg and role != "assistant":
            raise bad(f"{at} ({role}) needs 'content'.", f"{at}.content")
        _content(role, msg.get("content"), f"{at}.content")
        name = msg.get("name")
        if name is not None and not isinstance(name, str):
            raise bad(f"{at}.name must be a string, got {_short(name)}.", f"{at}.name")
        if role != "assistant" and msg.get("tool_calls") is not None:
            raise bad(f"{at} ({role}) has 'tool_calls'; only assistant messages carry them.",
                      f"{at}.tool_calls")
        if role == "assistant":
            _tool_calls(msg.get("tool_calls"), f"{at}.tool_calls")
            call = msg.get("function_call")
            if call is not None and not (isinstance(call, dict) and isinstance(
                    call.get("name"), str) and isinstance(call.get("arguments"), str)):
                raise bad(f"{at}.function_call must be an object with string 'name' and "
                          "'arguments'.", f"{at}.function_call")
            if msg.get("audio") is not None:
                raise bad(f"{at}.audio refers to an earlier audio reply, which the local "
                           "model cannot read; send the reply's transcript as content.",
                           f"{at}.audio")
            refusal = msg.get("refusal")
            if refusal is not None and not isinstance(refusal, str):
                raise bad(f"{at}.refusal must be a string or null.", f"{at}.refusal")
            if msg.get("content") is None and refusal:
                msg = {**msg, "content": refusal}
            if isinstance(msg.get("content"), list):  # the engine reads text parts only
                msg = {**msg, "content": [
                    {"type": "text", "text": p["refusal"]} if p.get("type") == "refusal" else p
                    for p in msg["content"]]}
        if role == "tool":
            _tool_result(msg, at, called)
        called.update(c.get("id") for c in msg.get("tool_calls") or [] if role == "assistant")
        out.append(msg)
    return out


def _tool_result(msg: dict[str, Any], at: str, called: set[Any]) -> None:
    """A tool message answers a call made earlier in the conversation (OpenAI's rule)."""
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str):
        raise bad(f"{at}.tool_call_id must be a string.", f"{at}.tool_call_id")
    if call_id not in called:
        raise bad(f"{at}.tool_call_id {call_id!r} answers no tool call: no earlier assistant "
                  "message has a tool call with that id. A tool message must follow the "
                  "assistant message whose 'tool_calls' it answers.", f"{at}.tool_call_id")


_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_tools(body: dict[str, Any]) -> None:
    """``tools``: function tools only, each named as OpenAI requires, with object parameters."""
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise bad(f"'tools' must be a list of tools, got {_short(tools)}.", "tools")
    for j, tool in enumerate(tools):
        at = f"tools[{j}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "custom":
            raise bad(f"{at} is a custom tool; the local model can use function tools only.",
                      f"{at}.type")
        if kind != "function":
            raise bad(f"{at} must be an object with type 'function', got {_short(tool)}.",
                      f"{at}.type")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or \
                not _TOOL_NAME.fullmatch(function["name"]):
            raise bad(f"{at}.function.name must be 1 to 64 letters, digits, '_' or '-'.",
                      f"{at}.function.name")
        for key, kinds, what in (("description", str, "a string"),
                                 ("parameters", dict, "an object (a JSON schema)"),
                                 ("strict", bool, "true or false")):
            if function.get(key) is not None and not isinstance(function[key], kinds):
                raise bad(f"{at}.function.{key} must be {what}.", f"{at}.function.{key}")


def check_output(body: dict[str, Any]) -> None:
    """``response_format``, ``modalities``, ``audio``, ``stream_options``: shapes the engine reads.

    Anything else would be ignored by the engine, so it is a 400.
    """
    fmt = body.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise bad("'response_format' must be an object with type 'text', 'json_object' or "
                      f"'json_schema', got {_short(fmt)}.", "response_format")
        if kind == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or \
                    not isinstance(spec.get("schema", {}), dict):
                raise bad("'response_format.json_schema' must be an object with a 'name' and "
                          "a 'schema' object.", "response_format.json_schema")
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise bad(f"'modalities' {_short(modalities)}: the local model answers in text only "
                  "(['text']).", "modalities")
    if body.get("audio") is not None:
        raise bad("'audio' output needs a model that speaks; the local model answers in text.",
                  "audio")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad(f"'stream_options' must be an object, got {_short(options)}.",
                  "stream_options")


def _named_tool(choice: dict[str, Any], where: str, names: list[str]) -> str:
    """The function ``{"type": "function", "function": {"name": ...}}`` names."""
    if choice.get("type") == "custom":
        raise bad(f"'{where}' names a custom tool; the local model can call function tools "
                  "only.", f"{where}.type")
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if choice.get("type") != "function" or not isinstance(name, str):
        raise bad(f"'{where}' must be {{\"type\": \"function\", \"function\": {{\"name\": "
                  f"...}}}}, got {_short(choice)}.", where)
    if name not in names:
        raise bad(f"'{where}.function.name' is {name!r}, which is not a function in 'tools' "
                  f"({', '.join(names) or 'none given'}).", f"{where}.function.name")
    return name


def check_tool_choice(body: dict[str, Any]) -> tuple[str, tuple[str, ...] | None]:
    """``tool_choice`` as ``(mode, allowed tool names or None for all)``; every mode is honoured.

    ``mode`` is ``"none"``, ``"auto"`` or ``"required"``: a named function is
    ``required`` with that one allowed, ``allowed_tools`` its mode with its
    tools. Tools the request does not define cannot be chosen (a 400, as on
    OpenAI); ``"required"`` with no tools has nothing to call.
    """
    choice = body.get("tool_choice")
    names = [t["function"]["name"] for t in body.get("tools") or []]
    default = "auto" if names else "none"
    if choice is None or choice in ("none", "auto"):
        return choice or default, None
    if choice == "required":
        if not names:
            raise bad("'tool_choice' 'required' needs 'tools' to call; give 'tools' or use "
                      "'auto'.", "tool_choice")
        return "required", None
    if not isinstance(choice, dict):
        raise bad(f"'tool_choice' must be 'none', 'auto', 'required' or an object, got "
                  f"{_short(choice)}.", "tool_choice")
    if choice.get("type") != "allowed_tools":
        return "required", (_named_tool(choice, "tool_choice", names),)
    allowed = choice.get("allowed_tools")
    mode = allowed.get("mode") if isinstance(allowed, dict) else None
    listed = allowed.get("tools") if isinstance(allowed, dict) else None
    if mode not in ("auto", "required") or not isinstance(listed, list) or not listed:
        raise bad("'tool_choice.allowed_tools' must be an object with 'mode' ('auto' or "
                  "'required') and a non-empty list of 'tools'.", "tool_choice.allowed_tools")
    picked = tuple(_named_tool(tool if isinstance(tool, dict) else {},
                               f"tool_choice.allowed_tools.tools[{j}]", names)
                   for j, tool in enumerate(listed))
    return mode, picked


def check_no_reasoning(body: dict[str, Any]) -> None:
    """Chat's reasoning options, which the local model cannot honour, as clear 400s.

    SmolLM2 does not reason and has one verbosity: ``reasoning_effort`` other
    than ``none`` and ``verbosity`` other than ``medium`` would otherwise be
    dropped in silence (the engine ignores unknown fields), as
    ``/v1/responses`` already refuses them.
    """
    effort = body.get("reasoning_effort")
    if effort not in (None, "none"):
        raise bad(f"'reasoning_effort' {_short(effort)}: the local model (SmolLM2) does not "
                  "reason. Leave it out or use 'none'.", "reasoning_effort")
    verbosity = body.get("verbosity")
    if verbosity not in (None, "medium"):
        raise bad(f"'verbosity' {_short(verbosity)}: the local model has no verbosity "
                  "control. Leave it out or use 'medium', and ask for a length in the "
                  "prompt.", "verbosity")
    body.pop("reasoning_effort", None)
    body.pop("verbosity", None)

