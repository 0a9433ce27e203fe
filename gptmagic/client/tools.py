"""The tool loop: the model asks for function calls, gptmagic runs them, until it answers.

One :class:`ToolRun` holds a loop's state (its :class:`~gptmagic.core.types.Step` s and
the messages it added) and its rules, whatever the endpoint and whoever drives it:

1. the model is called with the caller's messages, the exchange so far and the tools
   (a forced ``tool_choice``, ``"required"`` or a tool's name, holds for the first call
   only, then ``auto``: forced on every call, the model could never answer);
2. each function call it asks for, in order, has its arguments checked
   (:meth:`~gptmagic.core.tools.Tool.check`); ``approve(call)`` is asked first when
   given; the function runs; its result (JSON unless it is a string) goes back as a
   ``tool`` message. What goes wrong goes back too, as text the model can act on: an
   unknown tool, arguments that do not validate, the function's exception
   (``Error: ValueError: ...``), a declined call. Nothing of it ends the loop;
3. until the model answers without calling, or ``max_steps`` model calls have been made
   (their calls run, so the exchange stays a valid conversation, and the result says
   ``stopped after N tool steps (max_steps)``), or the model calls a tool with no
   Python function (a raw OpenAI dict: the caller answers it), or its reply is cut at
   the max tokens (``finish_reason == "length"``) with calls in it: the last call's
   arguments are cut off, so none runs and the result says to raise the max tokens.

The final :class:`~gptmagic.core.types.Result` is the last model call's, with ``steps``
(every model call, the last included), ``exchange`` (the messages the loop added, in
chat's shape: a thread keeps them), ``usage`` summed over the steps (what the whole
loop is billed; each step's own is ``steps[i].result.usage``), ``timings.total`` the
whole loop's, and each earlier step's warnings.

Where things run: the model calls go through ``ask`` (the portal, for the sync API);
the functions and the approval question run on the **caller's thread** in
:meth:`ToolRun.run` (in a notebook, the kernel's), never on the event loop; an
``async def`` tool is awaited on the portal there. :meth:`ToolRun.arun` awaits
``ask`` and runs functions inline (``gptmagic.achat``) or, with ``offload``, in a
worker thread (:class:`~gptmagic.client.client.Client`, whose loop must not block).
Ctrl-C during :meth:`ToolRun.run` raises
:class:`~gptmagic.errors.ToolLoopInterrupted` whose ``partial`` keeps the steps done; a
model call that fails after steps were done (their functions ran, their calls were
paid) raises its error with ``partial`` holding them, and a note that says so. A
function's ``sys.exit()`` is an exception like any other: the model is told.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gptmagic.core.defaults import DEFAULT_MAX_STEPS
from gptmagic.core.text import count_of
from gptmagic.core.tools import Tool, tool_from, tool_name, tool_output
from gptmagic.core.tools import tool_choice as choice_shape
from gptmagic.core.types import Choice, Result, Step, ToolCall, Usage
from gptmagic.errors import (
    GptmagicError,
    RequestError,
    ToolArgumentsError,
    ToolLoopInterrupted,
)

__all__ = ["Approve", "ToolRun", "check_tool_params", "total_usage"]

#: ``approve(call) -> bool``: whether to run a call (its ``args`` are checked already).
Approve = Callable[[ToolCall], Any]
#: One model call: ``ask(messages, params) -> Result``; ``params`` are the tools and the
#: tool choice, in Chat Completions' shape (``to_responses.response_fields`` maps them).
Ask = Callable[[list[dict[str, Any]], dict[str, Any]], Result]
AsyncAsk = Callable[[list[dict[str, Any]], dict[str, Any]], Awaitable[Result]]

_FORCED = ("required",)


@dataclass
class _Ask:
    messages: list[dict[str, Any]]
    params: dict[str, Any]


@dataclass
class _Approve:
    call: ToolCall


@dataclass
class _Run:
    tool: Tool
    args: dict[str, Any]


_Need = _Ask | _Approve | _Run
#: What running a function gave: its value, or the exception it raised.
_Outcome = tuple[Any, BaseException | None]


def check_tool_params(params: Mapping[str, Any]) -> None:
    """Refuse what a tool loop cannot follow: more than one reply per call."""
    n = params.get("n")
    if n not in (None, 1):
        raise RequestError(f"n must be 1 when Python functions are tools (got {n!r}): the "
                           "loop follows one reply; call once per reply instead", param="n")


def total_usage(results: Sequence[Result]) -> Usage | None:
    """The usage of ``results`` added up (None when none reported any)."""
    got = [r.usage for r in results if r.usage is not None]
    if not got:
        return None

    def add(name: str) -> int | None:
        values = [getattr(u, name) for u in got if getattr(u, name) is not None]
        return sum(values) if values else None

    return Usage(prompt_tokens=sum(u.prompt_tokens for u in got),
                 completion_tokens=sum(u.completion_tokens for u in got),
                 total_tokens=sum(u.total_tokens for u in got),
                 cached_tokens=add("cached_tokens"), reasoning_tokens=add("reasoning_tokens"),
                 cache_write_tokens=add("cache_write_tokens"))


def _max_steps(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"max_steps must be a whole number of model calls from 1, got "
                           f"{value!r}", param="max_steps")
    return value


class ToolRun:
    """One tool loop (see the module docstring): ``tools`` are functions, :class:`Tool` s
    or raw OpenAI dicts (sent, answered by the caller); ``messages`` the caller's."""

    def __init__(self, tools: Sequence[Any], messages: str | Sequence[Mapping[str, Any]], *,
                 approve: Approve | None = None, max_steps: int = DEFAULT_MAX_STEPS,
                 tool_choice: Any = None) -> None:
        if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Sequence):
            raise RequestError(f"tools must be a list of functions, not {type(tools).__name__}"
                               f" (tools=[{getattr(tools, '__name__', 'f')}])", param="tools")
        self.tools: list[Tool | Mapping[str, Any]] = [
            t if isinstance(t, Mapping) else tool_from(t) for t in tools]
        self.by_name = {tool_name(t): t for t in self.tools}
        if len(self.by_name) < len(self.tools):
            names = [tool_name(t) for t in self.tools]
            twice = sorted({n for n in names if names.count(n) > 1})
            raise RequestError(f"two tools are named {twice[0]!r}: the model calls tools by "
                               "name; give one another name (tool_from(f, name=...))",
                               param="tools")
        self.messages = ([{"role": "user", "content": messages}] if isinstance(messages, str)
                         else [dict(m) for m in messages])
        self.approve = approve
        self.max_steps = _max_steps(max_steps)
        self.choice = choice_shape(tool_choice, self.tools)
        self.steps: list[Step] = []
        #: The messages the loop added after the caller's (see ``Result.exchange``).
        self.exchange: list[dict[str, Any]] = []
        self._open: list[ToolCall] = []  # the current step's calls not answered yet
        self._running: ToolCall | None = None
        self._t0 = time.monotonic()

    @property
    def running(self) -> ToolCall | None:
        """The call whose function runs now, if one does (a live view marks it)."""
        return self._running

    def __repr__(self) -> str:
        return (f"<ToolRun tools={[tool_name(t) for t in self.tools]} steps={len(self.steps)}"
                f"/{self.max_steps}>")

    # -- the rules ------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """The next model call's tools and tool choice (chat's shape)."""
        specs = [t.chat_spec() if isinstance(t, Tool) else dict(t) for t in self.tools]
        choice = self.choice
        if self.steps and (choice in _FORCED or isinstance(choice, Mapping)):
            choice = None  # forced once: then the model may answer
        return {"tools": specs, **({"tool_choice": choice} if choice is not None else {})}

    def _loop(self) -> Generator[_Need, Any, Result]:
        self._t0 = time.monotonic()
        while True:
            result = yield _Ask([*self.messages, *self.exchange], self.params())
            step = Step(result)
            self.steps.append(step)
            requested = (result.choices[0].tool_calls or []) if result.choices else []
            if not requested:
                self.exchange.append(result.choices[0].message if result.choices
                                     else {"role": "assistant", "content": ""})
                return self._final(result)
            if result.finish_reason == "length":
                # The last call's arguments were cut off: running the calls would feed the
                # model errors it did not make. Nothing runs; the exchange stays valid.
                return self._final(result, "the reply reached the max tokens in the middle "
                                           "of its tool calls, so none was run: raise "
                                           "max_tokens (--max-tokens)")
            self.exchange.append(result.choices[0].message)
            theirs = [c.name for c in map(_parse, requested) if _theirs(self.by_name, c.name)]
            if theirs:
                return self._final(result, f"the model called {', '.join(theirs)}, which has "
                                           "no Python function here: answer it yourself")
            step.calls = [self._checked(_parse(raw)) for raw in requested]
            yield from self._run_calls(step.calls)
            if len(self.steps) >= self.max_steps:
                return self._final(result, f"stopped after "
                                           f"{count_of(len(self.steps), 'tool step')} (max_steps)")

    def _run_calls(self, calls: list[ToolCall]) -> Generator[_Need, Any, None]:
        """Each call in order: asked about, run, answered (as :meth:`_loop` says)."""
        self._open = list(calls)
        for call in calls:
            if call.error is None and self.approve is not None:
                call.approved = bool((yield _Approve(call)))
                if not call.approved:
                    call.error = "declined by the user"
                    call.output = "Error: the user declined this call; it did not run."
            if call.error is None:
                tool = self.by_name[call.name]
                assert isinstance(tool, Tool) and call.args is not None
                self._running = call
                t0 = time.monotonic()
                value, exc = yield _Run(tool, call.args)
                call.seconds = time.monotonic() - t0
                self._running = None
                if exc is None:
                    value, exc = _sendable(value)
                if exc is not None:
                    call.error = f"{type(exc).__name__}: {exc}"
                    call.output = f"Error: {call.error}"
                else:
                    call.output = value
            self._answer(call)

    def _checked(self, call: ToolCall) -> ToolCall:
        tool = self.by_name.get(call.name)
        if not isinstance(tool, Tool):
            names = ", ".join(tool_name(t) for t in self.tools)
            call.error = f"unknown tool {call.name!r}"
            call.output = f"Error: there is no tool named {call.name!r}; the tools are: {names}."
            return call
        try:
            call.args = tool.check(call.arguments)
        except ToolArgumentsError as e:
            call.error = str(e)
            call.output = (f"Error: {e}. Call {tool.name} again with arguments that match "
                           "its parameters.")
        return call

    def _answer(self, call: ToolCall) -> None:
        self.exchange.append({"role": "tool", "tool_call_id": call.id, "content": call.output})
        self._open.remove(call)

    def _final(self, last: Result, warning: str | None = None) -> Result:
        earlier = [f"step {i}: {w}" for i, s in enumerate(self.steps[:-1], 1)
                   for w in s.result.warnings]
        return replace(last, steps=list(self.steps), exchange=list(self.exchange),
                       usage=total_usage([s.result for s in self.steps]),
                       timings=replace(last.timings, total=time.monotonic() - self._t0),
                       warnings=[*earlier, *last.warnings, *([warning] if warning else [])])

    def partial(self, why: str | None = None) -> Result:
        """The loop so far, after a stop (Ctrl-C, or an error from a model call): a Result
        marked ``interrupted`` with the steps done; calls of the current step that had not
        answered are answered as stopped, so the exchange is a valid conversation.
        ``why``: the warning it carries (default: stopped by the user)."""
        for call in list(self._open):
            ran = call is self._running
            when = "while it ran" if ran else "before it ran"
            call.error = f"interrupted {when}"
            call.output = f"Error: the user stopped the run {when}."
            self._answer(call)
        self._running = None
        last = self.steps[-1].result if self.steps else None
        return Result(kind=last.kind if last else "chat", model=last.model if last else "",
                      choices=[Choice(0, "", "interrupted", role="assistant")],
                      usage=total_usage([s.result for s in self.steps]),
                      steps=list(self.steps), exchange=list(self.exchange),
                      warnings=[why or f"stopped by the user after {len(self.steps)} of at "
                                      f"most {count_of(self.max_steps, 'tool step')}"])

    def _kept(self, error: GptmagicError) -> None:
        """A model call failed after steps were done (their functions ran, perhaps with
        effects; their calls were paid): the error carries them as ``partial``."""
        if self.steps:
            n = len(self.steps)
            cut = getattr(error, "partial", None)  # a stream cut short: the text it had
            kept = self.partial(f"model call {n + 1} failed after "
                                f"{count_of(n, 'tool step')}: {error}")
            if isinstance(cut, Result) and cut.text:
                kept.choices[0].text = cut.text
            error.partial = kept  # type: ignore[attr-defined]
            error.add_note(f"the {count_of(n, 'tool step')} done before it "
                           f"{'are' if n > 1 else 'is'} in this error's .partial "
                           "(.partial.steps, .partial.exchange)")

    # -- the drivers ----------------------------------------------------------------------

    def run(self, ask: Ask, *, run_coro: Callable[[Any], Any] | None = None) -> Result:
        """Drive the loop from this thread: ``ask`` makes each model call (blocking); the
        functions and ``approve`` run here; ``run_coro`` runs an ``async def`` tool's
        coroutine (the portal's ``run``). Ctrl-C raises
        :class:`~gptmagic.errors.ToolLoopInterrupted` with the steps done."""
        loop = self._loop()
        try:
            need = next(loop)
            while True:
                if isinstance(need, _Ask):
                    got: Any = ask(need.messages, need.params)
                elif isinstance(need, _Approve):
                    got = _settle(_approval(self.approve, need.call), run_coro)
                else:
                    got = _invoke(need.tool, need.args, run_coro)
                need = loop.send(got)
        except StopIteration as done:
            result: Result = done.value
            return result
        except GptmagicError as error:
            self._kept(error)
            raise
        except KeyboardInterrupt:
            partial = self.partial()
            raise ToolLoopInterrupted(
                f"stopped by Ctrl-C after {len(self.steps)} of at most {self.max_steps} tool "
                "steps; the steps done and their messages are in this error's .partial "
                "(.partial.steps, .partial.exchange)", partial=partial) from None
        finally:
            loop.close()

    async def arun(self, ask: AsyncAsk, *, offload: bool = False) -> Result:
        """:meth:`run` for async callers: ``ask`` is awaited; functions and ``approve`` run
        on this thread, or with ``offload`` in a worker thread (for a loop that must not
        block); an ``async def`` tool is awaited."""
        loop = self._loop()
        try:
            need = next(loop)
            while True:
                if isinstance(need, _Ask):
                    got: Any = await ask(need.messages, need.params)
                elif isinstance(need, _Approve):
                    approve = self.approve
                    assert approve is not None
                    call = need.call
                    got = await (asyncio.to_thread(approve, call) if offload
                                 else _now(approve, call))
                    if inspect.isawaitable(got):
                        got = await got
                else:
                    got = await _ainvoke(need.tool, need.args, offload)
                need = loop.send(got)
        except StopIteration as done:
            result: Result = done.value
            return result
        except GptmagicError as error:
            self._kept(error)
            raise
        finally:
            loop.close()


def _theirs(tools: Mapping[str, Tool | Mapping[str, Any]], name: str) -> bool:
    """Whether ``name`` is a tool the caller answers (a raw dict, a Tool with no function)."""
    tool = tools.get(name)
    return isinstance(tool, Mapping) or (isinstance(tool, Tool) and tool.fn is None)


def _parse(raw: Mapping[str, Any]) -> ToolCall:
    """A ``tool_calls`` entry (chat's shape; the Responses API's are read into it)."""
    function = raw.get("function") if isinstance(raw.get("function"), Mapping) else {}
    assert isinstance(function, Mapping)
    arguments = function.get("arguments")
    return ToolCall(id=str(raw.get("id") or ""), name=str(function.get("name") or ""),
                    arguments=arguments if isinstance(arguments, str) else "")


def _approval(approve: Approve | None, call: ToolCall) -> Any:
    assert approve is not None
    return approve(call)


def _settle(value: Any, run_coro: Callable[[Any], Any] | None) -> Any:
    """``value``, or what it gives when awaited (an ``async def`` tool or approval)."""
    if not inspect.isawaitable(value):
        return value
    if run_coro is None:
        raise RequestError("an async function needs an event loop to run on: use "
                           "gptmagic.achat, or a plain def", param="tools")
    return run_coro(value)


def _invoke(tool: Tool, args: Mapping[str, Any],
            run_coro: Callable[[Any], Any] | None) -> _Outcome:
    try:
        return _settle(tool.call(args), run_coro), None
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the model is told; the loop goes on
        return None, e


def _sendable(value: Any) -> _Outcome:
    """What a function returned as the text the model is sent, or why it cannot be (bytes
    that are not UTF-8, an object whose ``str`` raises): told to the model as the
    function's exception would be, never the end of the loop."""
    try:
        return tool_output(value), None
    except Exception as e:  # noqa: BLE001 - pydantic's serialization error, or str()'s
        return None, e


async def _now(fn: Callable[[ToolCall], Any], call: ToolCall) -> Any:
    return fn(call)


async def _ainvoke(tool: Tool, args: Mapping[str, Any], offload: bool) -> _Outcome:
    try:
        value = await asyncio.to_thread(tool.call, args) if offload else tool.call(args)
        if inspect.isawaitable(value):
            value = await value
        return value, None
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the model is told; the loop goes on
        return None, e
