"""An incremental Server-Sent Events parser (pure, no I/O).

Feed it bytes as they arrive, split anywhere; it yields complete events.
Lines may end in ``\\n``, ``\\r\\n`` or ``\\r`` (a ``\\r`` at the end of one chunk
and ``\\n`` at the start of the next are one line end). Text is decoded as
UTF-8 only per complete line, so a character split across chunks is safe.
Follows the WHATWG event-stream rules: ``data`` lines are joined with
``\\n``, comment lines (``:``) are ignored, an event is dispatched on a blank
line, a field without a colon has an empty value, one leading space of a value
is dropped. One extension: llama.cpp's server sends its errors as
``error: {...}`` lines, which become an event named ``error`` carrying that
value. This is the one SSE parser: the client reads provider streams with it
and the embedded engine's adapter reads llama.cpp's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent"]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Turn a byte stream into :class:`ServerSentEvent` objects."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip_lf = False  # last chunk ended in \r: a leading \n belongs to it
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> Iterator[ServerSentEvent]:
        """Consume ``chunk``; yield every event it completes."""
        if not chunk:
            return
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        self._buf += chunk
        buf = self._buf
        start = 0
        n = len(buf)
        while start < n:
            cr = buf.find(b"\r", start)
            lf = buf.find(b"\n", start)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, nxt = lf, lf + 1
            else:
                end = cr
                if cr + 1 < n:
                    nxt = cr + 2 if buf[cr + 1] == 0x0A else cr + 1
                else:
                    nxt = cr + 1
                    self._skip_lf = True
            line = bytes(buf[start:end])
            start = nxt
            event = self._line(line)
            if event is not None:
                yield event
        del buf[:start]

    @property
    def pending(self) -> bool:
        """True if bytes or fields of an unfinished event are buffered."""
        return bool(self._buf.strip()) or bool(self._data)

    def _line(self, raw: bytes) -> ServerSentEvent | None:
        if not raw:
            if not self._data:
                # Nothing to dispatch; the spec resets the event name (id persists).
                self._event, self._retry = None, None
                return None
            ev = ServerSentEvent(
                data="\n".join(self._data), event=self._event, id=self._id, retry=self._retry
            )
            self._data, self._event, self._retry = [], None, None
            return ev
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            if value.isdigit():
                self._retry = int(value)
        elif name == "error":  # llama.cpp: `error: {...}`, an event of its own
            self._data, self._event = [value], "error"
        return None
