"""``schema=`` on Client.chat / Client.respond and gptmagic.chat / achat / respond / arespond,
against the fake server (real HTTP on loopback): the strict format sent (checked against
OpenAI's spec), the reply parsed into the user's type at the end of a stream too, invalid
replies and refusals, and schemas refused before anything is sent."""

from __future__ import annotations

import json

import pytest
from fakeserver import Behaviour
from openapi_schema import validate
from pydantic import BaseModel, Field

import gptmagic
from gptmagic import Client, Provider, Timeouts
from gptmagic.core.structured import (
    chat_response_format,
    responses_text_format,
    schema_from,
)
from gptmagic.errors import BadRequestError, RequestError

KEY = "sk-fake-structured-0123456789abcdef"
REFUSAL = "I can't help with that."


class Address(BaseModel):
    city: str


class Person(BaseModel):
    name: str
    age: int | None = None
    home: Address = Field(description="where they live")


@pytest.fixture
def prov(fake_server, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", KEY)
    return Provider(name="fake", kind="compatible", base_url=fake_server.url,
                    api_key_env="FAKE_KEY", default_model="fake-model")


@pytest.fixture
async def client(prov):
    c = Client(prov, timeouts=Timeouts(connect=2, read=5, write=5, pool=5, deadline=20))
    yield c
    await c.aclose()


def sent(fake_server) -> dict:
    return fake_server.requests[-1].json


@pytest.mark.parametrize("stream", [False, True])
async def test_chat_sends_the_strict_format_and_parses_the_reply(client, fake_server,
                                                                 stream):
    pieces = []
    r = await client.chat("Invent a person.", schema=Person, stream=stream,
                          on_delta=lambda i, t: pieces.append(t))
    body = sent(fake_server)
    validate(body, "CreateChatCompletionRequest")
    assert body["response_format"] == chat_response_format(schema_from(Person))
    assert body["response_format"]["json_schema"]["strict"] is True
    assert r.valid is True and isinstance(r.parsed, Person)
    assert r.parsed == Person(name="text", age=1, home=Address(city="text"))
    assert r.validation is not None and r.validation.errors == ()
    assert "".join(pieces) == r.text


@pytest.mark.parametrize("stream", [False, True])
async def test_respond_sends_text_format_and_parses_the_reply(client, fake_server, stream):
    r = await client.respond("Invent a person.", schema=Person, stream=stream,
                             text={"verbosity": "low"})
    body = sent(fake_server)
    validate(body, "CreateResponse")
    assert body["text"] == {"verbosity": "low",
                            "format": responses_text_format(schema_from(Person))}
    assert r.kind == "response" and r.valid is True
    assert r.parsed == Person(name="text", age=1, home=Address(city="text"))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_a_refusal_is_no_reply_to_parse(client, fake_server, stream, api):
    fake_server.plan(Behaviour(refusal=REFUSAL))
    call = client.chat if api == "chat" else client.respond
    r = await call("Do something bad.", schema=Person, stream=stream)
    assert r.choices[0].refusal == REFUSAL and r.text == ""
    assert r.parsed is None and r.valid is False
    assert r.validation is not None and r.validation.refusal == REFUSAL
    assert r.validation.errors == ()


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_an_invalid_reply_has_its_errors_by_path(client, fake_server, stream, api):
    """A server that ignores the schema (or a reply cut short) is caught, not trusted."""
    fake_server.plan(Behaviour(text='{"name": 3, "home": {}}'))
    call = client.chat if api == "chat" else client.respond
    r = await call("x", schema=Person, stream=stream)
    assert r.valid is False and r.parsed is None and r.validation is not None
    # pydantic fills the missing age with its default: the model's own rules decide.
    assert r.validation.errors == ("name: Input should be a valid string",
                                   "home.city: Field required")


async def test_a_dict_schema_parses_to_a_dict(client, fake_server):
    schema = {"type": "object", "title": "Verdict",
              "properties": {"ok": {"type": "boolean"}, "why": {"type": "string"}},
              "required": ["ok", "why"]}
    r = await client.chat("Is it?", schema=schema)
    assert sent(fake_server)["response_format"]["json_schema"]["name"] == "Verdict"
    assert sent(fake_server)["response_format"]["json_schema"]["schema"][
        "additionalProperties"] is False
    assert r.parsed == {"ok": True, "why": "text"} and r.valid is True


async def test_a_schema_that_breaks_the_rules_is_refused_before_sending(client, fake_server):
    with pytest.raises(RequestError, match="Verdict.why: not in 'required'") as caught:
        await client.chat("x", schema={"type": "object", "title": "Verdict", "properties": {
            "why": {"type": "string"}}})
    assert caught.value.param == "schema"
    with pytest.raises(RequestError, match="schema= and response_format both"):
        await client.chat("x", schema=Person, response_format={"type": "json_object"})
    assert fake_server.requests == []


async def test_openais_400_for_a_schema_sent_raw_comes_back_whole(client, fake_server):
    """Sent as a raw response_format (no schema=), the server's own check answers."""
    fmt = {"type": "json_schema", "json_schema": {"name": "v", "strict": True, "schema": {
        "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}}
    with pytest.raises(BadRequestError) as caught:
        await client.chat("x", response_format=fmt)
    assert "Invalid schema for response_format 'v': In context=(), 'additionalProperties' " \
           "is required to be supplied and to be false." in str(caught.value)
    assert caught.value.body["error"]["param"] == "response_format"


async def test_without_a_schema_nothing_is_parsed(client):
    r = await client.chat("hi", response_format={"type": "json_object"})
    assert r.validation is None and r.parsed is None and r.valid is None


def test_the_sync_and_async_faces_take_schema(prov, fake_server):
    gptmagic.add_profile("fake", base_url=fake_server.url, default_model="fake-model",
                         api_key_env="FAKE_KEY")
    try:
        r = gptmagic.chat("Invent a person.", model="fake:fake-model", schema=Person)
        assert isinstance(r.parsed, Person) and "response_format" in sent(fake_server)
        r = gptmagic.respond("Invent a person.", model="fake:fake-model", schema=Person,
                             stream=True)
        assert isinstance(r.parsed, Person) and "text" in sent(fake_server)

        async def both():
            a = await gptmagic.achat("x", model="fake:fake-model", schema=Person)
            b = await gptmagic.arespond("x", model="fake:fake-model", schema=Person)
            return a, b

        import asyncio

        a, b = asyncio.run(both())
        assert a.valid and b.valid and json.loads(b.text)["home"] == {"city": "text"}
    finally:
        gptmagic.shutdown()
