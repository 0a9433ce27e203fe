"""Self-tests of the fake OpenAI-compatible server, with plain httpx."""

from __future__ import annotations

import json

import httpx
import pytest
from fakeserver import Behaviour, FakeServer  # tests/ is on sys.path (conftest)

CHAT = {"model": "gpt-test", "messages": [{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": "hello big world"}]}


@pytest.fixture
def client(http: httpx.Client) -> httpx.Client:
    """The shared ``http`` fixture (conftest), under this module's older name."""
    return http


def sse_data(text: str) -> list[str]:
    """The data payloads of an SSE body, parsed naively from the whole text."""
    text = text.replace("\r\n", "\n")
    assert text.endswith("\n\n")
    return [e.removeprefix("data: ") for e in text.strip("\n").split("\n\n")]


def test_chat_shape(client: httpx.Client, srv: FakeServer) -> None:
    body = {**CHAT, "logprobs": True, "top_logprobs": 2}
    r = client.post("/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "req_fake_1"
    out = r.json()
    assert set(out) == {"id", "object", "created", "model", "system_fingerprint", "choices",
                        "usage"}
    assert (out["id"], out["object"], out["model"]) == ("chatcmpl-fake-1", "chat.completion",
                                                        "gpt-test")
    (choice,) = out["choices"]
    assert choice["message"] == {"role": "assistant", "content": "echo: hello big world",
                                 "refusal": None}
    assert choice["finish_reason"] == "stop" and choice["index"] == 0
    assert out["usage"]["prompt_tokens"] == 5 and out["usage"]["completion_tokens"] == 4
    lps = choice["logprobs"]["content"]
    assert [t["token"] for t in lps] == ["echo:", " hello", " big", " world"]
    assert lps[1]["logprob"] == -0.2 and lps[1]["bytes"] == list(b" hello")
    assert [len(t["top_logprobs"]) for t in lps] == [2] * 4
    assert all(t["top_logprobs"][1]["logprob"] < t["logprob"] for t in lps)
    rec = srv.requests[-1]
    assert (rec.method, rec.path, rec.json) == ("POST", "/v1/chat/completions", body)
    assert rec.headers["authorization"] == "Bearer k"


def test_a_reply_of_thousands_of_tokens_streams(client: httpx.Client, srv: FakeServer) -> None:
    """Logprobs of the ten-thousandth token are far below exp()'s range (-1000)."""
    srv.plan(Behaviour(text=" ".join(["w"] * 10_000)))
    r = client.post("/chat/completions", json={**CHAT, "stream": True, "logprobs": True,
                                              "top_logprobs": 2})
    assert r.status_code == 200
    events = [json.loads(e) for e in sse_data(r.text) if e != "[DONE]"]
    last = [e for e in events if e["choices"] and e["choices"][0]["logprobs"]][-1]
    top = last["choices"][0]["logprobs"]["content"][-1]["top_logprobs"]
    assert top[0]["logprob"] == -1000.0 and top[1]["logprob"] < -1000


def test_chat_n_and_length(client: httpx.Client) -> None:
    out = client.post("/chat/completions", json={**CHAT, "n": 2, "max_tokens": 2}).json()
    assert [c["message"]["content"] for c in out["choices"]] == ["echo: hello"] * 2
    assert [c["finish_reason"] for c in out["choices"]] == ["length"] * 2
    assert out["usage"]["completion_tokens"] == 4


def test_completion_legacy_logprobs_and_echo(client: httpx.Client) -> None:
    body = {"model": "m", "prompt": "Say hi", "logprobs": 2, "echo": True}
    out = client.post("/completions", json=body).json()
    assert out["object"] == "text_completion"
    (choice,) = out["choices"]
    assert choice["text"] == "Say hi echo: Say hi" and choice["finish_reason"] == "stop"
    lp = choice["logprobs"]
    assert lp["tokens"] == ["Say", " hi", " echo:", " Say", " hi"]
    assert lp["token_logprobs"][0] is None and lp["text_offset"][:3] == [0, 3, 6]
    assert len(lp["top_logprobs"][1]) == 2


def test_models_and_azure_path(client: httpx.Client, srv: FakeServer) -> None:
    assert client.get("/models").json()["data"][0]["id"] == "fake-model"
    url = f"{srv.url.removesuffix('/v1')}/openai/deployments/dep1/chat/completions"
    out = client.post(url, params={"api-version": "2024-06-01"}, json={"messages": [
        {"role": "user", "content": "x"}]}).json()
    assert out["model"] == "dep1"
    assert srv.requests[-1].query == {"api-version": "2024-06-01"}


@pytest.mark.parametrize("trickle", [False, True])
def test_chat_stream(client: httpx.Client, trickle: bool, srv: FakeServer) -> None:
    srv.plan(Behaviour(trickle=trickle))
    body = {**CHAT, "stream": True, "n": 2, "stream_options": {"include_usage": True}}
    r = client.post("/chat/completions", json=body)
    assert r.headers["content-type"].startswith("text/event-stream")
    assert ("\r\n" in r.text) == trickle
    events = sse_data(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 10
    text = ["", ""]
    for c in chunks[:-1]:
        (ch,) = c["choices"]
        text[ch["index"]] += ch["delta"].get("content", "")
    assert text == ["echo: hello big world #0", "echo: hello big world #1"]
    assert [c["choices"][0]["finish_reason"] for c in chunks[-3:-1]] == ["stop", "stop"]


def test_planned_429(client: httpx.Client, srv: FakeServer) -> None:
    srv.plan(Behaviour(status=429, headers={"retry-after": "1", "x-should-retry": "true"}))
    r = client.post("/chat/completions", json=CHAT)
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert r.headers["x-should-retry"] == "true" and r.headers["x-request-id"] == "req_fake_1"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert client.post("/chat/completions", json=CHAT).status_code == 200  # plan consumed


def test_drop_is_a_connection_error(client: httpx.Client, srv: FakeServer) -> None:
    srv.plan(Behaviour(drop=True))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post("/chat/completions", json=CHAT)
    assert len(srv.requests) == 1


def test_stream_cut_after(client: httpx.Client, srv: FakeServer) -> None:
    srv.plan(Behaviour(stream_cut_after=2))
    seen = []
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("POST", "/chat/completions", json={**CHAT, "stream": True}) as r:
            for line in r.iter_lines():
                seen.append(line)
    assert len([s for s in seen if s.startswith("data: ")]) == 2 and "data: [DONE]" not in seen


def test_error_event_and_malformed(client: httpx.Client, srv: FakeServer) -> None:
    srv.plan(Behaviour(error_event=True), Behaviour(malformed="json"))
    events = sse_data(client.post("/chat/completions", json={**CHAT, "stream": True}).text)
    assert len(events) == 3 and json.loads(events[-1])["error"]["message"] == "boom"
    with pytest.raises(json.JSONDecodeError):
        client.post("/chat/completions", json=CHAT).json()


def test_connections_return_to_zero(srv: FakeServer) -> None:
    with httpx.Client(base_url=srv.url) as c:
        c.get("/models")
        assert srv.wait_connections(1, timeout=2)
    assert srv.wait_connections(0, timeout=2)
    assert srv.total_connections >= 1


def test_chaos_is_reproducible(client: httpx.Client, srv: FakeServer) -> None:
    weights = {"ok": 1, "500": 1, "429_retry_after": 1}

    def run() -> list[int]:
        srv.reset()
        srv.set_chaos(7, weights)
        return [client.post("/chat/completions", json=CHAT).status_code for _ in range(30)]

    first = run()
    assert first == run() and set(first) == {200, 429, 500}
    assert [r.chaos for r in srv.requests][:3] == [
        {200: "ok", 500: "500", 429: "429_retry_after"}[s] for s in first[:3]]


def test_replies_match_openapi_spec(client: httpx.Client) -> None:
    """Default replies validate against OpenAI's published schemas (see TESTING.md)."""
    from openapi_schema import validate  # fails (never skips) without the spec

    def check(name: str, instance: dict) -> None:
        validate(instance, name)

    extra = {"n": 2, "max_tokens": 3, "logprobs": True, "top_logprobs": 2}
    check("CreateChatCompletionResponse", client.post("/chat/completions", json=CHAT).json())
    check("CreateChatCompletionResponse",
          client.post("/chat/completions", json={**CHAT, **extra}).json())
    body = {**CHAT, **extra, "stream": True, "stream_options": {"include_usage": True}}
    for event in sse_data(client.post("/chat/completions", json=body).text)[:-1]:
        check("CreateChatCompletionStreamResponse", json.loads(event))
    # Not checked: legacy stream chunks and echoed logprobs carry nulls (finish_reason,
    # the first token_logprob) as the real API does, which this schema does not allow.
    body = {"model": "m", "prompt": ["a b", "c"], "n": 2, "logprobs": 2, "max_tokens": 2}
    check("CreateCompletionResponse", client.post("/completions", json=body).json())
