"""The client against the project's fake server: real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from fakeserver import Behaviour

import gptmagic
from gptmagic import Client, Provider, RetryPolicy, Timeouts
from gptmagic.client import client as client_mod
from gptmagic.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RequestError,
    StreamError,
    UnprocessableEntityError,
)

KEY = "sk-fake-0123456789abcdefghij"


@pytest.fixture
def prov(fake_server, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", KEY)
    return Provider(
        name="fake",
        kind="compatible",
        base_url=fake_server.url,
        api_key_env="FAKE_KEY",
        default_model="fake-model",
    )


class Sleeps:
    """Records retry waits instead of sleeping (the testing switch)."""

    def __init__(self):
        self.waits = []

    async def __call__(self, seconds):
        self.waits.append(seconds)

    def clock(self):
        return time.monotonic() + sum(self.waits)


@pytest.fixture
async def client(prov):
    sleeps = Sleeps()
    c = Client(
        prov, sleep=sleeps, timeouts=Timeouts(connect=2, read=5, write=5, pool=5, deadline=20)
    )
    c.sleeps = sleeps
    yield c
    await c.aclose()


CHAT_PARAMS = dict(
    temperature=0.3,
    top_p=0.9,
    max_tokens=50,
    max_completion_tokens=60,
    n=2,
    stop=["\n", "END"],
    seed=7,
    presence_penalty=0.5,
    frequency_penalty=-0.5,
    logit_bias={"50256": -100},
    response_format={"type": "json_object"},
    logprobs=True,
    top_logprobs=3,
    user="u-1",
    parallel_tool_calls=False,
    my_custom_flag={"nested": [1, 2]},
)


async def test_every_chat_parameter_reaches_the_wire(client, fake_server):
    msgs = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "hi there", "name": "bob"},
    ]
    r = await client.chat(msgs, **CHAT_PARAMS, presence=None)
    rec = fake_server.requests[-1]
    assert rec.method == "POST" and rec.path == "/v1/chat/completions"
    assert rec.json == {"model": "fake-model", "messages": msgs, **CHAT_PARAMS}  # None dropped
    assert rec.headers["authorization"] == f"Bearer {KEY}"
    assert rec.headers["content-type"] == "application/json"
    assert [c.text for c in r.choices] == ["echo: hi there #0", "echo: hi there #1"]
    assert r.request_id == rec_id(fake_server)


async def test_requests_follow_openais_schema(client, fake_server):
    from openapi_schema import validate

    standard = {k: v for k, v in CHAT_PARAMS.items() if k != "my_custom_flag"}
    await client.chat(
        [{"role": "developer", "content": "D"}, {"role": "user", "content": "u"}], **standard
    )
    await client.chat("s", stream=True, tools=[{"type": "function", "function": {"name": "f"}}])
    for rec in fake_server.requests:
        validate(rec.json, "CreateChatCompletionRequest")
    fake_server.reset()
    await client.complete("p", suffix="s", echo=True, logprobs=2, best_of=2, n=1, max_tokens=3)
    await client.complete(["a", "b"], stream=True)
    for rec in fake_server.requests:
        validate(rec.json, "CreateCompletionRequest")


def rec_id(server):
    return f"req_fake_{len(server.requests)}"


async def test_every_completion_parameter_reaches_the_wire(client, fake_server):
    params = dict(
        suffix=" end",
        echo=True,
        logprobs=2,
        best_of=3,
        n=2,
        max_tokens=5,
        stop="x",
        temperature=0,
        seed=1,
        logit_bias={"1": 2},
        presence_penalty=0.1,
        frequency_penalty=0.2,
        top_p=1,
        user="u",
    )
    r = await client.complete("Once upon", **params)
    rec = fake_server.requests[-1]
    assert rec.path == "/v1/completions"
    assert rec.json == {"model": "fake-model", "prompt": "Once upon", **params}
    ch = r.choices[0]
    assert [t.token for t in ch.prompt_logprobs] == ["Once", " upon"]
    assert ch.prompt_logprobs[0].logprob is None
    assert ch.logprobs and all(not t.prompt for t in ch.logprobs)
    assert len(ch.logprobs[0].top) == 2


async def test_stream_matches_non_stream_and_reports_deltas(client, fake_server):
    whole = await client.chat("a b c", logprobs=True, top_logprobs=2)
    pieces = []
    streamed = await client.chat(
        "a b c",
        logprobs=True,
        top_logprobs=2,
        stream=True,
        on_delta=lambda i, t: pieces.append((i, t)),
    )
    sent = fake_server.requests[-1].json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert streamed.text == whole.text == "echo: a b c"
    assert "".join(t for _, t in pieces) == streamed.text and len(pieces) > 1
    assert streamed.logprobs == whole.logprobs
    assert streamed.usage == whole.usage and streamed.usage.total_tokens > 0
    assert streamed.finish_reason == whole.finish_reason == "stop"
    assert streamed.timings.ttft is not None and streamed.timings.ttft <= streamed.timings.total
    assert whole.timings.ttft is None and whole.timings.total > 0


async def test_stream_with_two_choices_and_legacy_completion(client, fake_server):
    r = await client.complete("x y", n=2, logprobs=1, stream=True, max_tokens=2)
    assert len(r.choices) == 2 and all(c.finish_reason == "length" for c in r.choices)
    assert all(len(c.logprobs) == 2 for c in r.choices)


async def test_trickled_stream_one_byte_per_chunk_crlf(client, fake_server):
    fake_server.trickle_pause = 0
    fake_server.plan(Behaviour(trickle=True))
    r = await client.chat("un deux trois", stream=True)
    assert r.text == "echo: un deux trois" and r.usage is not None


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, UnprocessableEntityError),
    ],
)
async def test_final_status_errors_are_not_retried(client, fake_server, status, cls):
    fake_server.plan(Behaviour(status=status))
    with pytest.raises(cls) as e:
        await client.chat("hi")
    assert e.value.status_code == status and e.value.request_id == "req_fake_1"
    assert "Fake error" in str(e.value) and len(fake_server.requests) == 1
    assert KEY not in str(e.value) and KEY not in repr(e.value.__dict__)


@pytest.mark.parametrize(
    ("behaviour", "cls"),
    [
        (Behaviour(status=409), ConflictError),
        (Behaviour(status=429), RateLimitError),
        (Behaviour(status=500), InternalServerError),
        (Behaviour(status=502), InternalServerError),
        (Behaviour(status=503), InternalServerError),
        (Behaviour(status=408), gptmagic.APIStatusError),
        (Behaviour(drop=True), APIConnectionError),
    ],
)
async def test_retryable_failures_then_success(client, fake_server, behaviour, cls):
    fake_server.plan(behaviour, behaviour)
    r = await client.chat("hi")
    assert r.text == "echo: hi" and r.timings.attempts == 3
    assert len(fake_server.requests) == 3
    assert len(client.sleeps.waits) == 2 and client.sleeps.waits[1] > client.sleeps.waits[0] * 1.2
    # And when it never recovers, the right class surfaces after max_attempts.
    fake_server.reset()
    fake_server.set_default(behaviour)
    with pytest.raises(cls):
        await client.chat("hi")
    assert len(fake_server.requests) == RetryPolicy().max_attempts


async def test_one_idempotency_key_across_the_retries_of_one_request(client, fake_server):
    """A retried POST carries the same Idempotency-Key, so the provider bills it once."""
    fake_server.plan(Behaviour(status=500), Behaviour(drop=True))
    await client.chat("hi")
    await client.complete("hi")
    keys = [r.headers.get("idempotency-key") for r in fake_server.requests]
    assert len(keys) == 4 and all(keys)
    assert keys[0] == keys[1] == keys[2]  # one logical chat request, three attempts
    assert keys[3] != keys[0]  # the next request is a new one


async def test_retry_after_headers_are_honoured(client, fake_server):
    fake_server.plan(
        Behaviour(status=429, headers={"retry-after-ms": "70"}),
        Behaviour(status=503, headers={"retry-after": "2"}),
    )
    await client.chat("hi")
    assert client.sleeps.waits == [0.07, 2.0]


async def test_should_retry_header_and_quota(client, fake_server):
    fake_server.plan(Behaviour(status=503, headers={"x-should-retry": "false"}))
    with pytest.raises(InternalServerError):
        await client.chat("hi")
    assert len(fake_server.requests) == 1
    fake_server.reset()
    fake_server.plan(Behaviour(status=400, headers={"x-should-retry": "true"}))
    assert (await client.chat("hi")).timings.attempts == 2
    fake_server.reset()
    quota = {
        "error": {
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    fake_server.plan(Behaviour(status=429, body=quota, headers={"retry-after": "0"}))
    with pytest.raises(QuotaExceededError, match="quota"):
        await client.chat("hi")
    assert len(fake_server.requests) == 1 and client.sleeps.waits == [pytest.approx(0.5, rel=0.3)]


async def test_retries_bounded_by_total_time(prov, fake_server):
    sleeps = Sleeps()
    c = Client(
        prov, sleep=sleeps, clock=sleeps.clock, retry=RetryPolicy(max_attempts=50, max_time=1.0)
    )
    fake_server.set_default(Behaviour(status=500))
    with pytest.raises(InternalServerError):
        await c.chat("hi")
    # ~0.45 s then ~0.9 s would pass 1 s: the client stops after the first wait.
    assert len(sleeps.waits) == 1 and len(fake_server.requests) == 2
    await c.aclose()


async def test_no_retry_after_stream_started(client, fake_server):
    fake_server.plan(Behaviour(stream_cut_after=3))
    with pytest.raises(StreamError) as e:
        await client.chat("one two three four five", stream=True)
    assert e.value.partial.text == "echo: one"  # role chunk, then two word tokens
    assert len(fake_server.requests) == 1 and client.sleeps.waits == []


async def test_error_event_mid_stream_keeps_partial(client, fake_server):
    fake_server.plan(Behaviour(error_event=True))
    with pytest.raises(StreamError, match="boom") as e:
        await client.chat("alpha beta", stream=True)
    assert e.value.partial.text.startswith("echo:")
    assert len(fake_server.requests) == 1


async def test_malformed_bodies(client, fake_server):
    fake_server.plan(Behaviour(malformed="json"))
    with pytest.raises(MalformedResponseError, match="not JSON"):
        await client.chat("hi")
    fake_server.plan(Behaviour(malformed="sse"))
    with pytest.raises(StreamError, match="not JSON"):
        await client.chat("hi", stream=True)
    for body in (
        {"choices": []},
        {"object": "x"},
        {"choices": [{"index": 0, "message": {"content": 3}}]},
        "[1]",
    ):
        fake_server.plan(Behaviour(body=body))
        with pytest.raises(MalformedResponseError):
            await client.chat("hi")


async def test_huge_body_is_refused(client, fake_server, monkeypatch):
    monkeypatch.setattr(client_mod, "MAX_RESPONSE_BYTES", 10_000)
    fake_server.plan(Behaviour(body={"choices": [], "pad": "x" * 50_000}))
    with pytest.raises(MalformedResponseError, match="refusing"):
        await client.chat("hi")


async def test_read_timeout_against_slow_server(prov, fake_server):
    c = Client(
        prov,
        sleep=Sleeps(),
        retry=RetryPolicy(max_attempts=2),
        timeouts=Timeouts(connect=2, read=0.3, write=2, pool=2, deadline=30),
    )
    fake_server.plan(Behaviour(delay=1.5), Behaviour(delay=1.5))
    # Both answers would come after 1.5 s: the call fails only if the read timeout fired.
    with pytest.raises(APITimeoutError):
        await c.chat("hi")
    assert len(fake_server.requests) == 2
    await c.aclose()


async def test_overall_deadline_ends_a_dripping_stream(prov, fake_server):
    c = Client(prov, sleep=Sleeps(), timeouts=Timeouts(read=5, deadline=0.6))
    fake_server.plan(Behaviour(stream_delay=0.25))
    with pytest.raises(StreamError, match="deadline") as e:
        await c.chat("a b c d e f g h", stream=True)
    assert e.value.partial.text.startswith("echo:") and len(fake_server.requests) == 1
    # Before a stream starts the deadline is final too: it is the whole call's.
    from gptmagic.errors import DeadlineExceededError

    fake_server.plan(Behaviour(delay=1.0), Behaviour())
    with pytest.raises(DeadlineExceededError):
        await c.chat("hi")
    assert len(fake_server.requests) == 2  # the dripping stream, then this one attempt
    await c.aclose()


async def test_connection_refused_is_a_connection_error(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed as soon as we leave: nothing listens
    p = Provider(name="dead", base_url=f"http://127.0.0.1:{port}/v1", default_model="m")
    sleeps = Sleeps()
    async with Client(p, sleep=sleeps, retry=RetryPolicy(max_attempts=3)) as c:
        with pytest.raises(APIConnectionError) as e:
            await c.chat("hi")
    assert not isinstance(e.value, APITimeoutError) and len(sleeps.waits) == 2


async def test_no_leaked_connections_after_failures(client, fake_server):
    fake_server.trickle_pause = 0
    behaviours = [
        Behaviour(status=500),
        Behaviour(drop=True),
        Behaviour(stream_cut_after=2),
        Behaviour(error_event=True),
        Behaviour(malformed="json"),
        Behaviour(status=400),
        Behaviour(malformed="sse"),
        Behaviour(trickle=True),
    ]
    for b in behaviours:
        fake_server.reset()
        fake_server.set_default(b)
        with pytest.raises(gptmagic.GptmagicError):
            await client.chat(
                "hi",
                stream=b.stream_cut_after is not None or b.error_event or b.malformed == "sse",
                max_tokens=0 if b.trickle else None,
                response_format=[] if b.trickle else None,
            )
            if b.trickle:  # trickle succeeds; force an error to keep the loop uniform
                raise gptmagic.RequestError("ok")
        assert client.http.in_use() == 0, b
    # Many concurrent successes, then everything is returned to the pool.
    fake_server.reset()
    results = await asyncio.gather(*(client.chat(f"m{i}", stream=i % 2 == 0) for i in range(40)))
    assert [r.text for r in results] == [f"echo: m{i}" for i in range(40)]
    assert client.http.in_use() == 0
    await client.aclose()
    assert fake_server.wait_connections(0, timeout=5), fake_server.open_connections


async def test_azure_deployment_request(fake_server, monkeypatch):
    monkeypatch.setenv("AZ_KEY", "az-secret-key-123456")
    p = Provider(
        name="az",
        kind="azure",
        base_url=fake_server.url.removesuffix("/v1"),
        api_key_env="AZ_KEY",
        api_version="2024-10-21",
    )
    async with Client(p) as c:
        r = await c.chat("hi", model="my-deploy")
    rec = fake_server.requests[-1]
    assert rec.path == "/openai/deployments/my-deploy/chat/completions"
    assert rec.query == {"api-version": "2024-10-21"}
    assert rec.headers["api-key"] == "az-secret-key-123456" and "authorization" not in rec.headers
    assert r.text == "echo: hi"


async def test_models(client):
    assert await client.models() == ["fake-model"]


def test_sync_api_from_plain_code(prov, fake_server):
    r = gptmagic.chat("sync call", provider=prov)
    assert r.text == "echo: sync call"
    assert gptmagic.complete("p", provider=prov, max_tokens=3).choices[0].text.startswith(" echo")


async def test_async_api_from_a_running_loop(prov, fake_server):
    rs = await asyncio.gather(*(gptmagic.achat(f"x{i}", provider=prov) for i in range(5)))
    assert [r.text for r in rs] == [f"echo: x{i}" for i in range(5)]
    r = await gptmagic.acomplete("q", provider=prov, stream=True)
    assert r.text.startswith(" echo")


async def test_bad_requests_are_refused_before_sending(client, fake_server):
    with pytest.raises(gptmagic.RequestError, match=r"messages\[0\]"):
        await client.chat(["hi"])
    with pytest.raises(gptmagic.RequestError, match="not JSON-serialisable"):
        await client.chat("hi", logit_bias={1: object()})
    with pytest.raises(gptmagic.RequestError, match="empty"):
        await client.chat([])
    assert fake_server.requests == []


def test_body_is_json_with_unicode(prov, fake_server):
    gptmagic.chat("héllo ☃", provider=prov)
    raw = fake_server.requests[-1].body
    assert "héllo ☃".encode() in raw and json.loads(raw)["messages"][0]["content"] == "héllo ☃"


@pytest.mark.parametrize("option", ["extra_headers", "extra_body", "api_key"])
def test_sdk_only_keywords_are_refused_not_sent_in_the_body(prov, fake_server, option):
    """``extra_headers={"X-Api-Key": ...}`` (the SDK's spelling) went out as a body
    field, secret and all; it is refused before anything is sent, naming the way."""
    before = len(fake_server.requests)
    with pytest.raises(RequestError, match=rf"'{option}' is an option of OpenAI's Python "
                                           r"SDK.*add_profile\(name, headers=") as e:
        gptmagic.chat("hi", provider=prov, **{option: {"X-Api-Key": "sk-hdr-secret-123"}})
    assert e.value.param == option and "sk-hdr-secret-123" not in str(e.value)
    assert len(fake_server.requests) == before


async def test_a_bare_error_event_keeps_its_message(client, fake_server):
    """llama.cpp's server sends stream errors as bare `error: {...}` events."""
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}
    raw = (f"data: {json.dumps(chunk)}\n\n"
           'error: {"code": 500, "message": "the slot ran out of context", '
           '"type": "server_error"}\n\n')
    fake_server.plan(Behaviour(body=raw, headers={"Content-Type": "text/event-stream"}))
    with pytest.raises(StreamError, match="mid-stream: the slot ran out of context") as e:
        await client.chat("hi", stream=True)
    assert e.value.partial.text == "Hel"


async def test_a_closed_client_fails_at_once_and_starts_no_engine():
    from gptmagic.local.engine import LocalEngine

    engine = LocalEngine()
    c = Client("local", engine=engine)
    await c.aclose()
    with pytest.raises(APIConnectionError, match="this gptmagic.Client is closed"):
        await c.chat("hi")
    assert not engine.running and engine.pid is None


# -- "profile:model" through the facade and the client (issue 18, item 6) ----------------------


def test_the_facade_reads_profile_model(fake_server, monkeypatch):
    """gptmagic.chat(model="myprofile:model") went to the embedded engine; evaluate() read it."""
    monkeypatch.setenv("FAKE_KEY", KEY)
    gptmagic.add_profile("myprofile", base_url=fake_server.url, api_key_env="FAKE_KEY")
    r = gptmagic.chat("hi", model="myprofile:llama3:8b", max_tokens=5)
    c = gptmagic.complete("p", model="myprofile:ft:base:org::id", max_tokens=3)
    assert r.text == "echo: hi" and c.text.startswith(" echo")
    sent = [(q.path, q.json["model"], q.headers["authorization"]) for q in fake_server.requests]
    assert sent == [("/v1/chat/completions", "llama3:8b", f"Bearer {KEY}"),
                    ("/v1/completions", "ft:base:org::id", f"Bearer {KEY}")]


async def test_the_async_facade_reads_profile_model(fake_server):
    gptmagic.add_profile("myprofile", base_url=fake_server.url)
    r = await gptmagic.achat("hi", model="myprofile:m1")
    c = await gptmagic.acomplete("p", model="myprofile:m2", stream=True)
    assert r.text == "echo: hi" and c.text.startswith(" echo")
    assert [q.json["model"] for q in fake_server.requests] == ["m1", "m2"]


async def test_an_unknown_profile_is_an_error_and_starts_no_engine(fake_server):
    from gptmagic.local.engine import LocalEngine

    gptmagic.add_profile("myprofile", base_url=fake_server.url)
    engine = LocalEngine()
    async with Client(engine=engine) as c:
        with pytest.raises(gptmagic.ConfigError,
                           match="unknown profile 'myprofle'; known profiles: .*myprofile"):
            await c.chat("hi", model="myprofle:m1")
    with pytest.raises(gptmagic.ConfigError, match="unknown profile 'myprofle'"):
        gptmagic.chat("hi", model="myprofle:m1")
    assert not engine.running and engine.pid is None and not fake_server.requests


async def test_a_clients_provider_gives_way_to_a_named_profile(prov, fake_server):
    from fakeserver import FakeServer

    with FakeServer() as other:
        gptmagic.add_profile("other", base_url=other.url)
        async with Client(prov) as c:
            await c.chat("hi", model="other:m2")
            await c.chat("hi", model="m1:tag")  # no profile 'm1': the client's provider
            await c.chat("hi", model="other:m3", provider=prov)  # explicit: taken whole
        assert [q.json["model"] for q in other.requests] == ["m2"]
    assert [q.json["model"] for q in fake_server.requests] == ["m1:tag", "other:m3"]


# -- usage a server under-reports, parameters it ignores (issue 18, item 6) --------------------

# What llama.cpp's own server answers (seen on it): n=3 choices that each used all
# max_tokens=8 tokens, and usage counting one of them.
def _llama_chat(n=3, tokens=8, completion_tokens=8, finish="length", logprobs=False):
    words = [f" w{j}" for j in range(tokens)]
    lp = ({"content": [{"token": w, "logprob": -0.5, "bytes": list(w.encode()),
                        "top_logprobs": []} for w in words]} if logprobs else None)
    return {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": i, "finish_reason": finish, "logprobs": lp,
                         "message": {"role": "assistant", "content": "".join(words)}}
                        for i in range(n)],
            "usage": {"prompt_tokens": 33, "completion_tokens": completion_tokens,
                      "total_tokens": 33 + completion_tokens}}


def _llama_completion(text, completion_tokens, n=1, finish="length"):
    return {"id": "cmpl-x", "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"index": i, "text": text, "finish_reason": finish, "logprobs": None}
                        for i in range(n)],
            "usage": {"prompt_tokens": 3, "completion_tokens": completion_tokens,
                      "total_tokens": 3 + completion_tokens}}


async def test_n_choices_under_reported_are_said_and_the_usage_kept(client, fake_server):
    fake_server.plan(Behaviour(body=_llama_chat()))
    r = await client.chat("hi", n=3, max_tokens=8)
    assert r.usage.completion_tokens == 8  # the server's figure, never replaced
    [w] = r.warnings
    assert "n=3" in w and "8 completion tokens" in w and "at least 24" in w
    assert "max_tokens=8" in w
    # Exact counts from logprobs, choices that stopped on their own.
    fake_server.plan(Behaviour(body=_llama_chat(n=2, tokens=4, completion_tokens=4,
                                                finish="stop", logprobs=True)))
    r = await client.chat("hi", n=2, logprobs=True)
    assert len(r.warnings) == 1 and "at least 8" in r.warnings[0]


async def test_streamed_n_choices_under_reported_are_said(client, fake_server):
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    events = [{**head, "choices": [{"index": i, "delta": {"content": " a b c"},
                                    "finish_reason": "length"}]} for i in range(2)]
    events.append({**head, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3,
                                                     "total_tokens": 8}})
    raw = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    fake_server.plan(Behaviour(body=raw, headers={"Content-Type": "text/event-stream"}))
    r = await client.chat("hi", n=2, max_tokens=3, stream=True)
    assert r.usage.completion_tokens == 3 and len(r.warnings) == 1
    assert "n=2" in r.warnings[0] and "at least 6" in r.warnings[0]


async def test_echo_and_best_of_a_server_ignored_are_said(client, fake_server):
    fake_server.plan(
        Behaviour(body=_llama_completion(" a canvas of endless possibilities", 5)),
        Behaviour(body=_llama_completion(" a reflection of the human", 5)),
        Behaviour(body=_llama_completion(" a", 1, finish="stop")),
    )
    r = await client.complete("The sky is", echo=True, max_tokens=5)
    assert r.text == " a canvas of endless possibilities" and len(r.warnings) == 1
    assert "echo" in r.warnings[0] and "does not start with the prompt" in r.warnings[0]
    r = await client.complete("The sky is", best_of=3, max_tokens=5)
    assert r.usage.completion_tokens == 5 and len(r.warnings) == 1
    assert "best_of=3" in r.warnings[0] and "5 completion tokens" in r.warnings[0]
    r = await client.complete("The sky is", best_of=3, max_tokens=5)  # 1 token + 2 candidates
    assert len(r.warnings) == 1 and "best_of=3" in r.warnings[0]


async def test_honest_usage_and_honoured_parameters_say_nothing(client, fake_server):
    """OpenAI's own behaviour (the fake server's): no note."""
    r = await client.chat("a b c", n=3, max_tokens=2)
    assert r.usage.completion_tokens == 6 and r.warnings == []
    r = await client.chat("a b c", n=2, logprobs=True, top_logprobs=2, stream=True)
    assert r.warnings == []
    r = await client.complete("The sky is", echo=True, n=2, max_tokens=2, logprobs=1)
    assert r.warnings == []
    fake_server.plan(Behaviour(body=_llama_completion(" a canvas", 15)),
                     Behaviour(body=_llama_chat(completion_tokens=24)))
    assert (await client.complete("The sky is", best_of=3, max_tokens=5)).warnings == []
    assert (await client.chat("hi", n=3, max_tokens=8)).warnings == []


# -- the deadline covers the whole call (issue 13, item 18) --------------------------------


async def test_a_deadline_passed_is_final_not_retried(prov, fake_server):
    from gptmagic.errors import DeadlineExceededError

    sleeps = Sleeps()
    c = Client(prov, sleep=sleeps, clock=sleeps.clock, timeouts=Timeouts(deadline=0.5))
    fake_server.set_default(Behaviour(delay=5))  # the slow server: no answer in time
    with pytest.raises(DeadlineExceededError, match="1 attempt\\b.*--timeout.*timeout="):
        await c.chat("hi")
    assert len(fake_server.requests) == 1 and sleeps.waits == []
    await c.aclose()


async def test_the_deadline_counts_earlier_attempts_and_waits(prov, fake_server):
    from gptmagic.errors import DeadlineExceededError

    sleeps = Sleeps()  # virtual waits (0.5 s then 1 s, less jitter) count on the call's clock
    c = Client(prov, sleep=sleeps, clock=sleeps.clock, timeouts=Timeouts(deadline=2.5))
    fake_server.plan(Behaviour(status=500), Behaviour(status=500), Behaviour(delay=5))
    with pytest.raises(DeadlineExceededError, match="3 attempts"):
        await c.chat("hi")
    assert len(fake_server.requests) == 3 and len(sleeps.waits) == 2
    await c.aclose()


async def test_a_wait_that_would_pass_the_deadline_is_not_waited(prov, fake_server):
    sleeps = Sleeps()
    c = Client(prov, sleep=sleeps, clock=sleeps.clock, timeouts=Timeouts(deadline=1.0))
    fake_server.set_default(Behaviour(status=503))
    # 0.375..0.5 s, then 0.75..1 s more would end past 1 s: the 503 is the answer.
    with pytest.raises(InternalServerError):
        await c.chat("hi")
    assert len(fake_server.requests) == 2 and len(sleeps.waits) == 1
    await c.aclose()


@pytest.mark.parametrize("kind", ["chat", "complete"])
async def test_an_endless_stream_stops_at_the_deadline_with_its_text(client, fake_server, kind):
    from gptmagic.errors import DeadlineExceededError, StreamDeadlineError

    fake_server.plan(Behaviour(endless=True, stream_delay=0.02))
    call = client.chat if kind == "chat" else client.complete
    with pytest.raises(StreamDeadlineError) as e:
        await call("on and on", stream=True, timeout=0.5)
    assert isinstance(e.value, DeadlineExceededError) and isinstance(e.value, StreamError)
    assert e.value.partial.text.count("echo:") > 3  # the stream kept coming until the deadline
    assert len(fake_server.requests) == 1 and client.sleeps.waits == []


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "5", True])
async def test_a_timeout_that_is_not_seconds_is_refused_before_sending(client, fake_server, bad):
    with pytest.raises(RequestError, match="timeout"):
        await client.chat("hi", timeout=bad)
    assert fake_server.requests == []
