"""Everything gptmagic keeps for the life of the process, in one object.

Settings made in code (:func:`gptmagic.add_profile`, :func:`gptmagic.register_model`,
:func:`gptmagic.set_price`), keys typed at a prompt (memory only), secrets
to redact, the parsed config file, and the live resources (the shared
client, the portal loop, the embedded engine) all live on one
:class:`ProcessState`, reached with :func:`current`. Nothing else in
gptmagic holds module-level mutable state (caches of immutable things aside:
tiktoken encodings, price lookups). :func:`reset` starts over, which is
what the test suite does before every test.

This module is the bottom of the stack: it imports nothing of gptmagic, and
every layer may read it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProcessState", "current", "reset"]


@dataclass(eq=False)
class ProcessState:
    """The process-wide settings and resources. Holds keys only in ``prompted_keys``."""

    #: Profiles from :func:`gptmagic.add_profile`, by name.
    user_profiles: dict[str, Any] = field(default_factory=dict)
    #: Keys typed at a getpass prompt, by profile name (memory only, never written).
    prompted_keys: dict[str, str] = field(default_factory=dict, repr=False)
    #: Whether the "no key configured, using the local model" notice was shown.
    notice_given: bool = False
    #: ``(mtime, parsed)`` of the config file last read.
    config_file: tuple[float, dict[str, Any]] | None = None
    #: Models from :func:`gptmagic.register_model`, by lower-case name.
    models: dict[str, Any] = field(default_factory=dict)
    #: Prices from :func:`gptmagic.set_price`, by lower-case model name.
    prices: dict[str, Any] = field(default_factory=dict)
    #: Secrets (API keys) that :func:`gptmagic.errors.redact` removes from text.
    secrets: set[str] = field(default_factory=set, repr=False)
    #: The shared client of the sync facade (:func:`gptmagic.get_client`).
    client: Any = None
    #: The background event loop sync callers run coroutines on.
    portal: Any = None
    #: The process-wide embedded engine (:func:`gptmagic.local.get_engine`).
    engine: Any = None
    #: Guards every field above.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)


_current = ProcessState()


def current() -> ProcessState:
    """The process's state."""
    return _current


def reset(*, keep_resources: bool = True) -> ProcessState:
    """Start over with fresh settings; returns the new state.

    ``keep_resources`` carries the live client, portal and engine over (they
    are costly to start and are closed by :func:`gptmagic.shutdown`).
    """
    global _current
    old = _current
    new = ProcessState()
    if keep_resources:
        new.client, new.portal, new.engine = old.client, old.portal, old.engine
    _current = new
    return new
