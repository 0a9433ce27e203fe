"""What a ``%%chat`` / ``%%complete`` cell does, without IPython.

:class:`Session` keeps the threads of one kernel and runs a cell: it builds
the request (history + the cell's messages, fitted to the context window),
streams the reply into a :class:`Sink` (the magic's live output), records
the turn, prices it, and returns a :class:`Reply` that renders itself. The
magics module only parses options and shows what this returns.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gptmagic.catalog.context import check_window, fit_messages, may_exceed
from gptmagic.catalog.models import model_info
from gptmagic.catalog.pricing import cost_of
from gptmagic.catalog.tokens import TokenCount
from gptmagic.client.config import Provider, model_name, refuse_misrouted, resolve
from gptmagic.client.facade import count_with, get_client
from gptmagic.client.portal import Portal, get_portal
from gptmagic.core.images import ImageRef, part_text
from gptmagic.core.structured import Schema, with_format
from gptmagic.core.threads import Thread, ThreadStore, Turn, describe_stale
from gptmagic.core.types import Result, Usage
from gptmagic.errors import APIStatusError, GptmagicError, RequestError, StreamError
from gptmagic.eval.calllog import KEEP, LoggedCall, write
from gptmagic.eval.store import CacheWarning, Store
from gptmagic.notebook import dry_runs
from gptmagic.notebook.apis import Outgoing, api_options, choose_api, chosen_by, outgoing
from gptmagic.notebook.images import history_views, refuse_text_only, thread_images
from gptmagic.notebook.replies import DryRun, Reply, price_parts
from gptmagic.notebook.streaming import (
    REASONING,
    Interrupted,
    NullSink,
    Sink,
    partial_result,
    stopped_reasoning,
    stream_reply,
)
from gptmagic.notebook.tools import Loop, ToolOptions, tool_params, with_steps
from gptmagic.notebook.tools import run as run_tools
from gptmagic.views import reply as display
from gptmagic.views.steps import message_text

if TYPE_CHECKING:
    from gptmagic.client.client import Client

__all__ = ["DryRun", "Reply", "Session", "Sink", "cell_key"]


def _lines(*notes: str | None) -> str | None:
    """Notes shown under a reply, one a line; None when there are none."""
    return "\n".join(x for x in notes if x) or None


def _dollars(cost: Any) -> float | None:
    """A cost's total in dollars, for the call log (None: not priced)."""
    total = getattr(cost, "total", None)
    return None if total is None else float(total)


def cell_key(cell_id: str | None, source: str) -> str:
    """A turn's key: Jupyter's cell id, else a hash of the cell's whole source."""
    return cell_id or "src-" + hashlib.sha1(source.encode()).hexdigest()[:16]


@dataclass
class _Stopped:
    """A chat reply stopped by the user, kept aside until ``%chat keep`` adds it."""

    thread: str
    #: None when nothing came that could be kept (``why`` says so).
    turn: Turn | None
    #: The thread's turns when it stopped: keep refuses once the thread moved on.
    turns: list[Turn]
    why: str | None = None


def _provider(profile: str | None, key_env: str | None, model: str | None,
              default: str | None = None) -> tuple[Provider, str]:
    """``-p`` is ``profile`` (the model name taken whole); ``%gptmagic profile`` is
    ``default``, which a ``-m profile:model`` overrides (:func:`resolve`)."""
    prov, chosen = resolve(profile, model, default=default)
    if key_env:
        from dataclasses import replace

        if prov.kind == "local" and profile is None:
            # --key-env names a hosted key: without a profile, it is OpenAI's.
            prov, chosen = resolve("openai", chosen)
        prov = replace(prov, api_key_env=key_env)
    if model:
        refuse_misrouted(prov, chosen, model, named=profile is not None or (
            ":" in model and prov.name == model.partition(":")[0]))
    return prov, chosen


def _where(prov: Provider) -> str:
    """Where a stored response lives, as a turn records it: the profile and its base URL."""
    return f"{prov.name} at {prov.base_url}" if prov.base_url else prov.name


def _elsewhere(th: Thread, stored_at: str | None, at: str) -> str:
    """Why a ``--store`` cell was not chained: the last turn is stored on another
    profile (:func:`_where`'s ``"name at URL"``), even one at the same URL."""
    there = stored_at or "an unrecorded provider"
    same = stored_at is not None and stored_at.partition(" at ")[2] == at.partition(" at ")[2]
    other = (f"profile {at.partition(' at ')[0]}, a different profile at the same URL "
             "(its key may not reach that response)" if same else f"{at}, which never saw it")
    return (f"not chained: the last turn of thread {th.name!r} is stored on {there}, and "
            f"this cell went to {other}; sent the whole history")


def _empty(th: Thread, result: Result) -> str:
    """Why a reply with no text joined no thread, and what to change."""
    why = ""
    if result.choices and result.choices[0].refusal:
        return f"the model refused, so nothing was added to thread {th.name!r}"
    if result.status == "incomplete" or result.finish_reason == "length":
        used = (" (reasoning used them all)" if result.usage is not None
                and result.usage.reasoning_tokens else "")
        why = f": it stopped at the token limit{used}; raise --max-tokens"
    return f"the reply is empty, so nothing was added to thread {th.name!r}{why}"


def _chain_broken(error: APIStatusError) -> bool:
    """A chained request refused because the server does not know the response it
    continues: 404, or a 400 about ``previous_response_id``."""
    said = f"{error} {error.body}".lower()
    return error.status_code == 404 or (error.status_code == 400 and "previous_response" in said)


def _broken_chain(th: Thread | None, chain: str, error: APIStatusError) -> str:
    name = repr(th.name) if th is not None else "this"
    return (f"thread {name} is chained to stored response {chain} (previous_response_id), "
            f"which the server does not know ({error}): it may have expired or been deleted, "
            "or the server keeps no responses. Run the cell without --store to send the whole "
            "history instead; a later --store cell starts a new chain from that turn.")


def logging_default() -> bool:
    """Whether the magics log their calls unless told: yes, but ``GPTMAGIC_LOG=0`` (or
    ``off``, ``false``, ``no``) says no."""
    return os.environ.get("GPTMAGIC_LOG", "").strip().lower() not in ("0", "off", "false",
                                                                        "no")


def keep_default() -> int:
    """How many calls the log keeps: ``GPTMAGIC_LOG_KEEP`` (a whole number >= 1), else
    :data:`~gptmagic.eval.calllog.KEEP`."""
    text = os.environ.get("GPTMAGIC_LOG_KEEP", "").strip().replace("_", "")
    if not text:
        return KEEP
    if not text.isdigit() or int(text) < 1:
        warnings.warn(f"gptmagic: GPTMAGIC_LOG_KEEP={text!r} is not a whole number >= 1; "
                      f"the call log keeps its default, the last {KEEP:,} calls",
                      stacklevel=2)
        return KEEP
    return int(text)


class Session:
    """The magics' state for one kernel: threads and the streaming loop.

    ``client`` sends the requests and ``portal`` runs them off the caller's
    thread; by default the shared ones of :mod:`gptmagic.client.facade`.
    Every reply, and every call that failed (with its error), is logged to the call log
    (:mod:`gptmagic.eval.calllog`) in ``log_cache`` (default: the runs' cache file) while
    ``log_calls`` is true.
    """

    def __init__(self, client: Client | None = None, *, portal: Portal | None = None) -> None:
        self.threads = ThreadStore()
        #: Whether replies are logged (``%gptmagic log on|off``, ``GPTMAGIC_LOG=0``).
        self.log_calls = logging_default()
        #: How many calls the log keeps, the oldest dropped as new ones are logged
        #: (``%gptmagic log keep N``, ``GPTMAGIC_LOG_KEEP``).
        self.log_keep = keep_default()
        #: The file the call log is in (None: ``$GPTMAGIC_CACHE`` or the default cache).
        self.log_cache: str | None = None
        self._log_warned = False
        self.stream_interval = 0.1  # seconds between live updates
        #: Each thread's last stopped reply, for ``%chat keep --thread T``.
        self.stops: dict[str, _Stopped] = {}
        #: The thread whose cell was stopped last (what ``%chat keep`` alone keeps).
        self.last_stopped: str | None = None
        self._client = client
        self._portal = portal

    @property
    def client(self) -> Client:
        """The client this session sends with (the shared one unless one was given)."""
        return self._client if self._client is not None else get_client()

    @property
    def portal(self) -> Portal:
        return self._portal if self._portal is not None else get_portal()

    def count_tokens(self, value: Any, model: str, *, tools: Any = None,
                     breakdown: bool = True) -> TokenCount:
        """Count for ``model``: tiktoken here, or the embedded engine through the client."""
        return count_with(lambda: self.client, self.portal, value, model, tools=tools,
                          breakdown=breakdown)

    # -- chat ------------------------------------------------------------------

    def chat(
        self,
        cell_messages: list[dict[str, Any]],
        *,
        key: str,
        models: Sequence[str | None],
        params: dict[str, Any],
        thread: str | None = "default",
        system: str | None = None,
        profile: str | None = None,
        key_env: str | None = None,
        default_profile: str | None = None,
        dry_run: bool = False,
        stream: bool = True,
        fit: bool = True,
        moderate: bool = False,
        sink: Sink | None = None,
        cell_note: str | None = None,
        api: str | None = None,
        api_defaults: tuple[Mapping[str, str], str | None] = ({}, None),
        options: Mapping[str, Any] | None = None,
        exact_count: bool = False,
        schema: Schema | None = None,
        tools: ToolOptions | None = None,
        images: Sequence[ImageRef] = (),
    ) -> Reply | DryRun:
        """Run one chat cell. ``thread=None`` sends the cell alone (no history).

        ``profile`` (``-p``) takes every model name whole; ``default_profile``
        (``%gptmagic profile``) applies to names that do not start with a
        profile (``-m vllm:qwen``). ``cell_note`` is what the cell's parsing has to
        say (indented markers), shown with the reply or the dry run.

        ``api`` (``--api``: ``"chat"`` or ``"responses"``) is chosen, when None, by
        ``api_defaults`` (patterns of model names to an endpoint, and the magics'
        default) and the profile's ``api`` (:func:`~gptmagic.notebook.apis.choose_api`).
        ``params`` stay in chat's names (:func:`~gptmagic.notebook.apis.outgoing`
        translates them); ``options`` are the reasoning, verbosity, tier, cache and store
        options (:func:`~gptmagic.notebook.apis.api_options`). With ``store`` a thread
        whose last turn was stored sends only the cell's messages, chained with
        ``previous_response_id``. ``exact_count`` asks a hosted OpenAI model's server
        for a dry run's prompt count. ``schema`` sends its strict format (in chat's
        ``response_format``, translated for Responses) and validates the reply into
        ``Reply.parsed`` (:mod:`gptmagic.core.structured`). ``tools`` (``--tools``) runs
        the tool loop (:mod:`gptmagic.notebook.tools`) instead of one call.
        ``images`` are the cell's image references (read:
        :func:`~gptmagic.notebook.images.read_images`), named by line in a refusal and
        labelled in a dry run and the history.

        A thread is kept once a turn is recorded in it (a refused cell or a dry run
        leaves none), and a reply with no text is recorded in none: its note says why."""
        sink = sink or NullSink()
        th: Thread | None = self.threads.draft(thread) if thread else None
        if th is not None and system is not None:
            th.system = system or None
        history = th.context_for(key) if th else (
            [{"role": "system", "content": system}] if system else [])
        messages = history + cell_messages
        prov, model = _provider(profile, key_env, models[0], default_profile)
        refuse_text_only([prov.kind, *(_provider(profile, key_env, m, default_profile)[0].kind
                                       for m in models[1:])], messages, images, th)
        given = api
        api = choose_api(api, model=model, profile_api=prov.api, model_api=api_defaults[0],
                         default=api_defaults[1])
        if schema is not None:
            params = with_format(params, schema, "chat")
        params = {**params, **api_options(api, **(options or {}), chosen=chosen_by(
            given, model=model, profile=prov.name, profile_api=prov.api,
            model_api=api_defaults[0], default=api_defaults[1]))}
        note = _lines(cell_note, self._stale_in_context(th, key))
        max_tokens = params.get("max_tokens") or params.get("max_completion_tokens")
        at = _where(prov)
        chain = None
        if th is not None and api == "responses" and params.get("store"):
            chain = th.chain_from(key, at)
            if len(models) > 1 and any(_where(_provider(profile, key_env, m, default_profile)[0])
                                       != at for m in models[1:]):
                chain = None  # the others never saw that response
            prev = th.stored_before(key)
            if chain is None and prev is not None and prev.stored_at != at:
                note = _lines(note, _elsewhere(th, prev.stored_at, at))
        if fit and history and not chain and model_info(model).context_window:
            fitted = fit_messages(messages, model, max_tokens=max_tokens or 256,
                                  count_tokens=self.count_tokens)
            if fitted.changed:
                messages = fitted.messages
                note = _lines(note, fitted.note)
            elif not fitted.fits:
                raise RequestError(fitted.note, param="--max-tokens")
        if tools is not None:
            params = {**params, **tool_params(tools, models=len(models), n=params.get("n"))}
        out = outgoing(api, messages, cell_messages, params, model=model, chain=chain,
                       hosted=prov.kind in ("openai", "azure"), schema=schema)
        if dry_run:
            dry = dry_runs.chat_dry_run(self, prov, model, out, messages, stream, note,
                                        exact_count=exact_count,
                                        tools=params.get("tools"))
            dry.images = (*thread_images(th), *images)
            return dry
        self._check_window(prov, model, messages, max_tokens)
        prov.api_key()  # asked here, on the caller's thread, never inside the request
        stopped: Interrupted | None = None
        loop: Loop | None = None
        mod_lines = []
        if moderate:
            mod_lines.append(self._moderate(prov, "\n\n".join(
                part_text(m.get("content")) for m in cell_messages), "input"))
        if len(models) > 1:
            reply = self._multi(models, profile, key_env, default_profile, messages, out,
                                sink)
        else:
            client = self.client

            def make(on_delta: Callable[[int, str], None]) -> Any:
                return out.call(client, model=model, provider=prov, stream=stream,
                                on_delta=on_delta,
                                on_reasoning=lambda text: on_delta(REASONING, text))

            try:
                if tools is not None:
                    loop = run_tools(self.portal, client, out, tools, model=model, provider=prov,
                                     stream=stream, sink=sink, interval=self.stream_interval)
                    result, stopped = loop.result, loop.stopped
                else:
                    result = stream_reply(self.portal, make, sink, model, self.stream_interval)
            except Interrupted as stop:
                if th is not None:  # whatever it left, it is this thread's last stop
                    self._stop(_Stopped(th.name, None, list(th.turns), "it stopped before "
                                        "any of the reply arrived"))
                result = partial_result(stop, "chat" if api == "chat" else "response", model)
                stopped = stop
            except Exception as e:  # the failed call is logged with its error, no reply
                self.log(prov, LoggedCall("chat", model, messages, {"api": api, **out.params}, None,
                                    prov.name, prov.base_url, th.name if th else None,
                                    error=f"{type(e).__name__}: {e}"))
                if isinstance(e, APIStatusError) and chain and _chain_broken(e):
                    raise RequestError(_broken_chain(th, chain, e), param="--store") from None
                if isinstance(e, StreamError) and th is not None and e.partial is not None \
                        and e.partial.text:  # cut short (its deadline, the engine, the network)
                    self._stop(_Stopped(th.name, Turn(
                        key, cell_messages, e.partial.choices[0].message, model, api=api),
                        list(th.turns)))
                    e.args = (f"{e.args[0]} (the partial reply is in _chat; %chat keep adds "
                              f"it to thread {th.name!r})",)
                raise
            # The embedded model is free, with or without usage; elsewhere a stop has none.
            # A loop's result has the usage of all its model calls.
            usage = result.usage or (Usage() if prov.kind == "local" else None)
            cost = cost_of(usage, result.model or model, provider=prov.kind, requested=model)
            added = loop.exchange if loop is not None else [result.choices[0].message]
            reply = Reply(result.text, [*messages, *added], result, cost,
                          {"model": model, "provider": prov.name, "api": api,
                           **({"previous_response_id": chain} if chain else {}), **out.params})
            reply.cost_parts = price_parts(cost, usage)
            self.log(prov, LoggedCall("chat", model, messages, {"api": api, **out.params}, result,
                                prov.name, prov.base_url, th.name if th is not None else None,
                                _dollars(cost)))
        reasoned = stopped_reasoning(stopped) if stopped is not None else None
        if reasoned is not None:
            note = _lines(note, reasoned)
        elif stopped is not None:
            kept = (f"; not added to thread {th.name!r} (%chat keep --thread {th.name} "
                    "adds it)" if th is not None else "")
            note = _lines(note, f"stopped after {stopped.elapsed:.1f} s: "
                                f"the reply is partial{kept}")
        if moderate and reply.text:
            mod_lines.append(self._moderate(prov, reply.text, "reply"))
        if mod_lines:
            from gptmagic.client.moderation import describe

            reply.moderation = describe(mod_lines)
        if len(models) == 1 and reply.result is not None:
            shown = _lines(note, reply.moderation)
            summary = self._summary(prov, model, out, messages, th)
            steps = len(loop.steps) if loop is not None else 0
            reply.bundle = display.reply_bundle(
                reply.result, cost=reply.cost, max_tokens=max_tokens, note=shown,
                request_summary=summary, parts=reply.cost_parts, steps=steps)
            reply.footer = display.plain_footer(reply.result, reply.cost,
                                                max_tokens=max_tokens, note=shown,
                                                request_summary=summary, parts=reply.cost_parts,
                                                steps=steps)
            if loop is not None:
                reply.bundle = with_steps(reply.bundle, loop)
            if reply.result.reasoning:  # a terminal shows the footer alone under the reply
                reply.footer = (f"── reasoning summary ──\n{reply.result.reasoning}\n"
                                f"{reply.footer}")
        if th is not None and reply.result is not None:
            stored = api == "responses" and bool(params.get("store")) and stopped is None
            if stored and loop is not None and loop.exchange[-1:] and \
                    loop.exchange[-1].get("role") == "tool":
                stored = False  # its last response ends in calls whose results it never saw
            if stored and (reply.result.raw or {}).get("store") is False:
                stored = False
                said = ("the server did not store this reply (its Response says store: "
                        "false), so nothing can chain from it: the next cell sends the "
                        "whole history")
                self._add_note(reply, said)
                note = _lines(note, said)
            turn = Turn(key, cell_messages, reply.result.choices[0].message, model,
                        response_id=reply.result.id if stored else None, api=api,
                        stored_at=at if stored else None,
                        exchange=loop.exchange if loop is not None else None,
                        images=tuple(images))
            message = reply.result.choices[0].message if reply.result.choices else {}
            if stopped is None and not (message.get("content") or message.get("tool_calls")):
                said = _empty(th, reply.result)
                self._add_note(reply, said)
                note = _lines(note, said)
            elif stopped is None:
                self.threads.add(th)
                if th.record(turn):
                    later = [n for n in th.stale() if n > (th.index_of(key) or 0) + 1]
                    if later:
                        said = (f"{describe_stale(later)} after this one in thread "
                                f"{th.name!r} answered its earlier version; %chat history "
                                "marks them, %chat drop-stale removes them")
                        self._add_note(reply, said)
                        note = _lines(note, said)
                reply.thread = th.name
            elif reasoned is not None:  # no text: nothing %chat keep could add
                self._stop(_Stopped(th.name, None, list(th.turns),
                                    "it stopped while the model was reasoning, before any "
                                    "of the reply's text"))
            else:  # a half turn joins the thread only when the user asks
                self._stop(_Stopped(th.name, turn, list(th.turns)))
        reply.note = note
        if reply.moderation and reply.bundle and len(models) > 1:
            data, meta = reply.bundle
            extra = {"text/plain": reply.moderation,
                     "text/markdown": display.escape_markdown(reply.moderation)}
            data = {k: (f"{v}\n\n{extra[k]}" if k in extra else v) for k, v in data.items()}
            reply.bundle = (data, meta)
        return reply

    def _check_window(self, prov: Provider, model: str, messages: list[dict[str, Any]],
                      max_tokens: int | None) -> None:
        """Refuse a prompt larger than a hosted model's window before sending it (counted
        here with tiktoken; the embedded engine refuses with the same advice itself)."""
        window = model_info(model).context_window
        if prov.kind != "local" and may_exceed(messages, window, max_tokens):
            count = self.count_tokens(messages, model, breakdown=False)
            check_window(count.total, model, max_tokens=max_tokens, context_window=window,
                         exact=count.exact)

    def _multi(self, models: Sequence[str | None], profile: str | None, key_env: str | None,
               default_profile: str | None, messages: list[dict[str, Any]], out: Outgoing,
               sink: Sink) -> Reply:
        client = self.client
        provs = [_provider(profile, key_env, m, default_profile) for m in models]
        for prov, _ in provs:
            prov.api_key()

        # Filled as each model answers, so a stop keeps the replies already paid for.
        answers: list[Result | str | None] = [None] * len(provs)

        async def one(i: int, prov: Provider, model: str) -> None:
            try:
                answers[i] = await out.call(client, model=model, provider=prov)
            except GptmagicError as e:
                answers[i] = str(e)

        async def everything(on_delta: Callable[[int, str], None]) -> None:
            await asyncio.gather(*(one(i, p, m) for i, (p, m) in enumerate(provs)))

        try:
            stream_reply(self.portal, everything, sink, ", ".join(m for _, m in provs),
                         self.stream_interval)
        except Interrupted as stop:
            why = f"stopped after {stop.elapsed:.1f} s, before this model answered"
            answers = [why if a is None else a for a in answers]
        outcomes = [a if a is not None else "no answer" for a in answers]
        # Shown and keyed as typed: "-m vllm:qwen,ollama:qwen" are two columns, not one.
        labels = [m or model for m, (_, model) in zip(models, provs, strict=True)]
        rows, results, costs = [], {}, {}
        for label, (prov, model), answer in zip(labels, provs, outcomes, strict=True):
            if isinstance(answer, Result):
                cost = cost_of(answer.usage, answer.model or model, provider=prov.kind,
                               requested=model)
                rows.append(display.SideBySideRow(label, answer, None, cost,
                                                  out.params.get("max_tokens") or
                                                  out.params.get("max_output_tokens"),
                                                  price_parts(cost, answer.usage)))
            else:
                cost = None
                rows.append(display.SideBySideRow(label, None, answer, None))
            results[label], costs[label] = answer, cost
            self.log(prov, LoggedCall("chat", model, messages, {"api": out.api, **out.params},
                                answer if isinstance(answer, Result) else None, prov.name,
                                prov.base_url, None, _dollars(cost),
                                error=None if isinstance(answer, Result) else answer))
        first = next((r for r in results.values() if isinstance(r, Result)), None)
        reply = Reply(first.text if first else "", messages, first,
                      costs.get(labels[0]), {"models": labels, "api": out.api, **out.params},
                      results=results, costs=costs)
        reply.bundle = display.side_by_side_bundle(rows)
        return reply

    @staticmethod
    def _stale_in_context(th: Thread | None, key: str) -> str | None:
        """Say so when the history a cell sends holds turns answered against an older
        version of an earlier turn (that turn's cell was run again since)."""
        if th is None:
            return None
        i = th.index_of(key)
        stale = [n for n in th.stale() if i is None or n <= i]
        if not stale:
            return None
        return (f"the history sent holds {describe_stale(stale)} of thread {th.name!r}, "
                "answered against an older version of what came before them (an earlier "
                "turn run again, or a new system message); %chat history marks them, "
                "%chat drop-stale removes them")

    @staticmethod
    def _add_note(reply: Reply, note: str) -> None:
        """Show a note decided after the reply's view was built (a replaced turn)."""
        if reply.result is None or reply.bundle is None:
            return
        data, meta = reply.bundle
        extra = {"text/plain": note, "text/markdown": display.escape_markdown(note)}
        reply.bundle = ({k: (f"{v}\n\n{extra[k]}" if k in extra else v)
                         for k, v in data.items()}, meta)
        if reply.footer is not None:
            reply.footer = f"{reply.footer}\n{note}"

    def log(self, prov: Provider, call: LoggedCall) -> None:
        """Log one call to ``prov`` (unless its profile says ``log = false``); a log that
        cannot be written warns once per session and never fails the cell."""
        if not self.log_calls or not prov.log:
            return
        why = ""
        try:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                store = Store(self.log_cache)
                try:
                    logged = write(store, call, keep=self.log_keep)
                finally:
                    store.close()
            if not logged:
                why = "; ".join(str(w.message) for w in seen) or "the file cannot be written"
        except Exception as e:  # noqa: BLE001 - logging never fails a cell
            why = f"{type(e).__name__}: {e}"
        if why and not self._log_warned:
            self._log_warned = True
            warnings.warn(f"gptmagic: this call was not logged ({why}); cells go on "
                          "unlogged. %gptmagic log off stops logging",
                          CacheWarning, stacklevel=2)

    def _stop(self, stopped: _Stopped) -> None:
        self.stops[stopped.thread] = stopped
        self.last_stopped = stopped.thread

    def keep(self, thread: str | None = None) -> str:
        """Add a thread's stopped reply to it, as it stood (``%chat keep [--thread T]``);
        without ``thread``, the reply of the cell stopped last. Only a thread's own
        stopped reply: never one stopped in another thread."""
        name = thread or self.last_stopped
        stopped = self.stops.get(name) if name else None
        if stopped is None:
            where = f" in thread {thread!r}" if thread else ""
            others = sorted(n for n, s in self.stops.items() if s.turn is not None)
            hint = (f" (thread {', '.join(map(repr, others))} has one: %chat keep --thread "
                    f"{others[0]})" if others and thread else "")
            raise RequestError(f"there is no stopped reply to keep{where}{hint}; %chat keep "
                               "adds the reply of a %%chat cell you stopped with Kernel ▸ "
                               "Interrupt", param="keep")
        if stopped.turn is None:
            raise RequestError(f"nothing to keep in thread {stopped.thread!r}: its last "
                               f"stopped cell had no reply text ({stopped.why})", param="keep")
        th = self.threads.get(stopped.thread)
        if [id(t) for t in th.turns] != [id(t) for t in stopped.turns]:
            raise RequestError(f"thread {stopped.thread!r} changed since that reply was "
                               "stopped; run its cell again instead", param="keep")
        replaced = th.record(stopped.turn)
        del self.stops[stopped.thread]
        text = str((stopped.turn.reply or {}).get("content") or "")
        at = (th.index_of(stopped.turn.key) or 0) + 1
        later = [n for n in th.stale() if n > at] if replaced else []
        return (f"kept the stopped reply ({len(text):,} characters) as turn {at} of thread "
                f"{th.name!r}" + (f"; {describe_stale(later)} after it answered its earlier "
                                  "version (%chat drop-stale removes them)" if later else ""))

    def _moderate(self, prov: Provider, text: str, kind: str) -> Any:
        from gptmagic.client.moderation import moderate

        return self.portal.run(moderate(self.client, text, kind=kind, provider=prov))

    def exact_count(self, messages: list[dict[str, Any]], model: str | None, *,
                    default_profile: str | None = None) -> tuple[int | None, str]:
        """The server's count of ``messages`` as a Responses prompt (``%%tokens
        --exact-count``), or None and why none was asked for (never for the embedded
        model, another server, or without a key)."""
        try:
            prov, chosen = _provider(None, None, model, default_profile)
        except GptmagicError as e:
            return None, f"--exact-count: nothing asked ({e})"
        return dry_runs.exact_count(self, prov, chosen,
                                    outgoing("responses", messages, messages, {},
                                             model=chosen))

    def _summary(self, prov: Provider, model: str, out: Outgoing,
                 messages: list[dict[str, Any]], th: Thread | None) -> dict[str, Any]:
        return {"provider": prov.name, "kind": prov.kind, "model": model, "api": out.api,
                "params": dict(out.params), "messages": len(messages),
                "previous_response_id": out.chained, "thread": th.name if th else None}

    # -- complete ------------------------------------------------------------------

    def complete(
        self,
        text: str,
        *,
        model: str | None,
        params: dict[str, Any],
        profile: str | None = None,
        key_env: str | None = None,
        default_profile: str | None = None,
        marker: str | None = None,
        resample: int | None = None,
        dry_run: bool = False,
        stream: bool = True,
        moderate: bool = False,
        sink: Sink | None = None,
    ) -> Reply | DryRun:
        """Run one ``%%complete`` cell: an insertion marker splits prompt and suffix."""
        from gptmagic.client.insertion import INSERT_MARKER, split_insertion

        sink = sink or NullSink()
        prompt, suffix = split_insertion(text, marker or INSERT_MARKER)
        if not prompt.strip() and suffix is None:
            raise RequestError("the cell is empty; write a prompt to complete", param="cell")
        prov, model = _provider(profile, key_env, model, default_profile)
        params = dict(params)
        if suffix is not None:
            params["suffix"] = suffix
        best_of, n = params.get("best_of") or 1, params.get("n") or 1
        unstreamed = None
        if stream and best_of > n:
            # The API refuses best_of with stream: the best is known only at the end.
            stream = False
            unstreamed = (f"not streamed: best_of={best_of} picks the best of the candidates "
                          "once all are done, which the API cannot stream")
        if dry_run:
            sent = {k: v for k, v in params.items() if k != "timeout"}  # the client's
            body = {"model": model, "prompt": prompt, **sent}
            if stream:
                body.update(stream=True, stream_options={"include_usage": True})
            return dry_runs.dry_run(self, prov, model, "completions", body,
                                    prompt + (suffix or ""), params)
        prov.api_key()  # asked here, on the caller's thread, never inside the request
        mod_lines = [self._moderate(prov, text, "input")] if moderate else []
        try:
            result, note = self._completion(prov, model, prompt, suffix, params, resample,
                                            stream, sink, unstreamed)
        except Interrupted:
            raise
        except Exception as e:  # the failed call is logged with its error, no reply
            self.log(prov, LoggedCall("completion", model, prompt, params, None, prov.name,
                                prov.base_url, error=f"{type(e).__name__}: {e}"))
            raise
        cost = cost_of(result.usage, result.model or model, provider=prov.kind, requested=model)
        self.log(prov, LoggedCall("completion", model, prompt, params, result, prov.name,
                            prov.base_url, None, _dollars(cost)))  # a suffix is in params
        reply = Reply(result.text, [], result, cost,
                      {"model": model, "provider": prov.name, "prompt": prompt, **params},
                      note=note)
        if moderate and result.text:
            mod_lines.append(self._moderate(prov, result.text, "reply"))
        if mod_lines:
            from gptmagic.client.moderation import describe

            reply.moderation = describe(mod_lines)
        note_all = _lines(note, reply.moderation)
        reply.bundle = display.reply_bundle(
            result, cost=cost, max_tokens=params.get("max_tokens"), note=note_all,
            request_summary={"provider": prov.name, "kind": prov.kind, "model": model,
                             "params": {k: v for k, v in params.items() if k != "suffix"},
                             "suffix": suffix is not None, "resample": resample})
        reply.footer = display.plain_footer(result, cost, max_tokens=params.get("max_tokens"),
                                            note=note_all)
        return reply

    def _completion(self, prov: Provider, model: str, prompt: str, suffix: str | None,
                    params: dict[str, Any], resample: int | None, stream: bool, sink: Sink,
                    note: str | None) -> tuple[Result, str | None]:
        """One ``%%complete`` cell's result (resampled, or streamed until stopped) and its
        note."""
        from gptmagic.client.insertion import resample as resample_insertion

        client = self.client
        if resample:
            rs = self.portal.run(resample_insertion(client, prompt, suffix=suffix, k=resample,
                                                     model=model, provider=prov, **{
                                                         k: v for k, v in params.items()
                                                         if k != "suffix"}))
            result = rs.results[-1]
            if rs.kept:
                from dataclasses import replace as _replace

                # Kept choices come from different attempts, all index 0: renumber copies.
                result.choices = [_replace(c, index=i) for i, c in enumerate(rs.kept)]
            result.usage = rs.usage_total
            # The kept choices come from every attempt: so do the warnings about them.
            result.warnings = list(dict.fromkeys(w for r in rs.results for w in r.warnings))
            note = rs.advice or f"kept {len(rs.kept)} of {rs.attempts} sample(s) ending in 'stop'"
        else:
            def make(on_delta: Callable[[int, str], None]) -> Any:
                return client.complete(prompt, model=model, provider=prov, stream=stream,
                                       on_delta=on_delta, **params)

            try:
                result = stream_reply(self.portal, make, sink, model, self.stream_interval)
            except Interrupted as stop:
                result = partial_result(stop, "completion", model)
                note = _lines(note, f"stopped after {stop.elapsed:.1f} s: "
                                    "the completion is partial")
        return result, note

    # -- history views -----------------------------------------------------------

    def history(self, name: str, model: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        th = self.threads.existing(name)
        # Counted for the model the thread last talked to, unless another is named.
        model = model_name(model or next((t.model for t in reversed(th.turns) if t.model),
                                         None))
        rows = []
        msgs = th.messages()
        counts = self.count_tokens(msgs, model) if msgs else None
        i = 0
        turn_of: list[tuple[int, str | None]] = []
        if th.system:
            turn_of.append((0, None))
        for n, t in enumerate(th.turns, 1):
            turn_of += [(n, t.key)] * len(t.all_messages())
        stale = set(th.stale())
        refs = thread_images(th)
        for m, (turn, key) in zip(msgs, turn_of, strict=True):
            tokens = counts.messages[i].total if counts else None
            rows.append(display.HistoryRow(turn, str(m.get("role")), m.get("name"),
                                           message_text(m), tokens, key,
                                           stale=turn in stale,
                                           images=history_views(m, refs)))
            i += 1
        return display.history_bundle(rows, thread=name,
                                      context_window=model_info(model).context_window,
                                      total=counts.total if counts else None, mode=th.mode())
