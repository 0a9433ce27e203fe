"""Build a :class:`~gptmagic.core.types.Result` from the Responses API's JSON (pure).

``POST /responses`` answers with a ``Response`` object (:func:`parse_responses`)
or, streamed, with typed events (:class:`ResponsesAccumulator`). Both give the
``Result(kind="response")`` a chat call gives, so callers need not care which
endpoint or mode answered:

- ``text``: the ``output_text`` parts of the ``message`` items, joined (the
  SDKs' ``output_text``); a refusal in ``Choice.refusal``; function calls in
  chat's ``tool_calls`` shape (``{"id": call_id, "type": "function",
  "function": {"name", "arguments"}}``); the reasoning summary in
  ``Result.reasoning`` (its parts joined by a blank line);
- ``status`` as the server sent it, and ``finish_reason`` in the names chat
  users know (:func:`finish_reason`);
- ``usage``: input and output tokens as prompt and completion tokens (output
  includes reasoning, as billed), with cached, cache-write and reasoning tokens;
- logprobs (``include=["message.output_text.logprobs"]``) in the one
  normalised form (:func:`~gptmagic.core.logprobs.from_wire`);
- ``raw``: the ``Response`` itself (streamed: the terminal event's), e.g. for
  its reasoning items' ``encrypted_content``.

Numbers are checked as :mod:`gptmagic.core.response` checks chat's (usage
counts, logprobs), and so are the stream's own: ``sequence_number`` rises,
indices are whole numbers from 0, nothing follows the terminal event, and a
``done`` event's text extends what its deltas sent (a server that skipped
deltas has the rest passed on as one more delta). A ``failed`` response or an
``error`` event is a :class:`~gptmagic.errors.ResponseFailedError` carrying
the server's message and ``error.code``; the client retries a
``server_error`` as a 5xx, and turns a streamed failure that had shown text
into a :class:`~gptmagic.errors.StreamError` that keeps it (never retried).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from gptmagic.core.logprobs import from_wire
from gptmagic.core.response import (
    require_object,
    token_count,
    usage_details,
    usage_from_wire,
)
from gptmagic.core.types import Choice, Result, TokenLogprob, Usage
from gptmagic.errors import MalformedResponseError, ResponseFailedError

__all__ = ["ResponsesAccumulator", "TERMINAL_EVENTS", "finish_reason", "parse_responses",
           "usage_from_responses"]

#: The events that end a Responses stream (it may send no ``[DONE]`` after them).
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})

#: Events that carry the whole ``Response`` while it runs (its id, model, status).
_PROGRESS_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})

# "max_tokens": the spec's own ResponseIncompleteEvent example says so.
_INCOMPLETE = {"max_output_tokens": "length", "max_tokens": "length",
               "content_filter": "content_filter"}

#: Statuses of a Response that is not finished: a final body with one was made with
#: ``background: true`` (or is not final at all).
_RUNNING = frozenset({"queued", "in_progress"})


def finish_reason(status: str | None, incomplete: Any, tool_calls: bool) -> str | None:
    """A Response's ``status`` as chat's ``finish_reason``.

    ``completed`` is ``stop`` (``tool_calls`` when the output calls a function);
    ``incomplete`` is ``length`` at ``max_output_tokens`` (or ``max_tokens``) and
    ``content_filter``
    for that reason (another reason is kept as sent); ``failed`` and
    ``cancelled`` stay as they are; a response still running has none.
    """
    if status == "completed":
        return "tool_calls" if tool_calls else "stop"
    if status == "incomplete":
        reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
        return _INCOMPLETE.get(str(reason), str(reason) if reason else "incomplete")
    if status in ("failed", "cancelled"):
        return status
    return None


def usage_from_responses(raw: Any) -> Usage | None:
    """A Response's ``usage`` checked; None if it has none.

    A server that sends chat's field names here (``prompt_tokens``...) is read
    as chat's usage. ``input_tokens`` and ``output_tokens`` are required (as
    ``ResponseUsage`` requires them): a usage without one is malformed, not 0.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise MalformedResponseError(f"usage is {type(raw).__name__}, not an object")
    if "input_tokens" not in raw and "output_tokens" not in raw and (
            "prompt_tokens" in raw or "completion_tokens" in raw):
        return usage_from_wire(raw)
    inp = _required_count(raw, "input_tokens")
    out = _required_count(raw, "output_tokens")
    total = token_count(raw.get("total_tokens"), "usage.total_tokens")
    ind = usage_details(raw, "input_tokens_details")
    outd = usage_details(raw, "output_tokens_details")
    where = "usage.input_tokens_details."
    return Usage(
        prompt_tokens=inp, completion_tokens=out, total_tokens=total or inp + out,
        cached_tokens=token_count(ind.get("cached_tokens"), where + "cached_tokens"),
        cache_write_tokens=token_count(ind.get("cache_write_tokens"),
                                       where + "cache_write_tokens"),
        reasoning_tokens=token_count(outd.get("reasoning_tokens"),
                                     "usage.output_tokens_details.reasoning_tokens"),
    )


def _required_count(usage: dict[str, Any], name: str) -> int:
    n = token_count(usage.get(name), f"usage.{name}")
    if n is None:
        raise MalformedResponseError(
            f"usage.{name} is missing (ResponseUsage requires input_tokens and output_tokens; "
            "a count left out is not 0)")
    return n


def _index(value: Any, where: str) -> int:
    """An ``output_index`` / ``content_index`` / ``summary_index``: absent is 0."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedResponseError(f"{where} is {value!r}, not an integer from 0")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise MalformedResponseError(f"{where} is {type(value).__name__}, not a string")
    return value


def _created(value: Any) -> int | None:
    # Metadata only: an odd timestamp is dropped, not a failed call.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if math.isfinite(value) and value >= 0 else None


def _logprobs(value: Any, where: str) -> list[TokenLogprob] | None:
    """A ``logprobs`` list (``LogProb`` or ``ResponseLogProb`` entries) normalised."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise MalformedResponseError(f"{where} is {type(value).__name__}, not a list")
    try:
        return from_wire({"content": value})[0]
    except MalformedResponseError as e:
        raise MalformedResponseError(f"{where}: {e}") from None


def _failure(response: dict[str, Any]) -> ResponseFailedError:
    err = response.get("error")
    if isinstance(err, dict):
        msg, code = err.get("message"), err.get("code")
        text = f"the response failed: {msg or 'no error message'}"
        return ResponseFailedError(text + (f" (code: {code})" if code else ""),
                                   code=str(code) if code else None)
    return ResponseFailedError("the response failed, with no error message")


class _Part:
    """One text (or summary, or refusal) part: its pieces, logprobs, and whether it is done."""

    __slots__ = ("pieces", "logprobs", "done")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.logprobs: list[TokenLogprob] | None = None
        self.done = False

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def settle(self, text: str, where: str) -> str:
        """Take a part's final ``text``; returns what the deltas had not sent."""
        have = self.text
        self.done = True
        if text == have:
            return ""
        if not text.startswith(have):
            raise MalformedResponseError(
                f"{where} is {text[:60]!r}, which does not continue the {len(have)} characters "
                f"its deltas sent ({have[:60]!r})")
        rest = text[len(have):]
        self.pieces.append(rest)
        return rest


class ResponsesAccumulator:
    """Fold a Responses stream's events into a :class:`Result` (see the module docstring).

    ``add(event, name)`` takes one event's JSON (``name`` is its SSE ``event:``
    line, if any) and returns the ``(0, text)`` pieces of reply text it
    carried, for live display. ``result()`` may be called at any point (the
    partial text of a cut stream). :func:`parse_responses` reads a whole
    ``Response`` with the same rules.
    """

    def __init__(self) -> None:
        self.chunks = 0  #: events folded (named as chat's Accumulator names them)
        self.finished = False  #: a terminal event has arrived
        self._seq: int | None = None
        self._text: dict[tuple[int, int], _Part] = {}
        self._refusal: dict[tuple[int, int], _Part] = {}
        self._summary: dict[tuple[int, int], _Part] = {}
        self._calls: dict[int, dict[str, Any]] = {}
        self._meta: dict[str, Any] = {}
        self._usage: Usage | None = None
        self._raw: dict[str, Any] | None = None
        #: Output index of each item id the events named: the final Response's items
        #: are matched to what streamed by id, whatever order it lists them in.
        self._ids: dict[str, int] = {}
        #: A reasoning item has begun: the model is reasoning (or has reasoned).
        self.reasoning_started = False

    # -- events ---------------------------------------------------------------------------

    def add(self, event: Any, name: str | None = None) -> list[tuple[int, str]]:
        """Fold one event; returns the pieces of reply text it carried."""
        where = f"stream event {self.chunks + 1}"
        event = require_object(event, where)
        self.chunks += 1
        kind = event.get("type", name)
        if not isinstance(kind, str):
            raise MalformedResponseError(f"{where} has no 'type'")
        event = {**event, "type": kind}
        if name and name not in (kind, "message"):  # "message": SSE's generic name
            raise MalformedResponseError(
                f"{where} is named {name!r} on its event line but has type {kind!r}")
        where = f"{where} ({kind})"
        if self.finished:
            raise MalformedResponseError(f"{where} came after the response ended")
        self._sequence(event.get("sequence_number"), where)
        if kind == "error":
            code = event.get("code")
            raise ResponseFailedError(f"the server sent an error mid-stream: "
                                      f"{event.get('message') or 'no error message'}"
                                      + (f" (code: {code})" if code else ""),
                                      code=str(code) if code else None)
        if kind in TERMINAL_EVENTS or kind in _PROGRESS_EVENTS:
            return self._response(require_object(event.get("response"), f"{where}.response"),
                                  where, terminal=kind in TERMINAL_EVENTS)
        o = _index(event.get("output_index"), f"{where}.output_index")
        item = event.get("item")
        item_id = event.get("item_id", item.get("id") if isinstance(item, dict) else None)
        if isinstance(item_id, str) and item_id:
            self._ids.setdefault(item_id, o)
        fold = self._FOLDS.get(kind)
        # Other events (content_part.*, annotations, built-in tools' progress) carry
        # nothing a Result holds, or repeat what the events folded here give.
        return fold(self, event, o, where) if fold else []

    def _key(self, event: dict[str, Any], o: int, index: str, where: str) -> tuple[int, int]:
        return o, _index(event.get(index), f"{where}.{index}")

    def _text_delta(self, event: dict[str, Any], o: int, where: str) -> list[tuple[int, str]]:
        part = self._part(self._text, self._key(event, o, "content_index", where), where)
        piece = _string(event.get("delta"), f"{where}.delta")
        lps = _logprobs(event.get("logprobs"), f"{where}.logprobs")
        if lps:
            part.logprobs = (part.logprobs or []) + lps
        if not piece:
            return []
        part.pieces.append(piece)
        return [(0, piece)]

    def _text_done(self, event: dict[str, Any], o: int, where: str) -> list[tuple[int, str]]:
        return self._settle_text(self._key(event, o, "content_index", where),
                                 event.get("text"), event.get("logprobs"), where)

    def _refusal_delta(self, event: dict[str, Any], o: int, where: str) -> list[tuple[int, str]]:
        part = self._part(self._refusal, self._key(event, o, "content_index", where), where)
        part.pieces.append(_string(event.get("delta"), f"{where}.delta"))
        return []

    def _refusal_done(self, event: dict[str, Any], o: int, where: str) -> list[tuple[int, str]]:
        key = self._key(event, o, "content_index", where)
        self._refusal.setdefault(key, _Part()).settle(
            _string(event.get("refusal"), f"{where}.refusal"), f"{where}.refusal")
        return []

    def _summary_delta(self, event: dict[str, Any], o: int, where: str) -> list[tuple[int, str]]:
        part = self._part(self._summary, self._key(event, o, "summary_index", where), where)
        part.pieces.append(_string(event.get("delta"), f"{where}.delta"))
        return []

    def _summary_done(self, event: dict[str, Any], o: int, where: str) -> list[tuple[int, str]]:
        key = self._key(event, o, "summary_index", where)
        self._summary.setdefault(key, _Part()).settle(
            _string(event.get("text"), f"{where}.text"), f"{where}.text")
        return []

    def _args_delta(self, event: dict[str, Any], o: int, where: str) -> list[tuple[int, str]]:
        call = self._calls.setdefault(o, _call(event.get("item_id")))
        call["function"]["arguments"] += _string(event.get("delta"), f"{where}.delta")
        return []

    def _args_done(self, event: dict[str, Any], o: int, where: str) -> list[tuple[int, str]]:
        call = self._calls.setdefault(o, _call(event.get("item_id")))
        call["function"]["arguments"] = _string(event.get("arguments"), f"{where}.arguments")
        if isinstance(event.get("name"), str):
            call["function"]["name"] = event["name"]
        return []

    def _item_event(self, event: dict[str, Any], o: int, where: str) -> list[tuple[int, str]]:
        item = require_object(event.get("item"), f"{where}.item")
        return self._item(o, item, f"{where}.item",
                          done=event["type"] == "response.output_item.done")

    _FOLDS: dict[str, Callable[[ResponsesAccumulator, dict[str, Any], int, str],
                               list[tuple[int, str]]]] = {
        "response.output_text.delta": _text_delta,
        "response.output_text.done": _text_done,
        "response.refusal.delta": _refusal_delta,
        "response.refusal.done": _refusal_done,
        "response.reasoning_summary_text.delta": _summary_delta,
        "response.reasoning_summary_text.done": _summary_done,
        "response.function_call_arguments.delta": _args_delta,
        "response.function_call_arguments.done": _args_done,
        "response.output_item.added": _item_event,
        "response.output_item.done": _item_event,
    }

    def _sequence(self, value: Any, where: str) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise MalformedResponseError(
                f"{where}.sequence_number is {value!r}, not an integer from 0")
        if self._seq is not None and value <= self._seq:
            raise MalformedResponseError(
                f"{where}.sequence_number is {value}, after {self._seq}: an event repeated or "
                "out of order would garble the reply")
        self._seq = value

    def _part(self, parts: dict[tuple[int, int], _Part], key: tuple[int, int],
              where: str) -> _Part:
        part = parts.setdefault(key, _Part())
        if part.done:
            raise MalformedResponseError(
                f"{where} continues output {key[0]} part {key[1]} after its done event")
        return part

    def _settle_text(self, key: tuple[int, int], text: Any, lps: Any,
                     where: str) -> list[tuple[int, str]]:
        part = self._text.setdefault(key, _Part())
        rest = part.settle(_string(text, f"{where}.text"), f"{where}.text")
        final = _logprobs(lps, f"{where}.logprobs")
        if final and not part.logprobs:
            part.logprobs = final
        return [(0, rest)] if rest else []

    def _item(self, o: int, item: dict[str, Any], where: str,
              done: bool) -> list[tuple[int, str]]:
        """One output item (added, done, or in a whole Response): what it holds."""
        kind = item.get("type")
        if kind == "reasoning":
            self.reasoning_started = True
        if kind == "function_call":
            call = self._calls.setdefault(o, _call(item.get("id")))
            if isinstance(item.get("call_id"), str):
                call["id"] = item["call_id"]
            if isinstance(item.get("name"), str) and item["name"]:
                call["function"]["name"] = item["name"]
            args = item.get("arguments")
            if done or args:
                call["function"]["arguments"] = _string(args, f"{where}.arguments")
            return []
        if not done:
            return []
        out: list[tuple[int, str]] = []
        if kind == "message":
            content = item.get("content")
            if not isinstance(content, list):
                raise MalformedResponseError(f"{where}.content is not a list")
            for c, part in enumerate(content):
                part = require_object(part, f"{where}.content[{c}]")
                if part.get("type") == "output_text":
                    out += self._settle_text((o, c), part.get("text"), part.get("logprobs"),
                                             f"{where}.content[{c}]")
                elif part.get("type") == "refusal":
                    self._refusal.setdefault((o, c), _Part()).settle(
                        _string(part.get("refusal"), f"{where}.content[{c}].refusal"),
                        f"{where}.content[{c}].refusal")
        elif kind == "reasoning":
            summary = item.get("summary") or []
            if not isinstance(summary, list):
                raise MalformedResponseError(f"{where}.summary is not a list")
            for s, part in enumerate(summary):
                part = require_object(part, f"{where}.summary[{s}]")
                self._summary.setdefault((o, s), _Part()).settle(
                    _string(part.get("text"), f"{where}.summary[{s}].text"),
                    f"{where}.summary[{s}].text")
        return out

    def _response(self, response: dict[str, Any], where: str,
                  terminal: bool) -> list[tuple[int, str]]:
        """A ``Response`` object: its metadata, and, when final, its output and usage."""
        for key in ("id", "model", "created_at"):
            if response.get(key) is not None:
                self._meta[key] = response[key]
        status = response.get("status")
        if status is not None:
            self._meta["status"] = _string(status, f"{where}.status")
        if not terminal:
            return []
        self.finished = True
        self._raw = response
        self._meta["incomplete_details"] = response.get("incomplete_details")
        self._usage = usage_from_responses(response.get("usage"))
        output = response.get("output")
        if not isinstance(output, list):
            raise MalformedResponseError(f"{where}.output is not a list")
        out: list[tuple[int, str]] = []
        for o, item in enumerate(output):
            item = require_object(item, f"{where}.output[{o}]")
            at = self._ids.get(item["id"], o) if isinstance(item.get("id"), str) else o
            out += self._item(at, item, f"{where}.output[{o}]", done=True)
        text = response.get("output_text")
        if isinstance(text, str) and text and not self._text:
            # A server that sends only the SDKs' convenience field.
            out += self._settle_text((0, 0), text, None, f"{where}.output_text")
        if self._meta.get("status") == "failed":
            raise _failure(response)
        return out

    @property
    def reasoning(self) -> str:
        """The reasoning summary so far (its parts joined by a blank line), for live
        display while a reasoning model reasons and before its reply's text comes."""
        return "\n\n".join(t for t in (self._summary[k].text for k in sorted(self._summary))
                           if t)

    @property
    def has_text(self) -> bool:
        """Any of the reply's text has arrived."""
        return any(p.pieces for p in self._text.values())

    # -- the result -----------------------------------------------------------------------

    def result(self) -> Result:
        """The Result so far (whole once a terminal event has arrived)."""
        text_parts = [self._text[k] for k in sorted(self._text)]
        logprobs: list[TokenLogprob] | None = None
        for part in text_parts:
            if part.logprobs is not None:
                logprobs = (logprobs or []) + part.logprobs
        refusal = "".join(self._refusal[k].text for k in sorted(self._refusal))
        summary = [self._summary[k].text for k in sorted(self._summary)]
        calls = [self._calls[k] for k in sorted(self._calls)]
        status = self._meta.get("status")
        choice = Choice(
            index=0, text="".join(p.text for p in text_parts),
            finish_reason=finish_reason(status, self._meta.get("incomplete_details"),
                                        bool(calls)),
            role="assistant", refusal=refusal or None, tool_calls=calls or None,
            logprobs=logprobs)
        return Result(
            kind="response", model=str(self._meta.get("model") or ""), choices=[choice],
            usage=self._usage, id=_str_or_none(self._meta.get("id")),
            created=_created(self._meta.get("created_at")), raw=self._raw,
            reasoning="\n\n".join(s for s in summary if s) or None, status=status)


def _call(item_id: Any) -> dict[str, Any]:
    """A function call in chat's ``tool_calls`` shape (its id is the ``call_id``)."""
    return {"id": item_id if isinstance(item_id, str) else None, "type": "function",
            "function": {"name": "", "arguments": ""}}


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_responses(body: Any) -> Result:
    """A whole (non-streamed) ``Response`` as a Result.

    ``failed`` raises :class:`~gptmagic.errors.ResponseFailedError`; a response
    still ``queued`` or ``in_progress`` (a ``background`` one) is not an
    answer, and raises naming its status.
    """
    body = require_object(body, "Responses API response")
    if body.get("object", "response") != "response":
        raise MalformedResponseError(
            f"Responses API response has object {body.get('object')!r}, not 'response'")
    status = body.get("status")
    if status in _RUNNING:
        raise MalformedResponseError(
            f"Responses API response {body.get('id')!r} has status {status!r}: it is not "
            "finished (a background response?), so it has no reply yet; gptmagic waits for "
            "replies, so leave background unset, or fetch the response later with "
            "GET /responses/{id}")
    acc = ResponsesAccumulator()
    acc._response(body, "response", terminal=True)
    return acc.result()
