"""``%%chat``, ``%%complete``, ``%%tokens``, ``%chat`` and ``%gptmagic``.

Thin glue over :mod:`gptmagic.session` and :mod:`gptmagic.cellviews`.

Options are parsed with IPython's ``magic_arguments``; every gptmagic error
becomes a one-paragraph ``UsageError`` (no traceback). Settings are traitlets
(``%config GptMagics.default_model = "gpt-4.1-nano"`` or ``c.GptMagics...`` in
an IPython profile) and can be changed with ``%gptmagic``.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Mapping
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, Dict, Unicode, observe

from gptmagic.client.config import APIS, get_profile
from gptmagic.core.defaults import DEFAULT_MAX_STEPS
from gptmagic.core.images import part_text
from gptmagic.core.messages import indented_markers
from gptmagic.errors import GptmagicError, StreamError
from gptmagic.notebook import cellviews
from gptmagic.notebook.images import read_images
from gptmagic.notebook.session import DryRun, Reply, Session, cell_key
from gptmagic.notebook.structured import schema_option
from gptmagic.notebook.tools import StepSink, tool_options

__all__ = ["GptMagics"]

# option -> (wire name, type, lower bound, upper bound)
_NUMERIC = {
    "temperature": ("temperature", float, 0.0, 2.0),
    "top_p": ("top_p", float, 0.0, 1.0),
    "max_tokens": ("max_tokens", int, 1, None),
    "n": ("n", int, 1, 128),
    "seed": ("seed", int, None, None),
    "presence_penalty": ("presence_penalty", float, -2.0, 2.0),
    "frequency_penalty": ("frequency_penalty", float, -2.0, 2.0),
    "top_logprobs": ("top_logprobs", int, 0, 20),
    "best_of": ("best_of", int, 1, 128),
    "logprobs_n": ("logprobs", int, 0, 20),
    # Not a body field: the client's deadline for the whole call (Client.chat's timeout=).
    "timeout": ("timeout", float, 0.1, None),
}

#: What ``%gptmagic api`` calls each endpoint.
_API_NAMES = {"chat": "Chat Completions API (chat)", "responses": "Responses API (responses)"}

_TIMEOUT_HELP = ("seconds for the whole call, retries and waits included (default 600); "
                 "a stream still running then stops and keeps its text")


def _flag(name: str) -> str:
    if name == "logprobs_n":
        return "--logprobs"
    return "-n" if name == "n" else "--" + name.replace("_", "-")


def _check(name: str, value: Any) -> Any:
    wire, typ, lo, hi = _NUMERIC[name]
    try:
        value = typ(value)
    except (TypeError, ValueError):
        kind = "a whole number" if typ is int else "a number"
        raise UsageError(f"{_flag(name)} must be {kind}, got {value!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"in {lo}..{hi}" if hi is not None else f"at least {lo}"
        raise UsageError(f"{_flag(name)} must be {rng}, got {value}")
    return value


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def _unescape(value: str) -> str:
    r"""``\n``, ``\t``, ``\r`` and ``\\`` in an option are the characters (``--stop "\n"``)."""
    return re.sub(r"\\([ntr\\])", lambda m: _ESCAPES[m.group(1)], value)


def _unquote(value: Any) -> Any:
    """magic_arguments keeps quotes (non-POSIX split): ``--system 'Be brief'``."""
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] in "'\"":
        return value[1:-1]
    return value


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as e:  # an unclosed quote
        raise UsageError(f"cannot read the options {line!r}: {e}") from None


def _parse(magic: Any, line: str) -> Any:
    try:
        args = parse_argstring(magic, line)
    except ValueError as e:  # shlex: an unclosed quote
        raise UsageError(f"cannot read the options {line!r}: {e}") from None
    for name, value in vars(args).items():
        setattr(args, name, _unquote(value))
    return args


class _KernelSink:
    """Live output in a Jupyter front end: one display, updated in place."""

    def __init__(self) -> None:
        self.handle: Any = None

    def update(self, texts: Mapping[int, str], model: str, elapsed: float,
               reasoning: str | None = None) -> None:
        from gptmagic.views import reply as views

        data = views.stream_bundle(texts, model=model, elapsed=elapsed, reasoning=reasoning)
        if self.handle is None:
            self.handle = display(data, raw=True, display_id=True)
        else:
            self.handle.update(data, raw=True)

    def close(self) -> None:
        if self.handle is not None:
            # The final answer is the cell's output; the live view goes away.
            self.handle.update({"text/plain": ""}, raw=True)


class _TerminalSink:
    """Live output in a terminal: print what is new as it arrives (choice 0)."""

    def __init__(self) -> None:
        self.printed = 0
        self.reasoning = False  # "reasoning…" is on screen

    def update(self, texts: Mapping[int, str], model: str, elapsed: float,
               reasoning: str | None = None) -> None:
        # The summary itself comes with the footer, once the reply is whole.
        if reasoning is not None and not self.reasoning and not any(texts.values()):
            sys.stdout.write(f"(reasoning… {model})\n")
            self.reasoning = True
        text = texts.get(0, "")
        sys.stdout.write(text[self.printed :])
        sys.stdout.flush()
        self.printed = len(text)

    def close(self) -> None:
        if self.printed:
            sys.stdout.write("\n")


def _chat_args(func: Any) -> Any:
    for dec in reversed([
        magic_arguments(),
        argument("--model", "-m", help="model or profile:model, or several separated by "
                                        "commas (side by side)"),
        argument("--profile", "-p", help="provider profile (see gptmagic.profiles()); "
                                         "model names are then taken whole"),
        argument("--key-env", help="name of the environment variable that holds the API key"),
        argument("--temperature", "-t"),
        argument("--top-p"),
        argument("--max-tokens"),
        argument("-n", help="number of choices"),
        argument("--stop", action="append", help="stop sequence (repeatable)"),
        argument("--seed"),
        argument("--presence-penalty"),
        argument("--frequency-penalty"),
        argument("--json", action="store_true", help="response_format json_object"),
        argument("--schema", help="a Pydantic model, TypedDict, dataclass or JSON-schema dict "
                                  "in the notebook: the reply is that JSON (strict), "
                                  "validated into _chat.parsed"),
        argument("--logprobs", action="store_true", help="return token logprobs"),
        argument("--top-logprobs", help="alternatives per token (implies --logprobs)"),
        argument("--system", "-s", help="system message for this thread"),
        argument("--thread", default=None, help="conversation thread (default: 'default')"),
        argument("--no-history", action="store_true", help="send this cell alone"),
        argument("--dry-run", action="store_true", help="show the request; send nothing"),
        argument("--no-stream", action="store_true"),
        argument("--no-fit", action="store_true", help="do not fit history to the window"),
        argument("--moderate", action="store_true", help="moderate input and reply"),
        argument("--timeout", help=_TIMEOUT_HELP),
        argument("--out", "-o", help="store the result in this variable"),
        argument("--api", help="endpoint: chat (Chat Completions) or responses (the "
                               "Responses API); default from the model, profile or settings"),
        argument("--reasoning-effort", help="none|minimal|low|medium|high|xhigh|max"),
        argument("--reasoning-summary", help="auto|concise|detailed (needs --api responses)"),
        argument("--verbosity", help="low|medium|high"),
        argument("--service-tier", help="auto|default|flex|scale|priority|fast"),
        argument("--cache-key", help="prompt_cache_key: requests sharing a prefix share it"),
        argument("--store", action="store_true", help="store the reply on the server; on "
                 "Responses a thread then chains with previous_response_id"),
        argument("--exact-count", action="store_true", help="with --dry-run: the prompt "
                 "count from OpenAI's server (POST /v1/responses/input_tokens)"),
        argument("--tools", help="functions in the notebook the model may call: f,g"),
        argument("--approve", action="store_true", help="with --tools: ask Yes/No before "
                 "each call"),
        argument("--max-steps", help="with --tools: at most N model calls in the loop "
                 f"(default {DEFAULT_MAX_STEPS})"),
        argument("--tool-choice", help="with --tools: auto|none|required|NAME"),
        argument("--detail", help="low|high|auto: detail of the cell's images that give none "
                                  "(![alt](cat.png){detail=low} sets one image's)"),
    ]):
        func = dec(func)
    return func


@magics_class
class GptMagics(Magics):
    """The gptmagic magics. Settings are traitlets: ``%config GptMagics``."""

    default_model = Unicode(None, allow_none=True, help="model used when a cell names none").tag(
        config=True)
    profile = Unicode(None, allow_none=True, help="provider profile used by default").tag(
        config=True)
    defaults = Dict(help="default option values, e.g. {'temperature': 0}").tag(config=True)
    stream = Bool(True, help="stream replies as they arrive").tag(config=True)
    api = Unicode(None, allow_none=True, help="endpoint %%chat uses when neither the cell, "
                  "model_api nor the profile names one: 'chat' (default) or 'responses'").tag(
        config=True)
    model_api = Dict(help="endpoint per model-name pattern, first match wins, e.g. "
                          "{'gpt-5*': 'responses'}").tag(config=True)
    log_calls = Bool(True, help="log every %%chat / %%complete reply to the call log "
                     "(gptmagic.log(), %chat log); GPTMAGIC_LOG=0 in the environment, or "
                     "%gptmagic log off, turns it off").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self.session = Session()
        self.session.log_calls = self.session.log_calls and self.log_calls
        self.cell_id: str | None = None
        #: The pre_run_cell hook that feeds ``cell_id`` (set by the extension's load).
        self.pre_run_cell_hook: Any = None

    @observe("log_calls")
    def _log_changed(self, change: Any) -> None:
        if getattr(self, "session", None) is not None:  # config is applied before __init__ ends
            self.session.log_calls = bool(change["new"])

    # -- helpers -------------------------------------------------------------

    def _show_partial(self, error: GptmagicError) -> None:
        """A stream cut short (the engine died, the connection broke) keeps its text on screen.

        The live view goes away when a cell ends; the text that had arrived is shown
        again above the error, which says why it stopped. A terminal printed it already.
        """
        partial = getattr(error, "partial", None)
        if getattr(partial, "steps", None):  # a tool loop: the steps done (functions ran)
            self._show_steps(partial, error)
            return
        text = getattr(partial, "text", "") if isinstance(error, StreamError) else ""
        if text:  # the work kept is in _chat, as an interrupted reply's is
            self._user_ns["_chat"] = Reply(text, [], partial, None, {"partial": True},
                                           note=str(error))
        if text and getattr(self.shell, "kernel", None) is not None:
            from gptmagic.views.reply import escape_markdown

            display({"text/plain": text,
                     "text/markdown": escape_markdown(text) + "\n\n*(cut short: see below)*"},
                    raw=True)

    def _show_steps(self, partial: Any, error: GptmagicError) -> None:
        """A tool loop whose model call failed after steps were done: the steps stay on
        screen above the error and in ``_chat.steps``; the thread keeps none of it."""
        self._user_ns["_chat"] = Reply(partial.text, [], partial, None, {"partial": True},
                                       note=str(error))
        if getattr(self.shell, "kernel", None) is not None:
            from gptmagic.views.steps import steps_views

            md, plain = steps_views([s for s in partial.steps if s.calls])
            display({"text/plain": plain, "text/markdown": md + "\n\n*(then the model call "
                     "failed: see below)*"}, raw=True)

    @property
    def _user_ns(self) -> dict[str, Any]:
        if self.shell is None:
            raise UsageError("gptmagic's magics need an IPython shell (%load_ext gptmagic)")
        ns: dict[str, Any] = self.shell.user_ns
        return ns

    def _sink(self) -> Any:
        return _KernelSink() if getattr(self.shell, "kernel", None) is not None else _TerminalSink()

    def _step_sink(self) -> StepSink:
        if getattr(self.shell, "kernel", None) is not None:
            return StepSink(display=display)
        return StepSink(write=lambda text: (sys.stdout.write(text), sys.stdout.flush()))

    def _params(self, args: Any, names: tuple[str, ...]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name in names:
            value = getattr(args, name, None)
            if value is None:
                value = self.defaults.get(name)
            if value is not None:
                params[_NUMERIC[name][0]] = _check(name, value)
        return params

    def _finish(self, reply: Reply | DryRun, args: Any, sink: Any) -> Reply | DryRun:
        if getattr(args, "out", None):
            if not args.out.isidentifier():
                raise UsageError(f"--out needs a Python variable name, got {args.out!r}")
            self._user_ns[args.out] = reply
        if isinstance(reply, Reply):
            self._user_ns["_chat"] = reply
            if (isinstance(sink, _TerminalSink | StepSink) and sink.printed and reply.bundle
                    and reply.footer):
                data, meta = reply.bundle  # the text is on screen already: show the rest
                reply.bundle = ({**data, "text/plain": reply.footer}, meta)
            reply.heatmaps, shown = cellviews.heatmaps_for(reply)
            reply.heatmap = next(iter(reply.heatmaps.values()), None)
            cellviews.show_after_cell(self.shell, shown)
        elif isinstance(reply, DryRun) and (isinstance(sink, _KernelSink) or (
                isinstance(sink, StepSink) and sink.rich)):
            # In a terminal the dry run's own table already has the counts.
            reply.counter = cellviews.counter_for_request(reply.request,
                                                          note=reply.counter_note,
                                                          tools=reply.tools)
            cellviews.show_after_cell(self.shell, [reply.counter])
        return reply

    # -- %%chat / %chat --------------------------------------------------------

    @_chat_args
    @line_cell_magic
    def chat(self, line: str, cell: str | None = None) -> Any:
        """Chat with a model: ``%%chat [options]`` + messages in the cell.

        As a line magic: ``%chat history|reset|threads|drop-stale [--thread T]``,
        ``%chat keep [--thread T]``
        (add the reply you stopped to its thread: the cell stopped last, or thread T's own),
        ``%chat fork NEW [--from T] [--turn N]``,
        ``%chat log [-n N] [--search TEXT] [--model M]`` (the last logged calls).
        """
        if cell is None:
            return self._chat_command(line)
        try:
            args = _parse(self.chat, line)
            if args.exact_count and not args.dry_run:
                raise UsageError("--exact-count goes with --dry-run: a reply's usage has the "
                                 "exact prompt count already")
            read = read_images(cell, self._user_ns, detail=args.detail)
            params = self._params(args, ("temperature", "top_p", "max_tokens", "n", "seed",
                                         "presence_penalty", "frequency_penalty", "top_logprobs",
                                         "timeout"))
            if args.stop:
                params["stop"] = [_unescape(v) for v in args.stop]
            if args.json and not args.schema:
                params["response_format"] = {"type": "json_object"}
            schema = schema_option(args.schema, self._user_ns, json_mode=args.json) \
                if args.schema else None
            if args.logprobs or "top_logprobs" in params:
                params["logprobs"] = True
            models = [m.strip() for m in (args.model or self.default_model or "").split(",")
                      if m.strip()] or [None]
            tools = tool_options(args.tools, self._user_ns, approve=args.approve,
                                 max_steps=args.max_steps, tool_choice=args.tool_choice)
            sink = self._sink() if tools is None else self._step_sink()
            reply = self.session.chat(
                read.messages,
                key=cell_key(self.cell_id, line + "\n" + cell),
                models=models, params=params,
                thread=None if args.no_history else (args.thread or "default"),
                system=args.system, profile=args.profile, default_profile=self.profile,
                key_env=args.key_env, dry_run=args.dry_run,
                stream=self.stream and not args.no_stream and len(models) == 1,
                fit=not args.no_fit, moderate=args.moderate, sink=sink,
                cell_note=indented_markers(cell), api=args.api,
                api_defaults=(dict(self.model_api), self.api),
                options={"reasoning_effort": args.reasoning_effort,
                         "reasoning_summary": args.reasoning_summary,
                         "verbosity": args.verbosity, "service_tier": args.service_tier,
                         "cache_key": args.cache_key, "store": args.store},
                exact_count=args.exact_count, schema=schema, tools=tools,
                images=read.images,
            )
            return self._finish(reply, args, sink)
        except GptmagicError as e:
            self._show_partial(e)
            raise UsageError(str(e)) from None
        except KeyboardInterrupt:  # stopped before anything streamed: one line, no traceback
            raise UsageError("stopped (Kernel ▸ Interrupt) before a reply arrived") from None

    def _chat_command(self, line: str) -> Any:
        argv = _split(line)
        if not argv:
            raise UsageError("%chat needs a command: history, keep, drop-stale, reset, threads, "
                             "fork or log (use %%chat for a message)")
        cmd, rest = argv[0], argv[1:]
        if cmd == "log":
            return self._show_log(rest)
        opts = _options(rest, {"--thread", "--from", "--turn", "--model"})
        thread = opts.get("--thread", "default")
        try:
            if cmd == "history":
                data, meta = self.session.history(thread, opts.get("--model") or
                                                  self.default_model)
                display(data, raw=True, metadata=meta)
                return None
            if cmd == "drop-stale":
                th = self.session.threads.existing(thread)
                stale = th.stale()
                n = th.drop_stale()
                print(f"thread {thread!r}: {n} turn(s) dropped, from turn {stale[0]} on "
                      "(answered against an older version of what came before them)" if n
                      else f"thread {thread!r}: no stale turns")
                return None
            if cmd == "keep":
                print(self.session.keep(opts.get("--thread")))
                return None
            if cmd == "reset":
                n = self.session.threads.reset(thread)
                print(f"thread {thread!r}: {n} turn(s) forgotten")
                return None
            if cmd == "threads":
                for name in self.session.threads.names():
                    print(f"{name}: {len(self.session.threads.get(name).turns)} turn(s)")
                return None
            if cmd == "fork":
                if not opts.get("_args"):
                    raise UsageError("%chat fork NEW [--from THREAD] [--turn N]")
                turn = opts.get("--turn")
                if turn is not None and not turn.isdigit():
                    raise UsageError(f"--turn must be a whole number, got {turn!r}")
                new = self.session.threads.fork(opts.get("--from", "default"), opts["_args"][0],
                                                upto=int(turn) if turn else None)
                print(f"thread {new.name!r} forked with {len(new.turns)} turn(s); "
                      f"use %%chat --thread {new.name}")
                return None
        except GptmagicError as e:
            raise UsageError(str(e)) from None
        raise UsageError(f"unknown %chat command {cmd!r}; expected history, keep, drop-stale, "
                         "reset, threads, fork, log")

    def _show_log(self, argv: list[str]) -> None:
        """``%chat log [-n N] [--search TEXT] [--model M]``: the last logged calls."""
        from gptmagic.eval.calllog import log
        from gptmagic.views.calllog import log_table

        opts = _options(argv, {"-n", "--search", "--model"})
        if opts["_args"]:
            raise UsageError(f"%chat log: unexpected {opts['_args'][0]!r}; usage: %chat log "
                             "[-n N] [--search TEXT] [--model M]")
        n = opts.get("-n", "10")
        if not n.isdigit() or int(n) < 1:
            raise UsageError(f"%chat log: -n must be a whole number >= 1, got {n!r}")
        try:
            df = log(search=opts.get("--search"), model=opts.get("--model"), limit=int(n),
                     cache=self.session.log_cache)
        except GptmagicError as e:
            raise UsageError(str(e)) from None
        data = log_table(df, logging=self.session.log_calls)
        if getattr(self.shell, "kernel", None) is None:
            print(data["text/plain"])
        else:
            display(data, raw=True)

    # -- %%complete ------------------------------------------------------------------

    @magic_arguments()
    @argument("--model", "-m", help="model or profile:model")
    @argument("--profile", "-p", help="provider profile; the model name is then taken whole")
    @argument("--key-env", help="name of the environment variable that holds the API key")
    @argument("--max-tokens")
    @argument("--temperature", "-t")
    @argument("--top-p")
    @argument("-n", help="number of choices")
    @argument("--best-of", help="server-side candidates; the best n are returned")
    @argument("--stop", action="append", help="stop sequence (repeatable)")
    @argument("--echo", action="store_true", help="return the prompt with the completion")
    @argument("--logprobs", dest="logprobs_n", help="top alternatives per token (0..20)")
    @argument("--seed")
    @argument("--presence-penalty")
    @argument("--frequency-penalty")
    @argument("--resample", help="sample up to K times; keep samples that end in 'stop'")
    @argument("--marker", help="insertion marker splitting prompt and suffix (default [insert])")
    @argument("--dry-run", action="store_true", help="show the request; send nothing")
    @argument("--no-stream", action="store_true")
    @argument("--moderate", action="store_true", help="moderate input and reply")
    @argument("--timeout", help=_TIMEOUT_HELP)
    @argument("--out", "-o", help="store the result in this variable")
    @cell_magic
    def complete(self, line: str, cell: str) -> Any:
        """Legacy completion of the cell's text: ``%%complete [options]``.

        ``[insert]`` in the cell splits it into prompt and suffix (insertion).
        """
        try:
            args = _parse(self.complete, line)
            params = self._params(args, ("temperature", "top_p", "max_tokens", "n", "seed",
                                         "presence_penalty", "frequency_penalty", "best_of",
                                         "logprobs_n", "timeout"))
            if args.stop:
                params["stop"] = [_unescape(v) for v in args.stop]
            if args.echo:
                params["echo"] = True
            resample = None
            if args.resample is not None:
                if not str(args.resample).isdigit() or int(args.resample) < 1:
                    raise UsageError(f"--resample must be a whole number >= 1, "
                                     f"got {args.resample!r}")
                resample = int(args.resample)
            sink = self._sink()
            # IPython hands a cell magic its body with a trailing newline the user
            # never typed; for a completion prompt that newline changes the answer.
            if cell.endswith("\n"):
                cell = cell[:-1]
            reply = self.session.complete(
                cell, model=args.model or self.default_model, params=params,
                profile=args.profile, default_profile=self.profile, key_env=args.key_env,
                marker=args.marker, resample=resample, dry_run=args.dry_run,
                stream=self.stream and not args.no_stream and not resample,
                moderate=args.moderate, sink=sink)
            return self._finish(reply, args, sink)
        except GptmagicError as e:
            self._show_partial(e)
            raise UsageError(str(e)) from None
        except KeyboardInterrupt:  # stopped before anything streamed: one line, no traceback
            raise UsageError("stopped (Kernel ▸ Interrupt) before a reply arrived") from None

    # -- %%tokens / %tokens -------------------------------------------------------------

    @magic_arguments()
    @argument("--model", "-m", help="model or tiktoken encoding (default: the magics' model)")
    @argument("--compare", "-c", help="a second model or encoding for the token view")
    @argument("--max-tokens", type=int, help="completion budget for the cost estimate")
    @argument("--exact-count", action="store_true", help="also the prompt count from OpenAI's "
              "server (POST /v1/responses/input_tokens), for a hosted OpenAI model")
    @line_cell_magic
    def tokens(self, line: str, cell: str | None = None) -> Any:
        """Count before sending: ``%%tokens [-m MODEL] [--compare M2]`` shows the cell's
        messages (``%%chat`` grammar) in a token counter and their text cut into
        tokens; ``%tokens`` alone gives a live counter to type into. With
        ``--exact-count`` the server's own count is in the counter's note (its table
        stays the offline estimate) and in ``counter.exact_count``."""
        from gptmagic.notebook.widgets import token_counter, token_view

        try:
            args = _parse(self.tokens, line)
            model = args.model or self.default_model
            if cell is None:
                if args.exact_count:
                    raise UsageError("--exact-count counts a cell's messages: use %%tokens")
                return token_counter(model=model, max_tokens=args.max_tokens)
            messages = read_images(cell, self._user_ns).messages
            counter = token_counter(messages, model=model, max_tokens=args.max_tokens)
            text = "\n\n".join(part_text(m.get("content")) for m in messages)
            if args.exact_count:
                exact, why = self.session.exact_count(messages, model,
                                                      default_profile=self.profile)
                counter.exact_count = exact
                said = (f"exact prompt tokens: {exact:,} ({why}: POST /v1/responses/"
                        f"input_tokens); the count above is the offline estimate"
                        if exact is not None else why)
                # The counter shows its note in every view (widget, HTML, text).
                counter.data = {**counter.data, "note": "; ".join(
                    x for x in (counter.data.get("note"), said) if x)}
            cellviews.show_after_cell(self.shell, [token_view(text, model=counter.model,
                                                              compare=args.compare)])
            return counter
        except GptmagicError as e:
            raise UsageError(str(e)) from None

    # -- %gptmagic ------------------------------------------------------------------

    @line_magic
    def gptmagic(self, line: str) -> None:
        """Settings: ``%gptmagic``, ``%gptmagic model M``, ``%gptmagic profile P``,
        ``%gptmagic api responses``, ``%gptmagic log off`` (stop logging replies),
        ``%gptmagic log keep N`` (the call log keeps the last N calls),
        ``%gptmagic set temperature=0 max_tokens=200``, ``%gptmagic unset temperature``;
        ``%gptmagic models [--provider P]`` lists models, prices and shutdown dates."""
        argv = _split(line)
        if argv[:1] == ["models"]:
            return self._models(argv[1:])
        if not argv:
            print(f"default model: {self.default_model or '(automatic)'}\n"
                  f"profile: {self.profile or '(automatic)'}\n"
                  f"stream: {self.stream}\n"
                  f"log: {'on' if self.session.log_calls else 'off'} (keeps the last "
                  f"{self.session.log_keep:,} calls)\n"
                  f"api: {self.api or 'chat'}"
                  + (f" (by model: {dict(self.model_api)})" if self.model_api else "") + "\n"
                  f"defaults: {dict(self.defaults) or '{}'}\n"
                  f"threads: {', '.join(self.session.threads.names()) or 'none'}")
            return
        cmd, rest = argv[0], argv[1:]
        if cmd in ("model", "profile") and len(rest) == 1:
            if cmd == "profile":
                try:
                    get_profile(rest[0])
                except GptmagicError as e:
                    raise UsageError(str(e)) from None
            setattr(self, "default_model" if cmd == "model" else "profile", rest[0])
            return
        if cmd == "api" and not rest:
            print(self._endpoint_said())
            return
        if cmd == "api" and len(rest) == 1:
            if rest[0] not in APIS:
                raise UsageError(f"%gptmagic api: expected {' or '.join(APIS)}, got {rest[0]!r}")
            before, self.api = self.api or "chat", rest[0]
            other = "chat" if rest[0] == "responses" else "responses"
            print(f"%%chat now uses the {_API_NAMES[rest[0]]} by default (was {before}), "
                  "unless a cell's --api, a model_api pattern or the profile's api says "
                  f"otherwise; %gptmagic api {other} switches back"
                  if before != rest[0] else f"%%chat already uses {rest[0]} by default")
            return
        if cmd == "log" and rest in (["on"], ["off"]):
            self.log_calls = rest == ["on"]
            print("%%chat and %%complete replies are logged (gptmagic.log(), %chat log)"
                  if self.log_calls else "replies are no longer logged; %gptmagic log on "
                  "logs them again")
            return
        if cmd == "log" and len(rest) == 2 and rest[0] == "keep":
            if not rest[1].isdigit() or int(rest[1]) < 1:
                raise UsageError(f"%gptmagic log keep: expected a whole number >= 1 of calls "
                                 f"to keep, got {rest[1]!r}")
            self.session.log_keep = int(rest[1])
            print(f"the call log keeps the last {self.session.log_keep:,} calls (older ones "
                  "go as new ones are logged)")
            return
        if cmd == "stream" and rest in (["on"], ["off"]):
            self.stream = rest == ["on"]
            return
        if cmd == "set" and rest:
            new = dict(self.defaults)
            for item in rest:
                key, sep, value = item.partition("=")
                key = key.strip().replace("-", "_")
                if not sep or key not in _NUMERIC:
                    raise UsageError(f"%gptmagic set: expected name=value with a name from "
                                     f"{', '.join(sorted(_NUMERIC))}; got {item!r}")
                new[key] = _check(key, value)
            self.defaults = new
            return
        if cmd == "unset" and rest:
            self.defaults = {k: v for k, v in self.defaults.items() if k not in rest}
            return
        raise UsageError("usage: %gptmagic [model M | profile P | api chat|responses | "
                         "stream on|off | log on|off | log keep N | set name=value ... | "
                         "unset name ... | models [--provider P]]")

    def _endpoint_said(self) -> str:
        """``%gptmagic api``: the default endpoint, where it was set, and what comes first."""
        if self.api is None:
            said = "chat (built in: GptMagics.api is not set)"
        elif self.config.get("GptMagics", {}).get("api") == self.api:
            said = f"{self.api} (from %config GptMagics.api or an IPython profile's config)"
        else:
            said = f"{self.api} (set by %gptmagic api)"
        patterns = f" ({dict(self.model_api)})" if self.model_api else ""
        return (f"%%chat's default endpoint: {said}, unless a cell's --api, a model_api "
                f"pattern{patterns} or the profile's api says otherwise; "
                "%gptmagic api chat|responses changes it")

    def _models(self, argv: list[str]) -> None:
        from gptmagic.views.models import models_text

        opts = _options(argv, {"--provider", "--profile", "-p"})
        if opts["_args"]:
            raise UsageError(f"%gptmagic models: unexpected {opts['_args'][0]!r}; "
                             "usage: %gptmagic models [--provider P]")
        provider = opts.get("--provider") or opts.get("--profile") or opts.get("-p")
        try:
            rows, note = self.session.portal.run(self.session.client.model_table(
                provider=provider or self.profile or None))
        except GptmagicError as e:
            raise UsageError(str(e)) from None
        print(models_text(rows, note))


def _options(argv: list[str], known: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"_args": []}
    it = iter(argv)
    for tok in it:
        if tok in known:
            value = next(it, None)
            if value is None:
                raise UsageError(f"{tok} needs a value")
            out[tok] = value
        elif tok.startswith("--"):
            raise UsageError(f"unknown option {tok!r}; expected one of {', '.join(sorted(known))}")
        else:
            out["_args"].append(tok)
    return out
