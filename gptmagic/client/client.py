"""The async OpenAI-compatible client: chat, completions, Responses, streaming, retries.

One :class:`Client` owns one connection pool and talks to any provider
(a per-call ``provider=``, or a ``"profile:model"`` name, picks another than
the client's own: :func:`~gptmagic.client.config.resolve`). Every standard parameter of
``/chat/completions``, ``/completions`` and ``/responses`` is accepted as a keyword and sent
as is; unknown keywords are passed through, ``None`` means "not set".
This module holds the program's only retry loop (policy:
:mod:`gptmagic.core.retry`); one logical request is a
:class:`~gptmagic.client.attempt.Request`, one attempt at it
:func:`~gptmagic.client.attempt.attempt`.

The embedded model's engine is asked for its URL on every attempt, so a
client outlives the engine: one that died is restarted once per call, with
a one-line notice (``local engine exited (signal 9); restarted``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import random
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any

from gptmagic.catalog.embedded import embedded_model, models_note
from gptmagic.catalog.lifecycle import ModelRow, model_rows
from gptmagic.catalog.models import openai_models
from gptmagic.catalog.tokens import TokenCount, count, encoding_for
from gptmagic.client.attempt import (
    MAX_ERROR_BYTES,
    MAX_RESPONSE_BYTES,
    DeltaCallback,
    Progress,
    ReasoningCallback,
    Request,
    RetryCallback,
    attempt,
    json_or_text,
    read_small,
)
from gptmagic.client.batches import Batches
from gptmagic.client.config import Provider, model_name, resolve
from gptmagic.client.engine_count import count_on_engine
from gptmagic.client.http import HTTP, Timeouts
from gptmagic.client.lifecycle import (
    OPENAI_HOST,
    Lifecycle,
    ListedModel,
    cache_key,
    is_openai_host,
    parse_models,
    shutdown_map,
)
from gptmagic.client.tools import Approve, ToolRun, check_tool_params
from gptmagic.core.defaults import DEFAULT_MAX_STEPS
from gptmagic.core.headers import Headers
from gptmagic.core.images import text_only_refusal
from gptmagic.core.response import token_count
from gptmagic.core.retry import RetryPolicy
from gptmagic.core.structured import parse_reply, schema_from, with_format
from gptmagic.core.to_responses import input_items, response_fields
from gptmagic.core.tools import chat_specs, has_functions
from gptmagic.core.types import Result
from gptmagic.errors import (
    APIConnectionError,
    APIError,
    DeadlineExceededError,
    GptmagicError,
    MalformedResponseError,
    RequestError,
    StreamDeadlineError,
    StreamError,
    redact,
)

if TYPE_CHECKING:
    from gptmagic.local.engine import LocalEngine

__all__ = ["Client", "DeltaCallback", "RetryCallback"]

log = logging.getLogger("gptmagic.client")


def _stderr_notice(text: str) -> None:
    print(f"gptmagic: {text}", file=sys.stderr)


def _messages(messages: str | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise RequestError(
                f"messages[{i}] must be a dict with a 'role' (got {type(m).__name__})",
                param="messages",
            )
        out.append(dict(m))
    if not out:
        raise RequestError("messages is empty: give at least one message", param="messages")
    return out


def _input(value: str | Sequence[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A Responses ``input``: text, or a list of items (chat messages are items too)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, Sequence):
        raise RequestError(f"input must be a string or a list of items, not "
                           f"{type(value).__name__}", param="input")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not ("role" in item or "type" in item):
            raise RequestError(
                f"input[{i}] must be a dict with a 'role' (a message, as in chat) or a "
                f"'type' (another input item), got {type(item).__name__}", param="input")
        out.append(dict(item))
    if not out:
        raise RequestError("input is empty: give a string or at least one item", param="input")
    return out


def _text_only(prov: Provider, messages: list[dict[str, Any]], param: str) -> None:
    """The embedded model reads text only: a prompt with images is refused before it is
    sent (its engine would answer 400, after starting), naming where they are."""
    if prov.kind == "local":
        refusal = text_only_refusal(messages, param=param)
        if refusal is not None:
            raise refusal


class Client:
    """Async client for OpenAI-compatible chat and completion endpoints.

    >>> client = Client()                                  # doctest: +SKIP
    >>> r = await client.chat("Say hi", model="local", max_tokens=5)  # doctest: +SKIP
    """

    def __init__(
        self,
        provider: str | Provider | None = None,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int | None = None,
        transport: Any = "aiohttp",
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        engine: LocalEngine | None = None,
        on_notice: Callable[[str], None] | None = None,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self.provider = provider
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        kwargs: dict[str, Any] = {"transport": transport}
        if max_connections:
            kwargs["max_connections"] = max_connections
        self.http = HTTP(self.timeouts, **kwargs)
        # Tests swap both for a virtual clock, so retry waits take no time.
        self._sleep = sleep or asyncio.sleep
        self._clock = clock
        self._rng = random.Random()
        # The embedded engine: given, or the process-wide one (gptmagic.local).
        self._engine = engine
        #: One-line notices for the user (an engine restarted); stderr by default.
        self.on_notice = on_notice or _stderr_notice
        #: Shutdown dates (GET /models, a day's cache) and the once-per-model warning.
        self.lifecycle = lifecycle or Lifecycle()

    def __repr__(self) -> str:
        name = self.provider.name if isinstance(self.provider, Provider) else self.provider
        return f"<gptmagic.Client provider={name or 'default'!r}>"

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (and stop a ``GET /models`` running in the background)."""
        await self.lifecycle.aclose()
        await self.http.aclose()

    # -- public calls -----------------------------------------------------

    async def chat(
        self,
        messages: str | Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        provider: str | Provider | None = None,
        stream: bool = False,
        on_delta: DeltaCallback | None = None,
        timeouts: Timeouts | None = None,
        timeout: float | None = None,
        on_retry: RetryCallback | None = None,
        approve: Approve | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        schema: Any = None,
        **params: Any,
    ) -> Result:
        """``POST /chat/completions``; returns the (possibly streamed) :class:`Result`.

        ``timeout`` (seconds) is this call's deadline, retries included; it
        overrides ``timeouts.deadline``. ``schema`` (a Pydantic model class, a
        TypedDict, a dataclass, a JSON-schema dict or a
        :class:`~gptmagic.core.structured.Schema`) sends its strict
        ``response_format`` and fills the result's ``parsed`` and ``validation``
        (:mod:`gptmagic.core.structured`; a stream is parsed at its end). Python
        functions in ``tools`` run a tool loop (:mod:`gptmagic.client.tools`) of at most
        ``max_steps`` calls, each function in a worker thread (this loop never
        blocks), ``approve(call)`` asked first when given.
        """
        if has_functions(params.get("tools")):
            check_tool_params(params)
            run = ToolRun(params.pop("tools"), messages, approve=approve, max_steps=max_steps,
                          tool_choice=params.pop("tool_choice", None))
            return await run.arun(lambda m, p: self.chat(
                m, model=model, provider=provider, stream=stream, on_delta=on_delta,
                timeouts=timeouts, timeout=timeout, on_retry=on_retry, schema=schema,
                **params, **p), offload=True)
        prov, model = resolve(provider, model, default=self.provider)
        shape = None if schema is None else schema_from(schema)
        if shape is not None:
            params = with_format(params, shape, "chat")
        body: dict[str, Any] = {"model": model, "messages": _messages(messages)}
        body.update({k: v for k, v in params.items() if v is not None})
        _text_only(prov, body["messages"], "messages")
        result = await self._call(Request(
            "chat", prov, body, headers=prov.auth_headers(prompt=False), stream=stream,
            on_delta=on_delta, on_retry=on_retry, timeouts=self._timeouts(timeouts, timeout)))
        return result if shape is None else parse_reply(result, shape)

    async def complete(
        self,
        prompt: str | list[Any],
        *,
        model: str | None = None,
        provider: str | Provider | None = None,
        stream: bool = False,
        on_delta: DeltaCallback | None = None,
        timeouts: Timeouts | None = None,
        timeout: float | None = None,
        on_retry: RetryCallback | None = None,
        **params: Any,
    ) -> Result:
        """``POST /completions`` (legacy); ``suffix``, ``echo``, ``logprobs``, ``best_of``…

        ``timeout`` (seconds) is this call's deadline, as for :meth:`chat`.
        """
        prov, model = resolve(provider, model, default=self.provider)
        if not isinstance(prompt, str | list):
            raise RequestError(
                f"prompt must be a string or a list, not {type(prompt).__name__}", param="prompt"
            )
        body: dict[str, Any] = {"model": model, "prompt": prompt}
        body.update({k: v for k, v in params.items() if v is not None})
        # Echoed prompt tokens are told apart from generated ones by offset.
        prompt_len = len(prompt) if isinstance(prompt, str) and body.get("echo") else None
        return await self._call(Request(
            "completion", prov, body, headers=prov.auth_headers(prompt=False), stream=stream,
            on_delta=on_delta, on_retry=on_retry, timeouts=self._timeouts(timeouts, timeout),
            prompt_len=prompt_len))

    async def respond(
        self,
        input: str | Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        provider: str | Provider | None = None,
        stream: bool = False,
        on_delta: DeltaCallback | None = None,
        timeouts: Timeouts | None = None,
        timeout: float | None = None,
        on_retry: RetryCallback | None = None,
        on_reasoning: ReasoningCallback | None = None,
        approve: Approve | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        schema: Any = None,
        **params: Any,
    ) -> Result:
        """``POST /responses`` (the Responses API); returns a ``Result(kind="response")``.

        ``input`` is text or a list of input items (chat-style ``{"role",
        "content"}`` dicts are items). Every other ``CreateResponse`` field is a
        keyword sent as is (``instructions``, ``reasoning={"effort", "summary"}``,
        ``max_output_tokens``, ``include=["message.output_text.logprobs"]``,
        ``previous_response_id``, ``store``, ``prompt_cache_key``, ``tools``...);
        ``None`` means "not set". Retries, deadline (``timeout``) and errors are
        :meth:`chat`'s; ``on_delta(0, text)`` gets each piece of streamed text, and
        ``on_reasoning(summary)`` the reasoning summary so far while a reasoning model
        reasons (``""`` when it begins with no summary yet), until the text begins.
        ``background`` is refused: a background response answers ``queued``
        with no reply, and this call waits for replies. ``schema`` sends a strict
        ``text.format`` and fills ``parsed`` and ``validation``, as :meth:`chat`'s does.
        Python functions in ``tools`` run a tool loop, as for :meth:`chat`
        (``tool_choice`` in chat's shape or a tool's name).
        """
        if has_functions(params.get("tools")):
            run = ToolRun(params.pop("tools"), input, approve=approve, max_steps=max_steps,
                          tool_choice=params.pop("tool_choice", None))
            return await run.arun(lambda m, p: self.respond(
                input_items(m), model=model, provider=provider, stream=stream,
                on_delta=on_delta, timeouts=timeouts, timeout=timeout, on_retry=on_retry,
                on_reasoning=on_reasoning, schema=schema, **params, **response_fields(p)),
                offload=True)
        if params.get("background"):
            raise RequestError(
                "background=True is not supported: a background response answers at once "
                "with status 'queued' and no reply, and respond() waits for the reply; leave "
                "background unset (use stream=True for a long reply), or create and poll "
                "background responses (GET /responses/{id}) with another client",
                param="background")
        prov, model = resolve(provider, model, default=self.provider)
        shape = None if schema is None else schema_from(schema)
        if shape is not None:
            params = with_format(params, shape, "responses")
        body: dict[str, Any] = {"model": model, "input": _input(input)}
        body.update({k: v for k, v in params.items() if v is not None})
        if isinstance(body["input"], list):
            _text_only(prov, body["input"], "input")
        result = await self._call(Request(
            "response", prov, body, headers=prov.auth_headers(prompt=False), stream=stream,
            on_delta=on_delta, on_retry=on_retry, on_reasoning=on_reasoning,
            timeouts=self._timeouts(timeouts, timeout)))
        return result if shape is None else parse_reply(result, shape)

    async def input_tokens(
        self,
        input: str | Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        provider: str | Provider | None = None,
        **params: Any,
    ) -> int:
        """``POST /responses/input_tokens``: the provider's exact count of a prompt's tokens.

        Takes :meth:`respond`'s ``input`` and fields (``instructions``,
        ``tools``, ``reasoning``...), so the count is what that call's
        ``usage.prompt_tokens`` will say, chat overhead and all. One request,
        not retried (as :meth:`models`); offline estimates are
        :meth:`count_tokens`. The embedded model's server answers it too,
        counted by the engine's own tokenizer with its chat template applied
        (the engine is started if it is not running).
        """
        prov, model = resolve(provider, model, default=self.provider)
        body: dict[str, Any] = {"model": model, "input": _input(input)}
        body.update({k: v for k, v in params.items() if v is not None})
        base = (await self._base_url(prov, model=model))[0]
        url, query = prov.endpoint("responses/input_tokens", model, base)
        data = await self._small_json("POST", url, query, prov.auth_headers(prompt=False), body)
        if not isinstance(data, dict):
            raise MalformedResponseError(f"{url}: expected a JSON object with 'input_tokens'")
        try:
            n = token_count(data.get("input_tokens"), "input_tokens")
        except MalformedResponseError as e:
            raise MalformedResponseError(f"{url}: {e}") from None
        if n is None:
            raise MalformedResponseError(f"{url}: the answer has no 'input_tokens'")
        return n

    async def models(self, *, provider: str | Provider | None = None) -> list[str]:
        """Model ids the provider lists at ``/models``."""
        return [m.id for m in await self.model_list(provider=provider)]

    async def model_list(self, *, provider: str | Provider | None = None) -> list[ListedModel]:
        """The provider's ``/models``, each with its ``shutdown_date`` (fetched now, no cache)."""
        prov, model = self._lister(provider)
        base = (await self._base_url(prov))[0]
        return await self._list_models(prov, model, base, prov.auth_headers(prompt=False))

    def _lister(self, provider: str | Provider | None) -> tuple[Provider, str]:
        # Listing needs no model: a profile without a default_model can still list
        # (the name stands in for one; no URL of "models" uses it).
        return resolve(provider, "models", default=self.provider)

    async def model_table(self, *, provider: str | Provider | None = None,
                          today: date | None = None) -> tuple[list[ModelRow], str]:
        """``gptmagic models``: the provider's models with context window, prices per 1M
        tokens and shutdown date, and a line saying where the list came from.

        Hosted OpenAI's list is the day's cached ``/models``; when it cannot be
        reached (or has no key), the models of gptmagic's own table are listed
        for OpenAI's host, none for another. ``today`` is the date the
        statuses are for (the lifecycle clock's by default).
        """
        prov, model = self._lister(provider)
        today = today or self.lifecycle.now().date()
        if prov.kind != "openai" or not prov.base_url:
            base = (await self._base_url(prov))[0]
            listed = await self._list_models(prov, model, base, prov.auth_headers(prompt=False))
            rows = model_rows(sorted(m.id for m in listed), today, shutdown_map(listed),
                              provider="local" if prov.kind == "local" else None, table=False)
            note = f"{len(rows)} models listed by {prov.name} ({cache_key(base or '')})"
            if prov.kind == "local":  # what each embedded model is, and how to add one
                hint = "pip install 'gptmagic[local-gemma]'"
                note = "\n".join([note, *models_note(frozenset(m.id for m in listed), hint)])
            return rows, note
        base_url = prov.base_url
        table = is_openai_host(base_url)
        try:
            headers = prov.auth_headers(prompt=False)
        except GptmagicError:
            got = None  # no key: the table still answers
        else:
            got = await self.lifecycle.listed(base_url, lambda: self._list_models(
                prov, model, base_url, headers))
        if got is None and table:
            rows = model_rows(sorted(openai_models()), today, provider="openai")
            return rows, (f"{cache_key(base_url)} could not be reached (or no key is set): "
                          f"gptmagic's own table of {len(rows)} OpenAI models")
        if got is None:
            return [], (f"{cache_key(base_url)} could not be reached (or no key is set); "
                        f"gptmagic's table is {OPENAI_HOST}'s and says nothing of this "
                        "server's models")
        rows = model_rows(sorted(m.id for m in got), today, shutdown_map(got),
                          provider="openai", table=table)
        return rows, f"{len(rows)} models listed by {cache_key(base_url)} (kept for a day)"

    async def _list_models(self, prov: Provider, model: str, base: str | None,
                           headers: Headers) -> list[ListedModel]:
        url, query = prov.endpoint("models", model, base)
        return parse_models(await self._small_json("GET", url, query, headers, None), url)

    def _retiring(self, req: Request) -> None:
        """Say once per model (``on_notice``) that it is near or past its shutdown date.

        Never waits: the provider's ``/models`` is fetched in the background
        and a warning that needs it comes with a later call. ``kind="openai"``
        profiles only; gptmagic's table only for OpenAI's own host (see
        :mod:`gptmagic.client.lifecycle`).
        """
        prov = req.provider
        if prov.kind != "openai" or not prov.base_url or self.http.closed:
            return  # a closed client starts no fetch that aclose would not stop
        base_url = prov.base_url
        text = self.lifecycle.notice(base_url, req.model, lambda: self._list_models(
            prov, req.model, base_url, req.headers), table=is_openai_host(base_url))
        if text:
            self.on_notice(text)

    def batches(self, *, provider: str | Provider | None = None) -> Batches:
        """The provider's Files and Batch APIs over this client's connections
        (:mod:`gptmagic.client.batches`); the embedded model has none."""
        return Batches(self.http, resolve(provider, "batch", default=self.provider)[0])

    async def moderate(
        self,
        input: str | list[str],
        *,
        model: str | None = None,
        provider: str | Provider | None = None,
    ) -> dict[str, Any]:
        """``POST /moderations``: the provider's JSON verdict on ``input``, unparsed.

        The embedded model has none: a ``local`` provider raises
        :class:`RequestError` without any HTTP.
        """
        # The profile's default_model is a chat model: never send it here.
        prov, name = resolve(provider, model or "omni-moderation-latest",
                             default=self.provider)
        if prov.kind == "local":
            raise RequestError(
                "the local model has no moderation endpoint; use --moderate with a provider "
                "that has one (OpenAI)",
                param="moderate",
            )
        url, query = prov.endpoint("moderations", name)
        body: dict[str, Any] = {"input": input}
        if model:
            body["model"] = name
        data = await self._small_json("POST", url, query, prov.auth_headers(prompt=False), body)
        if not isinstance(data, dict):
            raise MalformedResponseError(f"{url}: moderation response is not a JSON object")
        return data

    async def count_tokens(
        self,
        messages_or_text: str | Sequence[Mapping[str, Any]],
        model: str | None = None,
        *,
        provider: str | Provider | None = None,
        tools: Sequence[Any] | None = None,
        breakdown: bool = True,
    ) -> TokenCount:
        """Tokens a prompt costs for ``model``: text, or a chat message list (+ tools).

        Hosted models are counted with tiktoken, here and now, with no I/O; the
        embedded model by its engine's own tokenizer (its chat template
        applied exactly as a chat request would), so the total equals the
        ``usage.prompt_tokens`` the call will report. ``tools`` are what
        :meth:`chat` takes (functions, Tools, raw dicts). ``breakdown=False``
        skips the per-message breakdown where it costs extra requests.
        """
        tools = chat_specs(tools)
        if model:
            model = model_name(model)  # counted, not sent: no provider is chosen
        else:
            model = resolve(provider, None, default=self.provider)[1]
        if encoding_for(model) != "local":
            return count(messages_or_text, model, tools=tools)
        return await count_on_engine(functools.partial(self.local_tokenize, model=model),
                                     messages_or_text, model, tools, breakdown)

    async def local_tokenize(
        self,
        *,
        text: str | None = None,
        messages: Sequence[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        pieces: bool = False,
        tools: Sequence[Mapping[str, Any]] | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        """An embedded model's own tokens for ``text`` or a chat ``messages`` list.

        ``model``: which embedded model's tokenizer (default ``local``); its engine
        is started if it is not running.

        For messages the engine renders its chat template exactly as a chat
        request would (with ``tools``, their description too), so ``count``
        equals that request's ``usage.prompt_tokens``.
        ``pieces=True`` adds ``pieces``: per token, a string (its bytes are the
        string's UTF-8) or a list of byte values (a part of a character).
        """
        body: dict[str, Any] = (
            {"text": text}
            if messages is None
            else {"messages": list(messages), "add_generation_prompt": add_generation_prompt}
        )
        if pieces:
            body["pieces"] = True
        if tools:
            body["tools"] = [dict(t) for t in tools]
        if model is not None:
            body["model"] = model
        # Token lists of long conversations are megabytes: allow a full response's size.
        # An engine found dead is restarted first (once: concurrent calls share the
        # restart); one that dies during the request is an error, restarted next time.
        base, _ = await self._local_base(model=model)
        data = await self._small_json(
            "POST", f"{base}/tokenize", {}, Headers(), body, limit=MAX_RESPONSE_BYTES
        )
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise MalformedResponseError(f"{base}/tokenize: expected {{'tokens': [...]}}")
        if pieces and (not isinstance(data.get("pieces"), list)
                       or len(data["pieces"]) != len(data["tokens"])):
            raise MalformedResponseError(f"{base}/tokenize: expected one piece per token")
        return data

    # -- machinery --------------------------------------------------------

    def _timeouts(self, timeouts: Timeouts | None, deadline: float | None) -> Timeouts:
        t = timeouts or self.timeouts
        if deadline is None:
            return t
        if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not (
                0 < deadline < math.inf):
            raise RequestError(f"timeout must be a number of seconds above 0, got {deadline!r}",
                               param="timeout")
        return replace(t, deadline=float(deadline))

    async def _small_json(
        self,
        method: str,
        url: str,
        query: dict[str, str],
        headers: Headers,
        body: dict[str, Any] | None,
        limit: int = MAX_ERROR_BYTES,
    ) -> Any:
        """One request to a JSON side endpoint (models, moderation, tokenize); no retries."""
        payload = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        raw = await read_small(self.http, method, url, params=query, headers=headers,
                               body=payload, limit=limit)
        return json_or_text(raw)

    @property
    def engine(self) -> LocalEngine:
        """The embedded model's engine this client starts and talks to."""
        if self._engine is None:
            from gptmagic.local.engine import get_engine

            self._engine = get_engine()
        return self._engine

    async def _local_base(self, *, restart: bool = True,
                          model: str | None = None) -> tuple[str, bool]:
        """The engine's URL, started (or restarted, with a notice) if it is not running;
        and whether this call restarted one that had died.

        ``model`` (an embedded model's name) must be installed (:class:`ConfigError`
        with the install hint, else); a child started now loads it first.

        ``restart=False``: an engine that died is an error instead (a call
        restarts it at most once).
        """
        engine = self.engine
        wanted = embedded_model(model)
        if wanted is not None:
            engine.require(wanted)  # not installed: the install hint, before any start
        running = engine.url
        if running is not None:
            return running, False
        exited = engine.exit_description()
        if exited and not restart:
            raise APIConnectionError(
                f"the local engine exited again ({exited}) after a restart; its log: "
                f"{engine.log_path}")
        url, note = await asyncio.to_thread(engine.ensure, model=wanted)
        if note:
            log.debug("%s", note)  # the user sees it once, through on_notice
            self.on_notice(note)
        return url, note is not None

    async def _base_url(self, prov: Provider, *, restart: bool = True,
                        model: str | None = None) -> tuple[str | None, bool]:
        if prov.kind != "local":
            return prov.base_url, False
        return await self._local_base(restart=restart, model=model)

    async def _call(self, req: Request) -> Result:
        """The retry loop: attempts and backoff waits, all within ``timeouts.deadline``.

        The deadline is the call's, not an attempt's: an attempt gets what is
        left of it, a wait that would end past it is not waited (the last
        error is raised), and an attempt cut by it is not retried.
        """
        req.payload()  # a body that is not JSON fails here, before anything is sent
        self._retiring(req)
        try:
            return await self._attempts(req)
        finally:
            # The list may have come in meanwhile: its warning now, not a call later.
            self._retiring(req)

    async def _attempts(self, req: Request) -> Result:
        """The loop itself (:meth:`_call`)."""
        t = req.timeouts
        start = self._clock()
        tries = 0
        restarted = False
        while True:
            tries += 1
            if self.http.closed:
                # Never retried: and never a reason to start the engine again.
                raise APIConnectionError("this gptmagic.Client is closed; make a new one "
                                         "(gptmagic.shutdown() closes the shared client)")
            # Asked every time: an engine that died since the last attempt is
            # restarted, once per call.
            base, now = await self._base_url(req.provider, restart=not restarted,
                                             model=req.model)
            restarted = restarted or now
            url, query = req.provider.endpoint(req.path, req.model, base)
            progress = Progress()
            left = t.deadline - (self._clock() - start)
            try:
                if left <= 0:
                    raise TimeoutError  # an engine (re)start took the whole deadline
                async with asyncio.timeout(left):
                    result = await attempt(
                        self.http, req, url, query, progress,
                        # Read at call time: gptmagic.client.client.MAX_RESPONSE_BYTES is the knob.
                        max_bytes=MAX_RESPONSE_BYTES,
                    )
                result.timings.attempts = tries
                return result
            except TimeoutError:
                raise await self._past_deadline(req, url, tries, progress) from None
            except StreamError as e:
                raise await self._why(req, e, wait=progress.connection_lost) from None
            except (APIError, RequestError) as e:
                err: GptmagicError = e
            elapsed = self._clock() - start
            delay = self.retry.delay(err, tries, elapsed, now=time.time(), rng=self._rng)
            if delay is None or elapsed + delay >= t.deadline:
                raise err
            if req.provider.kind == "local" and not self.engine.running:
                delay = 0.0  # the engine died: the next attempt restarts it, no backoff
            elif req.on_retry is not None:
                req.on_retry(err, delay)  # e.g. the runner's shared cooldown on 429
            log.debug(
                "retrying %s after %s (attempt %d, waiting %.2fs)",
                url,
                type(err).__name__,
                tries,
                delay,
            )
            await self._sleep(delay)

    async def _past_deadline(self, req: Request, url: str, tries: int,
                             progress: Progress) -> DeadlineExceededError:
        """The error of a call whose deadline passed during attempt ``tries``."""
        d = req.timeouts.deadline
        fix = "to wait longer, give a larger --timeout (magics) or timeout= (Python)"
        if progress.abort is not None:
            # A stream that started ends with its partial text.
            cut = progress.abort(f"{url}: the stream was still running at the call's "
                                 f"{d:g} s deadline, so it was stopped with its text so far "
                                 f"kept; {fix}", StreamDeadlineError)
            await self._why(req, cut)
            assert isinstance(cut, StreamDeadlineError)
            return cut
        return DeadlineExceededError(
            f"no complete response from {url} within the call's {d:g} s deadline "
            f"({tries} attempt{'s' if tries != 1 else ''}); {fix}")

    async def _why(self, req: Request, error: StreamError, wait: bool = False) -> StreamError:
        """A cut stream from the embedded model says when its engine died.

        ``wait``: the connection was lost, so the engine may be dying right
        now; give the kernel a moment to reap it before asking.
        """
        if req.provider.kind == "local":
            exited = await asyncio.to_thread(self.engine.exit_description, 1.0 if wait else 0.0)
            if exited:
                error.args = (redact(f"{error.args[0]} (the local engine exited: {exited}; "
                                     "it restarts on the next call)"),)
        return error
