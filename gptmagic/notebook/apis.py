"""Which endpoint a ``%%chat`` cell sends to, and its options on each (pure, no IPython).

A cell speaks Chat Completions (``/chat/completions``) or the Responses API
(``/responses``). The magics collect options in Chat Completions' names
(``max_tokens``, ``response_format``, ``logprobs``);
:mod:`gptmagic.core.to_responses`, the translation ``evaluate(api="responses")``
uses too, renames them for ``CreateResponse`` and refuses, naming the option
by its flag, what the Responses API has no field for. The reasoning,
verbosity, tier and cache options exist on both, under different names
(:func:`api_options`), except the reasoning summary, which only the Responses
API returns.

The accepted values are those of OpenAI's published spec (schemas
``ReasoningEffort``, ``Reasoning.summary``, ``Verbosity``, ``ServiceTier``);
a test checks them against the vendored copy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gptmagic.client.config import Provider
from gptmagic.core import to_responses
from gptmagic.core.structured import Schema
from gptmagic.core.to_responses import (
    APIS,
    MIN_OUTPUT_TOKENS,
    input_items,
    response_fields,
    responses_body,
)
from gptmagic.errors import RequestError

if TYPE_CHECKING:
    from gptmagic.client.client import Client
    from gptmagic.core.types import Result

__all__ = ["APIS", "MIN_OUTPUT_TOKENS", "Outgoing", "REASONING_EFFORTS", "REASONING_SUMMARIES",
           "SERVICE_TIERS", "VERBOSITIES", "api_options", "choose_api", "chosen_by", "outgoing"]

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
REASONING_SUMMARIES = ("auto", "concise", "detailed")
VERBOSITIES = ("low", "medium", "high")
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast")

#: The cell options the translation may refuse, by their flags (errors name the flag):
#: those CreateResponse has no field for, and a max tokens below its minimum.
_FLAGS = {"n": "-n", "stop": "--stop", "seed": "--seed",
          "presence_penalty": "--presence-penalty", "frequency_penalty": "--frequency-penalty",
          "max_tokens": "--max-tokens"}
#: A cell's way back to chat, said in a refusal.
_INSTEAD = "send this cell with --api chat"

def _pick(flag: str, value: str | None, allowed: Sequence[str]) -> str | None:
    """``value`` if it is one of ``allowed`` (case ignored); an error naming them if not."""
    if value is None:
        return None
    if value.lower() not in allowed:
        raise RequestError(f"{flag} must be one of {', '.join(allowed)}; got {value!r}",
                           param=flag)
    return value.lower()


def choose_api(option: str | None, *, model: str, profile_api: str | None = None,
               model_api: Mapping[str, str] | None = None, default: str | None = None) -> str:
    """The endpoint a cell uses: ``--api``; else the first ``model_api`` pattern
    (``{"gpt-5*": "responses"}``, shell-style, case ignored) matching ``model``;
    else the profile's ``api``; else ``default``; else ``"chat"``."""
    return to_responses.choose_api(option, model=model, per_model=model_api,
                                   profile=profile_api, default=default,
                                   labels=("--api", "model_api"))


def chosen_by(option: str | None, *, model: str, profile: str, profile_api: str | None = None,
              model_api: Mapping[str, str] | None = None, default: str | None = None) -> str:
    """What chose a cell's endpoint, in the words a refusal uses (``the model_api pattern
    'gpt-5*' (%config GptMagics.model_api), over %gptmagic api responses``): the setting
    to change, and the one it overrode."""
    api, source, pattern = to_responses.api_choice(option, model=model, per_model=model_api,
                                                   profile=profile_api, default=default,
                                                   labels=("--api", "model_api"))
    words = {
        "given": f"the cell's --api {api}",
        "per_model": f"the model_api pattern {pattern!r} for {model!r} "
                     "(%config GptMagics.model_api)",
        "profile": f"profile {profile!r} (its api = {api!r})",
        "default": f"%gptmagic api {api} (GptMagics.api)",
        "builtin": "default: no --api, model_api pattern, profile api or %gptmagic api "
                   "names another",
    }
    order = ("given", "per_model", "profile", "default", "builtin")
    below = (("profile", profile_api, f"the api of profile {profile!r} ({profile_api})"),
             ("default", default, f"%gptmagic api {default}"))
    over = [said for src, value, said in below
            if value and value.lower() != api and order.index(src) > order.index(source)]
    said = words[source]
    return said + (f", over {' and '.join(over)}" if over else "")


def api_options(api: str, *, reasoning_effort: str | None = None,
                reasoning_summary: str | None = None, verbosity: str | None = None,
                service_tier: str | None = None, cache_key: str | None = None,
                store: bool = False, chosen: str | None = None) -> dict[str, Any]:
    """The body fields of the reasoning, verbosity, tier, cache and store options on ``api``.

    On Responses ``store`` is always sent: OpenAI stores a response unless told
    ``false``, and a cell that sends its whole history has no need of that.
    ``chosen`` (:func:`chosen_by`) says in a refusal what chose ``api``.
    """
    effort = _pick("--reasoning-effort", reasoning_effort, REASONING_EFFORTS)
    summary = _pick("--reasoning-summary", reasoning_summary, REASONING_SUMMARIES)
    verbose = _pick("--verbosity", verbosity, VERBOSITIES)
    tier = _pick("--service-tier", service_tier, SERVICE_TIERS)
    if cache_key is not None and not cache_key.strip():
        raise RequestError("--cache-key needs a non-empty key (any string naming the prompt "
                           "prefix requests share)", param="--cache-key")
    out: dict[str, Any] = {}
    if api == "chat":
        if summary is not None:
            why = f"; this cell goes to chat by {chosen}" if chosen else ""
            raise RequestError("--reasoning-summary needs --api responses: Chat Completions "
                               f"returns no reasoning summary{why}",
                               param="--reasoning-summary")
        fields = {"reasoning_effort": effort, "verbosity": verbose, "service_tier": tier,
                  "prompt_cache_key": cache_key, "store": True if store else None}
        return {k: v for k, v in fields.items() if v is not None}
    reasoning = {k: v for k, v in (("effort", effort), ("summary", summary)) if v is not None}
    if reasoning:
        out["reasoning"] = reasoning
    if verbose is not None:
        out["text"] = {"verbosity": verbose}
    if tier is not None:
        out["service_tier"] = tier
    if cache_key is not None:
        out["prompt_cache_key"] = cache_key
    out["store"] = store
    return out


@dataclass
class Outgoing:
    """One cell's request on its endpoint: the conversation part of the body and the
    other fields, in that endpoint's names (``timeout`` is the client's, not the body's)."""

    api: str
    #: ``{"messages": [...]}``, or ``{"input": [...], "instructions"?, "previous_response_id"?}``.
    payload: dict[str, Any]
    params: dict[str, Any]
    #: ``--schema``: its format is in ``params``; the client also validates the reply.
    schema: Schema | None = None

    @property
    def path(self) -> str:
        return "chat/completions" if self.api == "chat" else "responses"

    @property
    def chained(self) -> str | None:
        """The stored response this request continues (``previous_response_id``)."""
        return self.payload.get("previous_response_id")

    def call(self, client: Client, *, model: str, provider: Provider, stream: bool = False,
             on_delta: Callable[[int, str], None] | None = None,
             on_reasoning: Callable[[str], None] | None = None) -> Awaitable[Result]:
        """The client's coroutine that sends it (``Client.chat`` or ``Client.respond``;
        ``on_reasoning`` gets a reasoning model's summary so far, on Responses)."""
        if self.api == "chat":
            return client.chat(self.payload["messages"], model=model, provider=provider,
                               stream=stream, on_delta=on_delta, schema=self.schema,
                               **self.params)
        rest = {k: v for k, v in self.payload.items() if k != "input"}
        return client.respond(self.payload["input"], model=model, provider=provider,
                              stream=stream, on_delta=on_delta, on_reasoning=on_reasoning,
                              schema=self.schema, **rest, **self.params)

    def body(self, model: str, stream: bool) -> dict[str, Any]:
        """The JSON body the client sends (what a dry run shows)."""
        sent = {k: v for k, v in self.params.items() if k != "timeout"}
        body: dict[str, Any] = {"model": model, **self.payload, **sent}
        if stream:
            body["stream"] = True
            if self.api == "chat":  # Responses streams report usage in their last event
                body["stream_options"] = {"include_usage": True}
        return body

    def count_fields(self) -> dict[str, Any]:
        """What ``POST /responses/input_tokens`` takes of it (schema ``TokenCountsBody``),
        the ``input`` aside: the same prompt, chat's messages being valid input items."""
        params = dict(self.params)
        if self.api == "chat":  # the chat fields that change the prompt, in Responses' names
            params = response_fields({k: v for k, v in params.items() if k in _PROMPT_FIELDS})
        fields = {k: v for k, v in {**self.payload, **params}.items() if k in _COUNTED}
        if isinstance(fields.get("text"), Mapping) and "format" not in fields["text"]:
            del fields["text"]  # verbosity alone does not change the prompt
        return fields

    @property
    def input(self) -> list[dict[str, Any]]:
        """The prompt as Responses input items (chat's messages translated)."""
        if "messages" in self.payload:
            return input_items(self.payload["messages"])
        return list(self.payload.get("input") or [])


#: The chat fields that change a prompt's count (the rest are the reply's).
_PROMPT_FIELDS = ("reasoning_effort", "response_format", "tools", "tool_choice",
                  "parallel_tool_calls")
#: TokenCountsBody's fields besides ``input`` and ``model``.
_COUNTED = ("instructions", "previous_response_id", "reasoning", "text", "tools", "tool_choice",
            "parallel_tool_calls", "truncation")


def outgoing(api: str, messages: Sequence[Mapping[str, Any]],
             cell_messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any], *,
             model: str, chain: str | None = None, hosted: bool = False,
             schema: Schema | None = None) -> Outgoing:
    """The request a cell sends: on chat every message; on Responses the translation
    ``evaluate()`` sends too (:func:`gptmagic.core.to_responses.responses_body`: the
    leading system message as ``instructions``, the rest as input items), or, chained
    on a stored response (``chain``), only the cell's own messages as input, with
    ``previous_response_id``.

    ``hosted`` (OpenAI's or Azure's API) refuses a ``--max-tokens`` below the
    Responses API's minimum (:data:`MIN_OUTPUT_TOKENS`), which those servers would
    answer with a 400, in the translation ``evaluate()`` uses too; other servers
    (the embedded model) take what they take."""
    if api == "chat":
        return Outgoing(api, {"messages": [dict(m) for m in messages]}, dict(params), schema)
    fields = responses_body(messages, params, model=model, names=_FLAGS, instead=_INSTEAD,
                            hosted=hosted)
    payload: dict[str, Any] = {k: fields.pop(k) for k in ("input", "instructions")
                               if k in fields}
    if chain:
        items = [dict(m) for m in cell_messages]
        if (len(items) > 1 and items[0].get("role") == "system"
                and items[0].get("content") == payload.get("instructions")):
            items = items[1:]  # the cell repeats the thread's system line: sent once
        payload["input"] = input_items(items)
        payload["previous_response_id"] = chain
    return Outgoing(api, payload, fields, schema)
