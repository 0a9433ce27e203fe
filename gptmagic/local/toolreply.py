"""A reply decoded under the tool grammar, read back as OpenAI's text or tool calls (pure).

:mod:`.toolcalls` makes the model answer ``{"response": "..."}`` or
``{"tool_calls": [{"name": ..., "arguments": {...}}, ...]}``. This module
reads that JSON *as it streams*, one character at a time, so the reply
streams the way OpenAI's does:

* the ``response`` string's characters are the message's ``content``
  (escapes decoded; with ``response_format``, the ``response`` value's JSON
  text is the content);
* each call is announced (``id``, ``type``, ``name``) once its name is
  complete, then its ``arguments`` follow as pieces of JSON text. The
  grammar lets the model put newlines and indentation between tokens (it
  does, measured on SmolLM2); whitespace outside strings is left out of the
  arguments, so they read as compact JSON (``{"city":"Paris"}``), as
  OpenAI's do, and the pieces always join to the final string.

A reply cut off by ``max_tokens`` keeps what came: the text so far, or the
calls whose names were complete (arguments as far as they got), with
``finish_reason: "length"``. A reply that is not JSON of either shape
(the grammar makes that impossible, bar a cut) is passed on as its text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ReplyDecoder", "decode_message", "new_call_id"]

_SPACE = " \t\r\n"


def new_call_id() -> str:
    """A fresh tool call id, ``call_`` and 24 hex digits, as OpenAI's look."""
    return "call_" + uuid.uuid4().hex[:24]


@dataclass
class _Frame:
    """An open object or array: its current key or index, and what comes next."""

    kind: str  # "{" or "["
    key: Any = None  # the current key (objects) or index (arrays)
    expect: str = "value"  # "key", "colon", "value" or "comma"


@dataclass
class _Call:
    id: str
    name: str | None = None
    arguments: list[str] = field(default_factory=list)
    sent: int = 0  # argument pieces already given out
    announced: bool = False


class ReplyDecoder:
    """One choice's JSON reply in (:meth:`feed` pieces, then :meth:`finish`), deltas out.

    Each call returns the ``delta`` fields for that piece: ``content`` and/or
    ``tool_calls`` (OpenAI's ``ChatCompletionMessageToolCallChunk`` list),
    or ``{}`` when the piece showed nothing yet.
    """

    def __init__(self, *, structured: bool = False,
                 new_id: Callable[[], str] = new_call_id) -> None:
        self.structured = structured
        self.new_id = new_id
        self.frames: list[_Frame] = []
        self.raw: list[str] = []  # every character, for a reply that is not our JSON
        self.string: str | None = None  # None, "key" or "value": inside a string
        self.escape = ""  # an escape sequence being read inside a string
        self.scalar = False  # inside a number, true, false or null
        self.key: list[str] = []  # the raw characters of the key being read
        self.capture: list[str] | None = None  # where a value's JSON text goes
        self.capture_depth = 0
        self.decoded: list[str] | None = None  # where a string's decoded text goes
        self.surrogate = ""  # a high surrogate waiting for its pair
        self.text: list[str] = []
        self.answered = False  # the reply chose the "response" branch
        self.calls: list[_Call] = []
        self._content: list[str] = []  # content not yet given out

    # --- the scanner ------------------------------------------------------------------------

    def _path(self) -> tuple[Any, ...]:
        return tuple(f.key for f in self.frames)

    def _char(self, ch: str) -> None:
        self.raw.append(ch)
        if self.string is not None:
            self._string_char(ch)
            return
        if self.scalar:
            if ch not in _SPACE + ",]}":
                self._emit(ch)
                return
            self.scalar = False
            self._value_end()
        if ch in _SPACE:
            return
        top = self.frames[-1] if self.frames else None
        if top is not None and ch == '"' and top.kind == "{" and top.expect == "key":
            self._emit(ch)
            self.string, self.key = "key", []
        elif top is not None and ch == ":":
            self._emit(ch)
            top.expect = "value"
        elif top is not None and ch == ",":
            self._emit(ch)
            if top.kind == "[":
                top.key += 1
            top.expect = "key" if top.kind == "{" else "value"
        elif top is not None and ch in "}]":
            self._emit(ch)
            self.frames.pop()
            self._value_end()
        else:
            self._value_start(ch)

    def _string_char(self, ch: str) -> None:
        self._emit(ch)
        if self.escape:
            self.escape += ch
            if self.escape[1] != "u" or len(self.escape) == 6:
                self._decoded(self.escape)
                self.escape = ""
            return
        if ch == "\\":
            self.escape = ch
        elif ch == '"':
            kind, self.string = self.string, None
            if kind == "key":
                top = self.frames[-1]
                top.key, top.expect = json.loads('"' + "".join(self.key) + '"'), "colon"
            else:
                self._value_end()
        elif self.string == "key":
            self.key.append(ch)
        else:
            self._decoded(ch)

    def _decoded(self, raw: str) -> None:
        """One character (or escape) of a string: kept as a key's, or as decoded text."""
        if self.string == "key":
            self.key.append(raw)
            return
        if self.decoded is None:
            return
        text = self.surrogate + raw
        if text.startswith("\\u") and len(text) == 6 and 0xD800 <= int(text[2:], 16) < 0xDC00:
            self.surrogate = text  # the first half of a pair: wait for the second
            return
        self.surrogate = ""
        try:
            self.decoded.append(json.loads('"' + text + '"'))
        except ValueError:
            self.decoded.append(text)

    def _value_start(self, ch: str) -> None:
        path = self._path()
        if self.capture is None:
            self._begin(path)
        self._emit(ch)
        if ch == "{":
            self.frames.append(_Frame("{", expect="key"))
        elif ch == "[":
            self.frames.append(_Frame("[", key=0))
        elif ch == '"':
            self.string = "value"
            if path == ("response",) and not self.structured:
                self.answered, self.decoded = True, self.text
            elif len(path) == 3 and path[0] == "tool_calls" and path[2] == "name" and \
                    self._call(path[1]) is not None:
                self.decoded = []
        else:
            self.scalar = True

    def _begin(self, path: tuple[Any, ...]) -> None:
        """What a value starting at ``path`` means for the reply."""
        if len(path) == 2 and path[0] == "tool_calls" and isinstance(path[1], int) and \
                path[1] == len(self.calls):
            self.calls.append(_Call(self.new_id()))
        elif len(path) == 3 and path[0] == "tool_calls" and path[2] == "arguments":
            call = self._call(path[1])
            if call is not None:
                self.capture, self.capture_depth = call.arguments, len(self.frames)
        elif path == ("response",) and self.structured:
            self.answered = True
            self.capture, self.capture_depth = self.text, len(self.frames)

    def _value_end(self) -> None:
        if self.frames:
            self.frames[-1].expect = "comma"
        if self.capture is not None and len(self.frames) == self.capture_depth:
            self.capture = None
        if self.decoded is not None and self.decoded is not self.text:
            path = self._path()
            call = self._call(path[1]) if len(path) == 3 else None
            if call is not None and call.name is None:
                call.name = "".join(self.decoded)
        self.decoded = None

    def _emit(self, ch: str) -> None:
        """A character of the value being captured (whitespace between tokens never comes)."""
        if self.capture is not None:
            self.capture.append(ch)

    def _call(self, index: Any) -> _Call | None:
        return self.calls[index] if isinstance(index, int) and index < len(self.calls) else None

    # --- deltas -----------------------------------------------------------------------------

    def feed(self, text: str) -> dict[str, Any]:
        """The delta fields for the next piece of the model's text."""
        start = len(self.text)
        for ch in text:
            self._char(ch)
        return self._delta(start)

    def finish(self) -> dict[str, Any]:
        """The delta fields still due at the end of the reply: its text, when it is not JSON.

        A reply cut off before it chose a branch (``{"resp``) says nothing.
        """
        raw = "".join(self.raw)
        if not self.answered and not self.calls and raw.strip() and \
                not raw.lstrip().startswith("{"):
            self.text, self.answered = [raw], True
            return {"content": raw}
        return {}

    def _delta(self, start: int) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if self.answered and len(self.text) > start:
            delta["content"] = "".join(self.text[start:])
        pieces = []
        for index, call in enumerate(self.calls):
            if call.name is None:
                continue  # announced once its name is complete
            arguments = "".join(call.arguments[call.sent:])
            call.sent = len(call.arguments)
            if not call.announced:
                call.announced = True
                pieces.append({"index": index, "id": call.id, "type": "function",
                               "function": {"name": call.name, "arguments": arguments}})
            elif arguments:
                pieces.append({"index": index, "function": {"arguments": arguments}})
        if pieces:
            delta["tool_calls"] = pieces
        return delta

    @property
    def called(self) -> bool:
        """True when the reply calls at least one tool."""
        return any(call.name is not None for call in self.calls)

    def message(self) -> dict[str, Any]:
        """The whole reply as an assistant message's ``content`` and ``tool_calls``."""
        if self.called:
            return {"content": None, "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": "".join(c.arguments)}}
                for c in self.calls if c.name is not None]}
        return {"content": "".join(self.text)}

    def finish_reason(self, engine: str | None) -> str | None:
        """The engine's finish reason, ``tool_calls`` when a finished reply called tools."""
        return "tool_calls" if engine == "stop" and self.called else engine


def decode_message(content: str | None, finish_reason: str | None, *, structured: bool = False,
                   new_id: Callable[[], str] = new_call_id) -> tuple[dict[str, Any], str | None]:
    """A whole reply's JSON text as message fields and its finish reason."""
    decoder = ReplyDecoder(structured=structured, new_id=new_id)
    decoder.feed(content or "")
    decoder.finish()
    return decoder.message(), decoder.finish_reason(finish_reason)
