"""What a prompt of a run asks for besides its messages: a schema for the reply, and
tools the model may call.

``evaluate(schema=Model)`` asks every prompt's replies in that shape,
``schema={"plain": Model}`` only the named prompts'; ``tools=[f, g]`` and
``tools={"agent": [f, g]}`` the same for tools. A dict given as ``schema`` is a
JSON schema when it has a schema's keys at its top (``type``, ``properties``,
``$ref``, ``anyOf``, ``$defs``), else one entry per prompt. Each schema and
tool is made once (:func:`gptmagic.core.structured.schema_from`,
:func:`gptmagic.core.tools.tool_from`), so a bad one is an error before
anything is sent, and each is part of its calls' cache key (a schema's strict
format is in the body sent; the tools are in :meth:`Extras.key`): changing a
schema, a tool's definition or its code asks again.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gptmagic.core.defaults import DEFAULT_MAX_STEPS
from gptmagic.core.structured import Schema, schema_from
from gptmagic.core.tools import Tool, tool_from
from gptmagic.core.tools import tool_choice as choice_shape
from gptmagic.errors import RequestError

__all__ = ["Extras", "extras_by_prompt", "is_schema"]

#: Keys that make a dict a JSON schema rather than a schema per prompt.
_SCHEMA_KEYS = frozenset({"type", "properties", "$ref", "anyOf", "$defs", "$schema"})


def is_schema(value: Mapping[str, Any]) -> bool:
    """Whether a dict given as ``schema`` is a JSON schema (else one schema per prompt)."""
    return bool(_SCHEMA_KEYS & set(value))


@dataclass(frozen=True)
class Extras:
    """A prompt's schema and tools (none by default), and how its tool loop runs."""

    schema: Schema | None = None
    tools: tuple[Tool, ...] = ()
    max_steps: int = DEFAULT_MAX_STEPS
    tool_choice: Any = None

    def key(self) -> dict[str, Any]:
        """What the tools add to a call's cache key: each one's definition and a hash of
        its code, the tool choice and the step limit (a schema's format is in the body
        sent, so in the key already)."""
        if not self.tools:
            return {}
        return {"tools": [t.chat_spec() for t in self.tools],
                "tool_code": [_code(t) for t in self.tools],
                "tool_choice": self.tool_choice, "max_steps": self.max_steps}


def _code(tool: Tool) -> str:
    """A hash of what the tool runs: its function's source where Python has it, else its
    qualified name (a tool whose code changed is asked again, not read from the cache)."""
    fn = tool.fn
    if fn is None:
        return ""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        text = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _per_prompt(value: Any, prompts: Sequence[str], what: str,
                one: bool) -> dict[str, Any]:
    """``value`` for each prompt: the same for all when ``one``, else a dict by prompt."""
    if value is None:
        return {}
    if one:
        return dict.fromkeys(prompts, value)
    unknown = [p for p in value if p not in prompts]
    if unknown:
        raise RequestError(
            f"{what} names prompt(s) {', '.join(map(repr, unknown))}, which are not in the "
            f"run (its prompts: {', '.join(map(repr, prompts))}); give one {what} for every "
            f"prompt, or a dict of prompt name -> {what}", param=what)
    return {p: v for p, v in value.items() if v is not None}


def _schema(obj: Any, prompt: str) -> Schema:
    try:
        return schema_from(obj)
    except RequestError as e:
        raise RequestError(f"schema of prompt {prompt!r}: {e}", param="schema") from None


def _tools(given: Any, prompt: str) -> tuple[Tool, ...]:
    if isinstance(given, str | Mapping) or not isinstance(given, Sequence | set | frozenset):
        raise RequestError(f"tools of prompt {prompt!r}: give a list of functions, e.g. "
                           f"tools=[get_weather], not {type(given).__name__}", param="tools")
    made = []
    for obj in given:
        if isinstance(obj, Mapping):
            spec = obj.get("function")
            label = (spec.get("name") if isinstance(spec, Mapping) else None) or obj.get("name")
            raise RequestError(
                f"tools of prompt {prompt!r}: {label!r} is an OpenAI tool dict, which has no "
                f"function to run; give the Python "
                f"function, or send the dict with params={{'tools': [...]}} (its calls are "
                f"then recorded, not run)", param="tools")
        try:
            made.append(tool_from(obj))
        except RequestError as e:
            raise RequestError(f"tools of prompt {prompt!r}: {e}", param="tools") from None
    names = [t.name for t in made]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RequestError(f"tools of prompt {prompt!r}: two tools named "
                           f"{', '.join(map(repr, twice))}; give each its own name",
                           param="tools")
    return tuple(made)


def extras_by_prompt(prompts: Sequence[str], *, schema: Any = None, tools: Any = None,
                     max_steps: int | None = None, tool_choice: Any = None,
                     params: Mapping[str, Any] | None = None) -> dict[str, Extras]:
    """Each prompt's :class:`Extras` (prompts without any are left out)."""
    given = {"response_format": schema, "tools": tools, "tool_choice": tool_choice}
    for name, value in given.items():
        if value is not None and name in (params or {}):
            instead = "schema" if name == "response_format" else name
            raise RequestError(f"{name} is given twice: in params and as evaluate(..., "
                               f"{instead}=...); keep one", param=name)
    schemas = _per_prompt(schema, prompts, "schema", not isinstance(schema, Mapping)
                          or is_schema(schema))
    toolsets = _per_prompt(tools, prompts, "tools", not isinstance(tools, Mapping))
    if tools is None and (max_steps is not None or tool_choice is not None):
        raise RequestError("max_steps and tool_choice run a tool loop: give tools=[...] too",
                           param="tools")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int)
                                  or max_steps < 1):
        raise RequestError(f"max_steps must be a whole number >= 1, not {max_steps!r}",
                           param="max_steps")
    out: dict[str, Extras] = {}
    for prompt in prompts:
        if prompt not in schemas and prompt not in toolsets:
            continue
        made = _tools(toolsets[prompt], prompt) if prompt in toolsets else ()
        if made:
            choice_shape(tool_choice, made)  # a name that is none of the tools' fails here
        out[prompt] = Extras(
            schema=_schema(schemas[prompt], prompt) if prompt in schemas else None,
            tools=made, max_steps=max_steps or DEFAULT_MAX_STEPS,
            tool_choice=tool_choice if made else None)
    return out
