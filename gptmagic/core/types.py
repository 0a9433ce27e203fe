"""Typed results of chat and completion calls.

Both endpoints produce the same :class:`Result`; logprobs of both arrive in
one internal form (:class:`TokenLogprob`) whatever the wire format was. A tool
loop (:mod:`gptmagic.client.tools`) records each model call and the function
calls it asked for as a :class:`Step` of :class:`ToolCall` s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Choice", "Parsed", "Result", "Step", "Timings", "TokenLogprob", "ToolCall",
           "TopLogprob", "Usage"]


@dataclass(frozen=True, slots=True)
class TopLogprob:
    """One alternative at a token position."""

    token: str
    logprob: float
    bytes: bytes | None = None

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """A token with its log probability and the top-k alternatives.

    ``logprob`` is None where the provider gives none (the first echoed prompt
    token). ``prompt`` marks echoed prompt tokens; ``offset`` is the character
    offset in the prompt+completion text when the provider reports it.
    """

    token: str
    logprob: float | None
    bytes: bytes | None = None
    top: tuple[TopLogprob, ...] = ()
    offset: int | None = None
    prompt: bool = False

    @property
    def prob(self) -> float | None:
        return None if self.logprob is None else math.exp(self.logprob)


@dataclass(slots=True)
class Usage:
    """Token usage as the provider reported it.

    Read from a reply by :func:`gptmagic.core.response.usage_from_wire` (Chat
    Completions' names) or :func:`gptmagic.core.responses.usage_from_responses`
    (the Responses API's, or chat's)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    #: Input tokens written to the provider's prompt cache (Responses API), priced at
    #: the cache-write rate where one is published.
    cache_write_tokens: int | None = None


@dataclass(slots=True)
class Timings:
    """Wall-clock timings in seconds, measured by the client.

    ``ttft`` (time to first token) is only observable when streaming; it is
    None for non-streamed calls. ``engine`` keeps server-reported timings
    (llama.cpp sends them) untouched.
    """

    total: float | None = None
    ttft: float | None = None
    attempts: int = 1
    engine: dict[str, Any] | None = None


@dataclass(slots=True)
class Choice:
    """One choice of a result: its text, why it stopped, and its logprobs."""

    index: int
    text: str = ""
    finish_reason: str | None = None
    role: str | None = None
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    logprobs: list[TokenLogprob] | None = None
    prompt_logprobs: list[TokenLogprob] | None = None

    @property
    def message(self) -> dict[str, Any]:
        """The chat message this choice adds to a conversation."""
        msg: dict[str, Any] = {"role": self.role or "assistant", "content": self.text}
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
        return msg


@dataclass(frozen=True, slots=True)
class Parsed:
    """A reply checked against a schema (:mod:`gptmagic.core.structured`): the value as
    the schema's type, or why not.

    ``value`` is a model instance (Pydantic), a dataclass instance, or a dict
    (TypedDict, dict schema); None when the reply is not valid or was refused.
    ``errors`` are ``"path: message"`` (``(root)`` for the whole reply).
    """

    value: Any = None
    valid: bool = False
    errors: tuple[str, ...] = ()
    #: The model's refusal, when it refused instead of answering.
    refusal: str | None = None


@dataclass(slots=True)
class Result:
    """The outcome of one chat or completion call (streamed or not)."""

    kind: str  # "chat", "completion" or "response" (the Responses API)
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    id: str | None = None
    created: int | None = None
    system_fingerprint: str | None = None
    request_id: str | None = None
    timings: Timings = field(default_factory=Timings)
    raw: dict[str, Any] | None = field(default=None, repr=False)
    #: The provider's ``x-ratelimit-*`` response headers (limits, remaining, reset).
    rate_limits: dict[str, str] | None = field(default=None, repr=False)
    #: What the reply shows its server did not do: usage it under-reported, a parameter
    #: it ignored (:func:`gptmagic.core.reply_checks.check_reply`). The usage is kept
    #: as the server gave it; the views show these under the reply.
    warnings: list[str] = field(default_factory=list)
    #: The reasoning summary a reasoning model returned (Responses API), if asked for.
    reasoning: str | None = None
    #: The Responses API's ``status`` (``completed``, ``incomplete``, ``failed``...);
    #: None for chat and completions. ``finish_reason`` carries the mapped reason.
    status: str | None = None
    #: A tool loop's model calls, in order, each with the function calls it asked for
    #: (the last one, the final answer, with none); empty for a single call.
    steps: list[Step] = field(default_factory=list, repr=False)
    #: Every message a tool loop added after the caller's messages, in chat's shape: each
    #: assistant message with its ``tool_calls``, the ``tool`` results, the final
    #: assistant message. A thread appends these to keep the whole exchange.
    exchange: list[dict[str, Any]] = field(default_factory=list, repr=False)
    #: The reply as the schema's type (``schema=``: a model instance, a dict...); None
    #: when no schema was asked, the reply is not valid, or the model refused.
    parsed: Any = field(default=None, repr=False)
    #: The reply checked against ``schema=``: valid or the errors with their paths, or
    #: the refusal (:class:`Parsed`); None without a schema.
    validation: Parsed | None = field(default=None, repr=False)

    @property
    def valid(self) -> bool | None:
        """Whether the reply matched ``schema=`` (False when refused); None without one."""
        return None if self.validation is None else self.validation.valid

    @property
    def text(self) -> str:
        """Text of the first choice."""
        return self.choices[0].text if self.choices else ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    @property
    def logprobs(self) -> list[TokenLogprob] | None:
        return self.choices[0].logprobs if self.choices else None

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        usage = (
            f"{self.usage.prompt_tokens}+{self.usage.completion_tokens} tokens"
            if self.usage
            else "no usage"
        )
        return (
            f"<Result {self.kind} model={self.model!r} choices={len(self.choices)} "
            f"finish={self.finish_reason!r} {usage} text={text!r}"
            + (f" steps={len(self.steps)}>" if self.steps else ">")
        )


@dataclass(slots=True)
class ToolCall:
    """One function call a model asked for in a tool loop, and what came of it.

    ``arguments`` is the JSON text exactly as the model sent it; ``args`` the
    keyword arguments it validated to (None when it did not). ``output`` is what
    the model was sent back: the function's result, or the error it is told
    about. ``error`` says what went wrong, if anything: arguments that are not
    valid, a tool that does not exist, the function's exception, or a call the
    user declined (``approved`` is then False; None when nobody was asked).
    ``seconds`` is how long the function ran.
    """

    id: str
    name: str
    arguments: str
    args: dict[str, Any] | None = None
    output: str = ""
    error: str | None = None
    approved: bool | None = None
    seconds: float = 0.0


@dataclass(slots=True)
class Step:
    """One model call of a tool loop (``result``) and the function calls it asked for,
    in the order it asked for them (empty for the final answer)."""

    result: Result
    calls: list[ToolCall] = field(default_factory=list)
