"""Asking the engine for a chat prompt's ids with the messages' text kept as text.

The engine half of :mod:`gptmagic.local.verbatim` (which says why and how):
the vocabulary's control tokens, read once per app; then, only for a
request whose messages hold control-token text, two renderings of the
template (with placeholders, and as sent, to check the splice) and one
``/tokenize`` per segment, all concurrent. The chat and tokenize handlers of
:mod:`gptmagic.local.routes` use :func:`verbatim_prompt`.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from aiohttp import web

from gptmagic.local import adapt
from gptmagic.local.relay import _SESSION, _upstream_json, served
from gptmagic.local.verbatim import (
    ControlTokens,
    Segment,
    VerbatimPrompt,
    control_messages,
    message_text,
    segments,
    substitute,
    token_pieces,
    with_placeholders,
)
from gptmagic.local.vocab import read_control_tokens

__all__ = ["control_tokens", "verbatim_prompt"]

_CONTROLS = "control_tokens"


async def control_tokens(request: web.Request) -> ControlTokens:
    """The model's control tokens, read from its GGUF file on first use (~0.1 s) and kept.

    A file that cannot be read leaves none (control-token text is then
    parsed as the engine does by itself), said once on stderr.
    """
    memo = served(request).memo
    if _CONTROLS not in memo:
        path = served(request).engine.gguf_path
        try:
            ids = await asyncio.to_thread(read_control_tokens, path)
        except (OSError, ValueError) as exc:
            print(f"gptmagic: cannot read the control tokens of {path} ({exc}); control-token "
                  "text in messages will reach the model as control tokens", file=sys.stderr)
            ids = {}
        memo[_CONTROLS] = ControlTokens(ids)
    controls: ControlTokens = memo[_CONTROLS]
    return controls


def _engine_error(status: int, payload: Any) -> adapt.LocalRequestError:
    error = adapt.normalise_error(status if status != 200 else 502, payload)["error"]
    return adapt.LocalRequestError(error["message"], param=error["param"],
                                   status=status if status != 200 else 502, code=error["code"],
                                   type=error["type"])


async def _render(request: web.Request, body: dict[str, Any]) -> str:
    engine, session = served(request).engine, request.app[_SESSION]
    status, payload = await _upstream_json(session, engine.url + "/apply-template", body)
    if status != 200 or not isinstance(payload, dict) or not isinstance(payload.get("prompt"),
                                                                         str):
        raise _engine_error(status, payload)
    prompt: str = payload["prompt"]
    return prompt


async def _tokenize(request: web.Request, segment: Segment, pieces: bool,
                    add_special: bool = False) -> tuple[list[int], list[str | list[int]]]:
    engine, session = served(request).engine, request.app[_SESSION]
    status, payload = await _upstream_json(session, engine.url + "/tokenize", {
        "content": segment.text, "parse_special": segment.special, "add_special": add_special,
        "with_pieces": pieces})
    tokens = payload.get("tokens") if status == 200 and isinstance(payload, dict) else None
    if not isinstance(tokens, list):
        raise _engine_error(status, payload)
    if not pieces:
        return [int(t) for t in tokens], []
    try:
        return token_pieces(tokens)
    except ValueError as exc:
        raise _engine_error(502, f"the engine's token pieces are not in the expected shape "
                                 f"({exc})") from None


async def _added(request: web.Request, pieces: bool) -> tuple[list[int], list[str | list[int]]]:
    """What the engine puts before a chat prompt's tokens (Gemma's ``<bos>``; SmolLM2: none)."""
    memo = served(request).memo
    key = "added_pieces" if pieces else "added"
    if key not in memo:
        memo[key] = await _tokenize(request, Segment("", special=True), pieces, add_special=True)
    added: tuple[list[int], list[str | list[int]]] = memo[key]
    return added


async def verbatim_prompt(request: web.Request, body: dict[str, Any], *,
                          pieces: bool = False) -> VerbatimPrompt | None:
    """The ids of ``body``'s chat prompt with its messages' text as text.

    ``None`` when no message holds control-token text: the engine's own
    rendering and tokenizing is then already right (and costs nothing more).
    ``body`` is what ``/apply-template`` gets (a chat request, or just
    ``messages`` and ``add_generation_prompt``). A template that changes
    message text is a 400 naming the message.
    """
    controls = await control_tokens(request)
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    holding = control_messages(messages, controls)
    if not holding:
        return None
    where = holding[0]
    found = controls.find(message_text(messages[where].get("content")) or "") or ""
    marked, contents = with_placeholders(messages, holding)
    rendered, sent = await asyncio.gather(_render(request, {**body, "messages": marked}),
                                          _render(request, body))
    try:
        parts = segments(rendered, contents, controls)
    except ValueError:
        parts = None
    if parts is None or substitute(rendered, contents) != sent:
        raise adapt.LocalRequestError(
            f"messages[{where}] holds {found!r}, the text of one of the local model's control "
            "tokens, and its chat template changes message text, so it cannot be sent as text. "
            "Remove that text.", param=f"messages[{where}].content")
    lead, *tokenized = await asyncio.gather(
        _added(request, pieces), *(_tokenize(request, p, pieces) for p in parts))
    ids = lead[0] + [i for part_ids, _ in tokenized for i in part_ids]
    shown = lead[1] + [p for _, part_pieces in tokenized for p in part_pieces] if pieces \
        else None
    return VerbatimPrompt(ids=ids, text=sent, where=where, found=found, pieces=shown)
