"""The fake server's structured outputs (tests/fakeschema.py) against OpenAI's published spec:
a json_schema format answered with an instance of the schema, a strict schema that breaks
the rules refused with OpenAI's 400, and scripted refusals, on chat and Responses,
streamed and not."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest
from fakeschema import instance, strict_problem
from fakeserver import Behaviour, FakeServer
from openapi_schema import validate
from test_responses_fake import event_schemas, sse

SCHEMA = {"type": "object", "additionalProperties": False,
          "properties": {
              "name": {"type": "string"}, "age": {"type": ["integer", "null"]},
              "born": {"type": "string", "format": "date"},
              "mood": {"enum": ["calm", "cross"]}, "kind": {"const": "person"},
              "height": {"type": "number", "minimum": 1.2},
              "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
              "home": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/Place"}]},
              "ok": {"type": "boolean"}},
          "required": ["name", "age", "born", "mood", "kind", "height", "tags", "home", "ok"],
          "$defs": {"Place": {"type": "object", "additionalProperties": False,
                              "properties": {"city": {"type": "string"},
                                             "near": {"type": "array",
                                                      "items": {"$ref": "#/$defs/Place"}}},
                              "required": ["city", "near"]}}}
CHAT_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA,
                                                     "strict": True}}
TEXT_FORMAT = {"type": "json_schema", "name": "person", "schema": SCHEMA, "strict": True}
REFUSAL = "I can't help with that."


def chat_body(**extra: Any) -> dict[str, Any]:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Who?"}],
            "response_format": CHAT_FORMAT, **extra}
    validate(body, "CreateChatCompletionRequest")
    return body


def chat_stream(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    r = http.post("/chat/completions", json={**body, "stream": True})
    assert r.status_code == 200
    lines = [ln.removeprefix("data: ") for ln in r.text.split("\n\n") if ln.strip()]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(ln) for ln in lines[:-1]]
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    return chunks


def test_the_instance_is_valid_for_its_schema() -> None:
    value = instance(SCHEMA)
    jsonschema.validate(value, SCHEMA)
    assert value["born"] == "2026-01-02" and value["height"] >= 1.2
    assert len(value["tags"]) == 2 and value["home"]["near"][0]["city"] == "text"


def test_a_chat_json_schema_is_answered_with_an_instance(http: httpx.Client) -> None:
    r = http.post("/chat/completions", json=chat_body())
    validate(r.json(), "CreateChatCompletionResponse")
    text = r.json()["choices"][0]["message"]["content"]
    jsonschema.validate(json.loads(text), SCHEMA)
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in
                       chat_stream(http, chat_body()) if c["choices"])
    assert streamed == text


def test_a_responses_json_schema_is_answered_with_an_instance(http: httpx.Client) -> None:
    body = {"model": "gpt-4o", "input": "Who?", "text": {"format": TEXT_FORMAT}}
    validate(body, "CreateResponse")
    r = http.post("/responses", json=body)
    validate(r.json(), "Response")
    assert r.json()["text"]["format"] == TEXT_FORMAT
    text = r.json()["output"][0]["content"][0]["text"]
    jsonschema.validate(json.loads(text), SCHEMA)


BROKEN = [
    ({**SCHEMA, "additionalProperties": True},
     "In context=(), 'additionalProperties' is required to be supplied and to be false."),
    ({**SCHEMA, "required": ["name"]},
     "In context=(), 'required' is required to be supplied and to be an array including "
     "every key in properties. Missing 'age'."),
    ({**SCHEMA, "properties": {**SCHEMA["properties"], "name": {"type": "string",
                                                             "minLength": 1}}},
     "In context=('properties', 'name'), 'minLength' is not permitted."),
    ({**SCHEMA, "$defs": {"Place": {"type": "object", "properties": {"city": {
        "type": "string"}}, "required": ["city"]}}},
     "In context=('$defs', 'Place'), 'additionalProperties' is required to be supplied and "
     "to be false."),
    ({"type": "array", "items": {"type": "string"}},
     "In context=(), schema must be a JSON Schema of 'type: \"object\"', got 'type: "
     "\"array\"'."),
]


@pytest.mark.parametrize(("schema", "said"), BROKEN)
def test_a_strict_schema_that_breaks_the_rules_is_openais_400(http: httpx.Client,
                                                              schema: dict[str, Any],
                                                              said: str) -> None:
    assert strict_problem(schema) == said
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema,
                                                  "strict": True}}
    r = http.post("/chat/completions", json=chat_body(response_format=fmt))
    assert r.status_code == 400
    validate(r.json(), "ErrorResponse")
    assert r.json()["error"] == {
        "message": f"Invalid schema for response_format 'person': {said}",
        "type": "invalid_request_error", "param": "response_format", "code": None}
    text = {"format": {"type": "json_schema", "name": "person", "schema": schema,
                       "strict": True}}
    r = http.post("/responses", json={"model": "gpt-4o", "input": "Who?", "text": text})
    assert r.status_code == 400 and r.json()["error"]["param"] == "text.format.schema"
    assert r.json()["error"]["message"].endswith(said)
    # Not strict: the server takes the schema as a hint, as OpenAI does.
    loose = {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}
    assert http.post("/chat/completions", json=chat_body(response_format=loose)
                     ).status_code == 200


def test_a_scripted_chat_refusal_streamed_and_not(http: httpx.Client,
                                                  srv: FakeServer) -> None:
    srv.plan(Behaviour(refusal=REFUSAL), Behaviour(refusal=REFUSAL))
    r = http.post("/chat/completions", json=chat_body(logprobs=True))
    validate(r.json(), "CreateChatCompletionResponse")
    message = r.json()["choices"][0]["message"]
    assert message["content"] is None and message["refusal"] == REFUSAL
    assert r.json()["choices"][0]["logprobs"] is None
    assert r.json()["usage"]["completion_tokens"] == len(REFUSAL.split())
    chunks = chat_stream(http, chat_body())
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": None, "refusal": ""}
    assert "".join(d.get("refusal") or "" for d in deltas) == REFUSAL
    assert not any(d.get("content") for d in deltas)


def test_a_scripted_responses_refusal_streamed_and_not(http: httpx.Client,
                                                       srv: FakeServer) -> None:
    srv.plan(Behaviour(refusal=REFUSAL), Behaviour(refusal=REFUSAL))
    body = {"model": "gpt-4o", "input": "Who?", "text": {"format": TEXT_FORMAT}}
    r = http.post("/responses", json=body)
    validate(r.json(), "Response")
    assert r.json()["output"][0]["content"] == [{"type": "refusal", "refusal": REFUSAL}]
    events = sse(http.post("/responses", json={**body, "stream": True}).text)
    for name, data in events:
        validate(data, event_schemas()[name])
    kinds = [name for name, _ in events]
    assert "response.output_text.delta" not in kinds
    assert "".join(d["delta"] for n, d in events if n == "response.refusal.delta") == REFUSAL
    done = next(d for n, d in events if n == "response.refusal.done")
    assert done["refusal"] == REFUSAL
    assert events[-1][1]["response"]["output"][0]["content"][0]["refusal"] == REFUSAL
