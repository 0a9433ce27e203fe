"""Build :class:`~gptmagic.types.Result` objects from wire JSON (pure).

:func:`parse_response` reads a whole (non-streamed) body; :class:`Accumulator`
folds stream chunks into the same result type, so callers never care whether
a reply was streamed.

Numbers a server sends are checked before anything counts, prices or draws
them, and one it cannot mean is a :class:`~gptmagic.errors.MalformedResponseError`
for that call (one row of a batch), never a built-in exception:

- :func:`loads` reads standard JSON only. Python's ``json`` accepts ``NaN``
  and ``Infinity``, which RFC 8259 does not; they are refused, as is a
  number past a float's range (``1e400``). ``-Infinity`` is read (a logprob
  of an impossible token, as some servers write it) and becomes
  :data:`~gptmagic.core.logprobs.FLOOR` where a logprob is expected.
- usage counts are whole numbers from 0 to :data:`MAX_TOKENS` (not negative,
  not strings or lists, not 1e400);
- logprobs are numbers at most 0 (:func:`~gptmagic.core.logprobs.from_wire`);
- choice indices are whole numbers from 0, each once per response (or, in a
  stream, once per chunk, and no text after that choice's ``finish_reason``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from gptmagic.core.logprobs import from_wire
from gptmagic.core.types import Choice, Result, TokenLogprob, Usage
from gptmagic.errors import MalformedResponseError

__all__ = ["Accumulator", "MAX_TOKENS", "fold_tool_call", "loads", "parse_response",
           "require_object", "token_count", "usage_details", "usage_from_wire"]

#: The largest token count a usage field may report. Context windows are at
#: most a few million tokens; a billion is no real call, and pricing it would
#: put an absurd cost in a budget.
MAX_TOKENS = 10**9


def _constant(name: str) -> float:
    if name == "-Infinity":
        return -math.inf
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is past a float's range")
    return value


def loads(raw: bytes | str) -> Any:
    """JSON as RFC 8259 has it: ``NaN``, ``Infinity`` and ``1e400`` raise ValueError."""
    return json.loads(raw, parse_constant=_constant, parse_float=_finite)


def token_count(value: Any, where: str) -> int | None:
    """A token count checked: None if absent, else a whole number in 0..MAX_TOKENS."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            isinstance(value, float) and not value.is_integer()):
        raise MalformedResponseError(f"{where} is {value!r}, not a whole number of tokens")
    if not 0 <= value <= MAX_TOKENS:
        raise MalformedResponseError(
            f"{where} is {value!r}, outside 0..{MAX_TOKENS:,} tokens")
    return int(value)


def usage_details(usage: dict[str, Any], key: str) -> dict[str, Any]:
    """``usage[key]`` (a details object) checked; ``{}`` if absent."""
    d = usage.get(key)
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise MalformedResponseError(f"usage.{key} is {type(d).__name__}, not an object")
    return d


def usage_from_wire(raw: Any) -> Usage | None:
    """A response's ``usage`` checked (see the module docstring); None if it has none."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise MalformedResponseError(f"usage is {type(raw).__name__}, not an object")
    prompt = token_count(raw.get("prompt_tokens"), "usage.prompt_tokens") or 0
    completion = token_count(raw.get("completion_tokens"), "usage.completion_tokens") or 0
    total = token_count(raw.get("total_tokens"), "usage.total_tokens")
    cached = token_count(usage_details(raw, "prompt_tokens_details").get("cached_tokens"),
                    "usage.prompt_tokens_details.cached_tokens")
    reasoning = token_count(usage_details(raw, "completion_tokens_details").get("reasoning_tokens"),
                       "usage.completion_tokens_details.reasoning_tokens")
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=total or prompt + completion, cached_tokens=cached,
                 reasoning_tokens=reasoning)


def _index(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedResponseError(
            f"{where} is not an integer from 0 ({value!r}), so not a choice index")
    return value


def _created(value: Any) -> int | None:
    # Metadata only: a server's odd timestamp is dropped, not a failed call.
    return value if isinstance(value, int) and not isinstance(value, bool) else None

def require_object(body: Any, what: str) -> dict[str, Any]:
    """``body`` if it is a JSON object, else a MalformedResponseError naming ``what``."""
    if not isinstance(body, dict):
        raise MalformedResponseError(f"{what}: expected a JSON object, got {type(body).__name__}")
    return body


def _finish(v: Any) -> str | None:
    return None if v is None else str(v)


def parse_response(kind: str, body: Any, *, prompt_len: int | None = None) -> Result:
    """A whole chat (``kind="chat"``) or completion (``"completion"``) response."""
    body = require_object(body, f"{kind} response")
    choices_raw = body.get("choices")
    if not isinstance(choices_raw, list):
        raise MalformedResponseError(f"{kind} response has no 'choices' list")
    if not choices_raw:
        raise MalformedResponseError(f"{kind} response has an empty 'choices' list")
    choices: list[Choice] = []
    seen: set[int] = set()
    for pos, c in enumerate(choices_raw):
        c = require_object(c, f"{kind} response choices[{pos}]")
        index = _index(c.get("index", pos), f"choices[{pos}].index")
        if index in seen:
            raise MalformedResponseError(
                f"choices[{pos}].index is {index}, which an earlier choice has: two answers "
                "under one index cannot be told apart")
        seen.add(index)
        try:
            logprobs, prompt_lp = from_wire(c.get("logprobs"), prompt_len=prompt_len)
        except MalformedResponseError as e:
            raise MalformedResponseError(f"choices[{pos}].{e}") from None
        if kind == "chat":
            msg = c.get("message")
            if not isinstance(msg, dict):
                raise MalformedResponseError(f"chat response choices[{pos}] has no 'message'")
            content = msg.get("content")
            if content is not None and not isinstance(content, str):
                raise MalformedResponseError(
                    f"choices[{pos}].message.content is {type(content).__name__}, not a string"
                )
            choices.append(
                Choice(
                    index=index,
                    text=content or "",
                    finish_reason=_finish(c.get("finish_reason")),
                    role=str(msg.get("role") or "assistant"),
                    refusal=msg.get("refusal"),
                    tool_calls=msg.get("tool_calls") or None,
                    logprobs=logprobs,
                )
            )
        else:
            text = c.get("text")
            if not isinstance(text, str):
                raise MalformedResponseError(f"completion response choices[{pos}] has no 'text'")
            choices.append(
                Choice(
                    index=index,
                    text=text,
                    finish_reason=_finish(c.get("finish_reason")),
                    logprobs=logprobs,
                    prompt_logprobs=prompt_lp,
                )
            )
    choices.sort(key=lambda ch: ch.index)
    return Result(
        kind=kind,
        model=str(body.get("model") or ""),
        choices=choices,
        usage=usage_from_wire(body.get("usage")),
        id=body.get("id"),
        created=_created(body.get("created")),
        system_fingerprint=body.get("system_fingerprint"),
        raw=body,
    )


class _ChoiceState:
    __slots__ = ("text", "role", "refusal", "finish", "tools", "logprobs", "prompt_logprobs")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.role: str | None = None
        self.refusal: list[str] = []
        self.finish: str | None = None
        self.tools: dict[int, dict[str, Any]] = {}
        # Checked and normalised chunk by chunk, so a bad value ends the stream
        # where it arrives, with the text before it kept.
        self.logprobs: list[TokenLogprob] | None = None
        self.prompt_logprobs: list[TokenLogprob] | None = None


def fold_tool_call(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    """Fold one streamed ``tool_calls`` delta into ``calls`` (by the delta's ``index``).

    Name and arguments arrive in pieces and are joined; id and type are kept.
    """
    i = delta.get("index", len(calls))
    cur = calls.setdefault(
        i, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
    )
    if delta.get("id"):
        cur["id"] = delta["id"]
    if delta.get("type"):
        cur["type"] = delta["type"]
    fn = delta.get("function") or {}
    if fn.get("name"):
        cur["function"]["name"] += fn["name"]
    if fn.get("arguments"):
        cur["function"]["arguments"] += fn["arguments"]


class Accumulator:
    """Fold streamed chunks into a :class:`Result`.

    ``add(chunk)`` returns the list of ``(choice_index, text)`` deltas the
    chunk carried, for live display. ``result()`` may be called at any time
    (e.g. for the partial text of a dropped stream).
    """

    def __init__(self, kind: str, *, prompt_len: int | None = None) -> None:
        self.kind = kind
        self.prompt_len = prompt_len
        self._choices: dict[int, _ChoiceState] = {}
        self._usage: Usage | None = None
        self._meta: dict[str, Any] = {}
        self.chunks = 0

    def add(self, chunk: Any) -> list[tuple[int, str]]:
        chunk = require_object(chunk, "stream chunk")
        self.chunks += 1
        for key in ("id", "model", "created", "system_fingerprint"):
            if chunk.get(key) is not None and key not in self._meta:
                self._meta[key] = chunk[key]
        if chunk.get("usage") is not None:
            self._usage = usage_from_wire(chunk["usage"])
        choices = chunk.get("choices")
        if choices is None:
            choices = []
        if not isinstance(choices, list):
            raise MalformedResponseError("stream chunk 'choices' is not a list")
        deltas: list[tuple[int, str]] = []
        here: set[int] = set()
        for pos, c in enumerate(choices):
            c = require_object(c, f"stream chunk choices[{pos}]")
            idx = _index(c.get("index", pos), f"stream chunk choices[{pos}].index")
            if idx in here:
                raise MalformedResponseError(
                    f"stream chunk {self.chunks} has choice index {idx} twice")
            here.add(idx)
            st = self._choices.setdefault(idx, _ChoiceState())
            finished = st.finish
            piece = self._fold(st, c)
            if finished and (piece or c.get("finish_reason") is not None):
                raise MalformedResponseError(
                    f"stream chunk {self.chunks} continues choice {idx} after it finished "
                    f"({finished}): two answers under one index cannot be told apart")
            if c.get("finish_reason") is not None:
                st.finish = str(c["finish_reason"])
            if piece:
                deltas.append((idx, piece))
        return deltas

    def _fold(self, st: _ChoiceState, c: dict[str, Any]) -> str:
        piece = ""
        if self.kind == "chat":
            delta = c.get("delta") or {}
            if not isinstance(delta, dict):
                raise MalformedResponseError("stream chunk 'delta' is not an object")
            if delta.get("role"):
                st.role = str(delta["role"])
            content = delta.get("content")
            if isinstance(content, str):
                piece = content
            if isinstance(delta.get("refusal"), str):
                st.refusal.append(delta["refusal"])
            for tc in delta.get("tool_calls") or []:
                if isinstance(tc, dict):
                    fold_tool_call(st.tools, tc)
        else:
            text = c.get("text")
            if isinstance(text, str):
                piece = text
        lps, prompt_lps = from_wire(c.get("logprobs"), prompt_len=self.prompt_len)
        if piece:
            st.text.append(piece)
        if lps is not None:
            st.logprobs = st.logprobs or []
            st.logprobs.extend(lps)
        if prompt_lps is not None:
            st.prompt_logprobs = st.prompt_logprobs or []
            st.prompt_logprobs.extend(prompt_lps)
        return piece

    @property
    def finished(self) -> bool:
        """True once every choice seen has a finish_reason."""
        return bool(self._choices) and all(s.finish for s in self._choices.values())

    def result(self) -> Result:
        choices = []
        for idx in sorted(self._choices):
            st = self._choices[idx]
            choices.append(
                Choice(
                    index=idx,
                    text="".join(st.text),
                    finish_reason=st.finish,
                    role=(st.role or "assistant") if self.kind == "chat" else None,
                    refusal="".join(st.refusal) or None,
                    tool_calls=[st.tools[k] for k in sorted(st.tools)] or None,
                    logprobs=st.logprobs,
                    prompt_logprobs=st.prompt_logprobs,
                )
            )
        return Result(
            kind=self.kind,
            model=str(self._meta.get("model") or ""),
            choices=choices,
            usage=self._usage,
            id=self._meta.get("id"),
            created=_created(self._meta.get("created")),
            system_fingerprint=self._meta.get("system_fingerprint"),
            raw=None,
        )
