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

__all__ = ["Interrupted", "NullSink", "REASONING", "Sink", "partial_result", "stopped_reasoning",
           "stream_reply"]

#: The index ``on_delta`` is given a reasoning model's summary so far under (whole, not a
#: piece), while it reasons and before its text: ``make`` wires ``on_reasoning`` to it.
REASONING = -1


class Sink(Protocol):
    """Where live output goes while a reply streams. ``reasoning`` is a reasoning model's
    summary so far (``""``: reasoning, no summary yet; None: not a reasoning model's);
    while ``texts`` has no text it is still reasoning, after that the summary is whole."""

    def update(self, texts: Mapping[int, str], model: str, elapsed: float,
               reasoning: str | None = None) -> None: ...

    def close(self) -> None: ...


class Interrupted(Exception):
    """Kernel ▸ Interrupt (or Ctrl-C) while a reply streamed: the text that had arrived,
    and the reasoning summary so far if a reasoning model was reasoning (``""`` when it
    had sent none; None when it was not reasoning)."""

    def __init__(self, texts: dict[int, str], elapsed: float,
                 reasoning: str | None = None) -> None:
        super().__init__("interrupted")
        self.texts = texts
        self.elapsed = elapsed
        self.reasoning = reasoning


class NullSink:
    def update(self, texts: Mapping[int, str], model: str, elapsed: float,
               reasoning: str | None = None) -> None:
        return None

    def close(self) -> None:
        return None


def stream_reply(portal: Portal, make: Callable[[Callable[[int, str], None]], Any],
                 sink: Sink, model: str, interval: float) -> Any:
    """Run ``make(on_delta)`` on the portal and show its text in ``sink`` as it arrives,
    every ``interval`` seconds, from the caller's thread (and, under index
    :data:`REASONING`, the reasoning summary so far). Kernel ▸ Interrupt (Ctrl-C)
    cancels the call and raises :class:`Interrupted` with the text that had come."""
    q: queue.SimpleQueue[tuple[int, str] | None] = queue.SimpleQueue()
    fut = portal.submit(make(lambda i, t: q.put((i, t))))
    fut.add_done_callback(lambda _: q.put(None))  # wakes the loop at once when done
    texts: dict[int, str] = {}
    reasoning: str | None = None
    t0 = time.monotonic()
    last = 0.0
    dirty = False
    item: tuple[int, str] | tuple[()] | None

    def take(i: int, t: str) -> None:
        nonlocal reasoning
        if i == REASONING:
            reasoning = t
        else:
            texts[i] = texts.get(i, "") + t

    def show() -> None:
        # Once the text has begun the reasoning is over; its summary stays above the text.
        sink.update(texts, model, time.monotonic() - t0, reasoning=reasoning)

    def drain() -> bool:
        """Add the deltas already queued; whether there were any."""
        got = False
        while True:
            try:
                queued = q.get_nowait()
            except queue.Empty:
                return got
            if queued:
                take(*queued)
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
                take(*item)
                dirty = True
            now = time.monotonic()
            if dirty and now - last >= interval:
                show()
                last, dirty = now, False
        dirty = drain() or dirty  # deltas that arrived with the last chunk
        result = fut.result()
        if dirty:
            show()
        return result
    except KeyboardInterrupt:
        # The user stopped it: cancel the request and keep what had arrived.
        fut.cancel()
        if drain():
            show()
        raise Interrupted(texts, time.monotonic() - t0, reasoning) from None
    except BaseException:
        fut.cancel()
        raise
    finally:
        sink.close()

def partial_result(stop: Interrupted, kind: str, model: str) -> Result:
    """The reply as far as it had streamed, each choice marked ``interrupted``.

    The server reports usage only at the end of a stream, so there is none.
    Stopped while a reasoning model reasoned, the result has no text and the reasoning
    summary so far (:func:`stopped_reasoning` says so). Stopped before anything came,
    there is nothing to show or keep: one line."""
    if not any(stop.texts.values()) and stop.reasoning is None:
        raise RequestError(f"stopped after {stop.elapsed:.1f} s, before any of the reply "
                           "arrived; nothing to keep", param="interrupt")
    role = "assistant" if kind == "chat" else None
    choices = [Choice(i, t, "interrupted", role=role) for i, t in sorted(stop.texts.items())]
    result = Result(kind, model, choices or [Choice(0, "", "interrupted", role=role)])
    result.reasoning = stop.reasoning or None
    result.timings.total = stop.elapsed
    return result


def stopped_reasoning(stop: Interrupted) -> str | None:
    """What to say of a reply stopped while its model reasoned (no text yet), else None."""
    if any(stop.texts.values()) or stop.reasoning is None:
        return None
    kept = ("its reasoning summary so far is in _chat.reasoning" if stop.reasoning
            else "it had sent no reasoning summary")
    return (f"stopped after {stop.elapsed:.1f} s while the model was reasoning, before any "
            f"of the reply's text: {kept}; there is no reply to keep")
