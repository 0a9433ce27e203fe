"""The fake server's scripted tool calls (chat and Responses, streamed or not) follow
OpenAI's published spec, and a stream carries what the whole reply does."""

from __future__ import annotations

import json

import httpx
import pytest
from fakeserver import Behaviour, FakeServer
from openapi_schema import validate
from test_responses_fake import event_schemas, sse

TOOL = {"type": "function", "function": {"name": "get_weather", "strict": True, "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
    "additionalProperties": False}}}
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "weather in Paris"}],
        "tools": [TOOL]}
RESPONSES = {"model": "fake-model", "input": "weather in Paris",
             "tools": [{"type": "function", **TOOL["function"]}]}
CALLS = {
    "one": [("get_weather", {"city": "Paris"})],
    "parallel": [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})],
    "malformed": [("get_weather", '{"city": "Par')],
    "unknown": [("get_time", {"zone": "UTC"})],
}


def wire(calls: list) -> list[tuple[str, str]]:
    return [(n, a if isinstance(a, str) else json.dumps(a)) for n, a in calls]


def chat_stream_calls(text: str) -> tuple[list[tuple[str, str]], str | None]:
    """(name, arguments) of each call a chat stream folded, and its finish_reason."""
    calls: dict[int, list[str]] = {}
    finish = None
    for line in text.split("\n"):
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line.removeprefix("data: "))
        validate(chunk, "CreateChatCompletionStreamResponse")
        for choice in chunk["choices"]:
            finish = choice["finish_reason"] or finish
            for d in choice["delta"].get("tool_calls") or []:
                got = calls.setdefault(d["index"], ["", ""])
                got[0] += d.get("function", {}).get("name", "")
                got[1] += d.get("function", {}).get("arguments", "")
    return [(n, a) for n, a in (calls[k] for k in sorted(calls))], finish


@pytest.mark.parametrize("case", list(CALLS))
def test_chat_tool_calls_follow_the_spec(http: httpx.Client, srv: FakeServer, case: str) -> None:
    validate(CHAT, "CreateChatCompletionRequest")
    srv.plan(Behaviour(tool_calls=CALLS[case]), Behaviour(tool_calls=CALLS[case]))
    whole = http.post("/chat/completions", json=CHAT).json()
    validate(whole, "CreateChatCompletionResponse")
    choice = whole["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    got = [(c["function"]["name"], c["function"]["arguments"])
           for c in choice["message"]["tool_calls"]]
    assert got == wire(CALLS[case])
    assert len({c["id"] for c in choice["message"]["tool_calls"]}) == len(got)
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    assert chat_stream_calls(http.post("/chat/completions", json=body).text) == (
        wire(CALLS[case]), "tool_calls")


@pytest.mark.parametrize("case", list(CALLS))
def test_responses_tool_calls_follow_the_spec(http: httpx.Client, srv: FakeServer,
                                              case: str) -> None:
    validate(RESPONSES, "CreateResponse")
    srv.plan(Behaviour(tool_calls=CALLS[case]), Behaviour(tool_calls=CALLS[case]))
    whole = http.post("/responses", json=RESPONSES).json()
    validate(whole, "Response")
    items = whole["output"]
    assert [(i["type"], i["name"], i["arguments"]) for i in items] == [
        ("function_call", n, a) for n, a in wire(CALLS[case])]
    events = sse(http.post("/responses", json={**RESPONSES, "stream": True}).text)
    for name, data in events:
        validate(data, event_schemas()[name])
    deltas: dict[str, str] = {}
    for name, data in events:
        if name == "response.function_call_arguments.delta":
            deltas[data["item_id"]] = deltas.get(data["item_id"], "") + data["delta"]
    assert list(deltas.values()) == [a for _, a in wire(CALLS[case])]
    final = events[-1][1]["response"]["output"]
    assert [(i["name"], i["arguments"]) for i in final] == wire(CALLS[case])
    assert len({i["call_id"] for i in final}) == len(final)


def test_tool_results_are_answered_on_both_apis(http: httpx.Client) -> None:
    """After tool results, the reply says what they were (so a loop's test sees them)."""
    messages = [*CHAT["messages"],
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{}"}},
                    {"id": "c2", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "c2", "content": "rain"}]
    body = {**CHAT, "messages": messages}
    validate(body, "CreateChatCompletionRequest")
    reply = http.post("/chat/completions", json=body).json()
    assert reply["choices"][0]["message"]["content"] == "tool results: sunny | rain"
    items = [{"role": "user", "content": "weather in Paris"},
             {"type": "function_call", "call_id": "c1", "name": "get_weather",
              "arguments": "{}"},
             {"type": "function_call_output", "call_id": "c1", "output": "sunny"}]
    body = {**RESPONSES, "input": items}
    validate(body, "CreateResponse")
    assert http.post("/responses", json=body).json()["output"][0]["content"][0]["text"] == (
        "tool results: sunny")


@pytest.mark.parametrize("choice, called", [
    ("required", "get_weather"), ({"type": "function", "function": {"name": "get_weather"}},
                                  "get_weather"), ("auto", None), ("none", None)])
def test_a_forced_tool_choice_calls_the_tool_on_chat(http: httpx.Client, choice: object,
                                                    called: str | None) -> None:
    body = {**CHAT, "tool_choice": choice}
    validate(body, "CreateChatCompletionRequest")
    message = http.post("/chat/completions", json=body).json()["choices"][0]["message"]
    got = [c["function"]["name"] for c in message.get("tool_calls") or []]
    assert got == ([called] if called else [])
