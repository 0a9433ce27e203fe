"""Admit generation requests to the engine no faster than it has slots.

llama.cpp queues a request that finds every slot busy. If that request's
client goes away while it waits, the engine can lose the cancellation (it
arrives before the task has a slot) and later generates the whole reply for
nobody, holding a slot for minutes. So the adapter keeps the queue itself: a
request is sent to the engine only when a slot is free for it, and a client
that leaves while queued here never reaches the engine at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["SlotGate"]


class SlotGate:
    """``slots`` permits, taken in arrival order; one request may need several."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"an engine has at least one slot, got {slots}")
        self.slots = slots
        self._free = asyncio.Semaphore(slots)
        self._turn = asyncio.Lock()  # first come, first served, also for multi-slot requests
        #: Requests queued here now, and slots held by admitted requests now.
        self.waiting = 0
        self.busy = 0

    @contextlib.asynccontextmanager
    async def admit(self, needed: int = 1) -> AsyncIterator[None]:
        """Hold ``needed`` slots (at most all of them) for the body of the block.

        A request for more slots than the engine has (``n`` = 8 on 4 slots) takes
        them all: the engine schedules its own extra tasks, which belong to a
        live connection.
        """
        needed = max(1, min(needed, self.slots))
        taken = 0
        self.waiting += 1
        try:
            async with self._turn:
                for _ in range(needed):
                    await self._free.acquire()
                    taken += 1
        finally:
            self.waiting -= 1
            if taken < needed:  # cancelled while queued: give back what was taken
                for _ in range(taken):
                    self._free.release()
        self.busy += taken
        try:
            yield
        finally:
            self.busy -= taken
            for _ in range(taken):
                self._free.release()
