"""Structured outputs on the embedded model (llama.cpp's grammar-constrained decoding): the
strict schema gptmagic sends is honoured through every local path (chat and /v1/responses,
streamed and not, and the token-id path a message with control-token text takes); a
``%%chat --schema Person -m local`` cell gives a Person on each of 20 cases; and the
official ``openai`` SDK's ``parse()`` helpers work against the server and ``gptmagic serve``.

SmolLM2-135M left free writes a string forever now and then (1 of 20 cases here at
temperature 0: a city named ``"Lagos_23_2018_2019_..."`` until ``max_tokens``), and a
strict schema may not bound a string's length (OpenAI refuses ``maxLength``); a ``pattern``
is allowed, and the grammar follows it, so the Person here bounds its strings with one.
"""

from __future__ import annotations

import json

import openai
import pytest
from conftest_local import local_engine, local_url  # noqa: F401
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from pydantic import BaseModel, Field
from shell_support import new_shell
from test_local_responses import gptmagic_serve

import gptmagic
from gptmagic import Client, Provider

pytestmark = pytest.mark.engine

WORDS = r"^[A-Za-z][A-Za-z .'-]{0,39}$"


class Address(BaseModel):
    city: str = Field(pattern=WORDS)


class Person(BaseModel):
    name: str = Field(pattern=WORDS)
    age: int | None = None
    home: Address


WHO = ["a baker from Lyon", "a sailor from Lisbon", "a teacher from Nairobi",
       "a pilot from Oslo", "a doctor from Lima", "a poet from Kyoto", "a farmer from Iowa",
       "a nurse from Manila", "a chef from Naples", "a miner from Wales",
       "a singer from Havana", "a coder from Pune", "a judge from Cairo",
       "a potter from Oaxaca", "a monk from Lhasa", "a diver from Perth",
       "a tailor from Milan", "a barber from Seville", "a driver from Lagos",
       "a painter from Ghent"]


@pytest.fixture
async def client(local_url):  # noqa: F811
    async with Client(Provider(name="engine", base_url=local_url,
                               default_model="local")) as c:
        yield c


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_the_engine_honours_the_strict_schema(client, api, stream):
    call = client.chat if api == "chat" else client.respond
    limit = {"max_tokens": 120} if api == "chat" else {"max_output_tokens": 120}
    r = await call("Describe a baker from Lyon.", schema=Person, stream=stream,
                   temperature=0, **limit)
    assert r.valid is True, (r.text, r.validation)
    assert isinstance(r.parsed, Person) and r.parsed.home.city


async def test_control_token_text_takes_the_id_path_and_keeps_the_schema(client):
    """A message holding ``<|im_end|>`` is generated from token ids (local/verbatim.py),
    where response_format becomes the engine's json_schema."""
    for stream in (False, True):
        r = await client.chat("Describe a person who says <|im_end|> a lot.", schema=Person,
                              stream=stream, temperature=0, max_tokens=120)
        assert r.valid is True, (r.text, r.validation)


async def test_without_a_schema_the_same_prompt_is_free_text(client):
    """The grammar is what makes the JSON: the same prompt without it is not a Person."""
    r = await client.chat("Describe a baker from Lyon.", temperature=0, max_tokens=60)
    with pytest.raises(ValueError):
        Person.model_validate_json(r.text)


@pytest.mark.slow
def test_twenty_schema_cells_on_the_embedded_model_each_give_a_person(tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    sh = new_shell()
    sh.run_line_magic("load_ext", "gptmagic")
    try:
        sh.user_ns["Person"] = Person
        for who in WHO:
            with capture_output():
                r = sh.run_cell_magic("chat", "-m local --no-history --schema Person "
                                      "--max-tokens 120 -t 0", f"user: Describe {who}.")
            assert isinstance(sh.user_ns["_chat"].parsed, Person), (who, r.text, r.validation)
            assert r.validation.valid and r.finish_reason == "stop"
    finally:
        sh.run_line_magic("unload_ext", "gptmagic")
        InteractiveShell.clear_instance()
        gptmagic.shutdown()


def sdk_parse(client: openai.OpenAI) -> None:
    """What an SDK user does: ``parse()`` with a Pydantic model, on chat and Responses."""
    done = client.chat.completions.parse(
        model="local", messages=[{"role": "user", "content": "Describe a poet from Kyoto."}],
        response_format=Person, temperature=0, max_tokens=120)
    message = done.choices[0].message
    assert isinstance(message.parsed, Person) and message.refusal is None
    assert json.loads(message.content or "")["home"]["city"] == message.parsed.home.city
    with client.chat.completions.stream(
            model="local", messages=[{"role": "user", "content": "Describe a chef."}],
            response_format=Person, temperature=0, max_tokens=120) as events:
        for _ in events:
            pass
        assert isinstance(events.get_final_completion().choices[0].message.parsed, Person)
    answer = client.responses.parse(model="local", input="Describe a pilot from Oslo.",
                                    text_format=Person, temperature=0, max_output_tokens=120)
    assert isinstance(answer.output_parsed, Person)


def test_the_openai_sdk_parses_against_the_server(local_url):  # noqa: F811
    with openai.OpenAI(base_url=local_url, api_key="unused", max_retries=0) as client:
        sdk_parse(client)


@pytest.mark.slow
def test_the_openai_sdk_parses_against_gptmagic_serve():
    with gptmagic_serve() as url, openai.OpenAI(base_url=url, api_key="unused",
                                                 max_retries=0) as client:
        sdk_parse(client)
