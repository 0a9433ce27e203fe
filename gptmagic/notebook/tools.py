"""Tool calls in a ``%%chat`` cell: ``--tools f,g --approve --max-steps N --tool-choice C``.

The magic hands its options to :func:`tool_options`, which finds the functions in
the notebook's namespace (a missing name or a non-callable is an error naming it)
and makes them :class:`~gptmagic.core.tools.Tool` definitions. The session sends
their schemas with the cell (:func:`tool_params`; a dry run shows them and what
they cost in tokens) and runs the loop of :mod:`gptmagic.client.tools`: the model
calls go through the portal, the functions and the approval question run here, on
the kernel's main thread.

Approval (``--approve``) asks Yes/No through the front end's input box: the kernel's
``input()``, which JupyterLab, Notebook 7 and VS Code show as a text field under the
cell and a terminal IPython as a prompt. A widget's button could not be used: its
click is a comm message, and the kernel reads none while the cell runs (the main
thread waits here). The input request is the one channel a front end answers while
a cell runs, and Kernel ▸ Interrupt reaches it.

While the loop runs, :class:`StepSink` shows the steps done (collapsed), the one
being worked on (open), and the model's text as it streams (views:
:mod:`gptmagic.views.steps`).
"""

from __future__ import annotations

import builtins
import difflib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from gptmagic.core.defaults import DEFAULT_MAX_STEPS
from gptmagic.core.tools import Step, Tool, ToolCall, tool_from
from gptmagic.core.types import Choice, Result, Usage
from gptmagic.errors import GptmagicError, RequestError
from gptmagic.notebook.apis import Outgoing
from gptmagic.notebook.streaming import REASONING, Interrupted, stream_reply
from gptmagic.views import steps as views

if TYPE_CHECKING:
    from gptmagic.client.client import Client
    from gptmagic.client.config import Provider
    from gptmagic.client.portal import Portal

__all__ = ["TOOL_CHOICES", "Approval", "Loop", "StepSink", "ToolOptions", "run", "step_messages",
           "summed", "tool_options", "tool_params", "with_steps"]

#: ``--tool-choice`` values besides a tool's name.
TOOL_CHOICES = ("auto", "none", "required")
#: The most ``--max-steps`` takes: each step is a paid model call.
MAX_STEPS_LIMIT = 50
#: Answers to the approval question; anything else is asked again (then No).
_YES, _NO = ("y", "yes"), ("n", "no", "")
_ASKS = 3


@dataclass
class ToolOptions:
    """A cell's tool options: the tools, ``--approve``, ``--max-steps``, ``--tool-choice``."""

    tools: list[Tool]
    approve: bool = False
    max_steps: int = DEFAULT_MAX_STEPS
    #: As chat sends it: ``"auto"``, ``"none"``, ``"required"`` or
    #: ``{"type": "function", "function": {"name": ...}}``; None: the server's default.
    tool_choice: str | dict[str, Any] | None = None
    names: list[str] = field(default_factory=list)


def _lookup(name: str, namespace: Mapping[str, Any]) -> Any:
    """``name`` (or ``module.name``) in the notebook's namespace, or an error naming it."""
    head, *rest = name.split(".")
    if head not in namespace:
        known = [k for k, v in namespace.items() if callable(v) and not k.startswith("_")]
        close = difflib.get_close_matches(head, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RequestError(f"--tools: no function {head!r} in the notebook{hint}; define it "
                           "in a cell above, then run this cell again", param="--tools")
    obj = namespace[head]
    for i, attr in enumerate(rest, 1):
        if not hasattr(obj, attr):
            where = ".".join([head, *rest[: i - 1]])
            raise RequestError(f"--tools: {where!r} has no attribute {attr!r} ({name!r})",
                               param="--tools")
        obj = getattr(obj, attr)
    if not callable(obj):
        raise RequestError(f"--tools: {name!r} is a {type(obj).__name__}, not a function; "
                           "give the names of functions defined in the notebook",
                           param="--tools")
    return obj


def _steps(value: Any) -> int:
    if value is None:
        return DEFAULT_MAX_STEPS
    text = str(value)
    if not text.isdigit() or not 1 <= int(text) <= MAX_STEPS_LIMIT:
        raise RequestError(f"--max-steps must be a whole number in 1..{MAX_STEPS_LIMIT} (model "
                           f"calls that may ask for tools), got {text!r}", param="--max-steps")
    return int(text)


def _choice(value: str | None, names: Sequence[str]) -> str | dict[str, Any] | None:
    if value is None:
        return None
    if value.lower() in TOOL_CHOICES:
        return value.lower()
    if value in names:
        return {"type": "function", "function": {"name": value}}
    raise RequestError(f"--tool-choice must be {', '.join(TOOL_CHOICES)} or the name of one of "
                       f"the --tools ({', '.join(names)}); got {value!r}", param="--tool-choice")


def tool_options(tools: str | None, namespace: Mapping[str, Any], *, approve: bool = False,
                 max_steps: Any = None, tool_choice: str | None = None) -> ToolOptions | None:
    """The cell's tools from ``--tools f,g`` (names in ``namespace``), or None without
    ``--tools``; the other tool options without it are an error saying so."""
    if tools is None:
        given = [flag for flag, v in (("--approve", approve), ("--max-steps", max_steps),
                                      ("--tool-choice", tool_choice)) if v]
        if given:
            raise RequestError(f"{given[0]} goes with --tools f,g (the functions the model may "
                               "call)", param=given[0])
        return None
    names = [n.strip() for n in tools.split(",") if n.strip()]
    if not names:
        raise RequestError("--tools needs function names separated by commas, e.g. "
                           "--tools get_weather,add", param="--tools")
    made: list[Tool] = []
    for name in names:
        fn = _lookup(name, namespace)
        try:
            tool = tool_from(fn)
        except GptmagicError as e:
            raise RequestError(f"--tools {name}: {e}", param="--tools") from None
        if any(t.name == tool.name for t in made):
            raise RequestError(f"--tools: {tool.name!r} is given twice", param="--tools")
        made.append(tool)
    return ToolOptions(made, approve=approve, max_steps=_steps(max_steps),
                       tool_choice=_choice(tool_choice, [t.name for t in made]), names=names)


def tool_params(opts: ToolOptions, *, models: int = 1, n: int | None = None) -> dict[str, Any]:
    """The request fields of a cell's tools, in chat's names (``tools``, ``tool_choice``);
    a Responses cell gets them translated by :mod:`gptmagic.core.to_responses`. A loop
    follows one reply of one model: several models or ``-n`` above 1 are refused."""
    if models > 1:
        raise RequestError("--tools runs one model's loop: give one --model (compare models "
                           "with evaluate(..., tools=[...]))", param="--tools")
    if n is not None and n > 1:
        raise RequestError(f"--tools follows one reply, got -n {n}: drop -n", param="-n")
    params: dict[str, Any] = {"tools": [t.chat_spec() for t in opts.tools]}
    if opts.tool_choice is not None:
        params["tool_choice"] = opts.tool_choice
    return params


# -- approval -----------------------------------------------------------------------------


class Approval:
    """``--approve``: asks Yes/No before each call, on the kernel's main thread.

    ``read`` is the front end's input (``input()`` as it is when asked: the kernel
    replaces it while a cell runs); ``show`` puts what is asked about on screen (the
    live step view in a notebook, a printed line in a terminal)."""

    def __init__(self, show: Callable[[ToolCall], None] | None = None,
                 read: Callable[[str], str] | None = None) -> None:
        self.show = show
        self.read = read
        #: Every question asked and its answer, in order.
        self.asked: list[tuple[str, bool]] = []

    def __call__(self, call: ToolCall) -> bool:
        from IPython.core.error import StdinNotImplementedError

        if self.show is not None:
            self.show(call)
        read = self.read or builtins.input
        question = f"Run {views.call_text(call)}? [y/N] "
        answer = False
        try:
            for _ in range(_ASKS):
                said = read(question).strip().lower()
                if said in _YES or said in _NO:
                    answer = said in _YES
                    break
                question = f"Please answer y or n. Run {call.name}? [y/N] "
        except (StdinNotImplementedError, EOFError):
            raise RequestError("--approve asks Yes/No in the front end's input box, and this "
                               "one takes no input (a headless run such as nbclient or "
                               "papermill); run the cell in JupyterLab, Notebook, VS Code or a "
                               "terminal IPython, or without --approve", param="--approve") \
                from None
        self.asked.append((call.name, answer))
        return answer


# -- live view ------------------------------------------------------------------------------


class StepSink:
    """The loop's live output: the steps so far and the text streaming now.

    In a notebook (``display`` given) one output, updated in place and emptied at
    the end (the reply then shows everything); in a terminal each finished step is
    printed once and the text streams as in a plain reply. Also a
    :class:`~gptmagic.notebook.streaming.Sink`, so a model call streams into it."""

    def __init__(self, display: Callable[..., Any] | None = None,
                 write: Callable[[str], Any] | None = None) -> None:
        self._display = display
        #: Where a terminal's output goes (None with ``display`` None: nothing is shown).
        self._write = write
        self.handle: Any = None
        self.steps: list[Step] = []
        self.status = ""
        self.texts: dict[int, str] = {}
        self._printed_steps = 0
        self._printed = 0

    @property
    def rich(self) -> bool:
        """Whether it shows rich output (a notebook), not text (a terminal)."""
        return self._display is not None

    @property
    def printed(self) -> int:
        """Characters of the final answer a terminal has shown as they came (0 in a
        notebook): the reply then adds its summary line alone."""
        return self._printed if self._display is None else 0

    def _show(self) -> None:
        if self._display is None:
            for step in self.steps[self._printed_steps:]:
                self._out(views.steps_views([step], first=self._printed_steps + 1)[1] + "\n")
                self._printed_steps += 1
            return
        data = views.live_bundle(self.steps, self.status, self.texts)
        if self.handle is None:
            self.handle = self._display(data, raw=True, display_id=True)
        else:
            self.handle.update(data, raw=True)

    def step(self, step: Step) -> None:
        """A step is done (its calls ran): show it."""
        self.steps.append(step)
        self.texts = {}
        self._printed = 0
        self.status = f"model call {len(self.steps) + 1}…"
        self._show()

    def asking(self, call: ToolCall) -> None:
        """About to ask whether to run ``call``: show it (the question comes below)."""
        self.status = f"waiting for your answer: run {views.call_text(call)}?"
        if self._display is None:
            self._out(f"the model asks to call {views.call_text(call)}\n")
            return
        self._show()

    # Sink: the model call that streams now.
    def update(self, texts: Mapping[int, str], model: str, elapsed: float,
               reasoning: str | None = None) -> None:
        self.texts = dict(texts)
        if self._display is None:
            text = texts.get(0, "")
            self._out(text[self._printed:])
            self._printed = len(text)
            return
        self.status = f"model call {len(self.steps) + 1}… {model} · {elapsed:.1f} s"
        self._show()

    def close(self) -> None:
        """One model call ended (the loop goes on); nothing to take down yet."""

    def finish(self) -> None:
        """The loop ended: the live view goes away (the reply shows it all)."""
        if self.handle is not None:
            self.handle.update({"text/plain": ""}, raw=True)
        elif self._display is None and self._printed:
            self._out("\n")

    def _out(self, text: str) -> None:
        if self._write is not None and text:
            self._write(text)


# -- the whole loop as one reply -------------------------------------------------------------


def _add(a: Usage | None, b: Usage | None) -> Usage | None:
    if a is None or b is None:
        return a or b

    def plus(x: int | None, y: int | None) -> int | None:
        return None if x is None and y is None else (x or 0) + (y or 0)

    return Usage(a.prompt_tokens + b.prompt_tokens, a.completion_tokens + b.completion_tokens,
                 a.total_tokens + b.total_tokens, plus(a.cached_tokens, b.cached_tokens),
                 plus(a.reasoning_tokens, b.reasoning_tokens),
                 plus(a.cache_write_tokens, b.cache_write_tokens))


def summed(final: Result, steps: Sequence[Step], seconds: float | None = None) -> Result:
    """``final`` with the usage of every model call of the loop added up (a call that
    reported none adds nothing) and ``seconds`` as its time: what the summary line of a
    tool loop's reply says. ``final`` itself is left as it is."""
    usage = final.usage
    for step in steps:
        if step.result is not final:
            usage = _add(step.result.usage, usage)
    timings = replace(final.timings, total=seconds if seconds is not None
                      else final.timings.total, ttft=None)
    return replace(final, usage=usage, timings=timings)


# -- one cell's loop -----------------------------------------------------------------------


@dataclass
class Loop:
    """How a cell's loop went: the final model call's result (or, stopped, what had come
    of it), the steps done, the messages the thread keeps, and the stop, if any."""

    result: Result
    steps: list[Step]
    exchange: list[dict[str, Any]]
    seconds: float
    stopped: Interrupted | None = None
    approval: Approval | None = None

    @property
    def shown(self) -> Result:
        """The result the summary line is about: every model call of the loop summed."""
        return summed(self.result, self.steps, self.seconds)

    @property
    def kept(self) -> list[dict[str, Any]]:
        """What the thread keeps: the exchange, less a last message whose tool calls were
        never run (the loop stopped at ``--max-steps``), which no server would take
        without their results."""
        if self.exchange and self.exchange[-1].get("tool_calls"):
            return self.exchange[:-1]
        return list(self.exchange)


def step_messages(step: Step) -> list[dict[str, Any]]:
    """What a step adds to a conversation: the model's message with its calls, then one
    tool message per call (the result, or what was said instead of one)."""
    return [step.result.choices[0].message,
            *({"role": "tool", "tool_call_id": c.id, "content": c.output} for c in step.calls)]


def run(portal: Portal, client: Client, out: Outgoing, opts: ToolOptions, *, model: str,
        provider: Provider, stream: bool, sink: Any, interval: float) -> Loop:
    """Run a cell's tool loop: each model call on the portal, streamed into ``sink``; the
    functions and the approval question here, on the caller's thread.

    Kernel ▸ Interrupt (during a model call, a function or the question) keeps the
    steps done so far: the loop's result is then what had come of the call under way,
    marked ``interrupted``. Stopped before any step was done, it is a reply stopped
    as any other (:class:`~gptmagic.notebook.streaming.Interrupted`)."""
    from gptmagic.client.tools import run_loop

    if not isinstance(sink, StepSink):  # a caller that shows nothing live
        sink = StepSink()
    approval = Approval(show=sink.asking) if opts.approve else None

    def call(messages: list[dict[str, Any]]) -> Result:
        step_out = Outgoing(out.api, {**out.payload, "messages": messages}, out.params)

        def make(on_delta: Callable[[int, str], None]) -> Any:
            return step_out.call(client, model=model, provider=provider, stream=stream,
                                 on_delta=on_delta,
                                 on_reasoning=lambda text: on_delta(REASONING, text))

        return stream_reply(portal, make, sink, model, interval)

    t0 = time.monotonic()
    try:
        result = run_loop(call, out.input, opts.tools, approve=approval,
                          max_steps=opts.max_steps, on_step=sink.step)
    except Interrupted as stop:  # during a model call: keep what had streamed of it
        if not sink.steps:
            raise  # as a reply stopped without tools
        return _stopped(sink.steps, stop, model, t0, approval)
    except KeyboardInterrupt:  # during a function or the approval question
        halt = Interrupted({}, time.monotonic() - t0)
        if not sink.steps:
            raise halt from None
        return _stopped(sink.steps, halt, model, t0, approval)
    finally:
        sink.finish()
    steps = list(getattr(result, "steps", None) or sink.steps)
    exchange = list(getattr(result, "exchange", None) or [])
    return Loop(result, steps, exchange, time.monotonic() - t0, approval=approval)


def _stopped(steps: list[Step], stop: Interrupted, model: str, t0: float,
             approval: Approval | None) -> Loop:
    text = stop.texts.get(0, "")
    result = Result("chat", model, [Choice(0, text, "interrupted", role="assistant")])
    result.timings.total = stop.elapsed
    exchange = [m for s in steps for m in step_messages(s)]
    if text:
        exchange.append(result.choices[0].message)
    return Loop(result, list(steps), exchange, time.monotonic() - t0, stop, approval)


def with_steps(bundle: tuple[dict[str, Any], dict[str, Any]],
               loop: Loop) -> tuple[dict[str, Any], dict[str, Any]]:
    """A reply's view with the loop's steps above it (collapsed) and in its metadata."""
    data, meta = bundle
    md, plain = views.steps_views(loop.steps)
    data = {**data, "text/markdown": f"{md}\n\n{data['text/markdown']}",
            "text/plain": f"{plain}\n\n{data['text/plain']}"}
    inner = dict(meta.get("gptmagic") or {})
    inner["steps"] = views.steps_meta(loop.steps)
    return data, {**meta, "gptmagic": inner}
