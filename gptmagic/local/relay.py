"""Talking to the engine for the adapter app: upstream calls and the SSE relay.

The app's keys (the models and their engines, the shared upstream session, the
creation time), the engine a request is bound to (:func:`bind`, :func:`served`),
one JSON call to the engine (:func:`_upstream_json`), a plan's engine requests
sent at once (:func:`_fan_out`), filling in the text of token-id prompts
(:func:`_detokenize`), and :func:`_relay_stream`, which passes one engine SSE
stream through a :mod:`gptmagic.local.stream` state machine to our client,
event by event, flushed as they come. Errors leave in OpenAI's shape
(:func:`_error`). The handlers in :mod:`gptmagic.local.routes` build on these.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from gptmagic.core.sse import SSEDecoder
from gptmagic.local import adapt
from gptmagic.local.collect import Collector
from gptmagic.local.rescore import Splitter
from gptmagic.local.served import Models, Served

#: The models the app serves, each engine with its slot gate and memo.
_MODELS = web.AppKey("models", Models)
_SESSION = web.AppKey("session", aiohttp.ClientSession)
_CREATED = web.AppKey("created", int)
#: Handler tasks in flight and their requests (for the watchdog in :mod:`.server`).
_IN_FLIGHT: web.AppKey[dict[asyncio.Task[Any], web.Request]] = web.AppKey("in_flight", dict)
#: The model's engine a request was bound to (:func:`bind`).
_SERVED = web.RequestKey("served", Served)


async def bind(request: web.Request, body: Any) -> Served:
    """Bind ``request`` to the engine of the model its ``body`` names (started if need be)."""
    models = request.app[_MODELS]
    name = body.get("model") if isinstance(body, dict) else None
    chosen = await models.get(models.chosen(name))
    request[_SERVED] = chosen
    return chosen


def served(request: web.Request) -> Served:
    """The engine :func:`bind` chose for ``request``."""
    return request[_SERVED]

#: OpenAI's name for the start of a document, the meaning of an empty prompt.
DOCUMENT_START = "<|endoftext|>"
_UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600)


@dataclass(frozen=True)
class Wire:
    """How a relayed stream is framed on the wire.

    Chat and legacy completions: bare ``data:`` lines, errors sent as they
    are, ``data: [DONE]`` last. The Responses API (``named``): each event
    under ``event: <its type>``, no end marker (OpenAI sends none), and
    errors turned into events by ``fail``.
    """

    named: bool = False
    fail: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None

    def frame(self, event: dict[str, Any]) -> bytes:
        """One event as SSE bytes."""
        data = f"data: {json.dumps(event)}\n\n"
        if self.named and isinstance(event.get("type"), str):
            data = f"event: {event['type']}\n" + data
        return data.encode()

    def errors(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The events that say ``body`` (an OpenAI error) in this stream."""
        return self.fail(body) if self.fail is not None else [body]


_CHAT_WIRE = Wire()


class _ClientGone(Exception):
    """Our client closed its connection mid-stream."""


#: How llama.cpp begins the message of a request it could not read (it answers 500).
_UNREADABLE = "Failed to parse"


def _error(status: int, body: dict[str, Any]) -> web.Response:
    """An OpenAI-shaped error answer; a request the engine could not read is the client's 400."""
    error = body.get("error") if isinstance(body, dict) else None
    if status >= 500 and isinstance(error, dict) and \
            str(error.get("message", "")).startswith(_UNREADABLE):
        status = 400
        body = {"error": {**error, "type": "invalid_request_error"}}
    return web.json_response(body, status=status)


async def _payload(resp: aiohttp.ClientResponse) -> Any:
    """An engine answer's body: its JSON, or its text when it is not JSON."""
    text = await resp.text()
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _upstream_json(session: aiohttp.ClientSession, url: str,
                         body: dict[str, Any]) -> tuple[int, Any]:
    async with session.post(url, json=body) as resp:
        return resp.status, await _payload(resp)


async def _events(upstream: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    """An engine SSE stream as ``("chunk", chunk)``, ``("error", payload)``, ``("done", None)``.

    An error is llama.cpp's own ``error:`` event (its bare error object) or a
    ``data:`` chunk holding ``error``. Bad JSON raises ``ValueError``.
    """
    decoder = SSEDecoder()
    async for raw in upstream.content.iter_any():
        for event in decoder.feed(raw):
            data = event.data.strip()
            if event.event == "error":
                payload = json.loads(data or "null")
                if not (isinstance(payload, dict) and "error" in payload):
                    payload = {"error": payload}  # `error:` lines carry the bare error object
                yield "error", payload
            elif data == "[DONE]":
                yield "done", None
                return
            else:
                chunk = json.loads(data)
                yield ("error", chunk) if isinstance(chunk, dict) and "error" in chunk \
                    else ("chunk", chunk)


def _slots_needed(body: dict[str, Any]) -> int:
    """Engine slots one request takes: one per choice of each prompt."""
    n = body.get("n") or 1
    prompt = body.get("prompt")
    prompts = len(prompt) if isinstance(prompt, list) and prompt and \
        all(isinstance(p, str | list) for p in prompt) else 1
    return int(n) * prompts


async def _generate(request: web.Request, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    """One non-streamed generation: ``(status, the engine's JSON answer)``.

    Sent once the engine has a slot for it, and asked for as a stream, then
    collected (:mod:`gptmagic.local.collect` says why): a client that goes
    away stops the generation at the next token. Logprob entries are rebuilt
    while the slot is still this request's.
    """
    async with served(request).gate.admit(_slots_needed(body)):
        status, answer = await _collect(request, path, body)
        splitter = _splitter(request, body)
        if status == 200 and splitter is not None:
            await splitter.chunk(answer)
        return status, answer


async def _collect(request: web.Request, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    """Stream ``body`` from the engine and collect the chunks into its JSON answer."""
    engine, session = served(request).engine, request.app[_SESSION]
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    async with session.post(engine.url + path, json=streamed) as upstream:
        if upstream.status != 200:
            return upstream.status, await _payload(upstream)
        collector = Collector(chat=path.endswith("/chat/completions"))
        async for kind, item in _events(upstream):
            if kind == "error":
                return 500, item
            if kind == "done":
                return 200, collector.answer()
            collector.feed(item)
    raise aiohttp.ClientPayloadError("the engine's stream ended without [DONE]")


async def _fan_out(request: web.Request, path: str, bodies: list[dict[str, Any]],
                   prompt_param: str) -> list[dict[str, Any]] | web.Response:
    """Send ``bodies`` concurrently; the first engine error becomes the answer."""
    # A task group: if one generation fails, the others are cancelled, not left running.
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_generate(request, path, b)) for b in bodies]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None  # the first failure says what went wrong
    results = [task.result() for task in tasks]
    for status, payload in results:
        if status != 200 or not isinstance(payload, dict):
            return _error(status if status != 200 else 502,
                          adapt.normalise_error(status, payload, prompt_param=prompt_param,
                                                model=served(request).model.id))
    return [payload for _, payload in results]


def _splitter(request: web.Request, body: dict[str, Any]) -> Splitter | None:
    """A :class:`Splitter` for ``body`` when it asks for logprobs, else ``None``."""
    if "messages" in body:
        top = body.get("top_logprobs") if body.get("logprobs") else None
    else:
        top = body.get("logprobs")
    if top is None:
        return None
    return Splitter(request.app[_SESSION], served(request).engine.url, body, int(top),
                    served(request).memo)


async def _detokenize(request: web.Request, plan: adapt.CompletionPlan) -> None:
    """Fill in the text of token-id prompts (needed for echo and text_offset)."""
    engine, session = served(request).engine, request.app[_SESSION]
    for i, prompt in enumerate(plan.prompts):
        if plan.prompt_texts[i] is None:
            status, payload = await _upstream_json(session, engine.url + "/detokenize",
                                                   {"tokens": prompt})
            if status == 200 and isinstance(payload, dict):
                plan.prompt_texts[i] = str(payload.get("content", ""))


async def _document_start(request: web.Request) -> list[int]:
    """The engine's token id for the start of a document (asked once per model).

    :data:`DOCUMENT_START` (SmolLM2's), else the model's own ``<bos>`` (Gemma's).
    """
    memo = served(request).memo
    if "document_start" not in memo:
        engine, session = served(request).engine, request.app[_SESSION]
        for marker in (DOCUMENT_START, "<bos>"):
            status, payload = await _upstream_json(session, engine.url + "/tokenize", {
                "content": marker, "parse_special": True, "add_special": False})
            tokens = payload.get("tokens") if status == 200 and isinstance(payload, dict) \
                else None
            if isinstance(tokens, list) and len(tokens) == 1 and isinstance(tokens[0], int):
                memo["document_start"] = tokens
                break
        else:
            raise adapt.LocalRequestError(
                f"An empty prompt means the start of a document, but the local model has no "
                f"single {DOCUMENT_START} token. Give a non-empty 'prompt'.", param="prompt")
    return list(memo["document_start"])


async def _send_events(request: web.Request, events: list[dict[str, Any]]) -> web.StreamResponse:
    """A complete SSE answer made of ``events`` and ``[DONE]``."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    for event in events:
        await response.write(f"data: {json.dumps(event)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _relay_stream(request: web.Request, path: str, body: dict[str, Any],
                        feed: Callable[[Any], list[dict[str, Any]]],
                        finish: Callable[[], list[dict[str, Any]]],
                        prompt_param: str, wire: Wire = _CHAT_WIRE) -> web.StreamResponse:
    """Relay one engine SSE stream through the adapter, event by event."""
    async with served(request).gate.admit(_slots_needed(body)):
        return await _relay_admitted(request, path, body, feed, finish, prompt_param, wire)


async def _relay_admitted(request: web.Request, path: str, body: dict[str, Any],
                          feed: Callable[[Any], list[dict[str, Any]]],
                          finish: Callable[[], list[dict[str, Any]]],
                          prompt_param: str, wire: Wire) -> web.StreamResponse:
    engine, session = served(request).engine, request.app[_SESSION]
    async with session.post(engine.url + path, json=body) as upstream:
        if upstream.status != 200:
            payload = await _payload(upstream)
            return _error(upstream.status, adapt.normalise_error(
                upstream.status, payload, prompt_param=prompt_param,
                model=served(request).model.id))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)

        async def send(chunks: list[dict[str, Any]], done: bool = False) -> None:
            try:
                for chunk in chunks:
                    await response.write(wire.frame(chunk))
                if done:
                    if not wire.named:
                        await response.write(b"data: [DONE]\n\n")
                    await response.write_eof()
            except ConnectionResetError as exc:
                raise _ClientGone from exc

        errored = False
        splitter = _splitter(request, body)
        try:
            async for kind, item in _events(upstream):
                if kind == "error":
                    await send(wire.errors(adapt.normalise_error(
                        500, item, prompt_param=prompt_param,
                        model=served(request).model.id)))
                    errored = True
                elif kind == "done":
                    await send(finish(), done=True)
                    return response
                else:
                    for part in await splitter.stream(item) if splitter else [item]:
                        await send(feed(part))
            if errored:
                return response
            problem = "ended without [DONE]"
        except _ClientGone:
            # Our client went away; leaving the block closes the upstream
            # connection, which makes the engine stop generating.
            return response
        except (aiohttp.ClientError, ValueError) as exc:
            problem = f"broke off: {exc}"
        # Say so in-band, as OpenAI does, and end without [DONE].
        message = f"The local engine's stream {problem}"
        try:
            await send(wire.errors(adapt.error_body(message, type="server_error")))
        except _ClientGone:
            pass
        return response
