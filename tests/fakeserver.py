"""A fake OpenAI-compatible HTTP server on loopback, for protocol and fault tests.

Real HTTP/1.1 and real SSE framing from aiohttp's low-level server, run in a
daemon thread with its own event loop so sync and async tests can share it::

    with FakeServer() as srv:
        srv.plan(Behaviour(status=429, headers={"retry-after": "0"}), Behaviour())
        client = Client(base_url=srv.url)  # "http://127.0.0.1:PORT/v1"
        ...
        assert len(srv.requests) == 2 and srv.wait_connections(0)

Each request takes the next planned `Behaviour`, else a chaos pick (when
`set_chaos` is on), else the default. Replies are deterministic: the reply text
is ``"echo: " + last user message`` (chat, and the Responses API of
:mod:`fakeresponses`; an image part shows as ``[image 64x32 PNG]``, and a bad one
is a 400, :mod:`fakeimages`), ``"tool results: " + the results`` when the conversation
ends with tool results (``" | "`` between them), or ``" echo: " + prompt``
(completions); a ``json_schema``
response format is answered with an instance of its schema, and a strict one that
breaks OpenAI's rules with OpenAI's 400 (:mod:`fakeschema`); ``Behaviour(refusal=
"...")`` makes the model refuse (``message.refusal``, streamed too). Tokens are
whitespace-separated words (each keeping its leading whitespace, so tokens
concatenate to the text), and logprobs are
``-0.1 * (i + 1)`` for the i-th token of a choice.

``/v1/files`` and ``/v1/batches`` are :mod:`fakebatches`' (``srv.batches``: its
clock and fault knobs); a batch's lines are answered by the routes above.

Tool calls, on chat and the Responses API, streamed or not: ``Behaviour(tool_calls=
[("get_weather", {"city": "Paris"}), ("nope", '{"x": ')])`` answers with those
calls in that order (a dict is sent as JSON, a string as it is: malformed
arguments, a tool the request never offered); so does a forced ``tool_choice``
(``"required"``: the first tool; a tool's name) with ``{"text": last user text}``.
A plan gives a loop its turns: ``srv.plan(Behaviour(tool_calls=[...]), Behaviour())``
calls, then answers with the tool results.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fakeschema
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

__all__ = ["CHAOS_KINDS", "Behaviour", "FakeServer", "Recorded"]

CHAOS_KINDS = (
    "ok", "429", "429_retry_after", "500", "502", "503", "drop", "stream_cut", "slow", "malformed"
)
_BOUND = 5.0  # seconds: upper bound for start, stop and internal waits
_MAX_BODY = 256 * 1024 * 1024  # the largest request body read (a batch file is up to 200 MB)
_ERROR_TYPES = {
    400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None), 404: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}
_TOKEN = re.compile(r"\s*\S+")  # a word-token keeps its leading whitespace
_IMAGES = ("image_url", "input_image")
_ROUTES = {"chat/completions": "messages", "completions": "prompt", "models": "",
           "responses": "model", "responses/input_tokens": ""}
_MODELS = {"object": "list",
           "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]}


@dataclass
class Behaviour:
    """How the server answers one request. The defaults give a normal successful reply."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | str | dict | None = None  # raw override of the whole body
    delay: float = 0.0  # seconds before sending headers
    drop: bool = False  # abort the TCP connection without any response
    stream_cut_after: int | None = None  # streaming: abort after this many SSE events
    stream_delay: float = 0.0  # streaming: pause between SSE events
    malformed: str | None = None  # "json": invalid JSON body; "sse": a non-JSON data line
    error_event: bool = False  # streaming: an error event after the first content event
    text: str | None = None  # reply text override
    trickle: bool = False  # send the body 1 byte at a time (SSE with \r\n line endings)
    # Rewrites the reply (or each stream event) before it is sent: returns the new
    # object, or the raw JSON text (for numbers json.dumps cannot write, like 1e400).
    mangle: Callable[[dict], dict | str] | None = None
    endless: bool = False  # streaming: after the reply's text, more text forever (no finish)
    failed: str | None = None  # Responses API: the response fails with this message
    # Chat and Responses: answer with these function calls, in order: (name, arguments),
    # a dict sent as JSON, a string as it is (malformed arguments stay malformed).
    tool_calls: list[tuple[str, dict | str]] | None = None
    # Hold each request until this many are in flight at once (or hold_for seconds pass):
    # a barrier, so concurrency tests do not depend on how fast a loaded machine connects.
    hold_until: int | None = None
    hold_for: float = 30.0
    # The model refuses with this text (chat: message.refusal; Responses: a refusal part).
    refusal: str | None = None


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case keys
    body: bytes = field(repr=False)
    json: Any = field(repr=False)  # parsed body, or None
    chaos: str | None = None  # the chaos kind applied, if chaos picked the behaviour
    at: float = field(default_factory=time.monotonic)  # when it arrived (monotonic clock)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def pieces(text: str) -> list[str]:
    """``text`` in word-sized pieces that join back to it exactly (trailing space too)."""
    out = _tokens(text)
    rest = text[len("".join(out)):]
    return [*out, rest] if rest else out or [text]


#: Prompt tokens the fake server counts for each image part.
IMAGE_TOKENS = 85


def _words(value: Any) -> int:
    """Whitespace-separated words in a message content (string or list of parts); an
    image part counts :data:`IMAGE_TOKENS`."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(IMAGE_TOKENS if isinstance(p, dict) and p.get("type") in _IMAGES
                   else _words(p.get("text", "")) if isinstance(p, dict) else _words(p)
                   for p in value)
    return 0


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(_part_text(p) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def tool_results(messages: Any, role_key: str = "role", role: str = "tool",
                 text_key: str = "content") -> str | None:
    """``"tool results: a | b"`` when ``messages`` end with tool results (chat's ``tool``
    messages; the Responses API's ``function_call_output`` items), else None."""
    if not isinstance(messages, list):
        return None
    results: list[str] = []
    for m in reversed(messages):
        if not (isinstance(m, dict) and m.get(role_key) == role):
            break
        results.insert(0, _text_of(m.get(text_key)))
    return "tool results: " + " | ".join(results) if results else None


def scripted_calls(b: Behaviour, forced: str | None, last: str) -> list[tuple[str, str]]:
    """The function calls a reply makes: ``b.tool_calls`` (dicts as JSON), else the
    forced tool's with ``{"text": last}``, else none."""
    if b.tool_calls is not None:
        return [(name, args if isinstance(args, str) else json.dumps(args))
                for name, args in b.tool_calls]
    return [(forced, json.dumps({"text": last}))] if forced else []


def _forced_chat(data: dict) -> str | None:
    """The function a chat request's ``tool_choice`` makes the model call, if any."""
    choice = data.get("tool_choice")
    names = [(t.get("function") or {}).get("name") for t in data.get("tools") or []
             if isinstance(t, dict) and t.get("type") == "function"]
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return str(choice["function"].get("name"))
    return str(names[0]) if choice == "required" and names else None


def _part_text(part: dict) -> str:
    """A part's text; an image as ``[image 64x32 PNG]`` (:mod:`fakeimages`)."""
    if part.get("type") in _IMAGES:
        import fakeimages

        return fakeimages.describe(part)
    return str(part.get("text", ""))


def _bad_images(data: dict, kind: str) -> dict | None:
    """OpenAI's 400 for a bad image part (checked against the spec), else None."""
    import fakeimages

    found = fakeimages.check(data, kind)
    return None if found is None else _error(400, *found)


def _top(tok: str, lp: float, k: int) -> list[tuple[str, float]]:
    """The k most likely tokens: the chosen one, then alternatives with lower logprobs.

    Alternatives get min(p, 1-p) / 2**j, so all probabilities sum to less than 1.
    """
    # log(min(p, 1 - p)) without leaving log space: exp() of a long reply's last
    # logprobs (-740 and below) is 0.0, whose log is a math domain error.
    m = lp if lp < -math.log(2) else math.log1p(-math.exp(lp))
    ws = tok[: len(tok) - len(tok.lstrip())]
    alts = [(f"{ws}alt{j}", round(m - j * math.log(2), 6)) for j in range(1, k)]
    return [(tok, lp), *alts][:k]


def _chat_logprob(tok: str, i: int, k: int) -> dict:
    lp = round(-0.1 * (i + 1), 6)
    top = [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in _top(tok, lp, k)]
    return {"token": tok, "logprob": lp, "bytes": list(tok.encode()), "top_logprobs": top}


def _legacy_logprobs(prompt: str, toks: list[str], k: int, echo: bool) -> dict:
    """Legacy completions logprobs; offsets count from the start of the prompt."""
    ptoks = _tokens(prompt) if echo else []
    offsets = [len("".join(ptoks[:i])) for i in range(len(ptoks))]
    offsets += [len(prompt) + len("".join(toks[:i])) for i in range(len(toks))]
    lps: list[float | None] = [round(-0.1 * (i + 1), 6) for i in range(len(ptoks))]
    lps += [round(-0.1 * (i + 1), 6) for i in range(len(toks))]
    tops: list[dict | None] = []
    for tok, lp in zip(ptoks + toks, lps, strict=True):
        tops.append(dict(_top(tok, lp or 0.0, k)))
    if ptoks:  # the first prompt token has no logprob: nothing comes before it
        lps[0] = tops[0] = None
    return {"tokens": ptoks + toks, "token_logprobs": lps, "top_logprobs": tops,
            "text_offset": offsets}


def _usage(prompt: int, completion: int) -> dict:
    return {
        "prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    }


def _error(status: int, message: str | None = None, param: str | None = None) -> dict:
    etype, code = _ERROR_TYPES.get(status, ("server_error", None))
    message = message or f"Fake error {status} (planned by the test)."
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


def _moderation(data: dict, n: int) -> dict:
    """Flags ``violence`` for inputs containing "attack", ``harassment`` for "idiot"."""
    inputs = data.get("input")
    inputs = inputs if isinstance(inputs, list) else [inputs]
    results = []
    for text in inputs:
        text = str(text).lower()
        cats = {"violence": "attack" in text, "harassment": "idiot" in text}
        scores = {k: (0.91 if v else 0.01) for k, v in cats.items()}
        results.append({"flagged": any(cats.values()), "categories": cats,
                        "category_scores": scores})
    return {"id": f"modr-fake-{n}", "model": data.get("model") or "omni-moderation-latest",
            "results": results}


def _choices(texts: list[str], limit: int | None) -> list[tuple[list[str], str]]:
    """Per choice: its tokens (truncated to `limit`) and finish_reason."""
    out = []
    for text in texts:
        toks = _tokens(text)
        cut = limit is not None and len(toks) > limit
        out.append((toks[:limit] if cut else toks, "length" if cut else "stop"))
    return out


class _Server(web.Server):
    """aiohttp's low-level server, counting TCP connections as they open and close."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.transports: dict[RequestHandler, asyncio.Transport] = {}
        self.total = 0

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.transports[handler] = transport
        self.total += 1

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.transports.pop(handler, None)


class FakeServer:
    """A fake OpenAI-compatible server on a free loopback port (see the module docstring)."""

    chaos_slow_delay: float = 2.0  # delay of the "slow" chaos kind
    trickle_pause: float = 0.0  # sleep between trickled bytes; > 0 makes splits more certain

    def __init__(self, host: str = "127.0.0.1", port: int = 0, keepalive_timeout: float = 75.0):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"FakeServer serves loopback only, not {host!r}")
        self.host, self.port, self.keepalive_timeout = host, port, keepalive_timeout
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._plan: collections.deque[Behaviour] = collections.deque()
        # GET /models' own queue: the client asks for it in the background, beside a
        # call's POST, so the shared plan's order would be a race.
        self._models_plan: collections.deque[Behaviour] = collections.deque()
        self._default = Behaviour()
        self._chaos: tuple[random.Random, dict[str, float]] | None = None
        self._count = 0
        self.in_flight = 0  # requests being handled now
        self.max_in_flight = 0  # the most handled at once (for concurrency-limit tests)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: _Server | None = None
        self._listener: asyncio.Server | None = None
        self._memory: Any = None  # the Responses API's stored responses and cache keys
        self._batches: Any = None  # the Files and Batch APIs' store (fakebatches.Store)

    def __repr__(self) -> str:
        return f"<FakeServer {self.url if self.port else 'stopped'}>"

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeServer:
        """Bind a free loopback port and serve in a daemon thread; returns self (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        started, failure = threading.Event(), []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._astart())
            except Exception as exc:  # reported to start()
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="FakeServer", daemon=True)
        self._thread.start()
        if not started.wait(_BOUND) or failure:
            raise RuntimeError(f"FakeServer did not start: {failure or 'timeout'}")
        return self

    async def _astart(self) -> None:
        self._server = _Server(self._handle, handler_cancellation=True, access_log=None,
                               keepalive_timeout=self.keepalive_timeout)
        self._listener = await asyncio.get_running_loop().create_server(
            self._server, self.host, self.port, backlog=1024)
        self.port = self._listener.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Abort every connection, cancel handlers and stop the thread (bounded)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._astop(), loop).result(_BOUND)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_BOUND)
            self._loop = self._thread = None

    async def _astop(self) -> None:
        assert self._listener is not None and self._server is not None
        self._listener.close()
        for transport in list(self._server.transports.values()):
            transport.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_BOUND / 2)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- control ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL including /v1, as OpenAI clients expect."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def open_connections(self) -> int:
        """TCP connections currently open on the server side."""
        return len(self._server.transports) if self._server else 0

    @property
    def total_connections(self) -> int:
        """TCP connections ever accepted."""
        return self._server.total if self._server else 0

    def plan(self, *behaviours: Behaviour) -> None:
        """Queue behaviours, consumed one per request in order."""
        with self._lock:
            self._plan.extend(behaviours)

    def plan_models(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for ``GET /models`` only (before ``plan``'s), one per request."""
        with self._lock:
            self._models_plan.extend(behaviours)

    def set_default(self, b: Behaviour) -> None:
        """The behaviour used when nothing is planned and chaos is off."""
        self._default = b

    def set_chaos(self, seed: int | None, weights: dict[str, float] | None = None) -> None:
        """Pick a fault per request at random (reproducibly); `seed=None` turns chaos off."""
        if seed is None or not weights:
            self._chaos = None
            return
        unknown = set(weights) - set(CHAOS_KINDS)
        if unknown:
            raise ValueError(f"unknown chaos kinds {sorted(unknown)}; known: {CHAOS_KINDS}")
        with self._lock:
            self._chaos = (random.Random(seed), dict(weights))

    def wait_connections(self, n: int, timeout: float = 5) -> bool:
        """Poll until `open_connections == n`; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.open_connections != n:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def reset(self) -> None:
        """Forget requests, plan, chaos and the request counter; restore the default."""
        with self._lock:
            self.requests.clear()
            self._plan.clear()
            self._models_plan.clear()
            self._chaos = None
            self._count = 0
            self.max_in_flight = 0
            self._default = Behaviour()
        if self._memory is not None:
            self._memory.clear()
        self._batches = None

    def _pick(self, stream: bool) -> tuple[Behaviour, str | None]:
        with self._lock:
            if self._plan:
                return self._plan.popleft(), None
            if self._chaos is None:
                return self._default, None
            rng, weights = self._chaos
            kind = rng.choices(list(weights), list(weights.values()))[0]
        return {
            "429": Behaviour(status=429),
            "429_retry_after": Behaviour(status=429, headers={"retry-after": "0"}),
            "500": Behaviour(status=500), "502": Behaviour(status=502),
            "503": Behaviour(status=503), "drop": Behaviour(drop=True),
            "stream_cut": Behaviour(stream_cut_after=2 if stream else None),
            "slow": Behaviour(delay=self.chaos_slow_delay),
            "malformed": Behaviour(malformed="sse" if stream else "json"),
        }.get(kind, Behaviour()), kind

    # ---- GET /v1/models (issue 14): Model objects with shutdown_date ---------------------
    listed_models: list[dict[str, Any]] | None = None  # set per server with set_models

    def set_models(self, shutdowns: dict[str, object]) -> None:
        """What ``GET /v1/models`` lists: model id -> ``shutdown_date`` (``"YYYY-MM-DD"``,
        None for none announced, ``...`` to leave the field out as older servers do)."""
        self.listed_models = [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "openai",
             **({} if day is ... else {"shutdown_date": day})} for m, day in shutdowns.items()]

    def models_body(self) -> dict[str, Any]:
        """The ``ListModelsResponse`` the server sends."""
        if self.listed_models is None:
            return _MODELS
        return {"object": "list", "data": list(self.listed_models)}

    # ---- /v1/files and /v1/batches (issue 16): fakebatches -------------------------------
    @property
    def batches(self) -> Any:
        """The Files and Batch APIs' :class:`fakebatches.Store`: its clock and fault knobs."""
        with self._lock:
            if self._batches is None:
                import fakebatches  # it imports this module's helpers

                self._batches = fakebatches.Store(self._answer_line)
            return self._batches

    def _answer_line(self, url: str, body: dict, n: int) -> tuple[int, dict]:
        """One batch request line, answered as its route answers it (never streamed)."""
        path = url.rstrip("/")
        body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        if path.endswith("/chat/completions"):
            if "messages" not in body:
                return 400, _error(400, "Missing required parameter: 'messages'.", "messages")
            refused = fakeschema.refused_format(body.get("response_format"), "response_format")
            if refused is not None:
                return 400, _error(400, *refused)
            return 200, self._chat(body, Behaviour(), n, path)[0]
        if path.endswith("/responses"):
            import fakeresponses as fr

            if self._memory is None:
                self._memory = fr.Memory()
            if "model" not in body:
                return 400, _error(400, "Missing required parameter: 'model'.", "model")
            try:
                return 200, fr.build(body, None, n, self._memory, None)[0]
            except fr.Refused as e:
                return 400, _error(400, str(e), e.param)
        return 404, _error(404, f"Invalid URL (POST {url})")

    # ---- request handling ---------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        # aiohttp refuses bodies over 1 MiB by default; batch files are larger.
        request = request.clone(client_max_size=_MAX_BODY)
        raw = await request.read()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        with self._lock:
            self._count += 1
            n = self._count
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._handle_counted(request, raw, data, n)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _handle_counted(self, request: web.BaseRequest, raw: bytes,
                              data: Any, n: int) -> web.StreamResponse:
        rec = Recorded(request.method, request.path, dict(request.query.items()),
                       {k.lower(): v for k, v in request.headers.items()}, raw, data)
        self.requests.append(rec)
        stream = isinstance(data, dict) and bool(data.get("stream"))
        with self._lock:
            listing = (request.method == "GET" and request.path.rstrip("/").endswith("/models")
                       and bool(self._models_plan))
            models_b = self._models_plan.popleft() if listing else None
        b, rec.chaos = (models_b, None) if models_b is not None else self._pick(stream)
        try:
            return await self._respond(request, data, b, n)
        except ConnectionError:  # the client went away mid-reply
            if request.transport is not None:
                request.transport.abort()
            return web.Response()  # never sent

    async def _respond(self, request: web.BaseRequest, data: Any, b: Behaviour,
                       n: int) -> web.StreamResponse:
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.hold_until:
            deadline = time.monotonic() + b.hold_for
            while self.max_in_flight < b.hold_until and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        if b.drop:
            if request.transport is not None:
                request.transport.abort()
            return web.Response()  # never sent: writing to the aborted transport fails quietly
        headers = {"x-request-id": f"req_fake_{n}", **b.headers}

        async def send(status: int, body: bytes | str | dict) -> web.StreamResponse:
            return await self._send(request, status, headers, body, b.trickle)

        if b.status != 200 or b.body is not None:
            return await send(b.status, _error(b.status) if b.body is None else b.body)
        if b.malformed == "json":
            return await send(200, b'{"id": "chatcmpl-fake", "choi')
        path, method = request.path.rstrip("/"), request.method
        if "/files" in path or "/batches" in path:
            reply = self.batches.route(method, path, dict(request.query.items()),
                                       await request.read(), request.headers.get(
                                           "Content-Type", ""))
            if reply is not None:
                status, out, ctype = reply
                headers["Content-Type"] = ctype
                return await send(status, out)
        kind = next((k for k in _ROUTES if path.endswith("/" + k)), None)
        if kind == "models" and method == "GET":
            return await send(200, self.models_body())
        if path.endswith("/moderations") and method == "POST" and isinstance(data, dict):
            return await send(200, _moderation(data, n))
        if kind in (None, "models") or method != "POST":
            return await send(404, _error(404, f"Invalid URL ({method} {request.path})"))
        if not isinstance(data, dict):
            return await send(400, _error(400, "We could not parse the JSON body of your request."))
        if kind != "completions":
            bad = _bad_images(data, "chat" if kind == "chat/completions" else "responses")
            if bad is not None:
                return await send(400, bad)
        if kind.startswith("responses"):
            return await self._responses(request, kind, data, b, n, send, headers)
        if _ROUTES[kind] not in data:
            field_ = _ROUTES[kind]
            return await send(400, _error(400, f"Missing required parameter: '{field_}'.", field_))
        refused = fakeschema.refused_format(data.get("response_format"), "response_format")
        if kind == "chat/completions" and refused is not None:
            return await send(400, _error(400, *refused))
        build = self._chat if kind == "chat/completions" else self._completion
        reply, events, first_content = build(data, b, n, request.path)
        if b.mangle is not None:
            reply = b.mangle(reply)
            events = [e if e == "[DONE]" else _mangled(b.mangle, e) for e in events]
        if b.endless:
            # The last content event, repeated until the client goes away.
            events = events[:first_content + 1]
        if not (data.get("stream") or b.malformed == "sse"):
            return await send(200, reply)
        if b.malformed == "sse":
            events.insert(1, "this is not json {")
        if b.error_event:
            err = {"error": {"message": "boom", "type": "server_error", "param": None,
                             "code": None}}
            events = [*events[: first_content + 1], json.dumps(err)]
        return await self._stream(request, headers, events, b)

    async def _responses(self, request: web.BaseRequest, kind: str, data: dict, b: Behaviour,
                         n: int, send: Callable[..., Any],
                         headers: dict[str, str]) -> web.StreamResponse:
        """``/responses`` and ``/responses/input_tokens`` (:mod:`fakeresponses`)."""
        import fakeresponses as fr  # it imports this module's helpers

        if self._memory is None:
            self._memory = fr.Memory()
        if _ROUTES[kind] and _ROUTES[kind] not in data:
            field_ = _ROUTES[kind]
            return await send(400, _error(400, f"Missing required parameter: '{field_}'.", field_))
        try:
            if kind == "responses/input_tokens":
                count = fr.count_input(data, self._memory)
                reply: Any = {"object": "response.input_tokens", "input_tokens": count}
                return await send(200, reply if b.mangle is None else b.mangle(reply))
            reply, events, first = fr.build(data, b.text, n, self._memory, b.failed, b)
        except fr.Refused as e:
            return await send(400, _error(400, str(e), e.param))
        if b.mangle is not None:
            reply = b.mangle(reply)
            events = [(name, _mangled(b.mangle, e)) for name, e in events]
        if b.endless:
            events = events[:first + 1]
        if not (data.get("stream") or b.malformed == "sse"):
            return await send(200, reply)
        sent: list[str | tuple[str, str]] = list(events)
        if b.malformed == "sse":
            sent.insert(1, "this is not json {")
        if b.error_event:
            sent = [*events[: first + 1], fr.error_event(events[: first + 1])]
        return await self._stream(request, headers, sent, b)

    async def _write(self, resp: web.StreamResponse, data: bytes, trickle: bool) -> None:
        if not trickle:
            await resp.write(data)
            return
        for i in range(len(data)):
            await resp.write(data[i : i + 1])
            await asyncio.sleep(self.trickle_pause)

    async def _send(self, request: web.BaseRequest, status: int, headers: dict[str, str],
                    body: bytes | str | dict | list, trickle: bool) -> web.StreamResponse:
        if isinstance(body, dict | list):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers = {**headers, "Content-Type": "application/json"}
        if not trickle:
            return web.Response(status=status, headers=headers, body=body)
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = len(body)
        await resp.prepare(request)
        await self._write(resp, body, True)
        return resp

    async def _stream(self, request: web.BaseRequest, headers: dict[str, str],
                      events: list[str] | list[str | tuple[str, str]],
                      b: Behaviour) -> web.StreamResponse:
        """Send SSE events: a string is a ``data:`` line; ``(name, data)`` adds an ``event:``
        line (the Responses API's)."""
        resp = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
            **headers})
        await resp.prepare(request)
        eol = "\r\n" if b.trickle else "\n"
        cut = b.stream_cut_after
        if cut is not None and events and events[-1] == "[DONE]":
            cut = min(cut, len(events) - 1)
        def frame(event: str | tuple[str, str]) -> bytes:
            if isinstance(event, tuple):
                return f"event: {event[0]}{eol}data: {event[1]}{eol}{eol}".encode()
            return f"data: {event}{eol}{eol}".encode()

        for k, event in enumerate(events):
            if k == cut:
                break
            if k and b.stream_delay:
                await asyncio.sleep(b.stream_delay)
            await self._write(resp, frame(event), b.trickle)
        last, k = events[-1], len(events)
        while b.endless:  # ends when the client disconnects (a ConnectionError)
            await asyncio.sleep(b.stream_delay or 0.01)
            if isinstance(last, tuple):  # the Responses API numbers its events
                import fakeresponses

                last = fakeresponses.renumbered(last, k)
                k += 1
            await self._write(resp, frame(last), b.trickle)
        if cut is not None and request.transport is not None:
            request.transport.abort()  # no terminating chunk, no [DONE]
        return resp

    # ---- reply builders: (non-streaming reply, SSE event payloads, index of first content)
    def _chat(self, data: dict, b: Behaviour, n: int, path: str) -> tuple[dict, list[str], int]:
        messages = data.get("messages") or []
        last = next((m.get("content") for m in reversed(messages)
                     if isinstance(m, dict) and m.get("role") == "user"), "")
        results = tool_results(messages)
        base = b.refusal if b.refusal is not None else b.text if b.text is not None else (
            fakeschema.reply_text(data.get("response_format")) or results
            or ("echo: " + _text_of(last)).rstrip())
        key = "content" if b.refusal is None else "refusal"  # what the tokens are
        want_lp = bool(data.get("logprobs")) and b.refusal is None
        calls = scripted_calls(b, _forced_chat(data), _text_of(last))
        count = int(data.get("n") or 1)
        texts = [base + (f" #{i}" if count > 1 else "") for i in range(count)]
        limit = data.get("max_completion_tokens")
        limit = data.get("max_tokens") if limit is None else limit
        choices = _choices(texts, limit)
        k = int(data.get("top_logprobs") or 0)
        prompt = sum(_words(m.get("content")) for m in messages if isinstance(m, dict))
        usage = _usage(prompt, sum(len(t) for t, _ in choices))
        deployment = re.search(r"/deployments/([^/]+)/", path)
        head = {"id": f"chatcmpl-fake-{n}", "created": int(time.time()),
                "model": data.get("model") or (deployment and deployment[1]) or "fake-model",
                "system_fingerprint": "fp_fake"}
        if calls:
            return _chat_calls(head, calls, n, prompt, data)
        reply = {**head, "object": "chat.completion", "usage": usage, "choices": [
            {"index": i, "finish_reason": fin,
             "message": {"role": "assistant", "content": None, "refusal": None,
                         key: "".join(toks)},
             "logprobs": {"content": [_chat_logprob(t, j, k) for j, t in enumerate(toks)],
                          "refusal": None} if want_lp else None}
            for i, (toks, fin) in enumerate(choices)]}
        include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
        chunk_head = {**head, "object": "chat.completion.chunk"}
        if include_usage:
            chunk_head["usage"] = None

        def chunk(i: int, delta: dict, lp: Any = None, fin: str | None = None) -> str:
            choice = {"index": i, "delta": delta, "logprobs": lp, "finish_reason": fin}
            return json.dumps({**chunk_head, "choices": [choice]})

        first = {"role": "assistant", "content": ""} if b.refusal is None else {
            "role": "assistant", "content": None, "refusal": ""}  # as OpenAI streams one
        events = [chunk(i, first) for i in range(count)]
        for j in range(max((len(t) for t, _ in choices), default=0)):
            for i, (toks, _) in enumerate(choices):
                if j < len(toks):
                    lp = {"content": [_chat_logprob(toks[j], j, k)], "refusal": None}
                    events.append(chunk(i, {key: toks[j]}, lp if want_lp else None))
        events += [chunk(i, {}, None, fin) for i, (_, fin) in enumerate(choices)]
        if include_usage:
            events.append(json.dumps({**chunk_head, "choices": [], "usage": usage}))
        return reply, [*events, "[DONE]"], count

    def _completion(self, data: dict, b: Behaviour, n: int,
                    path: str) -> tuple[dict, list[str], int]:
        prompts = data.get("prompt")
        if isinstance(prompts, str) or not isinstance(prompts, list) or (
                prompts and isinstance(prompts[0], int)):
            prompts = [prompts]
        prompts = [p if isinstance(p, str) else " ".join(map(str, p or [])) for p in prompts]
        count, echo = int(data.get("n") or 1), bool(data.get("echo"))
        lp_k = data.get("logprobs")
        want_lp = isinstance(lp_k, int) and not isinstance(lp_k, bool)
        limit = data.get("max_tokens")
        created, model = int(time.time()), data.get("model") or "fake-model"
        head = {"id": f"cmpl-fake-{n}", "object": "text_completion", "created": created,
                "model": model, "system_fingerprint": "fp_fake"}
        rows = []  # (index, prompt, tokens, finish_reason)
        for p, prompt in enumerate(prompts):
            base = b.text if b.text is not None else (" echo: " + prompt).rstrip()
            texts = [base + (f" #{i}" if count > 1 else "") for i in range(count)]
            rows += [(p * count + i, prompt, toks, fin)
                     for i, (toks, fin) in enumerate(_choices(texts, limit))]
        usage = _usage(sum(_words(p) for p in prompts), sum(len(r[2]) for r in rows))

        lps = {i: _legacy_logprobs(prompt, toks, lp_k, echo) if want_lp else None
               for i, prompt, toks, _ in rows}
        reply = {**head, "usage": usage, "choices": [
            {"index": i, "text": (prompt if echo else "") + "".join(toks), "finish_reason": fin,
             "logprobs": lps[i]} for i, prompt, toks, fin in rows]}

        def chunk(i: int, text: str, a: int = 0, b: int = 0, fin: str | None = None) -> str:
            lp = {key: v[a:b] for key, v in lps[i].items()} if lps[i] and b else None
            choice = {"index": i, "text": text, "logprobs": lp, "finish_reason": fin}
            return json.dumps({**head, "choices": [choice]})

        events = []
        for i, prompt, toks, fin in rows:
            p = len(_tokens(prompt)) if echo else 0
            if echo:
                events.append(chunk(i, prompt, 0, p))
            events += [chunk(i, tok, p + j, p + j + 1) for j, tok in enumerate(toks)]
            events.append(chunk(i, "", fin=fin))
        if (data.get("stream_options") or {}).get("include_usage"):
            events.append(json.dumps({**head, "choices": [], "usage": usage}))
        return reply, [*events, "[DONE]"], 1 if echo else 0


def _chat_calls(head: dict, calls: list[tuple[str, str]], n: int, prompt: int,
                data: dict) -> tuple[dict, list[str], int]:
    """A chat reply that calls functions: the whole body, and its stream (a call's id and
    name first, then its arguments in word-sized pieces), and the first arguments event."""
    wire = [{"id": f"call_fake_{n}_{i}", "type": "function",
             "function": {"name": name, "arguments": args}} for i, (name, args) in enumerate(calls)]
    usage = _usage(prompt, sum(len(_tokens(args)) for _, args in calls))
    reply = {**head, "object": "chat.completion", "usage": usage, "choices": [
        {"index": 0, "finish_reason": "tool_calls", "logprobs": None,
         "message": {"role": "assistant", "content": None, "refusal": None,
                     "tool_calls": wire}}]}
    include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
    chunk_head = {**head, "object": "chat.completion.chunk",
                  **({"usage": None} if include_usage else {})}

    def chunk(delta: dict, fin: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": fin}
        return json.dumps({**chunk_head, "choices": [choice]})

    events = [chunk({"role": "assistant", "content": None})]
    first = 0
    for i, call in enumerate(wire):
        fn = call["function"]
        events.append(chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                             "function": {"name": fn["name"],
                                                          "arguments": ""}}]}))
        first = first or len(events)
        events += [chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
                   for piece in pieces(fn["arguments"])]
    events.append(chunk({}, "tool_calls"))
    if include_usage:
        events.append(json.dumps({**chunk_head, "choices": [], "usage": usage}))
    return reply, [*events, "[DONE]"], first


def _mangled(mangle: Callable[[dict], dict | str], event: str) -> str:
    out = mangle(json.loads(event))
    return out if isinstance(out, str) else json.dumps(out)


def _serve_main() -> None:
    """``python tests/fakeserver.py [--delay S] [--batch-scale X]``: serve until stdin
    closes (benchmarks); ``--batch-scale`` runs the batches' clock X times real time."""
    import argparse
    import sys

    ap = argparse.ArgumentParser()
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--batch-scale", type=float, default=0.0)
    args = ap.parse_args()
    with FakeServer() as srv:
        srv.set_default(Behaviour(delay=args.delay))
        if args.batch_scale:
            import fakebatches

            srv.batches.clock = fakebatches.Clock(scale=args.batch_scale)
        print(srv.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    _serve_main()
