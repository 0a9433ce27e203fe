"""The adapter app against a fake llama.cpp upstream: stream relay faults, error paths.

Real HTTP on loopback (aiohttp test servers), no model: the fake answers the
way the engine does, or breaks the ways an engine can.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest_local import local_client, local_engine, local_url  # noqa: F401

from gptmagic.local.llama import LlamaServer
from gptmagic.local.server import create_app

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def sse(*events: str, done: bool = True) -> Handler:
    """An upstream handler streaming ``events`` as ``data:`` lines."""
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event in events:
            await resp.write(f"{event}\n\n".encode())
        if done:
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
    return handler


def fixed(status: int, text: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=text)
    return handler


@contextlib.asynccontextmanager
async def adapter_for(upstream: dict[str, Handler]) -> AsyncIterator[TestClient]:
    fake = web.Application()
    for path, handler in upstream.items():
        fake.router.add_post(path, handler)
    async with TestServer(fake, host="127.0.0.1") as fake_server:
        engine = LlamaServer(url=str(fake_server.make_url("")).rstrip("/"), gguf_path="/x.gguf")
        async with TestClient(TestServer(create_app(engine), host="127.0.0.1")) as client:
            yield client


async def read_events(resp: aiohttp.ClientResponse) -> list[Any]:
    assert resp.status == 200
    out = []
    async for raw in resp.content:
        line = raw.decode().strip()
        if line.startswith("data: "):
            out.append(line[6:] if line[6:] == "[DONE]" else json.loads(line[6:]))
    return out


CHUNK = {"choices": [{"finish_reason": None, "index": 0, "delta": {"content": "Hi"}}],
         "created": 1, "id": "chatcmpl-1", "model": "m", "object": "chat.completion.chunk"}
CHAT = {"model": "local", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.mark.parametrize("events, done, expected_error", [
    ([f"data: {json.dumps(CHUNK)}"], True, None),
    ([f"data: {json.dumps(CHUNK)}"], False, "ended without [DONE]"),
    ([f"data: {json.dumps(CHUNK)}", 'data: {"error": {"code": 500, "message": "boom", '
      '"type": "server_error"}}'], False, "boom"),
    ([f"data: {json.dumps(CHUNK)}", 'error: {"code": 500, "message": "bang", '
      '"type": "server_error"}'], False, "bang"),
    ([f"data: {json.dumps(CHUNK)}", "data: {broken"], True, "broke off"),
    ([": ping", f"data: {json.dumps(CHUNK)}"], True, None),
])
async def test_stream_relay(events: list[str], done: bool, expected_error: str | None) -> None:
    async with adapter_for({"/v1/chat/completions": sse(*events, done=done)}) as client:
        got = await read_events(await client.post("/v1/chat/completions", json=CHAT))
        assert got[0]["choices"][0]["delta"] == {"content": "Hi"}
        assert got[0]["model"] == "smollm2-135m-instruct"
        if expected_error is None:
            assert got[-1] == "[DONE]" and len(got) == 2
        else:
            assert "[DONE]" not in got
            err = got[-1]["error"]
            assert expected_error in err["message"] and err["type"] == "server_error"
            assert set(err) == {"message", "type", "param", "code"}


async def test_legacy_stream_drops_leading_null() -> None:
    chunk = {"choices": [{"text": "x", "index": 0, "logprobs": None, "finish_reason": None}],
             "created": 1, "model": "m", "object": "text_completion", "id": "chatcmpl-9"}
    upstream = {"/v1/completions": sse("data: null", f"data: {json.dumps(chunk)}")}
    async with adapter_for(upstream) as client:
        got = await read_events(await client.post("/v1/completions", json={
            "model": "local", "prompt": "a", "stream": True}))
        assert got == [{**chunk, "id": "cmpl-9", "model": "smollm2-135m-instruct"}, "[DONE]"]


@pytest.mark.parametrize("status, text, expected", [
    (500, "<html>oops</html>", {"message": "<html>oops</html>", "type": "server_error",
                                "param": None, "code": None}),
    (400, '{"error": {"code": 400, "message": "no", "type": "invalid_request_error"}}',
     {"message": "no", "type": "invalid_request_error", "param": None, "code": None}),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_errors_keep_status(status: int, text: str, expected: dict[str, Any],
                                           stream: bool) -> None:
    async with adapter_for({"/v1/chat/completions": fixed(status, text)}) as client:
        resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        assert resp.status == status
        assert await resp.json() == {"error": expected}


@pytest.mark.parametrize("stream", [False, True])
async def test_dead_engine_is_502(stream: bool) -> None:
    engine = LlamaServer(url="http://127.0.0.1:9", gguf_path="/x.gguf")  # nothing listens
    async with TestClient(TestServer(create_app(engine), host="127.0.0.1")) as client:
        resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        assert resp.status == 502
        body = await resp.json()
        assert body["error"]["type"] == "server_error"


async def test_method_not_allowed_is_openai_shaped() -> None:
    async with adapter_for({}) as client:
        resp = await client.get("/v1/chat/completions")
        assert resp.status == 405
        assert (await resp.json())["error"]["message"] == "Invalid URL (GET /v1/chat/completions)"


# -- /v1/tokenize with pieces, against the real engine -------------------------

TEXTS = ["Hello, world!", "Bonjour 😀 日本語 é\n\tx", "<|im_start|> not special", ""]


@pytest.mark.parametrize("text", TEXTS)
def test_tokenize_pieces_rebuild_exact_bytes(local_client, text: str) -> None:  # noqa: F811
    from gptmagic.views.widgets.pieces import piece_bytes

    plain = local_client.post("/tokenize", json={"text": text}).json()
    got = local_client.post("/tokenize", json={"text": text, "pieces": True}).json()
    assert got["tokens"] == plain["tokens"] and got["count"] == plain["count"]
    assert len(got["pieces"]) == len(got["tokens"])
    assert all(isinstance(p, str) or all(isinstance(b, int) for b in p) for p in got["pieces"])
    assert b"".join(piece_bytes(p) for p in got["pieces"]).decode() == text
    if "😀" in text:  # a character split across tokens arrives as byte values
        assert any(isinstance(p, list) for p in got["pieces"])


def test_tokenize_pieces_of_messages_show_special_tokens(local_client) -> None:  # noqa: F811
    got = local_client.post("/tokenize", json={
        "messages": [{"role": "user", "content": "hi"}], "pieces": True}).json()
    assert got["pieces"][0] == "<|im_start|>" and len(got["pieces"]) == got["count"]
    assert "".join(p for p in got["pieces"] if isinstance(p, str)) == got["prompt"]


async def test_tokenize_pieces_of_the_wrong_shape_are_502() -> None:
    async def bad(request: web.Request) -> web.StreamResponse:
        return web.json_response({"tokens": [{"id": 1, "piece": {"x": 1}}]})

    async with adapter_for({"/tokenize": bad}) as client:
        resp = await client.post("/v1/tokenize", json={"text": "a", "pieces": True})
        assert resp.status == 502
        assert "pieces" in (await resp.json())["error"]["message"]


async def test_a_request_the_engine_cannot_read_is_a_400() -> None:
    """llama.cpp answers 500 "Failed to parse ..."; that is the client's request, not a fault."""
    body = {"error": {"code": 500, "message": "Failed to parse messages: Missing tool call type",
                      "type": "server_error"}}
    async with adapter_for({"/v1/chat/completions": fixed(500, json.dumps(body))}) as client:
        for stream in (False, True):
            resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
            assert resp.status == 400, await resp.text()
            err = (await resp.json())["error"]
            assert err["type"] == "invalid_request_error" and "Failed to parse" in err["message"]
