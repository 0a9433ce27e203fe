"""Conversation threads kept across cells (pure, no IPython).

A :class:`Thread` is a list of turns; a turn is what one cell sent (its
messages) and the reply it got (a cell that ran tools: the whole exchange,
the calls, their results and the answer, so the next cell continues from it).
Each turn carries the key of the cell that made it (Jupyter's cell id, or a
hash of the cell's source where there is none), so running a cell again
*replaces* its turn instead of appending a duplicate, and its context is the
turns before it. Threads can be forked
from any turn and reset.

A turn also remembers a fingerprint of the context it was answered against.
When an earlier turn is run again with new content (or the thread's system
message changes), the later turns no longer follow from what precedes them:
:meth:`Thread.stale` names them and :meth:`Thread.drop_stale` removes them.

Over the Responses API a turn answered with ``store`` on keeps its response
id and where it is stored (the provider's name and base URL): the next stored
turn to that same provider then sends only its own messages with
``previous_response_id`` (:meth:`Thread.chain_from`), and the server holds
the rest. Any other turn, or one sent to another provider (which never saw
that response), sends the whole history, as chat does.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from gptmagic.core.images import ImageRef, elide
from gptmagic.errors import RequestError

__all__ = ["DEFAULT_THREAD", "Thread", "ThreadStore", "Turn", "describe_stale"]

DEFAULT_THREAD = "default"


@dataclass
class Turn:
    """What one cell sent and what came back."""

    key: str
    messages: list[dict[str, Any]]
    reply: dict[str, Any] | None = None
    model: str | None = None
    #: Fingerprint of the messages before this turn when it was answered (set by record).
    basis: str | None = None
    #: The stored response's id (Responses API with ``store``), which a later turn can
    #: chain from with ``previous_response_id``; None where nothing was stored.
    response_id: str | None = None
    #: The endpoint that answered: ``"chat"`` or ``"responses"`` (None: not recorded).
    api: str | None = None
    #: Where the stored response lives (``"profile at base URL"``): only a cell sent
    #: there can chain from it. None where nothing was stored.
    stored_at: str | None = None
    #: A tool loop's messages after the cell's own, kept in place of ``reply``: each
    #: assistant message that called tools, the tools' results, and the final answer
    #: (``reply``, when there is one). None for a plain reply.
    exchange: list[dict[str, Any]] | None = None
    #: The images of the cell's messages as it named them (alt text, path, line), which
    #: ``%chat history`` and a dry run show as labelled thumbnails.
    images: tuple[ImageRef, ...] = field(default=(), repr=False)

    def all_messages(self) -> list[dict[str, Any]]:
        if self.exchange:
            return [*self.messages, *self.exchange]
        return [*self.messages, *([self.reply] if self.reply else [])]

    def __repr__(self) -> str:  # an image's data URL is megabytes of base64
        return (f"Turn(key={self.key!r}, messages={elide(self.messages)!r}, "
                f"reply={elide(self.reply)!r}, model={self.model!r}, api={self.api!r}, "
                f"response_id={self.response_id!r})")


@dataclass
class Thread:
    """A named conversation. ``system`` (if set) is sent first on every turn."""

    name: str
    system: str | None = None
    turns: list[Turn] = field(default_factory=list)

    def index_of(self, key: str) -> int | None:
        for i, t in enumerate(self.turns):
            if t.key == key:
                return i
        return None

    def context_for(self, key: str) -> list[dict[str, Any]]:
        """Messages to send before a cell's own: the system message and earlier turns.

        A cell already in the thread (a re-run) sees only the turns before it.
        """
        i = self.index_of(key)
        turns = self.turns if i is None else self.turns[:i]
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [m for t in turns for m in t.all_messages()]

    def record(self, turn: Turn) -> bool:
        """Store a turn; returns True if it replaced the same cell's earlier turn."""
        turn.basis = _fingerprint(self.context_for(turn.key))
        i = self.index_of(turn.key)
        if i is None:
            self.turns.append(turn)
            return False
        self.turns[i] = turn
        return True

    def stale(self) -> list[int]:
        """The turns (numbered from 1) answered against another version of what now
        precedes them: an earlier turn run again with new content, or a new system
        message. Sending the thread sends them as if they had answered this one."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        out, before = [], head
        for n, t in enumerate(self.turns, 1):
            if t.basis is not None and t.basis != _fingerprint(before):
                out.append(n)
            before = before + t.all_messages()
        return out

    def chain_from(self, key: str | None, at: str | None = None) -> str | None:
        """The stored response a cell sent to ``at`` (where the turn's response would be
        stored, :attr:`Turn.stored_at`) can chain from (``previous_response_id``): the id
        of the turn just before its own, if that turn was stored there and neither it nor
        any turn before it is stale (the server would hold an older conversation than
        this one). Another provider never saw that response: it gets the history.
        ``key`` None is a new cell (what ``%chat history`` tells of the next one)."""
        prev = self.stored_before(key)
        if prev is None or prev.stored_at != at or self.stale_before(key):
            return None
        return prev.response_id

    def stored_before(self, key: str | None) -> Turn | None:
        """The turn just before a cell's own, if it was stored on a server."""
        before = self._before(key)
        return before[-1] if before and before[-1].response_id is not None else None

    def stale_before(self, key: str | None) -> list[int]:
        """The stale turns (numbered from 1) a cell's history holds."""
        upto = len(self._before(key))
        return [n for n in self.stale() if n <= upto]

    def _before(self, key: str | None) -> list[Turn]:
        i = self.index_of(key) if key is not None else None
        return self.turns if i is None else self.turns[:i]

    def mode(self) -> str:
        """How the thread's next turn is sent, in a sentence for ``%chat history``: by
        :meth:`chain_from`, the rule the next cell follows."""
        last = self.turns[-1] if self.turns else None
        api = f" ({last.api})" if last is not None and last.api else ""
        if last is None or last.response_id is None:
            return f"history{api}: each cell sends the whole conversation"
        where = (f"turn {len(self.turns)} is stored on the server (response "
                 f"{last.response_id}, on {last.stored_at or 'an unrecorded provider'})")
        if self.chain_from(None, last.stored_at) is None:
            stale = self.stale_before(None)
            return (f"history{api}: {where}, but {describe_stale(stale)} answered an older "
                    "version of what came before, so the server holds another conversation: "
                    "the next cell sends the whole history, --store or not (%chat drop-stale "
                    "removes the stale turns)")
        return (f"chained: {where}; the next --store cell sent there sends only its own "
                "messages with previous_response_id, any other cell (or one sent to another "
                "provider) the whole history")

    def drop_stale(self) -> int:
        """Drop the first stale turn and every turn after it (each was answered with it
        in its context); returns how many turns went."""
        stale = self.stale()
        if not stale:
            return 0
        gone = len(self.turns) - stale[0] + 1
        del self.turns[stale[0] - 1 :]
        return gone

    def messages(self) -> list[dict[str, Any]]:
        """The whole conversation as it would be sent after the last turn."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [m for t in self.turns for m in t.all_messages()]


def _fingerprint(messages: list[dict[str, Any]]) -> str:
    text = json.dumps(messages, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_stale(turns: list[int]) -> str:
    """``turns 2, 3`` / ``turn 2``, as the notes about stale turns say it."""
    return ("turn " if len(turns) == 1 else "turns ") + ", ".join(map(str, turns))


class ThreadStore:
    """All threads of one kernel (one notebook)."""

    def __init__(self) -> None:
        self._threads: dict[str, Thread] = {}

    def get(self, name: str = DEFAULT_THREAD) -> Thread:
        """The thread called ``name``, created empty on first use."""
        return self._threads.setdefault(name, self.draft(name))

    def draft(self, name: str) -> Thread:
        """The thread called ``name`` if it exists, else a new one kept only once
        :meth:`add`-ed: a cell refused before sending, or a dry run, leaves no empty
        thread behind."""
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise RequestError(
                f"thread name {name!r} must be letters, digits, '-' or '_'", param="--thread")
        return self._threads.get(name) or Thread(name)

    def add(self, thread: Thread) -> None:
        """Keep a :meth:`draft` thread (once a turn is recorded in it)."""
        self._threads.setdefault(thread.name, thread)

    def names(self) -> list[str]:
        return sorted(self._threads)

    def existing(self, name: str = DEFAULT_THREAD) -> Thread:
        """The thread called ``name`` if it exists (the default one always does); else an
        error naming the threads there are (a typo must not look like an empty thread)."""
        if name == DEFAULT_THREAD or name in self._threads:
            return self.get(name)
        known = ", ".join(self.names()) or "none yet"
        raise RequestError(f"no thread {name!r}; threads: {known}", param="--thread")

    def reset(self, name: str = DEFAULT_THREAD) -> int:
        """Forget a thread's turns (and system message); returns how many turns went."""
        thread = self._threads.pop(name, None)
        return len(thread.turns) if thread else 0

    def fork(self, source: str, new: str, *, upto: int | None = None) -> Thread:
        """Copy ``source``'s first ``upto`` turns (all if None) into a new thread."""
        if source not in self._threads:
            raise RequestError(
                f"no thread {source!r} to fork; threads: {', '.join(self.names()) or 'none'}",
                param="--from")
        src = self._threads[source]
        if upto is not None and not 0 <= upto <= len(src.turns):
            raise RequestError(
                f"thread {source!r} has {len(src.turns)} turn(s); "
                f"--turn must be 0..{len(src.turns)}", param="--turn")
        if new in self._threads and new != source:
            raise RequestError(f"thread {new!r} exists; reset it first or pick another name",
                               param="fork")
        forked = Thread(new, src.system, copy.deepcopy(src.turns[:upto]))
        self.get(new)  # validates the name
        self._threads[new] = forked
        return forked
