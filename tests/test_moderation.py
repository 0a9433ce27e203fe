"""Moderation: the client's ``/moderations`` call on the wire, parsing and the one-line summary."""

from __future__ import annotations

import httpx
import pytest
from fakeserver import Behaviour

from gptmagic import Client, Provider
from gptmagic.client.moderation import ModerationResult, describe, moderate
from gptmagic.errors import AuthenticationError, MalformedResponseError, RequestError

KEY = "sk-fake-moderation-0123456789"


@pytest.fixture
def prov(fake_server, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", KEY)
    return Provider(
        name="fake", base_url=fake_server.url, api_key_env="FAKE_KEY", default_model="fake-model"
    )


@pytest.fixture
async def client(prov):
    async with Client(prov) as c:
        yield c


async def test_request_on_the_wire(client, fake_server):
    await client.moderate("hello there")
    await client.moderate(["a", "b"], model="omni-moderation-2024-09-26")
    first, second = fake_server.requests
    assert (first.method, first.path) == ("POST", "/v1/moderations")
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.headers["content-type"].startswith("application/json")
    # No model named: the provider's default_model is a chat model, so none is sent.
    assert first.json == {"input": "hello there"}
    assert second.json == {"input": ["a", "b"], "model": "omni-moderation-2024-09-26"}


async def test_list_input_gets_one_result_per_text(client):
    data = await client.moderate(["calm words", "an attack"])
    assert [r["flagged"] for r in data["results"]] == [False, True]
    assert data["id"].startswith("modr-") and data["model"] == "omni-moderation-latest"


async def test_not_flagged(client):
    r = await moderate(client, "What a lovely day.", kind="input")
    assert r == ModerationResult(
        flagged=False,
        categories=[],
        scores={"violence": 0.01, "harassment": 0.01},
        model="omni-moderation-latest",
        input_kind="input",
    )


async def test_flagged_categories_are_sorted_with_scores(client):
    r = await moderate(client, "I will ATTACK you, idiot.", kind="reply")
    assert r.flagged and r.categories == ["harassment", "violence"]
    assert r.scores == {"violence": 0.91, "harassment": 0.91}
    assert r.input_kind == "reply"
    assert describe([r]) == ("moderation: reply flagged for harassment (0.91), violence (0.91)")


async def test_provider_per_call_overrides_the_client(fake_server, prov):
    async with Client("local") as c:
        r = await moderate(c, "plan the attack", kind="input", provider=prov)
    assert r.categories == ["violence"] and len(fake_server.requests) == 1


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"id": "x"}, "no 'results' list"),
        ({"results": []}, "no 'results' list"),
        ({"results": ["flagged"]}, "no 'results' list"),
        ({"results": [{"categories": {}, "category_scores": {}}]}, "no boolean 'flagged'"),
        ({"results": [{"flagged": "yes", "categories": {}}]}, r"'flagged' \(got str"),
        ({"results": [{"flagged": True, "category_scores": {}}]}, "no 'categories' object"),
        ({"results": [{"flagged": True, "categories": {}}]}, "no 'category_scores' object"),
        ("[1, 2]", "moderation response is not a JSON object"),
        ("<html>oops</html>", "moderation response is not a JSON object"),
    ],
)
async def test_malformed_response(client, fake_server, body, match):
    fake_server.plan(Behaviour(body=body))
    with pytest.raises(MalformedResponseError, match=match):
        await moderate(client, "hi", kind="input")


async def test_http_error_is_the_status_error(client, fake_server):
    fake_server.plan(Behaviour(status=401))
    with pytest.raises(AuthenticationError, match="HTTP 401 from .*/moderations"):
        await moderate(client, "hi", kind="input")


async def test_local_provider_raises_without_any_http():
    def no_network(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request to {request.url}")

    async with Client("local", transport=httpx.MockTransport(no_network)) as c:
        with pytest.raises(RequestError, match="no moderation endpoint") as e:
            await moderate(c, "hi", kind="input")
        assert e.value.param == "moderate"
        assert c.engine.url is None  # the embedded engine was not started either


async def test_kind_is_checked(client, fake_server):
    with pytest.raises(RequestError, match="kind must be one of input, reply"):
        await moderate(client, "hi", kind="output")
    assert fake_server.requests == []


@pytest.mark.parametrize(
    ("results", "line"),
    [
        ([], "moderation: nothing checked"),
        (
            [ModerationResult(False), ModerationResult(False, input_kind="reply")],
            "moderation: input not flagged; reply not flagged",
        ),
        (
            [
                ModerationResult(False),
                ModerationResult(True, ["violence"], {"violence": 0.912}, input_kind="reply"),
            ],
            "moderation: input not flagged; reply flagged for violence (0.91)",
        ),
        ([ModerationResult(True, ["self-harm"], {})], "moderation: input flagged for self-harm"),
        ([ModerationResult(True)], "moderation: input flagged for unspecified categories"),
    ],
)
def test_describe(results, line):
    assert describe(results) == line
