"""A chat answer as a Responses API ``Response``, and a chat stream as its events.

Pure, no I/O (the clock is passed in). :mod:`.responses` plans a
``CreateResponse`` as a chat request; the chat answer it gets back (already
normalised by :mod:`.adapt`: usage summed, logprobs one entry per token) is
rebuilt here in the Responses shape:

* the message's text is one ``output_text`` part; tool calls are
  ``function_call`` items after it;
* ``finish_reason: "length"`` is ``status: "incomplete"`` with
  ``incomplete_details.reason: "max_output_tokens"`` (the message item too);
* usage is ``input_tokens`` / ``output_tokens`` with ``cached_tokens`` from
  the engine, ``cache_write_tokens: 0`` (llama.cpp keeps its prompt cache at
  no charge) and ``reasoning_tokens: 0`` (the model does not reason);
* logprobs, when ``include`` asked for them, in the ``LogProb`` shape on the
  part, and per delta in the ``ResponseLogProb`` shape. From a reply's first
  non-ASCII token on, the chat stream sends the text at once and the entries
  in one chunk with no text just before the reply ends (see
  :meth:`gptmagic.local.rescore.Splitter.stream`); that chunk is one more
  ``output_text.delta`` with ``delta: ""`` carrying them, so the deltas hold
  one entry per output token, as the ``done`` event and the part do.

A stream is the event sequence OpenAI sends: ``response.created``,
``response.in_progress``, then per output item ``output_item.added``,
``content_part.added``, ``output_text.delta``..., ``output_text.done``,
``content_part.done``, ``output_item.done`` (function calls:
``function_call_arguments.delta``... and ``.done``), and last
``response.completed`` or ``response.incomplete`` with the whole Response.
Every event has ``sequence_number`` 0, 1, 2, ... An engine failure
mid-stream is an ``error`` event and then ``response.failed``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gptmagic.local.responses import ResponsePlan

__all__ = ["ResponseStream", "build_response", "response_usage"]


def _suffix(chat_id: Any) -> str:
    return str(chat_id or "local").removeprefix("chatcmpl-").removeprefix("cmpl-")


def response_usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    """Chat usage as ``ResponseUsage``."""
    usage = usage or {}
    given = int(usage.get("prompt_tokens") or 0)
    made = int(usage.get("completion_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {"input_tokens": given,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": made, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": given + made}


def _bytes(entry: dict[str, Any]) -> list[int]:
    raw = entry.get("bytes")
    return list(raw) if isinstance(raw, list) else list(str(entry.get("token", "")).encode())


def _part_logprobs(logprobs: Any) -> list[dict[str, Any]]:
    """Chat logprob entries as the ``LogProb`` list of an ``output_text`` part."""
    entries = (logprobs or {}).get("content") if isinstance(logprobs, dict) else None
    return [{"token": str(e.get("token", "")), "logprob": float(e.get("logprob") or 0.0),
             "bytes": _bytes(e),
             "top_logprobs": [{"token": str(a.get("token", "")),
                               "logprob": float(a.get("logprob") or 0.0), "bytes": _bytes(a)}
                              for a in e.get("top_logprobs") or []]}
            for e in entries or [] if isinstance(e, dict)]


def _delta_logprobs(part: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``LogProb`` entries in the ``ResponseLogProb`` shape of a text delta."""
    return [{"token": e["token"], "logprob": e["logprob"],
             "top_logprobs": [{"token": a["token"], "logprob": a["logprob"]}
                              for a in e["top_logprobs"]]} for e in part]


def _text_part(text: str, logprobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}


def _message(item_id: str, status: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": parts}


def _call(item_id: str, call: dict[str, Any], status: str) -> dict[str, Any]:
    function = call.get("function") or {}
    return {"id": item_id, "type": "function_call", "status": status,
            "call_id": str(call.get("id") or item_id), "name": str(function.get("name") or ""),
            "arguments": str(function.get("arguments") or "")}


def _skeleton(plan: ResponsePlan, resp_id: str, created: int) -> dict[str, Any]:
    """A Response with no output yet, as ``response.created`` shows it (no usage: the
    schema has no null for it)."""
    return {"id": resp_id, "object": "response", "created_at": created,
            "status": "in_progress", "completed_at": None, "error": None,
            "incomplete_details": None, "model": plan.chat.model, "output": [],
            **plan.echo}


def _finished(response: dict[str, Any], finish: str | None, output: list[dict[str, Any]],
              usage: dict[str, Any] | None, now: float) -> dict[str, Any]:
    incomplete = finish == "length"
    return {**response, "status": "incomplete" if incomplete else "completed",
            "completed_at": None if incomplete else int(now),
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "output": output, "usage": response_usage(usage)}


def build_response(plan: ResponsePlan, chat: dict[str, Any], now: float) -> dict[str, Any]:
    """The ``Response`` for a whole chat answer (``now``: when it was finished)."""
    suffix = _suffix(chat.get("id"))
    choice = (chat.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    finish = choice.get("finish_reason")
    status = "incomplete" if finish == "length" else "completed"
    output: list[dict[str, Any]] = []
    text = message.get("content")
    calls = message.get("tool_calls") or []
    if text or not calls:
        logprobs = _part_logprobs(choice.get("logprobs")) if plan.logprobs else []
        output.append(_message(f"msg_{suffix}", status, [_text_part(text or "", logprobs)]))
    output += [_call(f"fc_{suffix}_{i}", call, status) for i, call in enumerate(calls)]
    response = _skeleton(plan, f"resp_{suffix}", int(chat.get("created") or now))
    return _finished(response, finish, output, chat.get("usage"), now)


class ResponseStream:
    """Rewrites a chat stream into Responses events (feed engine chunks, then finish).

    ``feed`` and ``finish`` are those of the chat stream machine the plan
    goes through (:class:`~gptmagic.local.stream.ChatStream`, or verbatim's);
    ``clock`` gives ``created_at`` and ``completed_at``.
    """

    def __init__(self, plan: ResponsePlan, feed: Callable[[Any], list[dict[str, Any]]],
                 finish: Callable[[], list[dict[str, Any]]], clock: Callable[[], float]
                 ) -> None:
        self.plan, self._feed, self._finish, self.clock = plan, feed, finish, clock
        self.sequence = 0
        self.response: dict[str, Any] | None = None
        self.output: list[dict[str, Any]] = []  # finished items
        self.text: list[str] | None = None  # the open message's text pieces
        self.logprobs: list[dict[str, Any]] = []
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> open item
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.suffix = "local"
        self.failed = False

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def _open(self, chunk: dict[str, Any] | None) -> list[dict[str, Any]]:
        if self.response is not None:
            return []
        self.suffix = _suffix((chunk or {}).get("id"))
        created = int((chunk or {}).get("created") or self.clock())
        self.response = _skeleton(self.plan, f"resp_{self.suffix}", created)
        return [self._event("response.created", response=self.response),
                self._event("response.in_progress", response=self.response)]

    def feed(self, engine_chunk: Any) -> list[dict[str, Any]]:
        """Events for one engine chunk."""
        events: list[dict[str, Any]] = []
        for chunk in self._feed(engine_chunk):
            events += self._chunk(chunk)
        return events

    def _chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if self.failed:
            return []
        if "error" in chunk:
            return self.fail(chunk)
        events = self._open(chunk)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            part = _part_logprobs(choice.get("logprobs")) if self.plan.logprobs else []
            if delta.get("content") or part:
                events += self._text(str(delta.get("content") or ""), part)
            for call in delta.get("tool_calls") or []:
                events += self._tool_call(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def _output_index(self) -> int:
        return len(self.output)

    def _text(self, piece: str, part: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A text delta: ``piece`` and the ``LogProb`` entries that came with it.

        The chat stream sends the entries of a reply with non-ASCII text after
        the text, in one chunk with no text just before the choice ends
        (:meth:`gptmagic.local.rescore.Splitter.stream` says why), so
        ``piece`` may be ``""``: a delta that carries only entries.
        """
        events: list[dict[str, Any]] = []
        item_id = f"msg_{self.suffix}"
        if self.text is None:
            self.text = []
            events += self._text_opened()
        self.text.append(piece)
        self.logprobs += part
        events.append(self._event("response.output_text.delta", item_id=item_id,
                                  output_index=self._output_index(), content_index=0,
                                  delta=piece, logprobs=_delta_logprobs(part)))
        return events

    def _close_text(self, status: str) -> list[dict[str, Any]]:
        if self.text is None:
            return []
        item_id, index, text = f"msg_{self.suffix}", self._output_index(), "".join(self.text)
        part = _text_part(text, self.logprobs)
        item = _message(item_id, status, [part])
        self.text = None
        self.output.append(item)
        return [self._event("response.output_text.done", item_id=item_id, output_index=index,
                            content_index=0, text=text,
                            logprobs=_delta_logprobs(self.logprobs)),
                self._event("response.content_part.done", item_id=item_id, output_index=index,
                            content_index=0, part=part),
                self._event("response.output_item.done", output_index=index, item=item)]

    def _tool_call(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close_text("completed")
        index = int(call.get("index") or 0)
        function = call.get("function") or {}
        if index not in self.calls:
            item = _call(f"fc_{self.suffix}_{index}", {**call, "function": {
                "name": function.get("name"), "arguments": ""}}, "in_progress")
            self.calls[index] = item
            events.append(self._event("response.output_item.added",
                                      output_index=self._call_index(index), item=dict(item)))
        item = self.calls[index]
        if function.get("name") and not item["name"]:
            item["name"] = str(function["name"])
        piece = str(function.get("arguments") or "")
        if piece:
            item["arguments"] += piece
            events.append(self._event("response.function_call_arguments.delta",
                                      item_id=item["id"],
                                      output_index=self._call_index(index), delta=piece))
        return events

    def _call_index(self, index: int) -> int:
        return len(self.output) + list(self.calls).index(index)

    def _close_calls(self, status: str) -> list[dict[str, Any]]:
        events = []
        for index in list(self.calls):
            item = {**self.calls[index], "status": status}
            position = self._call_index(index)
            events += [self._event("response.function_call_arguments.done", item_id=item["id"],
                                   output_index=position, name=item["name"],
                                   arguments=item["arguments"]),
                       self._event("response.output_item.done", output_index=position,
                                   item=item)]
        self.output += [{**item, "status": status} for item in self.calls.values()]
        self.calls = {}
        return events

    def finish(self) -> list[dict[str, Any]]:
        """The closing events, at the end of the engine's stream."""
        if self.failed:
            return []
        events: list[dict[str, Any]] = []
        for chunk in self._finish():
            events += self._chunk(chunk)
        events += self._open(None)
        status = "incomplete" if self.finish_reason == "length" else "completed"
        if self.text is None and not self.calls and not self.output:
            self.text = []  # no text and no call: an empty message, as OpenAI sends
            events += self._text_opened()
        events += self._close_text(status) + self._close_calls(status)
        assert self.response is not None
        self.response = _finished(self.response, self.finish_reason, self.output, self.usage,
                                  self.clock())
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        return events + [self._event(kind, response=self.response)]

    def _text_opened(self) -> list[dict[str, Any]]:
        item_id = f"msg_{self.suffix}"
        return [self._event("response.output_item.added", output_index=self._output_index(),
                            item=_message(item_id, "in_progress", [])),
                self._event("response.content_part.added", item_id=item_id,
                            output_index=self._output_index(), content_index=0,
                            part=_text_part("", []))]

    def fail(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """An engine error mid-stream: an ``error`` event, then ``response.failed``."""
        found = body.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        message = str(error.get("message") or "The local engine failed.")
        code = error.get("code") if isinstance(error.get("code"), str) else None
        param = error.get("param") if isinstance(error.get("param"), str) else None
        if self.failed:
            return []
        self.failed = True
        events = self._open(None)
        events.append(self._event("error", code=code or str(error.get("type") or "server_error"),
                                  message=message, param=param))
        assert self.response is not None
        self.response = {**self.response, "status": "failed", "output": self.output,
                         "error": {"code": "server_error", "message": message}}
        return events + [self._event("response.failed", response=self.response)]
