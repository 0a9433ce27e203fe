"""The embedded model as a standard OpenAI-compatible HTTP server.

An aiohttp app in front of the llama.cpp server that xllamacpp runs in this
process: every request goes through :mod:`gptmagic.local.adapt`, so clients
see OpenAI's shapes and errors (see that module for the contract). Streams
are relayed event by event, flushed as they come. This module is the app's
setup and lifecycle; the handlers are :mod:`gptmagic.local.routes`, the
upstream calls and the SSE relay :mod:`gptmagic.local.relay`.

One app serves every embedded model (:mod:`gptmagic.local.served`): a request's
``model`` picks the engine, started on first use; ``--preload`` starts some
before the app listens (the default model by default), so their load errors
are start-up errors.

Run it::

    python -m gptmagic.local.server [--host 127.0.0.1] [--port 0] [--watch-stdin]
                                    [--preload MODEL ...] [--gemma-package NAME]

Once listening it prints one JSON line, ``{"url": ".../v1", "pid": N, "model":
..., "models": [...]}``, to stdout; anything else written to stdout (by llama.cpp's C code, say)
is sent to stderr so the parent can read stdout as a protocol.
``--watch-stdin`` makes it exit when stdin closes, so a parent that dies never
leaves it behind. SIGTERM and SIGINT stop it cleanly (engine stopped, exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
from aiohttp import web

from gptmagic.catalog.embedded import SMOLLM2, EmbeddedModel, embedded_model
from gptmagic.errors import ConfigError
from gptmagic.local import adapt
from gptmagic.local.gemma import GEMMA_PACKAGE
from gptmagic.local.llama import DEFAULT_PARALLEL, LlamaServer, start_llama
from gptmagic.local.relay import (
    _CREATED,
    _IN_FLIGHT,
    _MODELS,
    _SESSION,
    _UPSTREAM_TIMEOUT,
    _error,
)
from gptmagic.local.routes import (
    chat_completions,
    completions,
    health,
    response_input_tokens,
    responses,
    slots,
    tokenize,
)
from gptmagic.local.routes import models as list_models
from gptmagic.local.served import Models

__all__ = ["WATCH_INTERVAL", "create_app", "main", "run"]

#: Seconds the server waits for open connections when it stops.
_SHUTDOWN_GRACE = 1.0



@web.middleware
async def _openai_errors(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
    """Every error leaves in OpenAI's shape, whatever raised it."""
    try:
        return await handler(request)
    except adapt.LocalRequestError as exc:
        return _error(exc.status, exc.body())
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = f"Invalid URL ({request.method} {request.path})" if exc.status in (404, 405) \
            else exc.reason
        response = _error(exc.status, adapt.error_body(message))
        if "Allow" in exc.headers:  # a 405 says which methods the path takes
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except aiohttp.ClientError as exc:
        body = adapt.error_body(f"The local engine did not answer: {exc}", type="server_error")
        return _error(502, body)
    except Exception as exc:  # a bug of ours: still OpenAI's shape, and said in the log
        traceback.print_exc(file=sys.stderr)
        body = adapt.error_body(f"The local adapter failed on this request "
                                f"({type(exc).__name__}); its log has the details.",
                                type="server_error")
        return _error(500, body)


#: Seconds between the watchdog's looks for requests whose client has gone.
WATCH_INTERVAL = 0.5


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def _track_client(request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> web.StreamResponse:
    """Register the request's task while it runs, so the watchdog can stop it."""
    task = asyncio.current_task()
    in_flight = request.app[_IN_FLIGHT]
    if task is not None:
        in_flight[task] = request
    try:
        return await handler(request)
    finally:
        if task is not None:
            in_flight.pop(task, None)


async def _watchdog(app: web.Application) -> Any:
    """Cancel every request whose client has gone, every :data:`WATCH_INTERVAL` seconds.

    Cancelling a handler closes its upstream connections, and the engine frees
    a slot whose connection closes. The runner's ``handler_cancellation`` does
    this at once when the disconnect is seen; the watchdog also catches what
    that misses (a runner without it, a request that never writes).
    """
    async def watch() -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            for task, request in list(app[_IN_FLIGHT].items()):
                if _client_gone(request) and not task.done():
                    task.cancel()

    watcher = asyncio.create_task(watch(), name="gptmagic-slot-watchdog")
    yield
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher


def create_app(models: Models | LlamaServer) -> web.Application:
    """The adapter app for ``models`` (their engines are not stopped with the app).

    One running engine alone is served as its model (the others are not loaded).
    """
    app = web.Application(middlewares=[_openai_errors, _track_client],
                          client_max_size=64 * 1024 * 1024)
    if isinstance(models, LlamaServer):
        models = _only(models)
    app[_MODELS] = models
    app[_CREATED] = int(time.time())
    app[_IN_FLIGHT] = {}

    async def session_context(app: web.Application) -> Any:
        # A fresh upstream connection per request: after a stream the engine may
        # fail a kept-alive connection.
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        async with aiohttp.ClientSession(connector=connector,
                                         timeout=_UPSTREAM_TIMEOUT) as session:
            app[_SESSION] = session
            yield

    app.cleanup_ctx.append(session_context)
    app.cleanup_ctx.append(_watchdog)
    for prefix in ("/v1", ""):
        app.router.add_post(prefix + "/chat/completions", chat_completions)
        app.router.add_post(prefix + "/completions", completions)
        app.router.add_post(prefix + "/responses", responses)
        app.router.add_post(prefix + "/responses/input_tokens", response_input_tokens)
        app.router.add_get(prefix + "/models", list_models)
        app.router.add_get(prefix + "/health", health)
    app.router.add_post("/v1/tokenize", tokenize)
    app.router.add_get("/slots", slots)
    return app


def _only(engine: LlamaServer) -> Models:
    def refuse(model: EmbeddedModel) -> LlamaServer:
        raise ConfigError(f"this app serves {engine.model.id} only")

    models = Models(refuse)
    models.add(engine)
    return models


def _watch_stdin(stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin reaches end of file (the parent closed it or died).

    A daemon thread, not ``run_in_executor``: a read blocked in the default
    executor would keep ``asyncio.run`` from returning after a SIGTERM, and the
    loop's ``add_reader`` refuses regular files such as ``/dev/null``.
    """
    loop = asyncio.get_running_loop()
    # os.read, not sys.stdin.buffer: at exit Python would wait for the buffer's lock.
    fd = sys.stdin.fileno()

    def wait_for_eof() -> None:
        try:
            while os.read(fd, 65536):
                pass
        except (OSError, ValueError):
            pass
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # the loop is already closed
            pass

    threading.Thread(target=wait_for_eof, name="gptmagic-stdin-watch", daemon=True).start()


async def run(host: str = "127.0.0.1", port: int = 0, *, watch_stdin: bool = False,
              threads: int | None = None, parallel: int = DEFAULT_PARALLEL,
              announce: Callable[[dict[str, Any]], None] | None = None,
              stop: asyncio.Event | None = None,
              leave_busy_engine: bool = False,
              preload: tuple[EmbeddedModel, ...] = (SMOLLM2,),
              gemma_package: str = GEMMA_PACKAGE) -> bool:
    """Start the ``preload`` engines and the adapter, serve until stopped, then stop all.

    Other models start on their first request. ``announce`` receives ``{"url",
    "pid", "model", "models"}`` (the first preloaded, all loaded) once the port is bound
    (default: print it as one JSON line on stdout). Stops on SIGTERM/SIGINT,
    when ``stop`` is set, or at end of stdin with ``watch_stdin``. With
    ``leave_busy_engine``, a busy engine is not stopped (llama.cpp would finish
    the batch it is decoding first, seconds for a long prompt): False is
    returned and the caller exits the process without it.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()

    def start(model: EmbeddedModel) -> Any:
        return start_llama(threads=threads, parallel=parallel, model=model,
                           gemma_package=gemma_package)

    models = Models(start, gemma_package=gemma_package)
    try:
        for model in preload:
            models.add(await loop.run_in_executor(None, start, model))
    except BaseException:
        models.stop()
        raise
    app = create_app(models)
    # handler_cancellation: a client that goes away cancels its handler, which
    # closes the upstream request, so the engine stops generating for nobody.
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           handler_cancellation=True, shutdown_timeout=_SHUTDOWN_GRACE)
    busy = False
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0] if runner.addresses else (host, port)
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
        loaded = [s.model.id for s in models.running()]
        info = {"url": f"http://{shown}:{bound[1]}/v1", "pid": os.getpid(),
                "model": loaded[0] if loaded else None, "models": loaded}
        (announce or _print_line)(info)
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
                pass
        if watch_stdin:
            _watch_stdin(stop)
        await stop.wait()
    finally:
        # Requests in flight are cancelled, not waited for: their upstream
        # connections close. llama.cpp still finishes the batch it is decoding
        # (a long prompt: seconds), and stopping it waits for that while holding
        # the GIL, so nothing else could run; a busy engine is left to the exit.
        busy = leave_busy_engine and await _engine_busy(app)
        in_flight = app[_IN_FLIGHT]
        for task in list(in_flight):
            task.cancel()
        await runner.cleanup()
        if not busy:
            models.stop()
    return not busy


async def _engine_busy(app: web.Application) -> bool:
    """True when a slot of an engine is working (or an engine does not say)."""
    try:
        for served in app[_MODELS].running():
            async with app[_SESSION].get(served.engine.url + "/slots",
                                         timeout=aiohttp.ClientTimeout(total=1)) as resp:
                slots = await resp.json(content_type=None)
            if any(bool(slot.get("is_processing")) for slot in slots):
                return True
        return False
    except (aiohttp.ClientError, TimeoutError, ValueError, TypeError, AttributeError):
        return True


def _print_line(info: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def _stdout_for_announcement_only() -> Iterator[Callable[[dict[str, Any]], None]]:
    """Keep stdout for the one JSON line: anything else written to fd 1 goes to stderr.

    The parent reads stdout as a protocol; llama.cpp's C code (or a stray
    print) must not be able to write there. fd 1 is restored on exit.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)

    def announce(info: dict[str, Any]) -> None:
        os.write(saved, (json.dumps(info) + "\n").encode())

    try:
        yield announce
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gptmagic.local.server",
                                     description="Serve the embedded model as an "
                                     "OpenAI-compatible API.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument("--watch-stdin", action="store_true",
                        help="exit when stdin closes (for a parent process)")
    parser.add_argument("--threads", type=int, default=None, help="decoding threads")
    parser.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL,
                        help="requests decoded at once")
    parser.add_argument("--preload", action="append", type=_model_arg, default=None,
                        metavar="MODEL", help="a model to load before listening (repeatable; "
                        "default: local); the others load on their first request")
    parser.add_argument("--gemma-package", default=GEMMA_PACKAGE, help=argparse.SUPPRESS)
    return parser


def _model_arg(name: str) -> EmbeddedModel:
    model = embedded_model(name)
    if model is None:
        raise argparse.ArgumentTypeError(f"{name!r} is no embedded model")
    return model


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        with _stdout_for_announcement_only() as announce:
            clean = asyncio.run(run(args.host, args.port, watch_stdin=args.watch_stdin,
                                    threads=args.threads, parallel=args.parallel,
                                    announce=announce, leave_busy_engine=True,
                                    preload=tuple(args.preload or (SMOLLM2,)),
                                    gemma_package=args.gemma_package))
        if not clean:  # llama.cpp is still in a long batch: the OS frees what it holds
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
