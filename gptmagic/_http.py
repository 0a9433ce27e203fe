"""The one place the HTTP library is imported.

Today: the httpx API over the aiohttp transport (``httpx-aiohttp``), because
httpx's own pool collapses at 64+ concurrent requests on small machines
(DESIGN.md). Switching library means changing this module only. Library
exceptions are turned into gptmagic's here, so nothing else sees them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from . import _defaults as D
from .errors import APIConnectionError, APITimeoutError

__all__ = ["HTTP", "Reply", "Timeouts"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-phase timeouts plus an overall deadline per attempt (seconds).

    ``write`` is enforced by httpx's own transport; over the aiohttp transport
    a stuck write is bounded by ``deadline``.
    """

    connect: float = D.CONNECT_TIMEOUT
    read: float = D.READ_TIMEOUT
    write: float = D.WRITE_TIMEOUT
    pool: float = D.POOL_TIMEOUT
    deadline: float = D.REQUEST_DEADLINE


@dataclass(slots=True)
class Reply:
    """Status and headers of a response whose body is read separately."""

    status: int
    headers: dict[str, str]
    _resp: Any

    async def read(self, limit: int) -> bytes:
        """The whole body, refusing more than ``limit`` bytes."""
        buf = bytearray()
        with _mapped():
            async for chunk in self._resp.aiter_raw():
                buf += chunk
                if len(buf) > limit:
                    raise _TooLarge(len(buf))
        return bytes(buf)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive."""
        with _mapped():
            async for chunk in self._resp.aiter_raw():
                yield chunk


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


class _Mapped:
    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or not isinstance(exc, httpx.HTTPError | aiohttp.ClientError):
            return False
        raise _translate(exc) from None


def _mapped() -> _Mapped:
    return _Mapped()


def _translate(exc: BaseException) -> APIConnectionError:
    """A library exception as gptmagic's connection or timeout error.

    httpx-aiohttp maps every aiohttp connection error to httpx.ConnectTimeout,
    so the original aiohttp exception (``__cause__``) decides when present.
    """
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else None
    origin = cause or exc
    text = str(origin) or type(origin).__name__
    if cause is not None:
        is_timeout = isinstance(cause, asyncio.TimeoutError | aiohttp.ServerTimeoutError)
    else:
        is_timeout = isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError)
    if is_timeout:
        return APITimeoutError(f"request timed out ({type(origin).__name__}: {text})")
    return APIConnectionError(f"connection failed ({type(origin).__name__}: {text})")


@functools.lru_cache(maxsize=256)
def _url(url: str, params: tuple[tuple[str, str], ...]) -> httpx.URL:
    # Parsing a URL is a large share of httpx's per-request cost; endpoints repeat.
    return httpx.URL(url, params=params) if params else httpx.URL(url)


class HTTP:
    """One shared connection pool. Create it once; close it with :meth:`aclose`."""

    def __init__(
        self,
        timeouts: Timeouts | None = None,
        *,
        max_connections: int = D.MAX_CONNECTIONS,
        transport: str | httpx.AsyncBaseTransport = "aiohttp",
    ) -> None:
        self.timeouts = timeouts or Timeouts()
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=D.KEEPALIVE_EXPIRY,
        )
        if transport == "aiohttp":
            tr: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits, trust_env=True)
        elif transport == "httpx":
            tr = httpx.AsyncHTTPTransport(limits=limits, trust_env=True)
        elif isinstance(transport, httpx.AsyncBaseTransport):
            tr = transport
        else:
            raise ValueError(f"unknown transport {transport!r}")
        self._transport = tr
        self._client = httpx.AsyncClient(transport=tr, timeout=self._httpx_timeout(self.timeouts))

    @staticmethod
    def _httpx_timeout(t: Timeouts) -> httpx.Timeout:
        return httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)

    @asynccontextmanager
    async def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        json_body: bytes | None = None,
        timeouts: Timeouts | None = None,
    ) -> AsyncIterator[Reply]:
        """Send a request; yield a :class:`Reply` whose body is read lazily.

        The response is always closed on exit, so a failure never leaks its
        connection.
        """
        hdrs = {"Accept": "application/json, text/event-stream"}
        if json_body is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        timeout = self._httpx_timeout(timeouts) if timeouts else httpx.USE_CLIENT_DEFAULT
        with _mapped():
            req = self._client.build_request(
                method, _url(url, tuple(sorted((params or {}).items()))), headers=hdrs,
                content=json_body, timeout=timeout,
            )
            resp = await self._client.send(req, stream=True)
        try:
            yield Reply(status=resp.status_code, headers=dict(resp.headers.items()), _resp=resp)
        finally:
            with _mapped():
                await resp.aclose()

    def in_use(self) -> int:
        """Connections currently checked out of the pool (for leak checks)."""
        tr = self._transport
        if isinstance(tr, AiohttpTransport):
            session = tr.client
            if isinstance(session, aiohttp.ClientSession) and session.connector is not None:
                return len(getattr(session.connector, "_acquired", ()))
            return 0
        pool = getattr(tr, "_pool", None)
        conns = getattr(pool, "connections", [])
        return sum(1 for c in conns if not c.is_idle())

    @property
    def closed(self) -> bool:
        return self._client.is_closed

    async def aclose(self) -> None:
        await self._client.aclose()


TooLarge = _TooLarge
