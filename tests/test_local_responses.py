"""``POST /v1/responses`` and ``/v1/responses/input_tokens`` on the embedded server.

Against the real engine (real HTTP on loopback, answers validated against
OpenAI's spec), through the official ``openai`` SDK (in-process server and
the ``gptmagic serve`` command), and against a fake llama.cpp upstream for
the failures a real engine will not produce on demand.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest_local import local_client, local_engine, local_url  # noqa: F401
from openapi_schema import validate

from gptmagic.local.llama import LlamaServer
from gptmagic.local.server import create_app

LOGPROBS = ["message.output_text.logprobs"]
BASE = {"model": "local", "temperature": 0, "seed": 7}


def events_of(text: str) -> list[dict[str, Any]]:
    """A Responses SSE body as its events, checking each ``event:`` line names its event."""
    out = []
    for block in filter(str.strip, text.split("\n\n")):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        event = json.loads(lines["data"])
        assert lines["event"] == event["type"]
        out.append(event)
    return out


def create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    r = client.post("/responses", json={**BASE, **body})
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    validate(answer, "Response")
    return answer


def stream(client: httpx.Client, **body: Any) -> list[dict[str, Any]]:
    r = client.post("/responses", json={**BASE, **body, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in r.text  # OpenAI ends a Responses stream with its last event
    events = events_of(r.text)
    for event in events:
        validate(event, "ResponseStreamEvent")
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def text_of(response: dict[str, Any]) -> str:
    return "".join(part["text"] for item in response["output"] if item["type"] == "message"
                   for part in item["content"])


def count(client: httpx.Client, **body: Any) -> int:
    r = client.post("/responses/input_tokens", json={"model": "local", **body})
    assert r.status_code == 200, r.text
    validate(r.json(), "TokenCountsResource")
    assert r.json()["object"] == "response.input_tokens"
    tokens: int = r.json()["input_tokens"]
    return tokens


def test_a_response_follows_the_spec(local_client: httpx.Client) -> None:  # noqa: F811
    answer = create(local_client, input="Name a colour.", instructions="Answer in one word.",
                    max_output_tokens=40, metadata={"run": "7"}, store=True)
    assert answer["object"] == "response" and answer["id"].startswith("resp_")
    assert answer["model"] == "smollm2-135m-instruct"
    assert answer["status"] == "completed" and answer["completed_at"] >= answer["created_at"]
    assert text_of(answer).strip()
    assert answer["metadata"] == {"run": "7"} and answer["instructions"] == "Answer in one word."
    assert answer["store"] is False  # accepted; the engine keeps nothing, and says so
    usage = answer["usage"]
    assert usage["output_tokens"] >= 1 and usage["output_tokens_details"] == {
        "reasoning_tokens": 0}
    assert usage["input_tokens_details"]["cache_write_tokens"] == 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_max_output_tokens_makes_it_incomplete(local_client: httpx.Client) -> None:  # noqa: F811
    answer = create(local_client, input="Tell me a long story.", max_output_tokens=3)
    assert answer["status"] == "incomplete" and answer["completed_at"] is None
    assert answer["incomplete_details"] == {"reason": "max_output_tokens"}
    assert answer["usage"]["output_tokens"] == 3 and answer["max_output_tokens"] == 3


@pytest.mark.parametrize("given", ["Say hello to Ada.",
                                   "Is <|im_end|> a token?"])  # control-token text: as text
def test_a_stream_is_the_event_sequence_with_the_same_text(
        local_client: httpx.Client, given: str) -> None:  # noqa: F811
    body = {"input": given, "max_output_tokens": 12}
    events = stream(local_client, **body)
    kinds = [e["type"] for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.incomplete"]
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    final = events[-1]["response"]
    validate(final, "Response")
    assert "".join(deltas) == text_of(final) == events[-4]["text"]
    assert final["usage"]["output_tokens"] == 12
    assert text_of(create(local_client, **body)) == text_of(final)  # same seed, same text


def test_logprobs_when_included(local_client: httpx.Client) -> None:  # noqa: F811
    body = {"input": "Count: one, two,", "max_output_tokens": 6, "include": LOGPROBS,
            "top_logprobs": 3}
    answer = create(local_client, **body)
    part = answer["output"][0]["content"][0]
    assert len(part["logprobs"]) == answer["usage"]["output_tokens"] == 6
    assert "".join(e["token"] for e in part["logprobs"]) == part["text"]
    assert all(len(e["top_logprobs"]) == 3 and e["logprob"] <= 0 for e in part["logprobs"])
    events = stream(local_client, **body)
    streamed = [lp for e in events if e["type"] == "response.output_text.delta"
                for lp in e["logprobs"]]
    assert [e["token"] for e in streamed] == [e["token"] for e in part["logprobs"]]
    assert create(local_client, input="Hi", max_output_tokens=2)["output"][0]["content"][0][
        "logprobs"] == []  # not asked for, none given


def test_a_json_schema_format_constrains_the_output(
        local_client: httpx.Client) -> None:  # noqa: F811
    schema = {"type": "object", "properties": {"name": {"type": "string"},
                                               "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    answer = create(local_client, input="Invent a person.", max_output_tokens=80,
                    text={"format": {"type": "json_schema", "name": "person", "schema": schema,
                                     "strict": True}})
    jsonschema.validate(json.loads(text_of(answer)), schema)
    assert answer["text"]["format"]["name"] == "person"


INPUTS: list[dict[str, Any]] = [
    {"input": "Hello there"},
    {"input": "Hello there", "instructions": "Be terse."},
    {"instructions": "Say something."},
    {"input": [{"role": "developer", "content": "Rules."},
               {"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "What is 2+2?"}]},
               {"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": "4", "annotations": []}]},
               {"role": "user", "content": "And 3+3?"}]},
    {"input": [{"role": "user", "content": "Weather in Paris?"},
               {"type": "function_call", "call_id": "c1", "name": "weather",
                "arguments": "{\"city\": \"Paris\"}"},
               {"type": "function_call_output", "call_id": "c1", "output": "sunny, 21 C"}],
     "tools": [{"type": "function", "name": "weather", "strict": False,
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]},
    {"input": "Is <|im_end|> a token?"},  # control-token text: counted and sent as text
]


@pytest.mark.parametrize("body", INPUTS, ids=range(len(INPUTS)))
def test_input_tokens_is_the_exact_count_of_the_same_request(
        local_client: httpx.Client, body: dict[str, Any]) -> None:  # noqa: F811
    answer = create(local_client, **body, max_output_tokens=2)
    assert count(local_client, **body) == answer["usage"]["input_tokens"]


def test_instructions_are_a_system_message_first(local_client: httpx.Client) -> None:  # noqa: F811
    r = local_client.post("/tokenize", json={"messages": [
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]})
    assert count(local_client, instructions="Be terse.", input="Hi") == r.json()["count"]
    assert count(local_client, input="Hi") != r.json()["count"]


@pytest.mark.parametrize("path", ["/responses", "/responses/input_tokens"])
@pytest.mark.parametrize("body, param", [
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
    ({"reasoning": {"effort": "high"}}, "reasoning.effort"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "input[0].content[0]"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
])
def test_what_the_engine_cannot_honour_is_a_400_naming_it(
        local_client: httpx.Client, path: str, body: dict[str, Any],  # noqa: F811
        param: str) -> None:
    r = local_client.post(path, json={"model": "local", "input": "hi", **body})
    assert r.status_code == 400
    validate(r.json(), "ErrorResponse")
    assert r.json()["error"]["param"] == param


def test_an_over_long_input_is_context_length_exceeded(
        local_client: httpx.Client) -> None:  # noqa: F811
    r = local_client.post("/responses", json={**BASE, "input": "word " * 9000})
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "input")


def busy_slots(base: str) -> int:
    return int(httpx.get(base.removesuffix("/v1") + "/slots", timeout=10).json()["busy"])


def test_a_client_that_leaves_a_stream_frees_its_slot(local_url: str) -> None:  # noqa: F811
    """A reply the grammar keeps going for ~10 s stops when its client goes."""
    story = {"type": "object", "properties": {"story": {"type": "string", "minLength": 1500}},
             "required": ["story"]}
    body = {**BASE, "input": "Write a long story.", "max_output_tokens": 3000, "stream": True,
            "text": {"format": {"type": "json_schema", "name": "s", "schema": story}}}
    with httpx.Client(base_url=local_url, timeout=30) as client, \
            client.stream("POST", "/responses", json=body) as resp:
        assert resp.status_code == 200
        seen, busy = b"", None
        for chunk in resp.iter_bytes():
            seen += chunk
            if seen.count(b"event: response.output_text.delta") >= 5:
                busy = busy_slots(local_url)  # before leaving the loop, which may close it
                break
        assert busy == 1  # generating; then the client leaves
    idle = busy_slots(local_url)
    for _ in range(25):  # bounded: 5 s, half the reply's own time
        if idle == 0:
            break
        time.sleep(0.2)
        idle = busy_slots(local_url)
    assert idle == 0


# -- the official openai SDK ---------------------------------------------------------------


def sdk_checks(client: openai.OpenAI) -> None:
    """What an SDK user does: a response, a streamed one, a chat completion, a count."""
    answer = client.responses.create(model="local", input="Say hi.", max_output_tokens=8,
                                     temperature=0, include=["message.output_text.logprobs"],
                                     top_logprobs=2)
    assert answer.output_text and answer.usage is not None
    assert answer.usage.output_tokens == len(answer.output[0].content[0].logprobs)
    assert answer.usage.input_tokens == client.responses.input_tokens.count(
        model="local", input="Say hi.").input_tokens
    kinds, text = [], ""
    for event in client.responses.create(model="local", input="Say hi.", max_output_tokens=8,
                                         temperature=0, stream=True):
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
    assert kinds[0] == "response.created" and kinds[-1] == "response.incomplete"
    assert text == answer.output_text
    chat = client.chat.completions.create(model="local", max_tokens=4, messages=[
        {"role": "user", "content": "Say hi."}])
    assert chat.choices[0].message.content and chat.usage is not None
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="local", input="hi", reasoning={"effort": "low"})
    assert caught.value.param == "reasoning.effort"


def test_the_openai_sdk_against_the_server(local_url: str) -> None:  # noqa: F811
    with openai.OpenAI(base_url=local_url, api_key="unused", max_retries=0) as client:
        sdk_checks(client)
        with client.responses.stream(model="local", input="Say: hi", temperature=0,
                                     max_output_tokens=200) as events:
            for _ in events:
                pass
            final = events.get_final_response()  # the helper needs response.completed
        assert final.status == "completed" and final.output_text


@contextlib.contextmanager
def gptmagic_serve() -> Iterator[str]:
    """``gptmagic serve --port 0`` as a user runs it; its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "gptmagic", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=os.environ.copy())
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())["url"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


@pytest.mark.slow
@pytest.mark.engine
def test_the_openai_sdk_against_gptmagic_serve() -> None:
    with gptmagic_serve() as url, openai.OpenAI(base_url=url, api_key="unused",
                                                 max_retries=0) as client:
        sdk_checks(client)


# -- failures, against a fake llama.cpp ------------------------------------------------------

CHUNK = {"choices": [{"finish_reason": None, "index": 0, "delta": {"content": "Hi"}}],
         "created": 1, "id": "chatcmpl-1", "model": "m", "object": "chat.completion.chunk"}


@contextlib.asynccontextmanager
async def adapter_over(handler: Any) -> AsyncIterator[TestClient]:
    fake = web.Application()
    fake.router.add_post("/v1/chat/completions", handler)
    async with TestServer(fake, host="127.0.0.1") as fake_server:
        engine = LlamaServer(url=str(fake_server.make_url("")).rstrip("/"), gguf_path="/x.gguf")
        async with TestClient(TestServer(create_app(engine), host="127.0.0.1")) as client:
            yield client


def upstream_stream(*lines: str) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for line in lines:
            await resp.write(f"{line}\n\n".encode())
        await resp.write_eof()
        return resp
    return handler


@pytest.mark.parametrize("lines, said", [
    ([f"data: {json.dumps(CHUNK)}"], "ended without [DONE]"),
    ([f"data: {json.dumps(CHUNK)}", "data: {broken"], "broke off"),
    ([f"data: {json.dumps(CHUNK)}", 'error: {"code": 500, "message": "bang", '
      '"type": "server_error"}'], "bang"),
])
async def test_an_engine_failure_mid_stream_is_response_failed(lines: list[str],
                                                               said: str) -> None:
    async with adapter_over(upstream_stream(*lines)) as client:
        resp = await client.post("/v1/responses", json={"model": "local", "input": "hi",
                                                        "stream": True})
        events = events_of(await resp.text())
    for event in events:
        validate(event, "ResponseStreamEvent")
    kinds = [e["type"] for e in events]
    assert "response.output_text.delta" in kinds  # the text that came was sent
    assert kinds[-2:] == ["error", "response.failed"] and said in events[-2]["message"]
    assert events[-1]["response"]["status"] == "failed"


@pytest.mark.parametrize("stream", [False, True])
async def test_an_engine_error_status_is_openais_error(stream: bool) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=503, text='{"error": {"code": 503, "message": "Loading '
                            'model", "type": "unavailable_error"}}')

    async with adapter_over(handler) as client:
        resp = await client.post("/v1/responses", json={"model": "local", "input": "hi",
                                                        "stream": stream})
        assert resp.status == 503
        body = await resp.json()
    validate(body, "ErrorResponse")
    assert body["error"]["message"] == "Loading model"
