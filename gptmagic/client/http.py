"""The one place the HTTP libraries are imported.

Requests go straight through aiohttp by default: httpx's own pool collapses at
64+ concurrent requests on small machines (DESIGN.md), and even over the
aiohttp transport (``httpx-aiohttp``) httpx's request and header objects cost
about half of a batch row's CPU, which caps the runner when client and server
share two cores (README, runner figures). ``transport="httpx"`` or any httpx
transport object (``httpx.MockTransport`` in tests) selects the httpx client
instead; both give the same :class:`HTTPResponse`. Library exceptions are turned into
gptmagic's here, so nothing else sees them.
"""

from __future__ import annotations

import asyncio
import functools
import os
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import httpx

from gptmagic.core import defaults as D
from gptmagic.core.headers import Headers
from gptmagic.errors import APIConnectionError, APITimeoutError

__all__ = ["HTTP", "HTTPResponse", "Timeouts", "multipart"]

_BASE_HEADERS = {"Accept": "application/json, text/event-stream"}
_JSON_HEADERS = {**_BASE_HEADERS, "Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-phase timeouts plus an overall deadline for the whole call (seconds).

    ``deadline`` bounds every attempt and every wait between them together:
    once it passes, the call raises :class:`~gptmagic.errors.DeadlineExceededError`
    (a stream that started: :class:`~gptmagic.errors.StreamDeadlineError`,
    with the text so far) and is not retried.

    ``write`` is enforced by httpx's own transport; over the aiohttp transport
    a stuck write is bounded by ``deadline``.
    """

    connect: float = D.CONNECT_TIMEOUT
    read: float = D.READ_TIMEOUT
    write: float = D.WRITE_TIMEOUT
    pool: float = D.POOL_TIMEOUT
    deadline: float = D.REQUEST_DEADLINE


@dataclass(slots=True)
class HTTPResponse:
    """Status and headers (lower-case names) of a response whose body is read separately."""

    status: int
    headers: dict[str, str]
    _body: Callable[[], AsyncIterator[bytes]]

    async def read(self, limit: int) -> bytes:
        """The whole body, refusing more than ``limit`` bytes."""
        buf = bytearray()
        with _mapped():
            async for chunk in self._body():
                buf += chunk
                if len(buf) > limit:
                    raise _TooLarge(len(buf))
        return bytes(buf)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive."""
        with _mapped():
            async for chunk in self._body():
                yield chunk


def _lower_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    # Repeated fields are joined with ", " as RFC 9110 allows (and httpx does).
    out: dict[str, str] = {}
    for k, v in items:
        k = k.lower()
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out


def multipart(fields: Mapping[str, str], file_field: str, filename: str, content: bytes,
              content_type: str = "application/octet-stream") -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with text ``fields`` and one file: (body, Content-Type).

    httpx's encoder writes it (boundary and escaping of names included) for
    either transport; the body is sent as bytes like a JSON one.
    """
    req = httpx.Request("POST", "http://encode.invalid/", data=dict(fields),
                        files={file_field: (filename, content, content_type)})
    return req.read(), req.headers["content-type"]


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


class _Mapped:
    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is None or not isinstance(exc, httpx.HTTPError | aiohttp.ClientError):
            return False
        raise _translate(exc) from None


def _mapped() -> _Mapped:
    return _Mapped()


def _translate(exc: BaseException) -> APIConnectionError:
    """A library exception as gptmagic's connection or timeout error.

    An httpx transport over aiohttp may wrap aiohttp's error, so the original
    (``__cause__``) decides when present.
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


_PROXY_VARS = tuple(f"{n}_proxy{c}" for n in ("http", "https", "all", "no") for c in ("", "!"))


def _proxy_env() -> tuple[str | None, ...]:
    """The proxy variables now (lower and upper case)."""
    return tuple(os.environ.get(v[:-1].upper() if v.endswith("!") else v) for v in _PROXY_VARS)


@functools.lru_cache(maxsize=512)
def _proxy_cached(url: str, env: tuple[str | None, ...]) -> str | None:
    # ``env`` is only part of the key: a changed proxy variable is a new entry.
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    # Undocumented but stable since Python 3.0; the stubs omit it.
    if urllib.request.proxy_bypass_environment(host.strip("[]")):  # type: ignore[attr-defined]
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(scheme.lower()) or proxies.get("all")


def _proxy_for(url: str, env: tuple[str | None, ...] | None = None) -> str | None:
    """The proxy for ``url`` from HTTP(S)_PROXY / ALL_PROXY / NO_PROXY.

    ``env`` is a snapshot from :func:`_proxy_env`; the client takes one when it
    opens its pool, since reading ``os.environ`` on every request was a tenth of
    a batch row's CPU.
    """
    return _proxy_cached(url, _proxy_env() if env is None else env)


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
        self._max_connections = max_connections
        # aiohttp binds a session to the running loop: it is made on first use.
        self._session: aiohttp.ClientSession | None = None
        self._proxy_env: tuple[str | None, ...] = ()
        self._closed = False
        self._client: httpx.AsyncClient | None = None
        if transport == "aiohttp":
            return
        if transport == "httpx":
            limits = httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=D.KEEPALIVE_EXPIRY,
            )
            tr: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(limits=limits, trust_env=True)
        elif isinstance(transport, httpx.AsyncBaseTransport):
            tr = transport
        else:
            raise ValueError(f"unknown transport {transport!r}")
        self._client = httpx.AsyncClient(transport=tr, timeout=self._httpx_timeout(self.timeouts))

    @staticmethod
    def _httpx_timeout(t: Timeouts) -> httpx.Timeout:
        return httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def _aiohttp_timeout(t: Timeouts) -> aiohttp.ClientTimeout:
        # aiohttp's "connect" covers waiting for a pooled connection and opening one.
        return aiohttp.ClientTimeout(total=None, connect=t.pool + t.connect,
                                     sock_connect=t.connect, sock_read=t.read)

    def _aiohttp_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if self._closed:
                raise APIConnectionError("the HTTP client is closed")
            connector = aiohttp.TCPConnector(limit=self._max_connections,
                                             keepalive_timeout=D.KEEPALIVE_EXPIRY)
            # Proxies come from the environment when the pool opens (_proxy_for),
            # not per request: aiohttp's trust_env re-reads os.environ every call.
            self._proxy_env = _proxy_env()
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False,
                timeout=self._aiohttp_timeout(self.timeouts),
            )
        return self._session

    @asynccontextmanager
    async def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: bytes | None = None,
        timeouts: Timeouts | None = None,
        content_type: str | None = None,
    ) -> AsyncIterator[HTTPResponse]:
        """Send a request; yield a :class:`HTTPResponse` whose body is read lazily.

        ``json_body`` is sent as JSON unless ``content_type`` names another
        type (a :func:`multipart` body's). The response is always closed on
        exit, so a failure never leaks its connection.
        """
        # Kept a Headers to the end: aiohttp and httpx copy it into their own
        # objects, so no frame of ours holds the key in a plain dict.
        hdrs = Headers(_BASE_HEADERS if json_body is None else _JSON_HEADERS) | (headers or {})
        if content_type is not None:
            hdrs = hdrs | {"Content-Type": content_type}
        if self._client is not None:
            async with self._httpx_request(method, url, params, hdrs, json_body,
                                           timeouts) as reply:
                yield reply
            return
        session = self._aiohttp_session()
        with _mapped():
            resp = await session.request(
                method, url, params=params or None, headers=hdrs, data=json_body,
                allow_redirects=False, proxy=_proxy_for(url, self._proxy_env),
                timeout=self._aiohttp_timeout(timeouts) if timeouts else None,
            )
        try:
            yield HTTPResponse(status=resp.status, headers=_lower_headers(resp.headers.items()),
                        _body=resp.content.iter_any)
        finally:
            # release() returns a fully read connection to the pool and closes
            # one whose body was left unread.
            resp.release()

    @asynccontextmanager
    async def _httpx_request(self, method: str, url: str, params: dict[str, str] | None,
                             hdrs: Headers, json_body: bytes | None,
                             timeouts: Timeouts | None) -> AsyncIterator[HTTPResponse]:
        assert self._client is not None
        timeout = self._httpx_timeout(timeouts) if timeouts else httpx.USE_CLIENT_DEFAULT
        with _mapped():
            req = self._client.build_request(
                method, _url(url, tuple(sorted((params or {}).items()))), headers=hdrs,
                content=json_body, timeout=timeout,
            )
            resp = await self._client.send(req, stream=True)
        try:
            yield HTTPResponse(status=resp.status_code, headers=dict(resp.headers.items()),
                        _body=resp.aiter_raw)
        finally:
            with _mapped():
                await resp.aclose()

    async def reserve(self, n: int) -> None:
        """Room for ``n`` requests at once (the batch runner's concurrency).

        The aiohttp pool is rebuilt with the larger limit if nothing is in
        flight; a busy pool keeps its limit (closing it would cut live
        requests). The httpx backend keeps its limits.
        """
        if n > self._max_connections:
            self._max_connections = n
        session = self._session
        if (self._client is None and session is not None and session.connector is not None
                and session.connector.limit < self._max_connections and self.in_use() == 0):
            self._session = None
            await session.close()

    def in_use(self) -> int:
        """Connections currently checked out of the pool (for leak checks)."""
        if self._client is None:
            if self._session is None or self._session.connector is None:
                return 0
            return len(getattr(self._session.connector, "_acquired", ()))
        pool = getattr(self._client._transport, "_pool", None)
        conns = getattr(pool, "connections", [])
        return sum(1 for c in conns if not c.is_idle())

    @property
    def closed(self) -> bool:
        if self._client is not None:
            return self._client.is_closed
        return self._closed

    async def aclose(self) -> None:
        self._closed = True
        if self._client is not None:
            await self._client.aclose()
        if self._session is not None:
            await self._session.close()


TooLarge = _TooLarge
