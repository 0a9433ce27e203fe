"""STAND-IN for the ``tools`` helper's loop (issue 15 contract): deleted before their
branch is merged. The smallest loop the notebook part can be tested against."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from gptmagic.core.defaults import DEFAULT_MAX_STEPS
from gptmagic.core.tools import Step, Tool, ToolCall
from gptmagic.core.types import Result

__all__ = ["run_loop"]


def run_loop(call: Callable[[list[dict[str, Any]]], Result], messages: list[dict[str, Any]],
             tools: Sequence[Tool], *, approve: Callable[[ToolCall], bool] | None = None,
             max_steps: int = DEFAULT_MAX_STEPS,
             on_step: Callable[[Step], None] | None = None) -> Result:
    by_name = {t.name: t for t in tools}
    sent = list(messages)
    exchange: list[dict[str, Any]] = []
    steps: list[Step] = []
    for _ in range(max_steps + 1):
        result = call(sent)
        choice = result.choices[0]
        if not choice.tool_calls or len(steps) >= max_steps:
            if choice.tool_calls:
                result.warnings.append(f"stopped after {max_steps} tool steps (max_steps)")
            exchange.append(choice.message)
            result.steps = steps
            result.exchange = exchange
            return result
        step = Step(result, [])
        added = [choice.message]
        for tc in choice.tool_calls:
            fn = tc.get("function") or {}
            c = ToolCall(str(tc.get("id")), str(fn.get("name")), str(fn.get("arguments") or ""))
            tool = by_name.get(c.name)
            if tool is None:
                c.error = f"unknown tool {c.name!r}"
            elif approve is not None and not approve(c):
                c.approved = False
                c.error = "the user declined this call"
            else:
                c.approved = True if approve is not None else None
                try:
                    c.args = json.loads(c.arguments or "{}")
                    t0 = time.monotonic()
                    assert tool.fn is not None
                    c.output = str(tool.fn(**(c.args or {})))
                    c.seconds = time.monotonic() - t0
                except Exception as e:  # noqa: BLE001
                    c.error = f"{type(e).__name__}: {e}"
            if c.error and not c.output:
                c.output = f"error: {c.error}"
            step.calls.append(c)
            added.append({"role": "tool", "tool_call_id": c.id, "content": c.output})
        steps.append(step)
        sent += added
        exchange += added
        if on_step is not None:
            on_step(step)
    raise AssertionError("unreachable")
