"""The fake server's Responses API (tests/fakeresponses.py) against OpenAI's published spec."""

from __future__ import annotations

import functools
import json

import httpx
import pytest
from fakeserver import Behaviour, FakeServer
from openapi_schema import load_spec, validate

TOOL = {"type": "function", "name": "lookup", "strict": False,
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}
LP = ["message.output_text.logprobs"]

#: Request bodies covering every kind of reply the fake gives.
BODIES = {
    "plain": {"model": "fake-model", "input": "hello big world"},
    "items and instructions": {"model": "gpt-4.1", "instructions": "Be brief.", "input": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "echo: hi"},
        {"type": "message", "role": "user", "content": "more please"}]},
    "logprobs": {"model": "gpt-4.1-mini", "input": "a b c", "include": LP, "top_logprobs": 3},
    "reasoning": {"model": "gpt-5-mini", "input": "why", "prompt_cache_key": "k",
                  "reasoning": {"effort": "low", "summary": "detailed"},
                  "include": ["reasoning.encrypted_content", *LP]},
    "incomplete": {"model": "o4-mini", "input": "one two three", "max_output_tokens": 17},
    "tool call": {"model": "gpt-5", "input": "find cats", "tools": [TOOL],
                  "tool_choice": {"type": "function", "name": "lookup"},
                  "text": {"format": {"type": "text"}, "verbosity": "low"}},
    "all fields": {"model": "gpt-4o", "input": "x", "store": False, "metadata": {"a": "b"},
                   "service_tier": "auto", "safety_identifier": "u1", "temperature": 0.2,
                   "top_p": 0.5, "parallel_tool_calls": False, "tools": [TOOL],
                   "tool_choice": "auto"},
}


@functools.cache
def event_schemas() -> dict[str, str]:
    """Each ``ResponseStreamEvent`` member's schema name, by its event type."""
    schemas = load_spec()["components"]["schemas"]
    out = {}
    for member in schemas["ResponseStreamEvent"]["anyOf"]:
        name = member["$ref"].rsplit("/", 1)[1]
        out[schemas[name]["properties"]["type"]["enum"][0]] = name
    return out


def sse(text: str) -> list[tuple[str, dict]]:
    """(event line, data) of every event of a whole SSE body; each has both lines."""
    out = []
    for block in text.strip("\n").split("\n\n"):
        name, data = block.split("\n")
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


@pytest.mark.parametrize("case", list(BODIES))
def test_requests_replies_and_events_follow_the_spec(http: httpx.Client, case: str) -> None:
    body = BODIES[case]
    validate(body, "CreateResponse")
    whole = http.post("/responses", json=body)
    assert whole.status_code == 200
    validate(whole.json(), "Response")
    r = http.post("/responses", json={**body, "stream": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in r.text
    events = sse(r.text)
    for name, data in events:
        assert data["type"] == name
        validate(data, event_schemas()[name])
        validate(data, "ResponseStreamEvent")
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    final = events[-1][1]["response"]
    assert final["status"] in ("completed", "incomplete")
    # The stream's final response is the whole reply (bar ids and times).
    strip = {"id", "created_at", "completed_at", "output"}
    assert {k: v for k, v in final.items() if k not in strip} == {
        k: v for k, v in whole.json().items() if k not in strip and k != "usage"} | {
        "usage": final["usage"]}
    count = http.post("/responses/input_tokens", json=body)
    validate(count.json(), "TokenCountsResource")
    assert count.json()["input_tokens"] == whole.json()["usage"]["input_tokens"]


def test_the_stream_carries_the_text_as_the_body_does(http: httpx.Client) -> None:
    body = BODIES["reasoning"]
    whole = http.post("/responses", json=body).json()
    events = sse(http.post("/responses", json={**body, "stream": True}).text)
    kinds = [name for name, _ in events]
    assert kinds[:3] == ["response.created", "response.in_progress",
                         "response.output_item.added"]
    assert kinds[-1] == "response.completed"
    deltas = "".join(d["delta"] for n, d in events if n == "response.output_text.delta")
    summary = "".join(d["delta"] for n, d in events
                      if n == "response.reasoning_summary_text.delta")
    reasoning, message = whole["output"]
    assert deltas == message["content"][0]["text"] == "echo: why"
    assert summary == reasoning["summary"][0]["text"] == "Reasoning about: why"
    assert reasoning["encrypted_content"].startswith("gAAAA")
    lps = [lp for n, d in events if n == "response.output_text.delta" for lp in d["logprobs"]]
    assert lps == message["content"][0]["logprobs"] and len(lps) == 2
    assert whole["usage"]["output_tokens_details"]["reasoning_tokens"] == 8
    assert whole["usage"]["output_tokens"] == 8 + 2


def test_usage_details_follow_the_request(http: httpx.Client) -> None:
    cache = {"model": "gpt-4o", "input": "one two three", "prompt_cache_key": "c"}
    first, again = (http.post("/responses", json=cache).json()["usage"] for _ in range(2))
    assert first["input_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 3}
    assert again["input_tokens_details"] == {"cached_tokens": 3, "cache_write_tokens": 0}
    efforts = [http.post("/responses", json={"model": "o3", "input": "x", "reasoning": {
        "effort": e}}).json()["usage"]["output_tokens_details"]["reasoning_tokens"]
        for e in ("minimal", "low", "medium", "high")]
    assert efforts == [4, 8, 16, 32]


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "gpt-4o", "input": "x", "reasoning": {"effort": "low"}}, "reasoning.effort"),
    ({"model": "gpt-4o", "input": "x", "previous_response_id": "resp_x"},
     "previous_response_id"),
    ({"input": "x"}, "model"),
])
def test_refusals_name_the_parameter(http: httpx.Client, body: dict, param: str) -> None:
    r = http.post("/responses", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param
    validate(r.json(), "ErrorResponse")


def test_stored_responses_chain_and_unstored_ones_do_not(http: httpx.Client) -> None:
    kept = http.post("/responses", json={"model": "m", "input": "a b"}).json()
    later = http.post("/responses", json={"model": "m", "input": "c",
                                          "previous_response_id": kept["id"]}).json()
    assert later["usage"]["input_tokens"] == 1 + kept["usage"]["total_tokens"]
    assert later["previous_response_id"] == kept["id"]
    gone = http.post("/responses", json={"model": "m", "input": "a", "store": False}).json()
    r = http.post("/responses", json={"model": "m", "input": "c",
                                      "previous_response_id": gone["id"]})
    assert r.status_code == 400


def test_faults_apply_to_the_responses_routes(http: httpx.Client, srv: FakeServer) -> None:
    body = {"model": "m", "input": "hi there", "stream": True}
    srv.plan(Behaviour(status=429, headers={"retry-after": "0"}), Behaviour(malformed="json"))
    assert http.post("/responses", json=body).status_code == 429
    assert http.post("/responses/input_tokens", json=body).text.startswith('{"id": "chatcmpl')
    srv.plan(Behaviour(error_event=True))
    events = sse(http.post("/responses", json=body).text)
    name, error = events[-1]
    assert name == "error" and error["message"] == "boom"
    validate(error, "ResponseErrorEvent")
    assert [n for n, _ in events].count("response.output_text.delta") == 1
    srv.plan(Behaviour(failed="it broke"))
    name, failed = sse(http.post("/responses", json=body).text)[-1]
    assert name == "response.failed" and failed["response"]["error"]["message"] == "it broke"
    validate(failed, "ResponseFailedEvent")
    srv.plan(Behaviour(stream_cut_after=3))
    with pytest.raises(httpx.HTTPError):
        http.post("/responses", json=body).read()
    srv.plan(Behaviour(text="planned words", trickle=True))
    events = sse(http.post("/responses", json=body).text.replace("\r\n", "\n"))
    assert events[-1][1]["response"]["output"][0]["content"][0]["text"] == "planned words"


def test_an_endless_stream_keeps_numbering_its_events(srv: FakeServer) -> None:
    srv.plan(Behaviour(endless=True))
    seen: list[int] = []
    with httpx.Client(base_url=srv.url, timeout=5) as c, c.stream(
            "POST", "/responses", json={"model": "m", "input": "x", "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:])["sequence_number"])
            if len(seen) == 40:
                break
    assert seen == list(range(40))
