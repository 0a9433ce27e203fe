"""The adapter app's request handlers: chat, completions, responses, tokenize, models, health.

Each turns an OpenAI-shaped request into engine requests through
:mod:`gptmagic.local.adapt` and sends the answer back in OpenAI's shape; the
upstream calls and the SSE relay are :mod:`gptmagic.local.relay`'s.
:func:`gptmagic.local.server.create_app` routes to these.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gptmagic.local import adapt, verbatim
from gptmagic.local.relay import (
    _CREATED,
    _MODELS,
    _SESSION,
    Wire,
    _detokenize,
    _document_start,
    _error,
    _fan_out,
    _relay_stream,
    _send_events,
    _upstream_json,
    bind,
    served,
)
from gptmagic.local.response_events import ResponseStream, build_response
from gptmagic.local.responses import ResponsePlan, prepare_response, repoint
from gptmagic.local.verbatim_engine import verbatim_prompt

__all__ = ["chat_completions", "completions", "health", "models", "response_input_tokens",
           "responses", "slots", "tokenize"]

#: Chat fields that shape the prompt (the tools' description), read by ``/v1/tokenize``.
_PROMPT_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "response_format")


async def _read_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise adapt.LocalRequestError(f"The request body is not valid JSON: {exc}") from None


async def _answer(request: web.Request, path: str, plan: Any, stream: Any,
                  merge: Callable[[Any, list[Any]], Any], param: str) -> web.StreamResponse:
    """Relay ``plan`` to the engine: one stream, or every body fanned out and merged."""
    if plan.stream:
        return await _relay_stream(request, path, plan.bodies[0], stream.feed, stream.finish,
                                   param)
    answers = await _fan_out(request, path, plan.bodies, param)
    if isinstance(answers, web.Response):
        return answers
    return web.json_response(merge(plan, answers))


async def _chat_way(request: web.Request, plan: adapt.ChatPlan) -> tuple[
        str, adapt.ChatPlan, Any, Callable[[Any, list[Any]], Any]]:
    """The engine path, plan, stream machine and merge for a chat plan.

    Control-token text in a message goes as token ids over the completion
    endpoint (see :mod:`gptmagic.local.verbatim`); the rest as chat.
    """
    stream = adapt.ChatStream(plan) if plan.stream else None
    spliced = await verbatim_prompt(request, plan.bodies[0])
    if spliced is not None:
        token_plan, token_stream = verbatim.over_completions(plan, stream, spliced)
        return "/v1/completions", token_plan, token_stream, verbatim.merge_chat
    return "/v1/chat/completions", plan, stream, adapt.merge_chat


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``."""
    body = await _read_json(request)
    chosen = await bind(request, body)
    plan = adapt.prepare_chat(body, gguf_path=chosen.engine.gguf_path, model=chosen.model)
    path, plan, stream, merge = await _chat_way(request, plan)
    return await _answer(request, path, plan, stream, merge, "messages")


async def _plan_response(request: web.Request, body: Any) -> ResponsePlan:
    chosen = await bind(request, body)
    return prepare_response(body, functools.partial(adapt.prepare_chat,
                                                    gguf_path=chosen.engine.gguf_path,
                                                    model=chosen.model))


async def responses(request: web.Request) -> web.StreamResponse:
    """``POST /v1/responses``: planned as chat (:mod:`gptmagic.local.responses` says why)."""
    planned = await _plan_response(request, await _read_json(request))
    try:
        path, plan, stream, merge = await _chat_way(request, planned.chat)
    except adapt.LocalRequestError as exc:
        raise repoint(exc, planned.sources) from None
    if plan.stream:
        events = ResponseStream(planned, stream.feed, stream.finish, time.time)
        return await _relay_stream(request, path, plan.bodies[0], events.feed, events.finish,
                                   "input", Wire(named=True, fail=events.fail))
    answers = await _fan_out(request, path, plan.bodies, "input")
    if isinstance(answers, web.Response):
        return answers
    return web.json_response(build_response(planned, merge(plan, answers), time.time()))


async def response_input_tokens(request: web.Request) -> web.Response:
    """``POST /v1/responses/input_tokens``: the exact prompt count of a Responses request.

    The same translation as :func:`responses` (same checks), rendered with the
    engine's chat template and tokenized as :func:`tokenize` does, so
    ``input_tokens`` equals the ``usage.input_tokens`` of that request.
    """
    body = await _read_json(request)
    if isinstance(body, dict):  # a count is asked of a request, never generated
        body = {k: v for k, v in body.items() if k != "stream"}
    planned = await _plan_response(request, body)
    chat = planned.chat.bodies[0]
    render = {"messages": chat["messages"], "add_generation_prompt": True}
    try:
        counted = await _count_rendered(request, render, with_pieces=False)
    except adapt.LocalRequestError as exc:
        raise repoint(exc, planned.sources) from None
    if isinstance(counted, web.Response):
        return counted
    return web.json_response({"object": "response.input_tokens", "input_tokens": counted["count"]})


async def completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/completions`` (legacy)."""
    body = await _read_json(request)
    chosen = await bind(request, body)
    plan = adapt.prepare_completion(body, gguf_path=chosen.engine.gguf_path, model=chosen.model)
    if not plan.prompts:
        answer = adapt.no_completions(plan, request.app[_CREATED])
        return await _send_events(request, answer) if plan.stream else \
            web.json_response(answer[0])
    if plan.empty_prompts:
        plan.start_documents(await _document_start(request))
    if plan.needs_prompt_texts:
        await _detokenize(request, plan)
    stream = adapt.CompletionStream(plan) if plan.stream else None
    return await _answer(request, "/v1/completions", plan, stream, adapt.merge_completions,
                         "prompt")


async def tokenize(request: web.Request) -> web.Response:
    """``POST /v1/tokenize`` (a gptmagic extension): the engine's own token ids.

    ``{"text": "..."}`` tokenizes plain text (special tokens as text);
    ``{"messages": [...], "add_generation_prompt": true}`` renders the chat
    template exactly as a chat request would (same message checks, same
    ``name`` emulation, tool calls and results written as text; with
    ``tools``, ``tool_choice``, ``parallel_tool_calls`` and
    ``response_format`` the tools' description too, see
    :mod:`gptmagic.local.toolcalls`) and tokenizes that, so ``count`` equals
    the ``usage.prompt_tokens`` of the same chat request. Control-token text in a
    message is tokenized as text, as the chat request sends it
    (:mod:`gptmagic.local.verbatim`).

    ``"pieces": true`` adds ``pieces``, each token's exact bytes: a string
    when they are valid UTF-8 on their own (its UTF-8 encoding is the bytes),
    else a list of byte values (part of a character split across tokens).
    """
    body = await _read_json(request)
    if not isinstance(body, dict):
        raise adapt.LocalRequestError("The request body must be a JSON object.")
    chosen = await bind(request, body)
    if body.get("model") is not None:
        adapt.check_model(body, chosen.model, chosen.engine.gguf_path)
    with_pieces = bool(body.get("pieces", False))
    if "messages" in body:
        shaping = {k: body[k] for k in _PROMPT_FIELDS if body.get(k) is not None}
        plan = adapt.prepare_chat({"model": chosen.model.id,
                                   "messages": body["messages"], **shaping},
                                  gguf_path=chosen.engine.gguf_path, model=chosen.model)
        render = {"messages": plan.bodies[0]["messages"],
                  "add_generation_prompt": bool(body.get("add_generation_prompt", True))}
        counted = await _count_rendered(request, render, with_pieces=with_pieces)
        return counted if isinstance(counted, web.Response) else web.json_response(counted)
    if not isinstance(body.get("text"), str):
        raise adapt.LocalRequestError("Give 'text' (a string) or 'messages' (a list).",
                                      param="text")
    counted = await _count_text(request, body["text"], special=False, with_pieces=with_pieces)
    return counted if isinstance(counted, web.Response) else web.json_response(counted)


async def _count_rendered(request: web.Request, render: dict[str, Any], *,
                          with_pieces: bool) -> dict[str, Any] | web.Response:
    """The tokens of chat messages rendered with the engine's template (``/v1/tokenize``'s answer).

    Control-token text in a message is tokenized as text, as the chat request
    sends it (:mod:`gptmagic.local.verbatim`).
    """
    engine, session = served(request).engine, request.app[_SESSION]
    spliced = await verbatim_prompt(request, render, pieces=with_pieces)
    if spliced is not None:
        return {"model": engine.model.id, "count": len(spliced.ids), "prompt": spliced.text,
                "tokens": spliced.ids,
                **({"pieces": spliced.pieces} if spliced.pieces is not None else {})}
    status, payload = await _upstream_json(session, engine.url + "/apply-template", render)
    if status != 200 or not isinstance(payload, dict) or "prompt" not in payload:
        return _error(status if status != 200 else 502, adapt.normalise_error(status, payload))
    return await _count_text(request, str(payload["prompt"]), special=True,
                             with_pieces=with_pieces)


async def _count_text(request: web.Request, text: str, *, special: bool,
                      with_pieces: bool) -> dict[str, Any] | web.Response:
    """The engine's tokens of ``text`` (``special``: control-token text is control tokens)."""
    engine, session = served(request).engine, request.app[_SESSION]
    prompt = text if special else None
    # A rendered prompt gets what the engine adds to a chat prompt (Gemma's <bos>), so
    # its count is the request's prompt_tokens; plain text is counted as it is.
    status, payload = await _upstream_json(session, engine.url + "/tokenize", {
        "content": text, "parse_special": special, "add_special": special,
        "with_pieces": with_pieces})
    if status != 200 or not isinstance(payload, dict):
        return _error(status if status != 200 else 502, adapt.normalise_error(status, payload))
    tokens = payload.get("tokens") or []
    answer: dict[str, Any] = {"model": engine.model.id, "count": len(tokens), "prompt": prompt}
    if with_pieces:
        # The engine sends [{"id": n, "piece": "text" | [byte, ...]}]; keep ids as ids.
        try:
            answer["tokens"], answer["pieces"] = verbatim.token_pieces(tokens)
        except ValueError:
            return _error(502, adapt.normalise_error(502, "the engine's token pieces are "
                                                          "not in the expected shape"))
    else:
        answer["tokens"] = tokens
    return answer


async def models(request: web.Request) -> web.Response:
    """``GET /v1/models``: the installed embedded models (loaded or not)."""
    models = request.app[_MODELS]
    loaded = frozenset(s.model.id for s in models.running())
    return web.json_response(adapt.models_list(request.app[_CREATED], models.installed(),
                                               loaded))


async def slots(request: web.Request) -> web.Response:
    """``GET /slots`` (a gptmagic extension): which of the engine's slots are busy.

    ``{"slots": [{"id": 0, "busy": false}, ...], "busy": 0}``, from the
    engine's own view; a busy slot with no client is what the watchdog of
    :mod:`gptmagic.local.server` exists to prevent. ``?model=`` names the model
    (default ``local``).
    """
    await bind(request, {"model": request.query.get("model")})
    engine, session = served(request).engine, request.app[_SESSION]
    async with session.get(engine.url + "/slots") as resp:
        text = await resp.text()
    try:
        payload = json.loads(text)
        listed = [{"id": int(s["id"]), "busy": bool(s["is_processing"])} for s in payload]
    except (ValueError, TypeError, KeyError):
        return _error(502, adapt.normalise_error(502, "the engine's slots are not in the "
                                                      "expected shape"))
    return web.json_response({"slots": listed, "busy": sum(s["busy"] for s in listed)})


async def health(request: web.Request) -> web.Response:
    """``GET /health``: the first engine's own health, passed through (none yet: ok)."""
    running = request.app[_MODELS].running()
    if not running:
        return web.json_response({"status": "ok"})
    engine, session = running[0].engine, request.app[_SESSION]
    async with session.get(engine.url + "/health") as resp:
        text = await resp.text()
    try:
        payload = json.loads(text)
    except ValueError:
        payload = {"status": "ok" if resp.status == 200 else "error"}
    return web.json_response(payload, status=resp.status)
