"""One logical request, and one attempt at it.

:class:`Request` carries a chat, completion or Responses API call through the client's retry
loop (:mod:`gptmagic.client.client`): the provider, the body, the streaming
choice, the callbacks, the timeouts, and an idempotency key made once and sent
with every retry, so a retried POST is not billed twice where the provider
honours ``Idempotency-Key``. :func:`attempt` sends it once, turns an HTTP error
status into its error class, and reads the body: JSON through
:func:`~gptmagic.core.response.parse_response` (Responses:
:func:`~gptmagic.core.responses.parse_responses`), or an SSE stream event by
event into an :class:`~gptmagic.core.response.Accumulator` (Responses:
:class:`~gptmagic.core.responses.ResponsesAccumulator`), calling
``on_delta`` as text arrives; what the reply shows its server did not do
(usage under-reported, ``echo`` or ``best_of`` ignored) goes into
``Result.warnings``. A stream that fails once started raises
:class:`~gptmagic.errors.StreamError` with the partial result (never
retried); :class:`Progress` lets the retry loop end a stream that passes its
deadline the same way.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gptmagic.client.http import HTTP, Timeouts, TooLarge
from gptmagic.core.headers import Headers
from gptmagic.core.reply_checks import check_reply
from gptmagic.core.response import Accumulator, loads, parse_response
from gptmagic.core.responses import ResponsesAccumulator, parse_responses
from gptmagic.core.retry import is_retryable
from gptmagic.core.sse import SSEDecoder
from gptmagic.core.types import Result
from gptmagic.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    GptmagicError,
    MalformedResponseError,
    MalformedStreamError,
    RequestError,
    ResponseFailedError,
    StreamError,
    status_error,
)

if TYPE_CHECKING:
    from gptmagic.client.config import Provider

__all__ = [
    "DeltaCallback", "MAX_ERROR_BYTES", "MAX_RESPONSE_BYTES", "Progress", "ReasoningCallback",
    "Request", "RetryCallback", "attempt", "json_or_text", "read_small", "request_id"
]

DeltaCallback = Callable[[int, str], None]
#: Called with the reasoning summary so far ("" when reasoning begins with none yet).
ReasoningCallback = Callable[[str], None]
"""Called with ``(choice_index, text)`` for every piece of streamed text."""

RetryCallback = Callable[[GptmagicError, float], None]
"""Called with ``(error, wait)`` before each retry."""

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MAX_ERROR_BYTES = 1024 * 1024

_PATHS = {"chat": "chat/completions", "completion": "completions", "response": "responses"}

#: Keywords of OpenAI's Python SDK that are not fields of a request: every keyword given
#: to gptmagic is one, so these would be sent in the body (a header's secret with them).
_SDK_ONLY = frozenset({"extra_headers", "extra_query", "extra_body", "headers",
                       "default_headers", "api_key"})


@dataclass(slots=True)
class Request:
    """One logical chat, completion or Responses API request, as the retry loop carries it."""

    kind: str  #: "chat", "completion" or "response" (``POST /responses``)
    provider: Provider
    body: dict[str, Any]
    headers: Headers  #: auth included; its repr hides the key
    stream: bool = False
    on_delta: DeltaCallback | None = None
    on_retry: RetryCallback | None = None
    #: A Responses stream's reasoning, as it goes, until the reply's text begins.
    on_reasoning: ReasoningCallback | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    #: Echoed prompt tokens of a legacy completion are told apart by offset.
    prompt_len: int | None = None
    #: Sent as ``Idempotency-Key`` with every attempt of this request.
    idempotency_key: str = field(default_factory=lambda: f"gptmagic-retry-{uuid.uuid4()}")
    _payload: bytes | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        sdk_only = sorted(k for k in self.body if k in _SDK_ONLY)
        if sdk_only:
            raise RequestError(
                f"{sdk_only[0]!r} is an option of OpenAI's Python SDK, not a field of the "
                "request: gptmagic sends every keyword in the JSON body. Headers belong to "
                "the provider: gptmagic.add_profile(name, headers={...}) (or `headers` in "
                "config.toml); the fields of extra_body go as keywords of their own",
                param=sdk_only[0])
        if self.stream:
            self.body["stream"] = True
            if self.kind != "response":  # a Responses stream always ends with its usage
                self.body.setdefault("stream_options", {"include_usage": True})
        else:
            self.body.pop("stream", None)

    @property
    def path(self) -> str:
        return _PATHS[self.kind]

    @property
    def model(self) -> str:
        return str(self.body["model"])

    def payload(self) -> bytes:
        """The body as JSON bytes, serialised once for all attempts."""
        if self._payload is None:
            try:
                self._payload = json.dumps(self.body, ensure_ascii=False,
                                           allow_nan=False).encode()
            except (TypeError, ValueError) as e:
                raise RequestError(f"request body is not JSON-serialisable: {e}") from None
        return self._payload

    def send_headers(self) -> Headers:
        return self.headers | {"Idempotency-Key": self.idempotency_key}


@dataclass(slots=True)
class Progress:
    """What one attempt has done so far: once a stream has started, how to end it."""

    abort: Callable[[str, type[StreamError]], StreamError] | None = None
    #: The connection broke mid-stream (not a timeout): the server may have died.
    connection_lost: bool = False


def request_id(headers: dict[str, str]) -> str | None:
    """The provider's request id from a response's headers."""
    for name in ("x-request-id", "apim-request-id", "request-id"):
        if headers.get(name):
            return headers[name]
    return None


async def attempt(
    http: HTTP,
    req: Request,
    url: str,
    query: dict[str, str],
    progress: Progress,
    *,
    max_bytes: int,
) -> Result:
    """Send ``req`` once and read its answer (JSON, or SSE when streamed) into a Result."""
    t0 = time.monotonic()
    kind, on_delta, prompt_len = req.kind, req.on_delta, req.prompt_len
    async with http.request("POST", url, params=query, headers=req.send_headers(),
                            json_body=req.payload(), timeouts=req.timeouts) as r:
        rid = request_id(r.headers)
        if r.status >= 400:
            try:
                raw = await r.read(MAX_ERROR_BYTES)
            except TooLarge:
                raw = b"(error body too large)"
            raise status_error(
                r.status, json_or_text(raw), request_id=rid, headers=r.headers, url=url
            )
        ctype = r.headers.get("content-type", "")
        if req.stream and "text/event-stream" in ctype:
            result = await _read_stream(kind, r, on_delta, t0, prompt_len, rid, url, progress,
                                        req.on_reasoning)
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
                data = loads(raw)
            except ValueError as e:
                what = "JSON" if isinstance(e, json.JSONDecodeError) else f"standard JSON ({e})"
                raise MalformedResponseError(
                    f"{url}: response is not {what} (HTTP {r.status}, "
                    f"{len(raw)} bytes, starts {raw[:80]!r})",
                    request_id=rid,
                ) from None
            try:
                result = (parse_responses(data) if kind == "response"
                          else parse_response(kind, data, prompt_len=prompt_len))
            except ResponseFailedError as e:  # status failed: retried if its code is transient
                raise ResponseFailedError(f"{url}: {e}", code=e.code, request_id=rid) from None
            except APIError as e:  # malformed
                raise type(e)(f"{url}: {e}", request_id=rid) from None
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
    result.warnings = check_reply(kind, req.body, result)
    return result


async def _read_stream(
    kind: str,
    r: Any,
    on_delta: DeltaCallback | None,
    t0: float,
    prompt_len: int | None,
    rid: str | None,
    url: str,
    progress: Progress,
    on_reasoning: ReasoningCallback | None = None,
) -> Result:
    """Read an SSE stream into a Result, calling ``on_delta`` as text arrives (and
    ``on_reasoning`` with a reasoning model's summary so far, while it reasons).

    A chat or completion stream ends with ``[DONE]``; a Responses stream with its
    terminal event (``response.completed``, ``.incomplete`` or ``.failed``), and
    may send no ``[DONE]``.
    """
    acc: Accumulator | ResponsesAccumulator = (
        ResponsesAccumulator() if kind == "response"
        else Accumulator(kind, prompt_len=prompt_len))
    decoder = SSEDecoder()
    ttft: float | None = None
    done = False
    engine_timings: dict[str, Any] | None = None
    reasoned: str | None = None  # the reasoning last told to on_reasoning

    def abort(msg: str, cls: type[StreamError] = StreamError) -> StreamError:
        partial = acc.result()
        partial.request_id = rid
        partial.timings.ttft = ttft
        partial.timings.total = time.monotonic() - t0
        return cls(msg, partial=partial, request_id=rid)

    progress.abort = abort
    try:
        async for chunk in r.chunks():
            for ev in decoder.feed(chunk):
                if ev.data == "[DONE]":
                    done = True
                    break
                try:
                    data = loads(ev.data)
                except ValueError as e:
                    what = ("JSON" if isinstance(e, json.JSONDecodeError)
                            else f"standard JSON ({e})")
                    raise abort(f"{url}: stream event is not {what}: {ev.data[:80]!r}",
                                MalformedStreamError) from None
                if ev.event == "error" or (isinstance(data, dict) and "error" in data):
                    # OpenAI wraps it ({"error": {...}}); llama.cpp's `error:` event is bare.
                    err = data.get("error", data) if isinstance(data, dict) else data
                    msg = err.get("message") if isinstance(err, dict) else err
                    raise abort(f"{url}: the server sent an error mid-stream: {msg}")
                if isinstance(data, dict) and isinstance(data.get("timings"), dict):
                    engine_timings = data["timings"]
                try:
                    deltas = (acc.add(data, ev.event) if isinstance(acc, ResponsesAccumulator)
                              else acc.add(data))
                except MalformedResponseError as e:
                    raise abort(f"{url}: {e}", MalformedStreamError) from None
                except ResponseFailedError as e:  # status failed, or an `error` event
                    if ttft is None and is_retryable(e):
                        # Nothing shown yet: transient (server_error), so retried as a 5xx.
                        raise ResponseFailedError(f"{url}: {e}", code=e.code,
                                                  request_id=rid) from None
                    raise abort(f"{url}: {e}") from None
                if deltas and ttft is None:
                    ttft = time.monotonic() - t0
                if on_delta:
                    for idx, text in deltas:
                        on_delta(idx, text)
                if (on_reasoning and isinstance(acc, ResponsesAccumulator)
                        and acc.reasoning_started and not acc.has_text
                        and acc.reasoning != reasoned):
                    reasoned = acc.reasoning
                    on_reasoning(reasoned)
                if kind == "response" and acc.finished:
                    done = True
                    break
            if done:
                break
    except (APITimeoutError, APIConnectionError) as e:
        progress.connection_lost = not isinstance(e, APITimeoutError)
        raise abort(f"{url}: stream interrupted after {acc.chunks} chunks: {e}") from None
    if kind == "response" and not acc.finished:
        raise abort(f"{url}: stream ended after {acc.chunks} events without "
                    "response.completed (or .incomplete / .failed)")
    if not done and not acc.finished:
        raise abort(f"{url}: stream ended after {acc.chunks} chunks without [DONE]")
    result = acc.result()
    if not result.choices:
        raise abort(f"{url}: stream carried no choices")
    result.timings.ttft = ttft
    result.timings.engine = engine_timings
    return result


def json_or_text(raw: bytes) -> Any:
    """A body as JSON if it parses, else as text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


async def read_small(http: HTTP, method: str, url: str, *, params: dict[str, str],
                     headers: Headers, body: bytes | None = None,
                     content_type: str | None = None, limit: int = MAX_ERROR_BYTES,
                     too_large: str = "refusing it") -> bytes:
    """One request to a side endpoint (models, tokenize, files, batches): its body.

    No retries. An error status is raised as its error class (its body read up
    to :data:`MAX_ERROR_BYTES`); a body past ``limit`` is a
    :class:`~gptmagic.errors.MalformedResponseError` ending in ``too_large``
    (what the caller can do about it).
    """
    async with http.request(method, url, params=params, headers=headers, json_body=body,
                            content_type=content_type) as r:
        try:
            raw = await r.read(limit if r.status < 400 else MAX_ERROR_BYTES)
        except TooLarge as e:
            raise MalformedResponseError(
                f"{url}: response over {limit} bytes ({e.size} read); {too_large}") from None
        if r.status >= 400:
            raise status_error(r.status, json_or_text(raw), request_id=request_id(r.headers),
                               headers=r.headers, url=url)
    return raw

