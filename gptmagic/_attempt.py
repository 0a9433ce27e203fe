"""One attempt at a chat or completion request, and reading its answer.

:mod:`gptmagic.client` runs the retry loop; each time round it calls
:func:`request_once`, which sends the request once, turns an HTTP error status into
its error class, and reads the body: JSON through
:func:`~gptmagic.response.parse_response`, or an SSE stream event by event into
an :class:`~gptmagic.response.Accumulator` (:func:`read_stream`), calling
``on_delta`` as text arrives. A stream that fails once started raises
:class:`_StreamAbort`, which the retry loop unwraps into its
:class:`~gptmagic.errors.StreamError` instead of retrying. The request-id and
JSON-or-text helpers are shared with the client's side endpoints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from ._http import HTTP, Timeouts, TooLarge
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    MalformedResponseError,
    StreamError,
    status_error,
)
from .response import Accumulator, parse_response
from .sse import SSEDecoder
from .types import Result

__all__ = ["MAX_ERROR_BYTES", "MAX_RESPONSE_BYTES", "DeltaCallback", "read_stream",
           "request_once"]

DeltaCallback = Callable[[int, str], None]
"""Called with ``(choice_index, text)`` for every piece of streamed text."""

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MAX_ERROR_BYTES = 1024 * 1024


def _request_id(headers: dict[str, str]) -> str | None:
    for name in ("x-request-id", "apim-request-id", "request-id"):
        if headers.get(name):
            return headers[name]
    return None


async def request_once(
    http: HTTP,
    kind: str,
    url: str,
    query: dict[str, str],
    headers: dict[str, str],
    payload: bytes,
    stream: bool,
    on_delta: DeltaCallback | None,
    t: Timeouts,
    prompt_len: int | None,
    started: dict[str, Any],
    *,
    max_bytes: int,
) -> Result:
    """Send one request and read its answer (JSON, or SSE when ``stream``) into a Result."""
    t0 = time.monotonic()
    async with http.request(
        "POST", url, params=query, headers=headers, json_body=payload, timeouts=t
    ) as r:
        rid = _request_id(r.headers)
        if r.status >= 400:
            try:
                raw = await r.read(MAX_ERROR_BYTES)
            except TooLarge:
                raw = b"(error body too large)"
            raise status_error(
                r.status, _json_or_text(raw), request_id=rid, headers=r.headers, url=url
            )
        ctype = r.headers.get("content-type", "")
        if stream and "text/event-stream" in ctype:
            result = await read_stream(
                kind, r, on_delta, t0, prompt_len, rid, url, started
            )
        else:
            try:
                raw = await r.read(max_bytes)
            except TooLarge as e:
                raise MalformedResponseError(
                    f"{url}: response body over {max_bytes // 2**20} MiB "
                    f"({e.size} bytes read); refusing it",
                    request_id=rid,
                ) from None
            try:
                data = json.loads(raw)
            except ValueError:
                raise MalformedResponseError(
                    f"{url}: response is not JSON (HTTP {r.status}, {len(raw)} bytes, "
                    f"starts {raw[:80]!r})",
                    request_id=rid,
                ) from None
            result = parse_response(kind, data, prompt_len=prompt_len)
            if on_delta:
                for ch in result.choices:
                    on_delta(ch.index, ch.text)
    result.request_id = rid
    result.rate_limits = {
        k.lower(): v for k, v in r.headers.items() if k.lower().startswith("x-ratelimit-")
    } or None
    result.timings.total = time.monotonic() - t0
    if isinstance(result.raw, dict) and isinstance(result.raw.get("timings"), dict):
        result.timings.engine = result.raw["timings"]
    return result


async def read_stream(
    kind: str,
    r: Any,
    on_delta: DeltaCallback | None,
    t0: float,
    prompt_len: int | None,
    rid: str | None,
    url: str,
    started: dict[str, Any],
) -> Result:
    """Read an SSE stream into a Result, calling ``on_delta`` as text arrives."""
    acc = Accumulator(kind, prompt_len=prompt_len)
    decoder = SSEDecoder()
    ttft: float | None = None
    done = False
    engine_timings: dict[str, Any] | None = None

    def abort(msg: str) -> _StreamAbort:
        partial = acc.result()
        partial.request_id = rid
        partial.timings.ttft = ttft
        partial.timings.total = time.monotonic() - t0
        return _StreamAbort(StreamError(msg, partial=partial, request_id=rid))

    started["abort"] = abort
    try:
        async for chunk in r.chunks():
            for ev in decoder.feed(chunk):
                if ev.data == "[DONE]":
                    done = True
                    break
                try:
                    data = json.loads(ev.data)
                except ValueError:
                    raise abort(f"{url}: stream event is not JSON: {ev.data[:80]!r}") from None
                if ev.event == "error" or (isinstance(data, dict) and "error" in data):
                    err = data.get("error") if isinstance(data, dict) else data
                    msg = err.get("message") if isinstance(err, dict) else err
                    raise abort(f"{url}: the server sent an error mid-stream: {msg}")
                if isinstance(data, dict) and isinstance(data.get("timings"), dict):
                    engine_timings = data["timings"]
                try:
                    deltas = acc.add(data)
                except MalformedResponseError as e:
                    raise abort(f"{url}: {e}") from None
                if deltas and ttft is None:
                    ttft = time.monotonic() - t0
                if on_delta:
                    for idx, text in deltas:
                        on_delta(idx, text)
            if done:
                break
    except (APITimeoutError, APIConnectionError) as e:
        raise abort(f"{url}: stream interrupted after {acc.chunks} chunks: {e}") from None
    if not done and not acc.finished:
        raise abort(f"{url}: stream ended after {acc.chunks} chunks without [DONE]")
    result = acc.result()
    if not result.choices:
        raise abort(f"{url}: stream carried no choices")
    result.timings.ttft = ttft
    result.timings.engine = engine_timings
    return result


class _StreamAbort(APIError):
    """Carries a final stream error through the retry loop untouched."""

    def __init__(self, error: APIError) -> None:
        super().__init__(str(error), request_id=error.request_id)
        self.error = error


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")
