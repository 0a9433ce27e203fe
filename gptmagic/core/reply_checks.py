"""What a reply proves its server did not do: usage it under-reported, parameters it ignored.

A generic OpenAI-compatible server may count one of ``n`` choices in
``usage`` (llama.cpp's own server does), or accept ``echo`` or ``best_of`` and
ignore them. :func:`check_reply` compares a request with its reply and
returns one plain sentence per shortfall the reply itself shows, naming the
parameter. The server's figures are kept as they are: nothing here makes up
a count, it only says that the count is too low and why.

What is a proof:

- ``usage.completion_tokens`` below a lower bound on the tokens received.
  Per choice: its logprob entries (one per token) when it has them; else
  ``max_tokens`` (a Response's ``max_output_tokens``) when it ended with
  ``finish_reason == "length"`` (the one
  case where a server reports fewer is a reply cut by the context window,
  which OpenAI and vLLM refuse up front); else 1 if it holds any text;
- ``best_of`` larger than the choices returned: every candidate not returned
  cost at least one token, and OpenAI counts them all in ``usage``;
- ``echo``: each choice's text must start with the prompt.

``suffix`` leaves no trace in a reply (a server that ignores it answers as
one that honours it would), so nothing is said about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gptmagic.core.text import count_of
from gptmagic.core.types import Choice, Result

__all__ = ["check_reply"]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _prompts(prompt: Any) -> int:
    """How many prompts a legacy completion body holds (a list of strings is a batch)."""
    if isinstance(prompt, list) and prompt and all(isinstance(p, str | list) for p in prompt):
        return len(prompt)
    return 1


def _least_tokens(choices: list[Choice], max_tokens: int | None,
                  count_logprobs: bool, limit: str = "max_tokens") -> tuple[int, str]:
    """A lower bound on the completion tokens of ``choices``, and what it rests on."""
    total, by_lp, lp_choices, at_limit, other = 0, 0, 0, 0, 0
    for c in choices:
        if count_logprobs and c.logprobs:
            total += len(c.logprobs)
            by_lp += len(c.logprobs)
            lp_choices += 1
        elif c.finish_reason == "length" and max_tokens:
            total += max_tokens
            at_limit += 1
        elif c.text or c.tool_calls or c.refusal:
            total += 1
            other += 1
    basis = []
    if lp_choices:
        basis.append(f"{count_of(by_lp, 'token')} in the logprobs of "
                     f"{count_of(lp_choices, 'choice')}")
    if at_limit:
        basis.append(f"{count_of(at_limit, 'choice')} ended at {limit}={max_tokens}")
    if other:
        basis.append(f"{count_of(other, 'other choice')} with text, 1 token or more each")
    return total, "; ".join(basis)


def check_reply(kind: str, body: Mapping[str, Any], result: Result) -> list[str]:
    """Sentences saying what ``result`` shows its server did not do of ``body``.

    ``kind`` is ``"chat"``, ``"completion"`` or ``"response"``; ``body`` is the
    request as sent. Empty when nothing can be shown (or nothing is wrong).
    """
    out: list[str] = []
    choices = result.choices
    prompt = body.get("prompt")
    echo = kind == "completion" and bool(body.get("echo"))
    if echo and isinstance(prompt, str) and prompt and choices:
        missing = [c for c in choices if not c.text.startswith(prompt)]
        if missing:
            which = ("the reply" if len(choices) == 1
                     else f"{len(missing)} of the {len(choices)} choices")
            out.append(f"echo was ignored by the server: the text of {which} does not start "
                       "with the prompt.")
    usage = result.usage
    if usage is None or not choices:
        return out
    # A Response's limit is max_output_tokens, and its output_tokens include the
    # reasoning tokens that limit counts, so "length" proves as much there too.
    max_tokens = (_int(body.get("max_output_tokens")) if kind == "response" else
                  _int(body.get("max_completion_tokens")) or _int(body.get("max_tokens")))
    # Echoed prompt tokens are told apart by offset only for a text prompt.
    least, basis = _least_tokens(
        choices, max_tokens, count_logprobs=not echo or isinstance(prompt, str),
        limit="max_output_tokens" if kind == "response" else "max_tokens")
    got, n = usage.completion_tokens, _int(body.get("n")) or 1
    counts = f"the server counts {count_of(got, 'completion token')}"
    held = "the reply holds" if len(choices) == 1 else f"the {len(choices)} choices received hold"
    low = "Tokens and cost shown are the server's figures, so too low."
    if got < least:
        many = f" With n={n} it may count only one of them." if n > 1 else ""
        out.append(f"usage looks under-reported: {counts}, but {held} at least {least} "
                   f"({basis}).{many} {low}")
        return out
    best_of = _int(body.get("best_of")) if kind == "completion" else None
    unseen = (best_of or 0) * _prompts(prompt) - len(choices)
    if best_of and unseen > 0 and got < least + unseen:
        out.append(f"best_of={best_of}: {counts}, but {held} at least {least} and the "
                   f"{count_of(unseen, 'candidate')} not returned cost 1 or more each "
                   f"({least + unseen} in all): it ignored best_of or left those candidates "
                   f"out of usage, where OpenAI counts every one. {low}")
    return out
