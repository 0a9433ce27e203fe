"""The embedded model as a standard OpenAI-compatible HTTP server.

An aiohttp app in front of the llama.cpp server that xllamacpp runs in this
process: every request goes through :mod:`gptmagic.local.adapt`, so clients
see OpenAI's shapes and errors (see that module for the contract). Streams
are relayed event by event, flushed as they come.

Run it::

    python -m gptmagic.local.server [--host 127.0.0.1] [--port 0] [--watch-stdin]

Once listening it prints one JSON line, ``{"url": ".../v1", "pid": N, "model":
...}``, to stdout; anything else written to stdout (by llama.cpp's C code, say)
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
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
from aiohttp import web

from gptmagic.local import adapt
from gptmagic.local.llama import DEFAULT_PARALLEL, LlamaServer, start_llama
from gptmagic.local.model import MODEL_ID

__all__ = ["create_app", "main", "run"]

_ENGINE = web.AppKey("engine", LlamaServer)
_SESSION = web.AppKey("session", aiohttp.ClientSession)
_CREATED = web.AppKey("created", int)
_UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600)


class _ClientGone(Exception):
    """Our client closed its connection mid-stream."""


def _error(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


async def _upstream_json(session: aiohttp.ClientSession, url: str,
                         body: dict[str, Any]) -> tuple[int, Any]:
    async with session.post(url, json=body) as resp:
        text = await resp.text()
    try:
        return resp.status, json.loads(text)
    except ValueError:
        return resp.status, text


async def _read_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise adapt.LocalRequestError(f"The request body is not valid JSON: {exc}") from None


async def _fan_out(request: web.Request, path: str, bodies: list[dict[str, Any]],
                   prompt_param: str) -> list[dict[str, Any]] | web.Response:
    """Send ``bodies`` concurrently; the first engine error becomes the answer."""
    engine, session = request.app[_ENGINE], request.app[_SESSION]
    results = await asyncio.gather(*(_upstream_json(session, engine.url + path, b)
                                     for b in bodies))
    for status, payload in results:
        if status != 200 or not isinstance(payload, dict):
            return _error(status if status != 200 else 502,
                          adapt.normalise_error(status, payload, prompt_param=prompt_param))
    return [payload for _, payload in results]


async def _detokenize(request: web.Request, plan: adapt.CompletionPlan) -> None:
    """Fill in the text of token-id prompts (needed for echo and text_offset)."""
    engine, session = request.app[_ENGINE], request.app[_SESSION]
    for i, prompt in enumerate(plan.prompts):
        if plan.prompt_texts[i] is None:
            status, payload = await _upstream_json(session, engine.url + "/detokenize",
                                                   {"tokens": prompt})
            if status == 200 and isinstance(payload, dict):
                plan.prompt_texts[i] = str(payload.get("content", ""))


async def _relay_stream(request: web.Request, path: str, body: dict[str, Any],
                        feed: Callable[[Any], list[dict[str, Any]]],
                        finish: Callable[[], list[dict[str, Any]]],
                        prompt_param: str) -> web.StreamResponse:
    """Relay one engine SSE stream through the adapter, event by event."""
    engine, session = request.app[_ENGINE], request.app[_SESSION]
    async with session.post(engine.url + path, json=body) as upstream:
        if upstream.status != 200:
            text = await upstream.text()
            try:
                payload: Any = json.loads(text)
            except ValueError:
                payload = text
            return _error(upstream.status, adapt.normalise_error(upstream.status, payload,
                                                                 prompt_param=prompt_param))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)

        async def send(chunks: list[dict[str, Any]], done: bool = False) -> None:
            try:
                for chunk in chunks:
                    await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
                if done:
                    await response.write(b"data: [DONE]\n\n")
                    await response.write_eof()
            except ConnectionResetError as exc:
                raise _ClientGone from exc

        def engine_error(payload: Any) -> dict[str, Any]:
            if not (isinstance(payload, dict) and "error" in payload):
                payload = {"error": payload}  # `error:` lines carry the bare error object
            return adapt.normalise_error(500, payload, prompt_param=prompt_param)

        errored = False
        try:
            async for raw in upstream.content:
                line = raw.decode("utf-8", "replace").strip()
                if line.startswith("error:"):  # llama.cpp's own error event
                    await send([engine_error(json.loads(line[6:] or "null"))])
                    errored = True
                    continue
                if not line.startswith("data:"):
                    continue  # blank separators and ": ping" comments
                data = line[5:].strip()
                if data == "[DONE]":
                    await send(finish(), done=True)
                    return response
                chunk = json.loads(data)
                if isinstance(chunk, dict) and "error" in chunk:
                    await send([engine_error(chunk)])
                    errored = True
                    continue
                await send(feed(chunk))
            if errored:
                return response
            problem = "ended without [DONE]"
        except _ClientGone:
            # Our client went away; leaving the block closes the upstream
            # connection, which makes the engine stop generating.
            return response
        except (aiohttp.ClientError, ValueError) as exc:
            problem = f"broke off: {exc}"
        # Say so in-band, as OpenAI does, and end without [DONE].
        message = f"The local engine's stream {problem}"
        try:
            await send([adapt.error_body(message, type="server_error")])
        except _ClientGone:
            pass
        return response


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``."""
    plan = adapt.prepare_chat(await _read_json(request),
                              gguf_path=request.app[_ENGINE].gguf_path)
    if plan.stream:
        stream = adapt.ChatStream(plan)
        return await _relay_stream(request, "/v1/chat/completions", plan.bodies[0], stream.feed,
                                   stream.finish, "messages")
    answers = await _fan_out(request, "/v1/chat/completions", plan.bodies, "messages")
    if isinstance(answers, web.Response):
        return answers
    return web.json_response(adapt.merge_chat(plan, answers))


async def completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/completions`` (legacy)."""
    plan = adapt.prepare_completion(await _read_json(request),
                                    gguf_path=request.app[_ENGINE].gguf_path)
    if plan.needs_prompt_texts:
        await _detokenize(request, plan)
    if plan.stream:
        stream = adapt.CompletionStream(plan)
        return await _relay_stream(request, "/v1/completions", plan.bodies[0], stream.feed,
                                   stream.finish, "prompt")
    answers = await _fan_out(request, "/v1/completions", plan.bodies, "prompt")
    if isinstance(answers, web.Response):
        return answers
    return web.json_response(adapt.merge_completions(plan, answers))


async def tokenize(request: web.Request) -> web.Response:
    """``POST /v1/tokenize`` (a gptmagic extension): the engine's own token ids.

    ``{"text": "..."}`` tokenizes plain text (special tokens as text);
    ``{"messages": [...], "add_generation_prompt": true}`` renders the chat
    template exactly as a chat request would (same message checks, same
    ``name`` emulation) and tokenizes that, so ``count`` equals the
    ``usage.prompt_tokens`` of the same chat request.

    ``"pieces": true`` adds ``pieces``, each token's exact bytes: a string
    when they are valid UTF-8 on their own (its UTF-8 encoding is the bytes),
    else a list of byte values (part of a character split across tokens).
    """
    body = await _read_json(request)
    if not isinstance(body, dict):
        raise adapt.LocalRequestError("The request body must be a JSON object.")
    engine, session = request.app[_ENGINE], request.app[_SESSION]
    prompt: str | None = None
    if "messages" in body:
        plan = adapt.prepare_chat({"model": body.get("model") or adapt.MODEL_ID,
                                   "messages": body["messages"]}, gguf_path=engine.gguf_path)
        status, payload = await _upstream_json(session, engine.url + "/apply-template", {
            "messages": plan.bodies[0]["messages"],
            "add_generation_prompt": bool(body.get("add_generation_prompt", True)),
        })
        if status != 200 or not isinstance(payload, dict) or "prompt" not in payload:
            return _error(status if status != 200 else 502, adapt.normalise_error(status, payload))
        text, special = str(payload["prompt"]), True
        prompt = text
    elif isinstance(body.get("text"), str):
        text, special = body["text"], False
    else:
        raise adapt.LocalRequestError("Give 'text' (a string) or 'messages' (a list).",
                                      param="text")
    with_pieces = bool(body.get("pieces", False))
    status, payload = await _upstream_json(session, engine.url + "/tokenize", {
        "content": text, "parse_special": special, "add_special": False,
        "with_pieces": with_pieces})
    if status != 200 or not isinstance(payload, dict):
        return _error(status if status != 200 else 502, adapt.normalise_error(status, payload))
    tokens = payload.get("tokens") or []
    answer: dict[str, Any] = {"model": adapt.MODEL_ID, "count": len(tokens), "prompt": prompt}
    if with_pieces:
        # The engine sends [{"id": n, "piece": "text" | [byte, ...]}]; keep ids as ids.
        try:
            answer["tokens"] = [int(t["id"]) for t in tokens]
            answer["pieces"] = [_piece(t["piece"]) for t in tokens]
        except (KeyError, TypeError, ValueError):
            return _error(502, adapt.normalise_error(502, "the engine's token pieces are "
                                                          "not in the expected shape"))
    else:
        answer["tokens"] = tokens
    return web.json_response(answer)


def _piece(piece: Any) -> str | list[int]:
    """An engine piece as it came (text, or byte values), checked."""
    if isinstance(piece, str):
        return piece
    if isinstance(piece, list) and all(isinstance(b, int) and 0 <= b < 256 for b in piece):
        return piece
    raise ValueError(piece)


async def models(request: web.Request) -> web.Response:
    """``GET /v1/models``: the one local model."""
    return web.json_response(adapt.models_list(request.app[_CREATED]))


async def health(request: web.Request) -> web.Response:
    """``GET /health``: the engine's own health, passed through."""
    engine, session = request.app[_ENGINE], request.app[_SESSION]
    async with session.get(engine.url + "/health") as resp:
        text = await resp.text()
    try:
        payload = json.loads(text)
    except ValueError:
        payload = {"status": "ok" if resp.status == 200 else "error"}
    return web.json_response(payload, status=resp.status)


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
        return _error(exc.status, adapt.error_body(message))
    except aiohttp.ClientError as exc:
        body = adapt.error_body(f"The local engine did not answer: {exc}", type="server_error")
        return _error(502, body)


def create_app(engine: LlamaServer) -> web.Application:
    """The adapter app for a running engine (the engine is not stopped with the app)."""
    app = web.Application(middlewares=[_openai_errors], client_max_size=64 * 1024 * 1024)
    app[_ENGINE] = engine
    app[_CREATED] = int(time.time())

    async def session_context(app: web.Application) -> Any:
        # A fresh upstream connection per request: after a stream the engine may
        # fail a kept-alive connection.
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        async with aiohttp.ClientSession(connector=connector,
                                         timeout=_UPSTREAM_TIMEOUT) as session:
            app[_SESSION] = session
            yield

    app.cleanup_ctx.append(session_context)
    for prefix in ("/v1", ""):
        app.router.add_post(prefix + "/chat/completions", chat_completions)
        app.router.add_post(prefix + "/completions", completions)
        app.router.add_get(prefix + "/models", models)
        app.router.add_get(prefix + "/health", health)
    app.router.add_post("/v1/tokenize", tokenize)
    return app


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
              stop: asyncio.Event | None = None) -> None:
    """Start the engine and the adapter, serve until stopped, then stop both.

    ``announce`` receives ``{"url", "pid", "model"}`` once the port is bound
    (default: print it as one JSON line on stdout). Stops on SIGTERM/SIGINT,
    when ``stop`` is set, or at end of stdin with ``watch_stdin``.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    engine = await loop.run_in_executor(None, lambda: start_llama(threads=threads,
                                                                  parallel=parallel))
    runner = web.AppRunner(create_app(engine), access_log=None, handle_signals=False)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0] if runner.addresses else (host, port)
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
        info = {"url": f"http://{shown}:{bound[1]}/v1", "pid": os.getpid(), "model": MODEL_ID}
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
        await runner.cleanup()
        engine.stop()


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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    from gptmagic.errors import ConfigError

    try:
        with _stdout_for_announcement_only() as announce:
            asyncio.run(run(args.host, args.port, watch_stdin=args.watch_stdin,
                            threads=args.threads, parallel=args.parallel, announce=announce))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
