"""STAND-IN for the ``tools`` helper's module (issue 15 contract): deleted before their
branch is merged. Only the names and shapes the notebook part reads."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gptmagic.core.types import Result
from gptmagic.errors import RequestError

__all__ = ["Step", "Tool", "ToolCall", "tool_from"]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any] | None = None
    strict: bool = False

    def chat_spec(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name,
                                                 "description": self.description,
                                                 "parameters": self.parameters}}

    def responses_spec(self) -> dict[str, Any]:
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": self.parameters, "strict": self.strict}

    def check(self, arguments: str) -> dict[str, Any]:
        value = json.loads(arguments or "{}")
        if not isinstance(value, dict):
            raise RequestError("arguments must be a JSON object", param="arguments")
        return value


def tool_from(obj: Any) -> Tool:
    if isinstance(obj, Tool):
        return obj
    if not callable(obj):
        raise RequestError(f"{obj!r} is not a function", param="tools")
    from pydantic import TypeAdapter

    params = TypeAdapter(obj).json_schema()
    return Tool(obj.__name__, inspect.getdoc(obj) or "", params, obj)


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str
    args: dict[str, Any] | None = None
    output: str = ""
    error: str | None = None
    approved: bool | None = None
    seconds: float = 0.0


@dataclass
class Step:
    result: Result
    calls: list[ToolCall] = field(default_factory=list)
