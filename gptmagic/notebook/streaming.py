"""A reply streamed into the cell while the kernel waits, and stopped by the user.

The call runs on the portal loop; the caller's thread shows its text as it arrives
(a :class:`Sink`) and is where Kernel ▸ Interrupt lands, so that is where a stop
keeps the text that had come (:class:`Interrupted`, :func:`partial_result`).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from gptmagic.client.portal import Portal
from gptmagic.core.types import Choice, Result
from gptmagic.errors import RequestError

__all__ = ["Interrupted", "NullSink", "Sink", "partial_result", "stream_reply"]


class Sink(Protocol):
    """Where live output goes while a reply streams."""

    def update(self, texts: Mapping[int, str], model: str, elapsed: float) -> None: ...

    def close(self) -> None: ...


class Interrupted(Exception):
    """Kernel ▸ Interrupt (or Ctrl-C) while a reply streamed: the text that had arrived."""

    def __init__(self, texts: dict[int, str], elapsed: float) -> None:
        super().__init__("interrupted")
        self.texts = texts
        self.elapsed = elapsed


class NullSink:
    def update(self, texts: Mapping[int, str], model: str, elapsed: float) -> None:
        return None

    def close(self) -> None:
        return None


def stream_reply(portal: Portal, make: Callable[[Callable[[int, str], None]], Any],
                 sink: Sink, model: str, interval: float) -> Any:
    """Run ``make(on_delta)`` on the portal and show its text in ``sink`` as it arrives,
    every ``interval`` seconds, from the caller's thread. Kernel ▸ Interrupt (Ctrl-C)
    cancels the call and raises :class:`Interrupted` with the text that had come."""
    q: queue.SimpleQueue[tuple[int, str] | None] = queue.SimpleQueue()
    fut = portal.submit(make(lambda i, t: q.put((i, t))))
    fut.add_done_callback(lambda _: q.put(None))  # wakes the loop at once when done
    texts: dict[int, str] = {}
    t0 = time.monotonic()
    last = 0.0
    dirty = False
    item: tuple[int, str] | tuple[()] | None

    def drain() -> bool:
        """Add the deltas already queued; whether there were any."""
        got = False
        while True:
            try:
                queued = q.get_nowait()
            except queue.Empty:
                return got
            if queued:
                texts[queued[0]] = texts.get(queued[0], "") + queued[1]
                got = True

    try:
        while True:
            try:
                item = q.get(timeout=interval)
            except queue.Empty:
                item = ()
            if item is None:
                break
            if item:
                i, t = item
                texts[i] = texts.get(i, "") + t
                dirty = True
            now = time.monotonic()
            if dirty and now - last >= interval:
                sink.update(texts, model, now - t0)
                last, dirty = now, False
        dirty = drain() or dirty  # deltas that arrived with the last chunk
        result = fut.result()
        if dirty:
            sink.update(texts, model, time.monotonic() - t0)
        return result
    except KeyboardInterrupt:
        # The user stopped it: cancel the request and keep what had arrived.
        fut.cancel()
        if drain():
            sink.update(texts, model, time.monotonic() - t0)
        raise Interrupted(texts, time.monotonic() - t0) from None
    except BaseException:
        fut.cancel()
        raise
    finally:
        sink.close()

def partial_result(stop: Interrupted, kind: str, model: str) -> Result:
    """The reply as far as it had streamed, each choice marked ``interrupted``.

    The server reports usage only at the end of a stream, so there is none.
    Stopped before any text came, there is nothing to show or keep: one line."""
    if not any(stop.texts.values()):
        raise RequestError(f"stopped after {stop.elapsed:.1f} s, before any of the reply "
                           "arrived; nothing to keep", param="interrupt")
    role = "assistant" if kind == "chat" else None
    choices = [Choice(i, t, "interrupted", role=role) for i, t in sorted(stop.texts.items())]
    result = Result(kind, model, choices or [Choice(0, "", "interrupted", role=role)])
    result.timings.total = stop.elapsed
    return result
