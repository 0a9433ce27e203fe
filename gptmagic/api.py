"""The convenience API: ``gptmagic.chat()`` / ``complete()`` and their async forms.

All calls share one :class:`~gptmagic.client.Client` (one connection pool)
living on the portal loop, so the same code works in a script, in a notebook
(where a loop is already running) and under asyncio.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Sequence
from typing import Any

from ._portal import get_portal
from .client import Client
from .types import Result

__all__ = ["achat", "acomplete", "chat", "complete", "get_client", "shutdown"]

_client: Client | None = None
_lock = threading.Lock()


def get_client() -> Client:
    """The shared client (created on first use; closed at exit)."""
    global _client
    with _lock:
        if _client is None or _client.http.closed:
            _client = Client()
        return _client


def chat(messages: str | Sequence[dict[str, Any]], **kwargs: Any) -> Result:
    """Send a chat request and wait for the result (see :meth:`Client.chat`)."""
    return get_portal().run(get_client().chat(messages, **kwargs))


def complete(prompt: str | list[Any], **kwargs: Any) -> Result:
    """Send a legacy completion request and wait (see :meth:`Client.complete`)."""
    return get_portal().run(get_client().complete(prompt, **kwargs))


async def achat(messages: str | Sequence[dict[str, Any]], **kwargs: Any) -> Result:
    """Async :func:`chat`, awaitable from any event loop."""
    return await get_portal().arun(get_client().chat(messages, **kwargs))


async def acomplete(prompt: str | list[Any], **kwargs: Any) -> Result:
    """Async :func:`complete`, awaitable from any event loop."""
    return await get_portal().arun(get_client().complete(prompt, **kwargs))


def shutdown() -> None:
    """Close the shared client and the local engine if gptmagic started it."""
    global _client
    with _lock:
        client, _client = _client, None
    if client is not None and not client.http.closed:
        try:
            get_portal().run(client.aclose(), timeout=5)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    import sys

    engine = sys.modules.get("gptmagic.local.engine")
    if engine is not None:
        engine.stop_engine()


atexit.register(shutdown)
