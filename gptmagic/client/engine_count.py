"""Counting a prompt's tokens on the embedded engine, with its per-message breakdown.

The engine renders its own chat template exactly as a chat request would, so
its total equals the ``usage.prompt_tokens`` a chat request reports. This is
I/O (HTTP to the engine's ``/tokenize``), so it lives with the client:
:meth:`gptmagic.client.Client.count_tokens` calls :func:`count_on_engine`
with its own ``local_tokenize``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from gptmagic.catalog.tokens import MessageCount, TokenCount, as_messages, text_of
from gptmagic.errors import ConfigError, RequestError
from gptmagic.local.adapt import name_prefix

__all__ = ["ENGINE_ENCODING", "count_on_engine"]

#: The encoding name a count of the embedded model carries.
ENGINE_ENCODING = "smollm2 (engine)"

Tokenize = Callable[..., Awaitable[dict[str, Any]]]


async def count_on_engine(
    tokenize: Tokenize,
    value: str | Sequence[Mapping[str, Any]],
    model: str,
    tools: Sequence[Mapping[str, Any]] | None = None,
    breakdown: bool = True,
) -> TokenCount:
    """Count ``value`` (text or chat messages) with the engine's tokenizer.

    ``tokenize`` is the client's ``local_tokenize`` (keyword ``text=`` or
    ``messages=``, and ``tools=``). ``tools`` are counted as the engine
    describes them in the prompt (:mod:`gptmagic.local.toolcalls`, with
    ``tool_choice: "auto"``): the total is the request's, ``tools`` is what
    their description adds, and the per-message breakdown is that of the
    messages alone.
    """
    msgs = as_messages(value)
    if msgs is None:
        if tools:
            raise RequestError("tools are counted with chat messages, not with text",
                               param="tools")
        data = await tokenize(text=value)
        return TokenCount(model, ENGINE_ENCODING, int(data["count"]), True)
    plain = [dict(m) for m in msgs]
    full = await tokenize(messages=plain)
    ids = [int(t) for t in full["tokens"]]
    total = len(ids)
    described = int((await tokenize(messages=plain, tools=tools))["count"]) if tools else total
    counted = await _breakdown(tokenize, plain, ids, model) if breakdown and ids else \
        TokenCount(model, ENGINE_ENCODING, total, True)
    return replace(counted, total=described, tools=described - total)


async def _breakdown(tokenize: Tokenize, plain: list[dict[str, Any]], ids: list[int],
                     model: str) -> TokenCount:
    """The count of ``plain`` (rendered as ``ids``) split per message."""
    total = len(ids)
    # The engine's template (ChatML) opens every message with the same special
    # token: split there. Segments: [its default system prompt, when the first
    # message is not a system one], the messages, the reply priming (present
    # after a final assistant message too: the embedded server does not prefill;
    # a server that continues such a message has none).
    starts = [i for i, t in enumerate(ids) if t == ids[0]]
    sizes = [b - a for a, b in zip(starts, [*starts[1:], total], strict=True)]
    injected = int(plain[0]["role"] not in ("system", "developer"))
    priming = len(sizes) - injected - len(plain)
    if priming not in (0, 1):
        raise ConfigError("the local engine's chat template changed shape; "
                          "cannot split its tokens per message")
    texts = [tokenize(text=text_of(m.get("content"))[0]) for m in plain]
    # A name is the prefix the server writes for it (none on assistant messages).
    prefixes = [name_prefix(m) for m in plain]
    names = [tokenize(text=p) for p in prefixes if p]
    results = await asyncio.gather(*texts, *names)
    content = [int(r["count"]) for r in results[: len(plain)]]
    name_counts = iter(int(r["count"]) for r in results[len(plain):])
    counts = []
    for i, m in enumerate(plain):
        share = sizes[injected + i] + (sizes[0] if injected and i == 0 else 0)
        nm = next(name_counts) if prefixes[i] else 0
        counts.append(MessageCount(i, str(m["role"]), content[i], nm, share - content[i] - nm))
    note = "" if not injected else (
        "the engine's chat template adds its default system prompt (counted in message 0)")
    return TokenCount(model, ENGINE_ENCODING, total, True, tuple(counts),
                      sizes[-1] if priming else 0, note=note)
