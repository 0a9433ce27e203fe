"""Fit a conversation into a model's context window.

The OpenAI guide's advice for long conversations is to drop or summarise the
earliest turns. :func:`fit_messages` does that and says what it did: it never
removes a system or developer message, keeps the latest turn, and removes
whole turns (a user message with the replies that follow it) so the
conversation never starts with an orphaned assistant reply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gptmagic.catalog.tokens import TokenCount, count
from gptmagic.errors import RequestError

__all__ = ["FitResult", "check_window", "fit_messages", "may_exceed", "too_long"]

_PINNED = ("system", "developer")
#: Models offered when a prompt outgrows a window, smallest window first.
_LARGER = ("gpt-4o-mini", "gpt-5-mini", "gpt-4.1-mini")
#: Tokens a chat message costs besides its content (3 on OpenAI, 4 with a name): a bound.
_MESSAGE_OVERHEAD = 16
SUMMARY_PREFIX = "Summary of the earlier conversation: "


@dataclass
class FitResult:
    """The fitted messages, what was removed, and the count that proves the fit."""

    messages: list[dict[str, Any]]
    removed: list[dict[str, Any]] = field(default_factory=list)
    removed_indices: list[int] = field(default_factory=list)
    summary: str | None = None
    prompt_tokens: int = 0
    context_window: int = 0
    max_tokens: int = 0
    fits: bool = True

    @property
    def changed(self) -> bool:
        return bool(self.removed)

    @property
    def note(self) -> str:
        """One line for the user: what was dropped and why."""
        budget = f"{self.context_window:,} − {self.max_tokens:,} reply tokens"
        if not self.fits:
            return (f"does not fit: {self.prompt_tokens:,} prompt tokens > {budget} even after "
                    f"removing {len(self.removed)} message(s); shorten the system message or "
                    "the last turn, or lower max_tokens")
        if not self.removed:
            return f"fits: {self.prompt_tokens:,} prompt tokens ≤ {budget}"
        how = "summarised" if self.summary is not None else "dropped"
        return (f"{how} the {len(self.removed)} oldest message(s) (indices "
                f"{', '.join(map(str, self.removed_indices))}) to fit {budget}; now "
                f"{self.prompt_tokens:,} prompt tokens")


def _turns(messages: Sequence[Mapping[str, Any]], keep_last: int) -> list[list[int]]:
    """Removable turns, oldest first: runs starting at a user message, system pinned."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    protect_from = min(last_user if last_user >= 0 else len(messages),
                       len(messages) - keep_last)
    turns: list[list[int]] = []
    for i, m in enumerate(messages[:protect_from]):
        if m.get("role") in _PINNED:
            continue
        if m.get("role") == "user" or not turns:
            turns.append([i])
        else:
            turns[-1].append(i)
    return turns


def _tiktoken_count(value: Any, model: str, *, tools: Any = None, breakdown: bool = True
                    ) -> TokenCount:
    return count(value, model, tools=tools)


def fit_messages(
    messages: Sequence[Mapping[str, Any]],
    model: str,
    *,
    max_tokens: int,
    context_window: int | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    summarize: Callable[[list[dict[str, Any]]], str] | None = None,
    keep_last: int = 1,
    count_tokens: Callable[..., TokenCount] | None = None,
) -> FitResult:
    """Drop (or, with ``summarize``, summarise) the oldest turns until the prompt
    plus ``max_tokens`` of reply fits the model's context window.

    ``summarize`` receives the removed messages and returns a text that is put
    in a system message after the leading system messages. ``count_tokens``
    counts (``(messages, model, tools=, breakdown=)``); the default is
    tiktoken, for hosted models (``gptmagic.fit_messages`` also counts the
    embedded model, on its engine).
    """
    counter = count_tokens or _tiktoken_count
    msgs = [dict(m) for m in messages]
    if context_window is None:
        from gptmagic.catalog.models import model_info

        context_window = model_info(model).context_window
        if context_window is None:
            raise RequestError(
                f"the context window of {model!r} is unknown; pass context_window=...",
                param="context_window")
    budget = context_window - max_tokens
    if max_tokens < 0 or budget <= 0:
        raise RequestError(
            f"max_tokens={max_tokens} leaves no room for a prompt in the "
            f"{context_window:,}-token context window of {model!r}", param="max_tokens")
    base = counter(msgs, model, tools=tools)
    result = FitResult(msgs, prompt_tokens=base.total, context_window=context_window,
                       max_tokens=max_tokens)
    if base.total <= budget:
        return result
    turns = _turns(msgs, keep_last)
    head = 0
    while head < len(msgs) and msgs[head].get("role") in _PINNED:
        head += 1
    # Message totals add up to the count, so pick the turns to drop from them,
    # then confirm with an exact recount (templates may shift a few tokens).
    per = [m.total for m in base.messages]
    dropped: list[int] = []
    k, saved = 0, 0
    while k < len(turns) and saved < base.total - budget:
        dropped += turns[k]
        saved += sum(per[i] for i in turns[k])
        k += 1
    while True:
        gone = set(dropped)
        kept = [m for i, m in enumerate(msgs) if i not in gone]
        removed = [msgs[i] for i in sorted(gone)]
        summary = None
        if summarize is not None and removed:
            summary = summarize([dict(m) for m in removed])
            kept.insert(head, {"role": "system", "content": SUMMARY_PREFIX + summary})
        total = counter(kept, model, tools=tools, breakdown=False).total
        result = FitResult(kept, removed, sorted(gone), summary, total, context_window,
                           max_tokens, total <= budget)
        if result.fits or k >= len(turns):
            return result
        dropped += turns[k]
        k += 1


def too_long(prompt_tokens: int, context_window: int, model: str, *,
             max_tokens: int | None = None, chat: bool = True) -> str:
    """What to tell someone whose prompt does not fit ``model``'s window: both sizes, and
    the ways out (shorten or fit it, fewer turns of a ``chat``, a larger window)."""
    from gptmagic.catalog.models import model_info

    need = prompt_tokens + (max_tokens or 0)
    reply = f" + {max_tokens:,} reply tokens (max_tokens)" if max_tokens else ""
    larger = [(name, info.context_window) for name in _LARGER
              if (info := model_info(name)).context_window is not None
              and info.context_window >= max(need, context_window + 1)]
    bigger = (f"use a model with a larger window ({larger[0][0]}: {larger[0][1]:,} tokens)"
              if larger else "split the text: no model gptmagic knows has a window that large")
    shorten = ("Shorten it (a conversation can be fitted with gptmagic.fit_messages), send "
               "fewer turns," if chat else "Shorten it")
    return (f"the prompt is {prompt_tokens:,} tokens{reply}, more than the {context_window:,}"
            f"-token context window of {model!r}. {shorten} or {bigger}.")


#: How far an estimated count (not the model's own tokenizer) must pass the window before
#: it is refused: tokenizers of one language differ by about this much.
ESTIMATE_MARGIN = 1.1


def check_window(prompt_tokens: int, model: str, *, max_tokens: int | None = None,
                 context_window: int | None = None, exact: bool = True) -> None:
    """Refuse, before it is sent, a prompt that cannot fit ``model``'s context window.

    The server would refuse it too, after a round trip, and not every server
    says how large the prompt was. A window nobody knows lets everything pass.
    A count that is an estimate (``exact=False``: another tokenizer than the
    model's own) is refused only when it passes the window by
    :data:`ESTIMATE_MARGIN`, so a prompt the server would take is never refused.
    """
    if context_window is None:
        from gptmagic.catalog.models import model_info

        context_window = model_info(model).context_window
    if context_window is None:
        return
    limit = context_window if exact else int(context_window * ESTIMATE_MARGIN)
    if prompt_tokens + (max_tokens or 0) > limit:
        raise RequestError(too_long(prompt_tokens, context_window, model, max_tokens=max_tokens),
                           param="messages")


def may_exceed(messages: Sequence[Mapping[str, Any]], context_window: int | None,
               max_tokens: int | None = None) -> bool:
    """False when ``messages`` surely fit the window, without counting them.

    A token is at least one byte of UTF-8, so a text of n characters is at
    most 4n tokens; most prompts are far below any window and need no count.
    Content that is not plain text (images, tool calls) is always counted.
    """
    if context_window is None:
        return False
    bound = 3 + (max_tokens or 0)
    for m in messages:
        content = m.get("content")
        if not isinstance(content, str | None) or m.get("tool_calls"):
            return True
        bound += 4 * (len(content or "") + len(str(m.get("name") or ""))) + _MESSAGE_OVERHEAD
    return bound > context_window
