"""gptmagic._http: both backends, header folding, proxies from the environment."""

from __future__ import annotations

import asyncio
import json

import pytest

from gptmagic.client.http import HTTP, _lower_headers, _proxy_for


def test_lower_headers_folds_repeats_and_case():
    got = _lower_headers([("Set-Cookie", "a=1"), ("X-Request-ID", "r1"), ("set-cookie", "b=2")])
    assert got == {"set-cookie": "a=1, b=2", "x-request-id": "r1"}


@pytest.mark.parametrize("env, url, proxy", [
    ({}, "https://api.openai.com/v1/models", None),
    ({"HTTPS_PROXY": "http://p:3128"}, "https://api.openai.com/v1/models", "http://p:3128"),
    ({"HTTPS_PROXY": "http://p:3128"}, "http://api.openai.com/v1/models", None),
    ({"HTTP_PROXY": "http://p:1"}, "http://user:pw@host.example:8080/v1", "http://p:1"),
    ({"ALL_PROXY": "http://all:9"}, "https://x.example/v1", "http://all:9"),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "api.openai.com"},
     "https://api.openai.com/v1/models", None),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".openai.com"},
     "https://api.openai.com/v1/models", None),
    ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "localhost"}, "https://[::1]:8/v1", "http://p:3128"),
])
def test_proxy_from_environment(monkeypatch, env, url, proxy):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
                "http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert _proxy_for(url) == proxy


def test_proxy_follows_a_changed_environment(monkeypatch):
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://one:1")
    assert _proxy_for("https://a.example/v1") == "http://one:1"
    monkeypatch.setenv("HTTPS_PROXY", "http://two:2")
    assert _proxy_for("https://a.example/v1") == "http://two:2"


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_backends_give_the_same_reply(fake_server, transport):
    http = HTTP(transport=transport)
    try:
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        async with http.request("POST", fake_server.url + "/chat/completions",
                                headers={"X-Custom": "1"}, json_body=body.encode()) as r:
            assert r.status == 200
            assert r.headers["content-type"].startswith("application/json")
            assert all(k == k.lower() for k in r.headers)
            data = json.loads(await r.read(1 << 20))
        assert data["object"] == "chat.completion"
        sent = fake_server.requests[-1]
        assert sent.headers["x-custom"] == "1"
        assert sent.headers["content-type"] == "application/json"
        assert "text/event-stream" in sent.headers["accept"]
        assert http.in_use() == 0
    finally:
        await http.aclose()
    assert http.closed


async def test_unread_body_does_not_leak_a_connection(fake_server):
    http = HTTP()
    try:
        for _ in range(5):
            async with http.request("POST", fake_server.url + "/chat/completions",
                                    json_body=b'{"model":"m","messages":[]}') as r:
                assert r.status in (200, 400)
        assert http.in_use() == 0
    finally:
        await http.aclose()


async def test_proxy_from_environment_is_used(monkeypatch):
    """A forward proxy on loopback receives the absolute-URI request."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n", 1)[0])
        body = b'{"ok": true}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "")
    http = HTTP()
    try:
        async with asyncio.timeout(10):
            async with http.request("GET", "http://api.example.invalid/v1/models") as r:
                assert r.status == 200
                assert json.loads(await r.read(1024)) == {"ok": True}
    finally:
        await http.aclose()
        server.close()
        await server.wait_closed()
    assert seen == [b"GET http://api.example.invalid/v1/models HTTP/1.1"]


async def test_closed_client_refuses_new_requests(fake_server):
    from gptmagic.errors import APIConnectionError

    http = HTTP()
    await http.aclose()
    with pytest.raises(APIConnectionError, match="closed"):
        async with http.request("GET", fake_server.url + "/models"):
            pass
