"""A background event loop that owns the shared client.

Notebooks already run an event loop, scripts do not; both call into this one
loop, so the program has one connection pool whatever the caller is. Sync
callers block on a future (Ctrl-C cancels the call); async callers await a
wrapped future from any loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from gptmagic.state import current

T = TypeVar("T")

__all__ = ["Portal", "get_portal"]


class Portal:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="gptmagic-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def owns_current_thread(self) -> bool:
        """True when called on the portal loop's own thread."""
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the portal loop and wait for it (Ctrl-C cancels it)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("Portal.run called from the portal's own loop; await it instead")
        fut = self.submit(coro)
        try:
            return fut.result(timeout)
        except BaseException:
            fut.cancel()
            raise

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the portal loop from any other event loop."""
        if asyncio.get_running_loop() is self.loop:
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    def close(self, timeout: float = 5.0) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


def get_portal() -> Portal:
    """The process-wide portal, started on first use."""
    state = current()
    with state.lock:
        if state.portal is None or state.portal.loop.is_closed():
            state.portal = Portal()
        portal: Portal = state.portal
        return portal
