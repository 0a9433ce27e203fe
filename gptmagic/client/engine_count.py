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
from typing import Any

from gptmagic.catalog.embedded import SMOLLM2, embedded_model
from gptmagic.catalog.tokens import MessageCount, TokenCount, as_messages, text_of
from gptmagic.errors import ConfigError, RequestError
from gptmagic.local.adapt import name_prefix

__all__ = ["ENGINE_ENCODING", "count_on_engine"]

#: The encoding name a count of the default embedded model carries (each model: its own).
ENGINE_ENCODING = SMOLLM2.encoding

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
    ``tool_choice: "auto"``): the total is the request's, ``tools`` is the
    description's share of it, and the per-message breakdown is that of the
    messages in that prompt. The description is appended to a leading system
    message, else it is a system message of its own, which takes the place of
    the template's default system prompt (so ``tools`` is then more than
    what leaving them out saves). A model whose template folds the system
    message into the first user turn (Gemma) is counted whole, with no
    per-message breakdown.
    """
    facts = embedded_model(model) or SMOLLM2
    encoding = facts.encoding
    msgs = as_messages(value)
    if msgs is None:
        if tools:
            raise RequestError("tools are counted with chat messages, not with text",
                               param="tools")
        data = await tokenize(text=value)
        return TokenCount(model, encoding, int(data["count"]), True)
    plain = [dict(m) for m in msgs]
    ids = [int(t) for t in (await tokenize(messages=plain, tools=tools or None))["tokens"]]
    total = len(ids)
    # A prompt not led by a system message gets one from the engine: the template's
    # default, or the tools' description (its first segment: see _segments).
    lead = bool(plain) and plain[0]["role"] not in ("system", "developer")
    described = 0
    if facts.merges_system:
        described = total - int((await tokenize(messages=plain))["count"]) if tools else 0
        note = ("its chat template folds the system message into the first user turn: no "
                "per-message breakdown") if breakdown else ""
        return TokenCount(model, encoding, total, True, tools=described, note=note)
    if tools:
        described = _segments(ids)[0] if lead else \
            total - int((await tokenize(messages=plain))["count"])
    if not (breakdown and ids):
        return TokenCount(model, encoding, total, True, tools=described)
    return await _breakdown(tokenize, plain, ids, model, lead, described)


def _segments(ids: list[int]) -> list[int]:
    """The sizes of a rendered prompt's pieces, split where each message starts.

    The engine's template (ChatML) opens every message with the same special
    token. Pieces: [the system message the engine adds, when the first message
    is not a system one], the messages, the reply priming (present after a
    final assistant message too: the embedded server does not prefill; a server
    that continues such a message has none).
    """
    starts = [i for i, t in enumerate(ids) if t == ids[0]]
    return [b - a for a, b in zip(starts, [*starts[1:], len(ids)], strict=True)]


async def _breakdown(tokenize: Tokenize, plain: list[dict[str, Any]], ids: list[int],
                     model: str, lead: bool, described: int) -> TokenCount:
    """The count of ``plain`` (rendered as ``ids``) split per message; ``lead``: the
    engine added a system message first; ``described``: the tools' description's
    tokens (that message, or what it adds to the first one)."""
    sizes = _segments(ids)
    priming = len(sizes) - lead - len(plain)
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
    # The message the engine adds is the tools' row with tools, else message 0's.
    added = sizes[0] if lead and not described else 0
    counts = []
    for i, m in enumerate(plain):
        share = sizes[lead + i] + (added if i == 0 else 0)
        if i == 0 and described and not lead:
            share -= described  # appended to this system message
        nm = next(name_counts) if prefixes[i] else 0
        counts.append(MessageCount(i, str(m["role"]), content[i], nm, share - content[i] - nm))
    note = ""
    if lead:
        note = ("the tools' description is the system message, in place of the engine's "
                "default system prompt, which leaving every tool out brings back" if described else
                "the engine's chat template adds its default system prompt (counted in "
                "message 0)")
    return TokenCount(model, (embedded_model(model) or SMOLLM2).encoding, len(ids), True,
                      tuple(counts),
                      sizes[-1] if priming else 0, tools=described, note=note)
