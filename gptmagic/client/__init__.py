"""Talking to providers: one client, one attempt, transports, providers, the sync facade.

Owns :class:`~gptmagic.client.client.Client` (the one retry loop), a single
attempt (:mod:`.attempt`), the HTTP transports (:mod:`.http`), providers and
profiles (:mod:`.config`), the background loop that sync callers use
(:mod:`.portal`), the module-level convenience API (:mod:`.facade`: the only
place that holds the shared client), moderation, insertion resampling, and
the Files and Batch APIs' primitives (:mod:`.batches`).

May import: :mod:`gptmagic.local` (to start the embedded engine),
:mod:`gptmagic.catalog`, :mod:`gptmagic.core`, :mod:`gptmagic.errors`,
aiohttp and httpx. Never IPython or widgets. Importing this package is cheap:
the HTTP stack loads with the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gptmagic.client.client import Client

__all__ = ["Client"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from gptmagic.client.client import Client

        return Client
    raise AttributeError(f"module 'gptmagic.client' has no attribute {name!r}")
