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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gptmagic.client.tools import ToolRun
from gptmagic.core.defaults import DEFAULT_MAX_STEPS
from gptmagic.core.text import did_you_mean
from gptmagic.core.to_responses import input_items, response_fields
from gptmagic.core.tools import Tool, tool_choice, tool_from
from gptmagic.core.types import Result, Step, ToolCall
from gptmagic.errors import GptmagicError, RequestError, ToolLoopInterrupted
from gptmagic.notebook.apis import Outgoing
from gptmagic.notebook.streaming import REASONING, Interrupted, stream_reply
from gptmagic.views import steps as views

if TYPE_CHECKING:
    from gptmagic.client.client import Client
    from gptmagic.client.config import Provider
    from gptmagic.client.portal import Portal

__all__ = ["Approval", "Loop", "StepSink", "TOOL_CHOICES", "ToolOptions", "run", "tool_options",
           "tool_params", "with_steps"]

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


def _lookup(name: str, namespace: Mapping[str, Any]) -> Any:
    """``name`` (or ``module.name``) in the notebook's namespace, or an error naming it."""
    head, *rest = name.split(".")
    if head not in namespace:
        known = [k for k, v in namespace.items() if callable(v) and not k.startswith("_")]
        raise RequestError(f"--tools: no function {head!r} in the notebook"
                           f"{did_you_mean(head, known)}; define it in a cell above, then run "
                           "this cell again", param="--tools")
    obj = namespace[head]
    for i, attr in enumerate(rest, 1):
        if not hasattr(obj, attr):
            where = ".".join([head, *rest[: i - 1]])
            hint = did_you_mean(attr, [a for a in dir(obj) if not a.startswith("_")])
            raise RequestError(f"--tools: {where!r} has no attribute {attr!r} ({name!r}){hint}",
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
        raise RequestError(f"--max-steps must be a whole number in 1..{MAX_STEPS_LIMIT} (the "
                           f"most model calls in the loop), got {text!r}", param="--max-steps")
    return int(text)


def _choice(value: str | None, tools: Sequence[Tool]) -> str | dict[str, Any] | None:
    """``--tool-choice`` in chat's shape (:func:`gptmagic.core.tools.tool_choice`)."""
    if value is not None and value.lower() in TOOL_CHOICES:
        value = value.lower()
    try:
        choice: str | dict[str, Any] | None = tool_choice(value, tools)
    except RequestError as e:
        raise RequestError(f"--{e}".replace("tool_choice", "tool-choice", 1),
                           param="--tool-choice") from None
    return choice


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
                       tool_choice=_choice(tool_choice, made))


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

    The question goes to ``input()`` as it is when asked (the kernel replaces it
    while a cell runs, with its input request); ``show`` puts what is asked about on
    screen first (the live step view in a notebook, a line in a terminal)."""

    def __init__(self, show: Callable[[ToolCall], None] | None = None) -> None:
        self.show = show

    def __call__(self, call: ToolCall) -> bool:
        from IPython.core.error import StdinNotImplementedError

        if self.show is not None:
            self.show(call)
        read = builtins.input
        asked = f"Run {views.call_text(call)}? [y/N] "
        question = asked
        answer = False
        try:
            for _ in range(_ASKS):
                said = read(question).strip().lower()
                if said in _YES or said in _NO:
                    answer = said in _YES
                    break
                question = f"Please answer y or n. {asked}"  # the call and its arguments
        except (StdinNotImplementedError, EOFError):
            raise RequestError("--approve asks Yes/No in the front end's input box, and this "
                               "one takes no input (a headless run such as nbclient or "
                               "papermill); run the cell in JupyterLab, Notebook, VS Code or a "
                               "terminal IPython, or without --approve", param="--approve") \
                from None
        return answer


# -- live view ------------------------------------------------------------------------------


class StepSink:
    """The loop's live output: the steps so far and the text streaming now.

    In a notebook (``display`` given) one output, updated in place and emptied at
    the end (the reply then shows everything); in a terminal (``write``) each step is
    printed once its calls are done and the text streams as in a plain reply; with
    neither, nothing is shown. Also a :class:`~gptmagic.notebook.streaming.Sink`, so
    each model call streams into it."""

    def __init__(self, display: Callable[..., Any] | None = None,
                 write: Callable[[str], Any] | None = None) -> None:
        self._display = display
        self._write = write
        self.handle: Any = None
        self.steps: list[Step] = []
        self.status = ""
        #: The call whose function runs now, if one does.
        self.running: ToolCall | None = None
        self.texts: dict[int, str] = {}
        self._shown_steps = 0  # steps a terminal has printed
        self._printed = 0  # characters of the text streaming now a terminal has printed

    @property
    def rich(self) -> bool:
        """Whether it shows rich output (a notebook), not text (a terminal)."""
        return self._display is not None

    @property
    def printed(self) -> int:
        """Characters a terminal has printed (0 in a notebook): the reply then adds its
        summary line alone, the steps and the answer being on screen already."""
        return 0 if self.rich else self._printed + self._shown_steps

    def show(self, steps: Sequence[Step], status: str, running: ToolCall | None = None
             ) -> None:
        """The loop is at ``status`` (``model call 2…``, ``running get_weather…``) with
        ``steps`` so far (the last one under way; ``running``: its call running now)."""
        self.steps, self.status = [s for s in steps if s.calls], status
        self.running = running
        if self.rich:
            self._redraw()

    def _redraw(self) -> None:
        assert self._display is not None
        data = views.live_bundle(self.steps, self.status, self.texts, self.running)
        if self.handle is None:
            self.handle = self._display(data, raw=True, display_id=True)
        else:
            self.handle.update(data, raw=True)

    def done(self, steps: Sequence[Step]) -> None:
        """Every call of ``steps`` has answered: a terminal prints those it has not yet."""
        with_calls = [s for s in steps if s.calls]
        if self.rich or len(with_calls) <= self._shown_steps:
            return
        new = with_calls[self._shown_steps:]
        self._out(views.steps_views(new, first=self._shown_steps + 1)[1] + "\n")
        self._shown_steps = len(with_calls)

    def asking(self, call: ToolCall, steps: Sequence[Step] = ()) -> None:
        """About to ask whether to run ``call`` of the last of ``steps``: show it (the
        question comes below, in the front end's input box)."""
        self.status = f"waiting for your answer: run {views.call_text(call)}?"
        self.running = None
        if self.rich:
            self.steps = [s for s in steps if s.calls] or self.steps
            self._redraw()
        else:
            self._out(f"the model asks to call {views.call_text(call)}\n")

    # Sink: the model call that streams now.
    def update(self, texts: Mapping[int, str], model: str, elapsed: float,
               reasoning: str | None = None) -> None:
        self.texts = dict(texts)
        if not self.rich:
            text = texts.get(0, "")
            self._out(text[self._printed:])
            self._printed = len(text)
            return
        self.status = f"model call {len(self.steps) + 1}… {model} · {elapsed:.1f} s"
        self.running = None
        self._redraw()

    def close(self) -> None:
        """One model call ended; the next starts afresh (the loop may go on)."""
        if not self.rich and self._printed:
            self._out("\n")
        self.texts = {}
        self._printed = 0

    def finish(self) -> None:
        """The loop ended: the live view goes away (the reply shows it all)."""
        if self.handle is not None:
            self.handle.update({"text/plain": ""}, raw=True)

    def _out(self, text: str) -> None:
        if self._write is not None and text:
            self._write(text)


# -- one cell's loop -----------------------------------------------------------------------


@dataclass
class Loop:
    """How a cell's loop went: its result (the last model call's, usage summed over the
    loop; stopped, what had come), the steps (every model call, the last included), the
    messages the thread keeps, and the stop, if any."""

    result: Result
    stopped: Interrupted | None = None

    @property
    def steps(self) -> list[Step]:
        return list(self.result.steps)

    @property
    def exchange(self) -> list[dict[str, Any]]:
        return list(self.result.exchange)


def run(portal: Portal, client: Client, out: Outgoing, opts: ToolOptions, *, model: str,
        provider: Provider, stream: bool, sink: Any, interval: float) -> Loop:
    """Run a cell's tool loop (:class:`~gptmagic.client.tools.ToolRun`): each model call
    on the portal, streamed into ``sink``; the functions and the approval question here,
    on the caller's thread.

    Kernel ▸ Interrupt (during a model call, a function or the question) keeps the
    steps done so far: the loop's result is then marked ``interrupted``, with the text
    that had come of the call under way. Stopped before the first call answered, it is
    a reply stopped as any other (:class:`~gptmagic.notebook.streaming.Interrupted`)."""
    if not isinstance(sink, StepSink):  # a caller that shows nothing live
        sink = StepSink()
    approval = Approval(show=lambda call: sink.asking(call, loop.steps)) if opts.approve \
        else None
    fixed = {k: v for k, v in out.params.items() if k not in ("tools", "tool_choice")}
    tools = [_watched(t, sink, lambda: loop) for t in opts.tools]
    # The prompt in the endpoint's own shape: chat's messages (image_url parts, a thread's
    # tool_calls), not their Responses items, which /chat/completions refuses.
    prompt = out.payload["messages"] if out.api == "chat" else out.input
    loop = ToolRun(tools, prompt, approve=approval, max_steps=opts.max_steps,
                   tool_choice=opts.tool_choice)

    def ask(messages: list[dict[str, Any]], params: dict[str, Any]) -> Result:
        sink.done(loop.steps)
        sink.show(loop.steps, f"model call {len(loop.steps) + 1}…")
        if out.api == "chat":
            step = Outgoing("chat", {"messages": messages}, {**fixed, **params}, out.schema)
        else:
            step = Outgoing(out.api, {**out.payload, "input": input_items(messages)},
                            {**fixed, **response_fields(params)}, out.schema)

        def make(on_delta: Callable[[int, str], None]) -> Any:
            return step.call(client, model=model, provider=provider, stream=stream,
                             on_delta=on_delta,
                             on_reasoning=lambda text: on_delta(REASONING, text))

        return stream_reply(portal, make, sink, model, interval)

    t0 = time.monotonic()
    try:
        result = loop.run(ask, run_coro=portal.run)
    except Interrupted as stop:  # during a model call: keep what had streamed of it
        if not loop.steps:
            raise  # as a reply stopped without tools
        return Loop(_partial(loop.partial(), stop.texts.get(0, ""), t0), stop)
    except ToolLoopInterrupted as stop:  # during a function or the approval question
        return Loop(_partial(stop.partial, "", t0), Interrupted({}, time.monotonic() - t0))
    finally:
        sink.finish()
    sink.done(result.steps)
    return Loop(result)


def _watched(tool: Tool, sink: StepSink, loop: Callable[[], ToolRun]) -> Tool:
    """``tool`` whose function first tells ``sink`` it is running (the live view)."""
    fn = tool.fn
    if fn is None:
        return tool

    def running(*args: Any, **kwargs: Any) -> Any:
        now = loop()
        sink.show(now.steps, f"running {tool.name}…", running=now.running)
        return fn(*args, **kwargs)

    return replace(tool, fn=running)


def _partial(result: Result, text: str, t0: float) -> Result:
    """A stopped loop's result: the text that had come of the call under way (kept in the
    exchange too, as a stopped reply's text is), and the time until the stop."""
    exchange = list(result.exchange)
    if text:
        exchange.append({"role": "assistant", "content": text})
    choice = replace(result.choices[0], text=text)
    return replace(result, choices=[choice], exchange=exchange,
                   timings=replace(result.timings, total=time.monotonic() - t0))


def with_steps(bundle: tuple[dict[str, Any], dict[str, Any]],
               loop: Loop) -> tuple[dict[str, Any], dict[str, Any]]:
    """A reply's view with the loop's steps above it (collapsed) and in its metadata."""
    data, meta = bundle
    steps = [s for s in loop.steps if s.calls]
    if steps:
        md, plain = views.steps_views(steps)
        data = {**data, "text/markdown": f"{md}\n\n{data['text/markdown']}",
                "text/plain": f"{plain}\n\n{data['text/plain']}"}
    inner = dict(meta.get("gptmagic") or {})
    inner["steps"] = views.steps_meta(loop.steps)
    return data, {**meta, "gptmagic": inner}
