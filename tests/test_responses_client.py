"""Client.respond / input_tokens against the fake server: real HTTP on loopback."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest
from fakeserver import Behaviour
from openapi_schema import validate

import gptmagic
from gptmagic import Client, Provider, RetryPolicy, Timeouts
from gptmagic.errors import (
    AuthenticationError,
    BadRequestError,
    DeadlineExceededError,
    GptmagicError,
    InternalServerError,
    MalformedResponseError,
    MalformedStreamError,
    RateLimitError,
    RequestError,
    ResponseFailedError,
    StreamDeadlineError,
    StreamError,
)

KEY = "sk-fake-responses-0123456789abcdef"
STREAM = [False, True]
LP = ["message.output_text.logprobs"]


@pytest.fixture
def prov(fake_server, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", KEY)
    return Provider(name="fake", kind="compatible", base_url=fake_server.url,
                    api_key_env="FAKE_KEY", default_model="fake-model")


class Sleeps:
    """Records retry waits instead of sleeping."""

    def __init__(self):
        self.waits = []

    async def __call__(self, seconds):
        self.waits.append(seconds)


@pytest.fixture
async def client(prov):
    c = Client(prov, sleep=Sleeps(),
               timeouts=Timeouts(connect=2, read=5, write=5, pool=5, deadline=20))
    yield c
    await c.aclose()


PARAMS = dict(
    instructions="Be brief.", max_output_tokens=200, temperature=0.5, top_p=0.9,
    include=["message.output_text.logprobs", "reasoning.encrypted_content"], top_logprobs=3,
    previous_response_id=None, store=False, metadata={"run": "1"}, service_tier="auto",
    prompt_cache_key="course-7", safety_identifier="user-42", parallel_tool_calls=False,
    text={"format": {"type": "text"}, "verbosity": "low"},
    reasoning={"effort": "low", "summary": "auto"},
    tools=[{"type": "function", "name": "lookup", "description": "Look a word up",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
            "strict": False}],
)


@pytest.mark.parametrize("stream", STREAM)
async def test_every_field_reaches_the_wire_as_createresponse(client, fake_server, stream):
    # (A message whose content is a list of parts is valid under two branches of the
    # spec's oneOf, which plain JSON Schema, without the discriminator, refuses.)
    items = [{"role": "system", "content": "S"}, {"role": "user", "content": "hi there"},
             {"role": "assistant", "content": "echo: hi there"},
             {"type": "message", "role": "user", "content": "and more"}]
    r = await client.respond(items, model="gpt-5-mini", stream=stream, **PARAMS)
    rec = fake_server.requests[-1]
    assert (rec.method, rec.path) == ("POST", "/v1/responses")
    sent = {k: v for k, v in PARAMS.items() if v is not None}
    assert rec.json == {"model": "gpt-5-mini", "input": items, **sent,
                        **({"stream": True} if stream else {})}  # no stream_options
    assert rec.headers["authorization"] == f"Bearer {KEY}"
    validate(rec.json, "CreateResponse")
    assert r.text == "echo: and more" and r.kind == "response" and r.status == "completed"


async def test_a_string_input_and_the_result(client, fake_server):
    r = await client.respond("hello big world")
    assert fake_server.requests[-1].json == {"model": "fake-model", "input": "hello big world"}
    assert (r.text, r.finish_reason, r.status, r.model) == ("echo: hello big world", "stop",
                                                            "completed", "fake-model")
    assert r.id == "resp_fake_1" and r.request_id == "req_fake_1" and r.reasoning is None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (3, 4, 7)
    assert (r.usage.cached_tokens, r.usage.cache_write_tokens, r.usage.reasoning_tokens) == (
        0, 0, 0)
    assert r.logprobs is None and r.warnings == [] and r.timings.attempts == 1
    assert isinstance(r.raw, dict) and r.raw["object"] == "response"


async def test_streamed_text_arrives_piece_by_piece_and_matches_the_whole(client):
    pieces = []
    streamed = await client.respond("one two three", stream=True,
                                    on_delta=lambda i, t: pieces.append((i, t)))
    whole = await client.respond("one two three")
    assert pieces == [(0, "echo:"), (0, " one"), (0, " two"), (0, " three")]
    assert streamed.text == whole.text == "echo: one two three"
    assert streamed.usage == whole.usage and streamed.finish_reason == whole.finish_reason
    assert streamed.timings.ttft is not None and whole.timings.ttft is None


@pytest.mark.parametrize("stream", STREAM)
async def test_logprobs_in_the_one_normalised_form(client, stream):
    r = await client.respond("a b", include=LP, top_logprobs=2, stream=stream)
    assert [t.token for t in r.logprobs] == ["echo:", " a", " b"]
    assert [t.logprob for t in r.logprobs] == [-0.1, -0.2, -0.3]
    assert r.logprobs[1].bytes == b" a"
    assert [len(t.top) for t in r.logprobs] == [2, 2, 2]
    assert r.logprobs[1].top[0].token == " a" and r.logprobs[1].top[1].logprob < -0.2
    chat = await client.chat("a b", logprobs=True, top_logprobs=2)
    assert r.logprobs == chat.logprobs  # one form, whichever endpoint


@pytest.mark.parametrize("stream", STREAM)
async def test_a_reasoning_model_bills_reasoning_and_summarises(client, fake_server, stream):
    r = await client.respond("why", model="gpt-5-nano", stream=stream,
                             reasoning={"effort": "high", "summary": "auto"})
    assert r.reasoning == "Reasoning about: why" and r.text == "echo: why"
    assert r.usage.reasoning_tokens == 32 and r.usage.completion_tokens == 32 + 2
    plain = await client.respond("why", model="o4-mini", stream=stream)
    assert plain.reasoning is None and plain.usage.reasoning_tokens == 16  # medium, no summary
    with pytest.raises(BadRequestError, match="reasoning.effort") as e:
        await client.respond("why", model="gpt-4.1", reasoning={"effort": "low"})
    assert e.value.body["error"]["param"] == "reasoning.effort"


async def test_a_reasoning_models_summary_streams_to_on_reasoning_until_its_text(client):
    said, pieces = [], []
    r = await client.respond("why so", model="gpt-5-nano", stream=True,
                             reasoning={"summary": "auto"},
                             on_delta=lambda i, t: pieces.append(t),
                             on_reasoning=said.append)
    # "" when reasoning begins, then the summary so far, growing, never the reply's text.
    assert said[0] == "" and said[-1] == r.reasoning == "Reasoning about: why so"
    assert all(b.startswith(a) for a, b in zip(said, said[1:], strict=False))
    assert len(said) > 2 and "".join(pieces) == r.text == "echo: why so"
    quiet: list[str] = []  # reasoning with no summary asked: only that it reasons
    await client.respond("why", model="o4-mini", stream=True, on_reasoning=quiet.append)
    assert quiet == [""]
    plain: list[str] = []  # a model that does not reason: never called
    await client.respond("why", stream=True, on_reasoning=plain.append)
    assert plain == []


@pytest.mark.parametrize("stream", STREAM)
async def test_prompt_caching_shows_in_usage(client, stream):
    first = await client.respond("the same long prompt", prompt_cache_key="k", stream=stream)
    again = await client.respond("the same long prompt", prompt_cache_key="k", stream=stream)
    assert (first.usage.cache_write_tokens, first.usage.cached_tokens) == (4, 0)
    assert (again.usage.cache_write_tokens, again.usage.cached_tokens) == (0, 4)


@pytest.mark.parametrize("stream", STREAM)
async def test_incomplete_at_max_output_tokens_is_length(client, stream):
    r = await client.respond("one two three four", max_output_tokens=2, stream=stream)
    assert (r.text, r.status, r.finish_reason) == ("echo: one", "incomplete", "length")
    assert r.usage.completion_tokens == 2 and r.warnings == []
    # Reasoning spends the budget first: nothing visible is left.
    r = await client.respond("one two", model="gpt-5", max_output_tokens=10, stream=stream)
    assert (r.text, r.finish_reason, r.usage.reasoning_tokens) == ("", "length", 10)


@pytest.mark.parametrize("stream", STREAM)
async def test_a_function_call(client, stream):
    tool = {"type": "function", "name": "lookup",
            "parameters": {"type": "object", "properties": {}}}
    r = await client.respond("find cats", tools=[tool], tool_choice="required", stream=stream)
    assert r.finish_reason == "tool_calls" and r.text == ""
    assert r.choices[0].tool_calls == [{"id": "call_fake_1_0", "type": "function", "function": {
        "name": "lookup", "arguments": json.dumps({"text": "find cats"})}}]


async def test_previous_response_id_chains_and_an_unknown_one_is_refused(client, fake_server):
    first = await client.respond("one two")
    second = await client.respond("three", previous_response_id=first.id)
    assert second.usage.prompt_tokens == 1 + first.usage.total_tokens
    with pytest.raises(BadRequestError, match="resp_nope") as e:
        await client.respond("x", previous_response_id="resp_nope")
    assert e.value.body["error"]["param"] == "previous_response_id"
    assert len(fake_server.requests) == 3  # a 400 is not retried


async def test_a_failed_response_is_an_error_with_the_servers_message(prov, fake_server):
    client = Client(prov, sleep=Sleeps(), retry=RetryPolicy(max_attempts=2))
    try:
        fake_server.set_default(Behaviour(failed="The model ran out of memory."))
        with pytest.raises(ResponseFailedError, match=r"/v1/responses: the response failed: The "
                                                      r"model ran out of memory\. "
                                                      r"\(code: server_error\)") as e:
            await client.respond("hi")
        assert not isinstance(e.value, StreamError | MalformedResponseError)
        assert e.value.code == "server_error" and e.value.request_id == "req_fake_2"
        assert len(fake_server.requests) == 2  # retried (as a 500 is), then raised
        # A stream that already showed its text is never retried: it keeps the text.
        fake_server.reset()
        fake_server.set_default(Behaviour(failed="The model ran out of memory."))
        with pytest.raises(StreamError, match="ran out of memory") as s:
            await client.respond("hi there", stream=True)
        assert not isinstance(s.value, MalformedResponseError)
        assert (s.value.partial.text, s.value.partial.status) == ("echo: hi there", "failed")
        assert len(fake_server.requests) == 1
    finally:
        await client.aclose()


@pytest.mark.parametrize("stream", STREAM)
async def test_a_server_error_failure_is_retried_as_a_500_is(client, fake_server, stream):
    """Issue 14 review, item 8: ``failed`` with ``server_error`` is transient: tried again with
    the same idempotency key; streamed, only while no text has been shown."""
    shown: list[str] = []
    fake_server.plan(Behaviour(failed="The server had an error.", text=""))  # fails before text
    r = await client.respond("hi", stream=stream, on_delta=lambda i, t: shown.append(t))
    assert (r.text, r.status, r.timings.attempts) == ("echo: hi", "completed", 2)
    assert "".join(shown) == "echo: hi" and len(client._sleep.waits) == 1
    keys = {q.headers["idempotency-key"] for q in fake_server.requests}
    assert len(fake_server.requests) == 2 and len(keys) == 1


async def test_a_failure_with_another_code_is_not_retried(client, fake_server):
    def prompt_refused(reply: dict) -> dict:
        err = reply.get("error") or (reply.get("response") or {}).get("error")
        if err:
            err["code"] = "invalid_prompt"
        return reply

    fake_server.plan(Behaviour(failed="Invalid prompt.", mangle=prompt_refused))
    with pytest.raises(ResponseFailedError, match=r"\(code: invalid_prompt\)") as e:
        await client.respond("hi")
    assert e.value.code == "invalid_prompt" and len(fake_server.requests) == 1


async def test_background_is_refused_before_anything_is_sent(client, fake_server):
    with pytest.raises(RequestError, match="background=True is not supported") as e:
        await client.respond("hi", background=True)
    assert e.value.param == "background" and fake_server.requests == []
    r = await client.respond("hi", background=False)  # false is no background: sent as is
    assert r.text == "echo: hi" and fake_server.requests[0].json["background"] is False


async def test_a_queued_answer_is_not_an_empty_success(client, fake_server):
    """A server that answers ``queued`` anyway (a proxy adding background): said, not ""."""
    def queued(reply: dict) -> dict:
        return {**reply, "status": "queued", "output": [], "usage": None}

    fake_server.plan(Behaviour(mangle=queued))
    with pytest.raises(MalformedResponseError, match="status 'queued': it is not finished"):
        await client.respond("hi")
    assert len(fake_server.requests) == 1


async def test_an_error_event_mid_stream_keeps_the_text(client, fake_server):
    fake_server.plan(Behaviour(error_event=True))
    with pytest.raises(StreamError, match="mid-stream: boom") as e:
        await client.respond("hi there", stream=True)
    assert e.value.partial.text == "echo:" and e.value.request_id == "req_fake_1"
    assert len(fake_server.requests) == 1  # never retried


async def test_the_stream_cut_at_every_event(client, fake_server):
    """Cut after k events: the partial has the text of the deltas sent, never a crash."""
    whole = await client.respond("one two", stream=True)
    fake_server.reset()
    import fakeresponses

    _, events, _ = fakeresponses.build({"model": "fake-model", "input": "one two"}, None, 1,
                                       fakeresponses.Memory())
    for k in range(len(events)):
        fake_server.plan(Behaviour(stream_cut_after=k))
        with pytest.raises(StreamError, match="stream") as e:
            await client.respond("one two", stream=True)
        want = "".join(json.loads(d)["delta"] for name, d in events[:k]
                       if name == "response.output_text.delta")
        assert e.value.partial.text == want, k
        assert e.value.partial.status in (None, "in_progress")
    assert len(fake_server.requests) == len(events)  # a cut stream is not retried
    assert whole.text == "echo: one two"


@pytest.mark.parametrize("stream", STREAM)
async def test_retries_on_429_and_5xx_with_one_idempotency_key(client, fake_server, stream):
    fake_server.plan(Behaviour(status=429, headers={"retry-after": "0"}),
                     Behaviour(status=500), Behaviour(status=503))
    r = await client.respond("again", stream=stream)
    assert r.text == "echo: again" and r.timings.attempts == 4
    keys = {q.headers["idempotency-key"] for q in fake_server.requests}
    assert len(fake_server.requests) == 4 and len(keys) == 1
    assert len(client._sleep.waits) == 3


async def test_retries_end_with_the_last_error(prov, fake_server):
    async with Client(prov, retry=RetryPolicy(max_attempts=2), sleep=Sleeps()) as c:
        fake_server.plan(Behaviour(status=500), Behaviour(status=429))
        with pytest.raises(RateLimitError):
            await c.respond("x")
        fake_server.plan(Behaviour(status=502), Behaviour(status=502))
        with pytest.raises(InternalServerError, match="HTTP 502"):
            await c.respond("x", stream=True)


async def test_the_deadline_bounds_the_call(client, fake_server):
    fake_server.plan(Behaviour(delay=3))
    with pytest.raises(DeadlineExceededError, match="0.3 s deadline"):
        await client.respond("slow", timeout=0.3)
    fake_server.plan(Behaviour(endless=True, stream_delay=0.01))
    with pytest.raises(StreamDeadlineError) as e:
        await client.respond("forever", stream=True, timeout=0.5)
    assert e.value.partial.text.startswith("echo:echo:")  # the endless server's repeats


def _usage(field: str, value):
    def mangle(d: dict):
        target = d.get("response", d)
        if isinstance(target, dict) and isinstance(target.get("usage"), dict):
            *path, last = field.split(".")
            for p in path:
                target = target[p] if p != "usage" else target["usage"]
            target = target if path else target["usage"]
            target[last] = value
        return d
    return mangle


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("mangle", "where"), [
    (_usage("input_tokens", -5), "usage.input_tokens"),
    (_usage("usage.input_tokens_details.cached_tokens", "many"), "cached_tokens"),
    (_usage("usage.output_tokens_details.reasoning_tokens", 1.5), "reasoning_tokens"),
], ids=["negative", "cached many", "fractional reasoning"])
async def test_bad_numbers_are_a_malformed_response_of_that_call(client, fake_server, mangle,
                                                                 where, stream):
    fake_server.plan(Behaviour(mangle=mangle))
    with pytest.raises(MalformedResponseError, match=re.escape(where)) as e:
        await client.respond("one two three", stream=stream)
    if stream:
        assert isinstance(e.value, MalformedStreamError)
        assert e.value.partial.text == "echo: one two three"
    assert len(fake_server.requests) == 1  # a malformed reply is not retried
    assert (await client.respond("one two three", stream=stream)).text == "echo: one two three"


async def test_malformed_bodies(client, fake_server):
    fake_server.plan(Behaviour(malformed="json"))
    with pytest.raises(MalformedResponseError, match="not JSON"):
        await client.respond("x")
    fake_server.plan(Behaviour(malformed="sse"))
    with pytest.raises(MalformedStreamError, match="not JSON") as e:
        await client.respond("x", stream=True)
    assert e.value.partial.status == "in_progress"
    fake_server.plan(Behaviour(body={"object": "chat.completion", "choices": []}))
    with pytest.raises(MalformedResponseError, match="not 'response'"):
        await client.respond("x")
    # A stream that ends without its terminal event (with [DONE] or not) is cut.
    import fakeresponses

    _, events, _ = fakeresponses.build({"model": "m", "input": "x y"}, None, 1,
                                       fakeresponses.Memory())
    sse = "".join(f"event: {name}\ndata: {data}\n\n" for name, data in events[:-1])
    for tail in ("", "data: [DONE]\n\n"):
        fake_server.plan(Behaviour(body=sse + tail, headers={"Content-Type": "text/event-stream"}))
        with pytest.raises(StreamError, match="without response.completed") as e:
            await client.respond("x y", stream=True)
        assert e.value.partial.text == "echo: x y"
    # With it, a [DONE] after it is fine, and so is its absence.
    for tail in ("", "data: [DONE]\n\n"):
        whole = sse + "event: {}\ndata: {}\n\n".format(*events[-1])
        fake_server.plan(Behaviour(body=whole + tail,
                                   headers={"Content-Type": "text/event-stream"}))
        assert (await client.respond("x y", stream=True)).finish_reason == "stop"


async def test_bad_input_is_refused_before_sending(client, fake_server):
    with pytest.raises(RequestError, match=r"input\[1\] must be a dict with a 'role'"):
        await client.respond([{"role": "user", "content": "x"}, "hi"])
    with pytest.raises(RequestError, match=r"input\[0\]"):
        await client.respond([{"content": "no role"}])
    with pytest.raises(RequestError, match="input is empty"):
        await client.respond([])
    with pytest.raises(RequestError, match="input must be a string"):
        await client.respond(42)
    with pytest.raises(RequestError, match="not JSON-serialisable"):
        await client.respond("x", metadata={"a": object()})
    assert fake_server.requests == []


async def test_a_key_is_never_in_errors_or_reprs(client, fake_server):
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}.",
                      "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}
    fake_server.plan(Behaviour(status=401, body=echo))
    with pytest.raises(AuthenticationError) as e:
        await client.respond("hi")
    fake_server.plan(Behaviour(failed=f"upstream said {KEY}"))
    with pytest.raises(StreamError) as s:
        await client.respond("hi", stream=True)
    fake_server.plan(Behaviour(status=401, body=echo))
    with pytest.raises(AuthenticationError) as t:
        await client.input_tokens("hi")
    r = await client.respond("hi", stream=True)
    for err in (e.value, s.value, t.value):
        shown = [str(err), repr(err), repr(err.__dict__), str(pickle.loads(pickle.dumps(err)))]
        assert not any(KEY in x for x in shown), shown
    assert KEY not in repr(r) and KEY not in repr(client) and KEY not in json.dumps(r.raw)
    assert fake_server.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_input_tokens(client, fake_server):
    n = await client.input_tokens("one two three", instructions="be brief",
                                  model="gpt-5-mini")
    rec = fake_server.requests[-1]
    assert (rec.path, rec.json) == ("/v1/responses/input_tokens", {
        "model": "gpt-5-mini", "input": "one two three", "instructions": "be brief"})
    validate(rec.json, "TokenCountsBody")
    r = await client.respond("one two three", instructions="be brief", model="gpt-5-mini")
    assert n == r.usage.prompt_tokens == 5
    assert await client.input_tokens([{"role": "user", "content": "a b"}]) == 2


@pytest.mark.parametrize(("reply", "match"), [
    ({"object": "response.input_tokens", "input_tokens": -1}, "input_tokens is -1"),
    ({"object": "response.input_tokens", "input_tokens": "12"}, "input_tokens is '12'"),
    ({"object": "response.input_tokens"}, "no 'input_tokens'"),
    (["not", "an", "object"], "expected a JSON object"),
])
async def test_a_bad_input_token_count_is_malformed(client, fake_server, reply, match):
    fake_server.plan(Behaviour(mangle=lambda d: reply))
    with pytest.raises(MalformedResponseError, match=match):
        await client.input_tokens("x")


async def test_input_tokens_errors_say_what(client, fake_server):
    with pytest.raises(BadRequestError, match="resp_gone"):
        await client.input_tokens("x", previous_response_id="resp_gone")
    fake_server.plan(Behaviour(status=500))
    with pytest.raises(InternalServerError):
        await client.input_tokens("x")
    assert len(fake_server.requests) == 2  # one request each: not retried


async def test_azure_takes_the_v1_responses_path(fake_server, monkeypatch):
    monkeypatch.setenv("AZ_KEY", KEY)
    root = fake_server.url.removesuffix("/v1")
    az = Provider(name="az", kind="azure", base_url=root + "/openai", api_key_env="AZ_KEY",
                  api_version="2024-10-21", default_model="my-deployment")
    async with Client(az) as c:
        r = await c.respond("hi", stream=True)
        n = await c.input_tokens("hi")
        await c.chat("hi")
    resp, count, chat = fake_server.requests
    assert (resp.path, resp.query, resp.json["model"]) == ("/openai/v1/responses", {},
                                                           "my-deployment")
    assert (count.path, count.query) == ("/openai/v1/responses/input_tokens", {})
    assert resp.headers["api-key"] == KEY and "authorization" not in resp.headers
    assert chat.path == "/openai/deployments/my-deployment/chat/completions"
    assert chat.query == {"api-version": "2024-10-21"}
    assert r.text == "echo: hi" and n == 1


def test_the_sync_face(prov, fake_server):
    r = gptmagic.respond("sync call", provider=prov, stream=True)
    assert r.text == "echo: sync call" and r.kind == "response"


async def test_the_async_face_reads_profile_model(fake_server):
    gptmagic.add_profile("myprofile", base_url=fake_server.url)
    r = await gptmagic.arespond("hi", model="myprofile:gpt-5-mini",
                                reasoning={"summary": "auto"})
    assert (r.text, r.reasoning) == ("echo: hi", "Reasoning about: hi")
    assert fake_server.requests[-1].json["model"] == "gpt-5-mini"


async def test_chaos_gives_a_reply_or_an_error_never_a_crash(prov, fake_server):
    """Every fault kind on /responses: each call ends in the right text or a GptmagicError."""
    fake_server.chaos_slow_delay = 0.05
    fake_server.set_chaos(7, {"ok": 3, "429": 1, "429_retry_after": 1, "500": 1, "502": 1,
                              "503": 1, "drop": 1, "stream_cut": 1, "slow": 1, "malformed": 1})
    outcomes = []
    async with Client(prov, sleep=Sleeps(), retry=RetryPolicy(max_attempts=3),
                      timeouts=Timeouts(connect=2, read=2, write=2, pool=2, deadline=10)) as c:
        for i in range(24):
            try:
                r = await c.respond(f"n{i}", stream=i % 2 == 1)
                assert r.text == f"echo: n{i}"
                outcomes.append("ok")
            except GptmagicError as e:
                outcomes.append(type(e).__name__)
    kinds = {q.chaos for q in fake_server.requests}
    assert "ok" in outcomes and len(set(outcomes)) > 1
    assert {"stream_cut", "malformed", "drop"} <= kinds
    assert fake_server.wait_connections(0)  # nothing leaked, whatever the fault


#: llama.cpp's own server (xllamacpp 2026.10, SmolLM2), ``POST /v1/responses`` streamed with
#: ``max_output_tokens=8``, trimmed to two deltas: no output_index or sequence_number, and a
#: done event with the text its deltas left out.
LLAMA_STREAM = Path(__file__).parent / "data" / "llama-responses-stream.sse"


async def test_llama_cpps_own_stream_is_read(client, fake_server):
    fake_server.plan(Behaviour(body=LLAMA_STREAM.read_bytes(),
                               headers={"Content-Type": "text/event-stream"}))
    pieces = []
    r = await client.respond("Say hi", stream=True, on_delta=lambda i, t: pieces.append(t))
    assert pieces == ["I", "'m", " glad you're here! I"]
    assert (r.text, r.status, r.finish_reason) == ("I'm glad you're here! I", "completed", "stop")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.cached_tokens) == (32, 8, 31)
    assert r.id == "resp_h7Vi0nSMbDICsSG42C8q9BlxssJE5pUe" and r.timings.engine["cache_n"] == 31
