"""The models a provider lists, with their ``shutdown_date``, and the warning before a shutdown.

``GET /models`` answers with OpenAI's ``Model`` objects, whose
``shutdown_date`` (a date, or null: none announced) is the live answer to
"when does this model stop working". A :class:`Lifecycle` (one per
:class:`~gptmagic.client.Client`) asks for it in the background, never on a
call's path, once a day per provider: the answer is kept in memory and in
``models.json`` in gptmagic's cache directory (``$XDG_CACHE_HOME/gptmagic``
or ``~/.cache/gptmagic``), keyed by the provider's base URL (never by its
key; the key is never written); a failure is remembered for minutes.

Only ``kind = "openai"`` profiles are checked, and the package's own table
(:data:`gptmagic.catalog.lifecycle.SHUTDOWNS`, OpenAI's notices) answers only
for OpenAI's host (:func:`is_openai_host`): an OpenAI-compatible server's
``gpt-4o`` (Ollama, vLLM, a proxy) may be anything, so there only the
server's own ``shutdown_date`` counts. The embedded model never retires. The
clock is injected (``now``), so tests freeze it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gptmagic.catalog.lifecycle import retirement
from gptmagic.core import defaults as D
from gptmagic.errors import GptmagicError, MalformedResponseError

__all__ = ["Lifecycle", "ListedModel", "ModelsCache", "OPENAI_HOST", "cache_key",
           "default_cache_path", "is_openai_host", "parse_models", "shutdown_map"]

log = logging.getLogger("gptmagic.client")

_MISSING = object()  # a Model object with no shutdown_date field at all


@dataclass(frozen=True, slots=True)
class ListedModel:
    """One ``Model`` object of ``GET /models``.

    ``shutdown_date`` is None when none is announced; ``dated`` is False when
    the server sent no ``shutdown_date`` field at all (most OpenAI-compatible
    servers), so the package table still answers for it.
    """

    id: str
    created: int | None = None
    owned_by: str | None = None
    shutdown_date: date | None = None
    dated: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "created": self.created, "owned_by": self.owned_by}
        if self.dated:
            out["shutdown_date"] = self.shutdown_date.isoformat() if self.shutdown_date else None
        return out


def parse_models(data: Any, url: str) -> list[ListedModel]:
    """The models of a ``ListModelsResponse``; a clear error naming ``url`` if it is not one."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise MalformedResponseError(f"{url}: expected {{'data': [...]}}")
    out = []
    for item in items:
        if not isinstance(item, dict) or item.get("id") is None:
            continue
        day = item.get("shutdown_date", _MISSING)
        if day is not None and day is not _MISSING and not isinstance(day, str):
            day = repr(day)  # not a date: said below
        try:
            shutdown = date.fromisoformat(day) if isinstance(day, str) else None
        except ValueError:
            raise MalformedResponseError(
                f"{url}: model {item['id']!r} has shutdown_date {day!r}, not a YYYY-MM-DD date"
            ) from None
        created = item.get("created")
        out.append(ListedModel(str(item["id"]), created if isinstance(created, int) else None,
                               str(item["owned_by"]) if item.get("owned_by") else None,
                               shutdown, day is not _MISSING))
    return out


def shutdown_map(models: list[ListedModel]) -> dict[str, date | None]:
    """id -> shutdown date of the models that carry the field (for :func:`retirement`)."""
    return {m.id: m.shutdown_date for m in models if m.dated}


#: The host whose models gptmagic's table of OpenAI notices describes.
OPENAI_HOST = "api.openai.com"


def is_openai_host(base_url: str) -> bool:
    """Whether ``base_url`` is OpenAI's own API (not Ollama, vLLM, a proxy or a test server)."""
    return (urlsplit(base_url).hostname or "").lower() == OPENAI_HOST


def cache_key(base_url: str) -> str:
    """The base URL without user info, query or fragment: what the cache is keyed by."""
    parts = urlsplit(base_url.rstrip("/"))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def default_cache_path() -> Path:
    """``models.json`` in gptmagic's cache directory (where the eval store's file lives)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gptmagic" / "models.json"


class ModelsCache:
    """``GET /models`` answers on disk, by provider base URL, each with the time it was fetched.

    A file that cannot be read or parsed is treated as empty; writes replace
    the file whole (a second kernel never sees half of one).
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_cache_path()

    def __repr__(self) -> str:
        return f"<ModelsCache {self.path}>"

    def get(self, base_url: str, now: datetime, ttl: timedelta) -> list[ListedModel] | None:
        """The models fetched from ``base_url`` less than ``ttl`` before ``now``, if any."""
        entry: Any = self._read().get(cache_key(base_url))
        try:
            fetched = datetime.fromisoformat(entry["fetched_at"])
            if not timedelta(0) <= now - fetched < ttl:
                return None
            return parse_models({"data": entry["models"]}, str(self.path))
        except (TypeError, KeyError, ValueError, GptmagicError):
            return None

    def put(self, base_url: str, models: list[ListedModel], now: datetime) -> None:
        """Keep ``models`` as fetched from ``base_url`` at ``now``; a failed write is logged."""
        data = self._read()
        data[cache_key(base_url)] = {"fetched_at": now.isoformat(),
                                     "models": [m.to_json() for m in models]}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".models-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": 1, "providers": data}, f)
            os.replace(tmp, self.path)
        except OSError as e:
            log.debug("could not write the models cache %s: %s", self.path, e)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        providers = data.get("providers") if isinstance(data, dict) else None
        return providers if isinstance(providers, dict) else {}


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Lifecycle:
    """Warns once per model when a call goes to a model near or past its shutdown date.

    Never on a call's path: :meth:`notice` answers at once from what is known
    (the list in memory or on disk, else gptmagic's table where it applies) and
    starts the list's fetch as a background task on the running loop; a
    warning that needs the list comes with a later call. :meth:`aclose` cancels
    the fetches (the client's ``aclose`` calls it). One per client.

    ``now`` is the clock (UTC datetimes; tests freeze it); ``cache`` where the
    lists are kept; ``ttl`` how long a list is trusted (a day); ``retry_after``
    how long a failed fetch is remembered before the next is tried (minutes).
    """

    def __init__(self, *, now: Callable[[], datetime] = _utcnow, cache: ModelsCache | None = None,
                 ttl: timedelta = timedelta(seconds=D.MODELS_CACHE_TTL),
                 retry_after: timedelta = timedelta(seconds=D.MODELS_FAILURE_TTL)) -> None:
        self.now = now
        self.cache = cache or ModelsCache()
        self.ttl = ttl
        self.retry_after = retry_after
        self._checked: set[tuple[str, str]] = set()
        self._memory: dict[str, tuple[datetime, list[ListedModel] | None]] = {}
        self._tasks: dict[str, asyncio.Task[list[ListedModel] | None]] = {}

    def __repr__(self) -> str:
        return f"<Lifecycle {self.cache!r}>"

    def known(self, base_url: str) -> tuple[bool, list[ListedModel] | None]:
        """``(True, models)`` if the provider's list is known and fresh (``models`` is
        None after a failed fetch); ``(False, None)`` if it has to be fetched."""
        key = cache_key(base_url)
        now = self.now()
        kept = self._memory.get(key)
        if kept is not None:
            ttl = self.ttl if kept[1] is not None else self.retry_after
            if timedelta(0) <= now - kept[0] < ttl:
                return True, kept[1]
        models = self.cache.get(base_url, now, self.ttl)
        if models is None:
            return False, None
        self._memory[key] = (now, models)
        return True, models

    def refresh(self, base_url: str, fetch: Callable[[], Awaitable[list[ListedModel]]]
                ) -> asyncio.Task[list[ListedModel] | None]:
        """The background fetch of the provider's list (started now, or the one running)."""
        key = cache_key(base_url)
        task = self._tasks.get(key)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._refresh(base_url, fetch))
            self._tasks[key] = task
        return task

    async def _refresh(self, base_url: str, fetch: Callable[[], Awaitable[list[ListedModel]]]
                       ) -> list[ListedModel] | None:
        # Cancelled (aclose, Ctrl-C), nothing is remembered: the next call asks again.
        now = self.now()
        models = await self._fetch(base_url, fetch)
        if models is not None:
            self.cache.put(base_url, models, now)
        self._memory[cache_key(base_url)] = (now, models)
        return models

    async def listed(self, base_url: str,
                     fetch: Callable[[], Awaitable[list[ListedModel]]]) -> list[ListedModel] | None:
        """The provider's models, waited for (``gptmagic models``); None if unreachable.

        Concurrent callers share one fetch.
        """
        found, models = self.known(base_url)
        if found:
            return models
        return await asyncio.shield(self.refresh(base_url, fetch))

    @property
    def fetching(self) -> bool:
        """Whether a list is being fetched in the background now."""
        return any(not t.done() for t in self._tasks.values())

    async def settled(self) -> None:
        """Wait for the fetches running now (tests; a notebook that wants the warning now)."""
        running = [t for t in self._tasks.values() if not t.done()]
        if running:
            await asyncio.wait(running)

    async def aclose(self) -> None:
        """Cancel the fetches still running."""
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._tasks.clear()

    async def _fetch(self, base_url: str, fetch: Callable[[], Awaitable[list[ListedModel]]]
                     ) -> list[ListedModel] | None:
        try:
            async with asyncio.timeout(D.MODELS_LIST_TIMEOUT):
                return await fetch()
        except (GptmagicError, TimeoutError) as e:
            log.debug("could not list the models of %s (%s)", cache_key(base_url),
                      type(e).__name__)
            return None

    def notice(self, base_url: str, model: str, fetch: Callable[[], Awaitable[list[ListedModel]]],
               *, table: bool) -> str | None:
        """The one-line warning for a call to ``model``, once; else None. Never waits.

        ``table``: gptmagic's table of OpenAI notices applies (the host is
        OpenAI's); elsewhere only the server's own ``shutdown_date`` counts.
        A model is settled (never said again) once warned about, or once a
        fetched list has been consulted for it; until then each call looks again.
        """
        key = (cache_key(base_url), model)
        if key in self._checked:
            return None
        found, listed = self.known(base_url)
        if not found:
            self.refresh(base_url, fetch)
        dates: Mapping[str, date | None] | None = shutdown_map(listed) if listed else None
        retiring = retirement(model, self.now().date(), dates, table=table)
        if retiring is None and listed is None:
            return None  # the list may yet say (once fetched, or fetched again)
        self._checked.add(key)
        return None if retiring is None else retiring.warning()
