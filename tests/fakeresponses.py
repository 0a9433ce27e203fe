"""The fake server's Responses API: ``POST /v1/responses`` and ``/v1/responses/input_tokens``.

Deterministic, as the chat replies are (:mod:`fakeserver`): the reply text is
``"echo: " + the last user text`` (``input`` as a string, or the last
``role: user`` item's text), tokens are whitespace-separated words, and
logprobs (``include=["message.output_text.logprobs"]``) are ``-0.1 * (i + 1)``
for the i-th token, with ``top_logprobs`` alternatives.

What a real server does that tests lean on, in small:

- usage counts words: input = words of ``instructions`` and ``input`` (plus the
  context of a ``previous_response_id``); output = reply words plus reasoning;
- a model whose name starts ``gpt-5`` or ``o<digit>`` reasons: its reasoning
  tokens follow ``reasoning.effort`` (:data:`EFFORT_TOKENS`, ``medium`` by
  default), are billed as output, and are spent first out of
  ``max_output_tokens`` (so a small limit leaves no visible text); with
  ``reasoning.summary`` set it returns a summary (``"Reasoning about: ..."``).
  Another model given ``reasoning`` answers 400, as OpenAI does;
- ``max_output_tokens`` cuts the reply: ``status: incomplete``,
  ``incomplete_details.reason: max_output_tokens``;
- ``prompt_cache_key``: the first request with a key writes the prompt to the
  cache (``cache_write_tokens``), later ones read it (``cached_tokens``);
- ``store`` (default true) keeps a response for ``previous_response_id``; an
  unknown id is a 400 naming the parameter;
- ``tool_choice`` ``"required"`` or a named function calls that function
  with ``{"text": <last user text>}`` (``finish_reason`` ``tool_calls``);
  ``Behaviour(tool_calls=[...])`` makes the calls it lists, in order (one
  ``function_call`` item each); input that ends with ``function_call_output``
  items is answered ``"tool results: " + their outputs``;
- ``Behaviour(failed="...")`` ends the response with ``status: failed``
  and that message (streamed: a ``response.failed`` event);
- a ``json_schema`` ``text.format`` is answered with an instance of its schema
  (:mod:`fakeschema`), and a strict one that breaks OpenAI's rules is a 400
  naming ``text.format.schema``; ``Behaviour(refusal="...")`` answers with a
  ``refusal`` content part (streamed: ``response.refusal.delta`` / ``.done``).

Streams send OpenAI's event sequence with ``event:`` lines and rising
``sequence_number``s, and no ``[DONE]``. Everything validates against the
vendored spec (``Response``, each ``ResponseStreamEvent`` member,
``TokenCountsResource``; tests/test_responses_fake.py checks).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import fakeschema
from fakeserver import (
    Behaviour,
    _chat_logprob,
    _text_of,
    _tokens,
    _words,
    pieces,
    scripted_calls,
    tool_results,
)

__all__ = ["EFFORT_TOKENS", "Event", "Memory", "Refused", "build", "count_input", "error_event",
           "renumbered"]

#: Reasoning tokens a reasoning model spends per ``reasoning.effort``.
EFFORT_TOKENS = {"none": 0, "minimal": 4, "low": 8, "medium": 16, "high": 32, "xhigh": 64,
                 "max": 128}
_REASONING_MODEL = re.compile(r"^(gpt-5|o\d)")
_LOGPROBS = "message.output_text.logprobs"

Event = tuple[str, str]  # (event name, JSON data)


class Refused(Exception):
    """A request the fake API answers with a 400 (message, param)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class Memory:
    """What the fake API remembers between requests: stored responses and cache keys."""

    stored: dict[str, int] = field(default_factory=dict)  # response id -> context words
    cache_keys: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            self.stored.clear()
            self.cache_keys.clear()


def _last_user_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return ""
    for item in reversed(value):
        if isinstance(item, dict) and item.get("role") == "user":
            return _text_of(item.get("content"))
    return ""


def _input_words(value: Any) -> int:
    if isinstance(value, str):
        return _words(value)
    if not isinstance(value, list):
        return 0
    return sum(_words(item.get("content")) for item in value if isinstance(item, dict))


def count_input(data: dict, memory: Memory) -> int:
    """Input tokens of a request: words of instructions and input, plus a previous response's."""
    count = _input_words(data.get("input")) + _words(data.get("instructions"))
    prev = data.get("previous_response_id")
    if prev is not None:
        with memory.lock:
            if prev not in memory.stored:
                raise Refused(f"Previous response with id '{prev}' not found.",
                              "previous_response_id")
            count += memory.stored[prev]
    return count


def _reasoning(data: dict, model: str) -> tuple[int, str | None]:
    """(reasoning tokens, summary setting) for this request; 400 where OpenAI gives one."""
    reasoning = data.get("reasoning") or {}
    asked = {k: v for k, v in reasoning.items() if v is not None} if isinstance(
        reasoning, dict) else {}
    if not _REASONING_MODEL.match(model):
        if asked:
            key = next(iter(asked))
            raise Refused(f"Unsupported parameter: 'reasoning.{key}' is not supported with "
                          "this model.", f"reasoning.{key}")
        return 0, None
    return EFFORT_TOKENS.get(str(asked.get("effort", "medium")), 16), asked.get("summary")


def _forced(data: dict) -> str | None:
    """The function the request makes the model call, if any."""
    choice = data.get("tool_choice")
    functions = [t.get("name") for t in data.get("tools") or []
                 if isinstance(t, dict) and t.get("type") == "function"]
    if isinstance(choice, dict) and choice.get("type") == "function":
        return str(choice.get("name"))
    if choice == "required" and functions:
        return str(functions[0])
    return None


@dataclass
class _Plan:
    """Everything one reply holds, before it is written as a body or as events."""

    n: int
    data: dict
    model: str
    created: int
    tokens: list[str]
    reasoning: int
    summary: str | None
    calls: list[tuple[str, str]]  # (name, arguments) of each function call
    status: str
    usage: dict
    want_lp: bool
    top: int
    failed: str | None
    refusal: bool = False  # the tokens are a refusal, not the reply's text

    @property
    def rid(self) -> str:
        return f"resp_fake_{self.n}"

    def logprobs(self, toks: list[str], start: int = 0) -> list[dict]:
        if not self.want_lp:
            return []
        return [_chat_logprob(t, start + j, self.top) for j, t in enumerate(toks)]

    def reasoning_item(self, done: bool) -> dict:
        item: dict = {"id": f"rs_fake_{self.n}", "type": "reasoning", "summary": [],
                      "status": "completed" if done else "in_progress"}
        if done and self.summary:
            item["summary"] = [{"type": "summary_text", "text": self.summary}]
        if done and "reasoning.encrypted_content" in (self.data.get("include") or []):
            item["encrypted_content"] = f"gAAAA-fake-reasoning-{self.n}"
        return item

    def text_part(self) -> dict:
        if self.refusal:
            return {"type": "refusal", "refusal": "".join(self.tokens)}
        return {"type": "output_text", "text": "".join(self.tokens), "annotations": [],
                "logprobs": self.logprobs(self.tokens)}

    def message_item(self, done: bool) -> dict:
        return {"id": f"msg_fake_{self.n}", "type": "message", "role": "assistant",
                "status": ("completed" if self.status == "completed" else "incomplete")
                if done else "in_progress",
                "content": [self.text_part()] if done else []}

    def call_item(self, k: int, done: bool) -> dict:
        name, arguments = self.calls[k]
        return {"id": f"fc_fake_{self.n}_{k}", "type": "function_call",
                "call_id": f"call_fake_{self.n}_{k}", "name": name,
                "arguments": arguments if done else "",
                "status": "completed" if done else "in_progress"}

    def output(self) -> list[dict]:
        items = [self.reasoning_item(True)] if self.reasoning else []
        if self.calls:
            return items + [self.call_item(k, True) for k in range(len(self.calls))]
        return [*items, self.message_item(True)]

    def response(self, final: bool) -> dict:
        d = self.data
        reasoning = d.get("reasoning") if isinstance(d.get("reasoning"), dict) else {}
        status = self.status if final else "in_progress"
        return {
            "id": self.rid, "object": "response", "created_at": self.created,
            "status": status, "completed_at": self.created if status == "completed" else None,
            "error": ({"code": "server_error", "message": self.failed}
                      if final and self.failed else None),
            "incomplete_details": ({"reason": "max_output_tokens"}
                                   if status == "incomplete" else None),
            "instructions": d.get("instructions"),
            "max_output_tokens": d.get("max_output_tokens"),
            "model": self.model, "output": self.output() if final else [],
            "parallel_tool_calls": d.get("parallel_tool_calls", True),
            "previous_response_id": d.get("previous_response_id"),
            "reasoning": ({"effort": reasoning.get("effort", "medium"),
                           "summary": reasoning.get("summary")}
                          if _REASONING_MODEL.match(self.model) else None),
            "store": d.get("store", True), "temperature": d.get("temperature", 1.0),
            "top_p": d.get("top_p", 1.0), "top_logprobs": d.get("top_logprobs", 0),
            "text": d.get("text") or {"format": {"type": "text"}},
            "tool_choice": d.get("tool_choice", "auto"), "tools": d.get("tools") or [],
            "truncation": "disabled", "service_tier": "default",
            "prompt_cache_key": d.get("prompt_cache_key"),
            "safety_identifier": d.get("safety_identifier"),
            "metadata": d.get("metadata") or {},
            # The spec's examples send "usage": null while running; its schema has
            # no null there, so a running response leaves usage out.
            **({"usage": self.usage} if final else {}),
        }


def _plan(data: dict, text: str | None, n: int, memory: Memory, failed: str | None,
          b: Behaviour) -> _Plan:
    model = str(data.get("model") or "fake-model")
    fmt = (data.get("text") or {}).get("format") if isinstance(data.get("text"), dict) else None
    refused = fakeschema.refused_format(fmt, "text.format")
    if refused is not None:
        raise Refused(*refused)
    refusal = b.refusal
    text = refusal if refusal is not None else text if text is not None else \
        fakeschema.reply_text(fmt)
    reasoning, summary_setting = _reasoning(data, model)
    prompt = count_input(data, memory)
    last = _last_user_text(data.get("input"))
    calls = scripted_calls(b, _forced(data), last)
    results = tool_results(data.get("input"), "type", "function_call_output", "output")
    toks = (_tokens(" ".join(args for _, args in calls)) if calls else
            _tokens(text if text is not None else results or ("echo: " + last).rstrip()))
    limit = data.get("max_output_tokens")
    status = "completed"
    if isinstance(limit, int) and reasoning + len(toks) > limit:
        reasoning = min(reasoning, limit)
        toks, status = toks[: limit - reasoning], "incomplete"
    summary = (f"Reasoning about: {last}".rstrip() if summary_setting and reasoning else None)
    cached = write = 0
    key = data.get("prompt_cache_key")
    with memory.lock:
        if isinstance(key, str):
            if key in memory.cache_keys:
                cached = prompt
            else:
                memory.cache_keys.add(key)
                write = prompt
        if data.get("store", True) and not failed:
            memory.stored[f"resp_fake_{n}"] = prompt + len(toks)
    output = reasoning + len(toks)
    usage = {"input_tokens": prompt,
             "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": write},
             "output_tokens": output, "output_tokens_details": {"reasoning_tokens": reasoning},
             "total_tokens": prompt + output}
    want_lp = _LOGPROBS in (data.get("include") or [])
    return _Plan(n, data, model, int(time.time()), toks, reasoning, summary, calls,
                 "failed" if failed else status, usage, want_lp and refusal is None,
                 int(data.get("top_logprobs") or 0), failed, refusal is not None)


def build(data: dict, text: str | None, n: int, memory: Memory,
          failed: str | None = None, b: Behaviour | None = None
          ) -> tuple[dict, list[Event], int]:
    """(whole reply, stream events, index of the first content event) for one request
    (``b``: its scripted tool calls and refusal)."""
    p = _plan(data, text, n, memory, failed, b or Behaviour())
    seq = itertools.count()
    events: list[Event] = []

    def ev(kind: str, **fields: Any) -> None:
        events.append((kind, json.dumps({"type": kind, **fields,
                                         "sequence_number": next(seq)})))

    ev("response.created", response=p.response(False))
    ev("response.in_progress", response=p.response(False))
    o = 0
    if p.reasoning:
        ev("response.output_item.added", output_index=o, item=p.reasoning_item(False))
        if p.summary:
            where = {"item_id": f"rs_fake_{n}", "output_index": o, "summary_index": 0}
            ev("response.reasoning_summary_part.added", **where,
               part={"type": "summary_text", "text": ""})
            for piece in _tokens(p.summary):
                ev("response.reasoning_summary_text.delta", **where, delta=piece)
            ev("response.reasoning_summary_text.done", **where, text=p.summary)
            ev("response.reasoning_summary_part.done", **where,
               part={"type": "summary_text", "text": p.summary})
        ev("response.output_item.done", output_index=o, item=p.reasoning_item(True))
        o += 1
    first = len(events)
    for k, (name, arguments) in enumerate(p.calls):
        item = {"item_id": f"fc_fake_{n}_{k}", "output_index": o + k}
        ev("response.output_item.added", output_index=o + k, item=p.call_item(k, False))
        first = len(events) if k == 0 else first
        for piece in pieces(arguments):
            ev("response.function_call_arguments.delta", **item, delta=piece)
        ev("response.function_call_arguments.done", **item, name=name, arguments=arguments)
        ev("response.output_item.done", output_index=o + k, item=p.call_item(k, True))
    if not p.calls:
        part = {"item_id": f"msg_fake_{n}", "output_index": o, "content_index": 0}
        ev("response.output_item.added", output_index=o, item=p.message_item(False))
        ev("response.content_part.added", **part,
           part={"type": "refusal", "refusal": ""} if p.refusal else
           {"type": "output_text", "text": "", "annotations": [], "logprobs": []})
        first = len(events)
        if p.refusal:
            for tok in p.tokens:
                ev("response.refusal.delta", **part, delta=tok)
            ev("response.refusal.done", **part, refusal="".join(p.tokens))
        else:
            for j, tok in enumerate(p.tokens):
                ev("response.output_text.delta", **part, delta=tok,
                   logprobs=p.logprobs([tok], j))
            ev("response.output_text.done", **part, text="".join(p.tokens),
               logprobs=p.logprobs(p.tokens))
        ev("response.content_part.done", **part, part=p.text_part())
        ev("response.output_item.done", output_index=o, item=p.message_item(True))
    terminal = {"completed": "response.completed", "incomplete": "response.incomplete",
                "failed": "response.failed"}[p.status]
    ev(terminal, response=p.response(True))
    return p.response(True), events, first


def error_event(after: list[Event]) -> Event:
    """An ``error`` event numbered after ``after``."""
    seq = json.loads(after[-1][1])["sequence_number"] + 1 if after else 0
    return ("error", json.dumps({"type": "error", "code": "server_error", "message": "boom",
                                 "param": None, "sequence_number": seq}))


def renumbered(event: Event, seq: int) -> Event:
    """``event`` sent again as event number ``seq`` (an endless stream's next piece)."""
    data = json.loads(event[1])
    if isinstance(data, dict) and "sequence_number" in data:
        data["sequence_number"] = seq
    return event[0], json.dumps(data)
