"""Tool calls on the embedded engine, the pure halves (no engine): the prompt and grammar a
request with tools becomes, and the JSON reply read back as OpenAI's tool calls or text,
whole and streamed, validated against OpenAI's spec."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from openapi_schema import validate

from gptmagic.core.response import fold_tool_call
from gptmagic.local.adapt import ChatStream, merge_chat, normalise_error, prepare_chat
from gptmagic.local.response_events import ResponseStream
from gptmagic.local.responses import prepare_response
from gptmagic.local.toolreply import ReplyDecoder, decode_message

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {"name": "get_time"}}  # no parameters: none taken
ASK = [{"role": "user", "content": "Weather in Paris?"}]

#: How SmolLM2 writes a call under the grammar: indented, over several lines.
CALLS = ('{\n  "tool_calls": [\n    {\n      "name": "get_weather",\n      "arguments": {\n'
         '        "city": "Par\\u00efs \\"x\\" \\ud83d\\ude00"\n      }\n    },\n'
         '    {"name": "get_time", "arguments": {}}\n  ]\n}')


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": "local", "messages": copy.deepcopy(ASK), **kw}


def ids() -> Any:
    numbers = iter(range(100))
    return lambda: f"call_{next(numbers)}"


# -- the request: prompt and grammar ----------------------------------------------------------


def test_tools_become_a_system_text_and_a_grammar_the_engine_reads() -> None:
    plan = prepare_chat(chat(tools=[WEATHER, TIME], parallel_tool_calls=True))
    body = plan.bodies[0]
    assert plan.tools is not None and plan.tools.names == ("get_weather", "get_time")
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(body)
    system = body["messages"][0]
    assert system["role"] == "system" and body["messages"][1:] == ASK
    assert "- get_weather: Get the current weather in a city. Arguments: " in system["content"]
    # The answer is described, with no placeholder a small model copies ("<your reply>").
    assert system["content"].endswith(
        'Respond in JSON: {"tool_calls": [{"name": "<tool name>", "arguments": {...}}]} to call '
        'a tool when the question needs one, or {"response": ...} where the value is your '
        "whole answer to the user, as a JSON string.")
    assert "<your reply>" not in system["content"]
    schema = body["json_schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    ok = [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                          {"name": "get_time", "arguments": {}}]}, {"response": "Hello"}]
    bad = [{"tool_calls": []}, {"tool_calls": [{"name": "get_weather", "arguments": {}}]},
           {"tool_calls": [{"name": "rm_rf", "arguments": {}}]},
           {"tool_calls": [{"name": "get_time", "arguments": {"x": 1}}]},
           {"response": 1}, {"response": "x", "tool_calls": []}]
    assert all(jsonschema.Draft202012Validator(schema).is_valid(v) for v in ok)
    assert not any(jsonschema.Draft202012Validator(schema).is_valid(v) for v in bad)


@pytest.mark.parametrize(("choice", "parallel", "names", "texts"), [
    ("required", None, ("get_weather", "get_time"), False),
    ({"type": "function", "function": {"name": "get_time"}}, None, ("get_time",), False),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [
        {"type": "function", "function": {"name": "get_weather"}}]}}, False, ("get_weather",),
     True),
])
def test_tool_choice_and_parallel_calls_narrow_the_grammar(choice: Any, parallel: Any,
                                                           names: tuple[str, ...],
                                                           texts: bool) -> None:
    plan = prepare_chat(chat(tools=[WEATHER, TIME], tool_choice=choice,
                             parallel_tool_calls=parallel))
    assert plan.tools is not None and plan.tools.names == names
    schema = jsonschema.Draft202012Validator(plan.bodies[0]["json_schema"])
    assert schema.is_valid({"response": "hi"}) is texts
    one = {"name": names[0], "arguments": {"city": "Oslo"} if names[0] == "get_weather" else {}}
    assert schema.is_valid({"tool_calls": [one]})
    assert schema.is_valid({"tool_calls": [one, one]}) is (parallel is not False)
    others = {"get_weather", "get_time"} - set(names)
    assert not any(schema.is_valid({"tool_calls": [{"name": n, "arguments": {}}]})
                   for n in others)
    described = plan.bodies[0]["messages"][0]["content"]
    assert all(f"- {n}:" in described for n in names)
    assert not any(f"- {n}:" in described for n in others)


def test_none_sends_a_plain_request_and_the_description_joins_the_system_message() -> None:
    plain = prepare_chat(chat(tools=[WEATHER], tool_choice="none"))
    assert plain.tools is None and "json_schema" not in plain.bodies[0]
    assert plain.bodies[0]["messages"] == ASK and "tools" not in plain.bodies[0]
    ruled = prepare_chat(chat(tools=[WEATHER], messages=[
        {"role": "system", "content": "Be brief."}, *ASK])).bodies[0]["messages"]
    assert ruled[0]["content"].startswith("Be brief.\n\nYou can call these tools:")
    assert ruled[1:] == ASK


def test_a_response_format_is_the_text_branch_schema() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": {
        "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}
    plan = prepare_chat(chat(tools=[WEATHER], response_format=fmt))
    assert plan.tools is not None and plan.tools.structured
    assert "response_format" not in plan.bodies[0]
    schema = jsonschema.Draft202012Validator(plan.bodies[0]["json_schema"])
    assert schema.is_valid({"response": {"n": 1}}) and not schema.is_valid({"response": "x"})


# -- the reply: decoded whole ------------------------------------------------------------------


def test_calls_are_openai_tool_calls_with_compact_arguments() -> None:
    message, finish = decode_message(CALLS, "stop", new_id=ids())
    assert finish == "tool_calls" and message["content"] is None
    assert message["tool_calls"] == [
        {"id": "call_0", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city":"Par\\u00efs \\"x\\" \\ud83d\\ude00"}'}},
        {"id": "call_1", "type": "function", "function": {"name": "get_time",
                                                          "arguments": "{}"}}]
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {
        "city": 'Parïs "x" \U0001f600'}


@pytest.mark.parametrize(("text", "finish", "content", "reason"), [
    ('{\n  "response": "Hi \\"you\\"\\n\\u00e9\\ud83d\\ude00"\n}', "stop", 'Hi "you"\né😀', "stop"),
    ('{"response": "It is sun', "length", "It is sun", "length"),
    ('{"resp', "length", "", "length"),  # cut before it chose: says nothing
    ("not JSON at all", "stop", "not JSON at all", "stop"),  # nothing is lost
])
def test_a_text_reply_is_the_content(text: str, finish: str, content: str, reason: str) -> None:
    assert decode_message(text, finish) == ({"content": content}, reason)


def test_a_cut_call_keeps_what_came_and_a_nameless_one_is_dropped() -> None:
    message, finish = decode_message(
        '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Os', "length",
        new_id=ids())
    assert finish == "length"
    assert message["tool_calls"][0]["function"] == {"name": "get_weather",
                                                    "arguments": '{"city":"Os'}
    assert decode_message('{"tool_calls": [{"name": "get_w', "length")[0] == {"content": ""}


def test_a_structured_response_is_its_json_text() -> None:
    message, _ = decode_message('{"response": {\n  "n": 1, "s": "a b"\n}\n}', "stop",
                                structured=True)
    assert message == {"content": '{"n":1,"s":"a b"}'}


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_pieces_join_to_the_whole_whatever_the_cut(size: int) -> None:
    decoder = ReplyDecoder(new_id=ids())
    calls: dict[int, dict[str, Any]] = {}
    for start in range(0, len(CALLS), size):
        for piece in decoder.feed(CALLS[start:start + size]).get("tool_calls", []):
            fold_tool_call(calls, piece)
    assert decoder.finish() == {}
    assert [calls[i] for i in sorted(calls)] == decode_message(CALLS, "stop",
                                                               new_id=ids())[0]["tool_calls"]


# -- through the adapter: merged answers and streams, checked against the spec -----------------

ENVELOPE = {"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 5,
            "model": "m", "system_fingerprint": "b0"}
USAGE = {"prompt_tokens": 150, "completion_tokens": 40, "total_tokens": 190}


def engine_chunks(text: str, finish: str = "stop", size: int = 4) -> list[dict[str, Any]]:
    """The engine's stream of ``text``: a role chunk, pieces, a finish, the usage."""
    def one(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {**ENVELOPE, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}
    pieces = [one({"content": text[i:i + size]}) for i in range(0, len(text), size)]
    return [one({"role": "assistant", "content": None}), *pieces, one({}, finish),
            {**ENVELOPE, "choices": [], "usage": USAGE}]


def test_a_whole_answer_with_calls_follows_the_spec() -> None:
    plan = prepare_chat(chat(tools=[WEATHER, TIME]))
    engine = {**ENVELOPE, "object": "chat.completion", "usage": USAGE, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": CALLS},
         "finish_reason": "stop"}]}
    answer = merge_chat(plan, [engine])
    validate(answer, "CreateChatCompletionResponse")
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert [c["function"]["name"] for c in choice["message"]["tool_calls"]] == [
        "get_weather", "get_time"]
    assert all(c["id"].startswith("call_") for c in choice["message"]["tool_calls"])
    assert answer["usage"]["prompt_tokens"] == 150  # what the engine processed, tools and all


def test_a_stream_with_calls_follows_the_spec_and_joins_to_the_whole() -> None:
    plan = prepare_chat(chat(tools=[WEATHER, TIME], stream=True,
                             stream_options={"include_usage": True}))
    stream = ChatStream(plan)
    out = [c for chunk in engine_chunks(CALLS) for c in stream.feed(chunk)] + stream.finish()
    for chunk in out:
        validate(chunk, "CreateChatCompletionStreamResponse")
    choices = [c["choices"][0] for c in out if c["choices"]]
    assert choices[0]["delta"] == {"role": "assistant", "content": None}
    assert all(c["delta"] or c["finish_reason"] for c in choices)  # no empty chunks
    assert [c["finish_reason"] for c in choices][-1] == "tool_calls"
    calls: dict[int, dict[str, Any]] = {}
    for choice in choices:
        assert "content" not in choice["delta"] or choice["delta"]["content"] is None
        for piece in choice["delta"].get("tool_calls", []):
            fold_tool_call(calls, piece)
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in calls.values()] == [("get_weather", {"city": 'Parïs "x" \U0001f600'}),
                                         ("get_time", {})]
    assert out[-1]["usage"] == {**USAGE, "prompt_tokens_details": {"cached_tokens": 0}}


def test_a_streamed_text_reply_streams_its_text() -> None:
    plan = prepare_chat(chat(tools=[WEATHER], stream=True))
    stream = ChatStream(plan)
    out = [c for chunk in engine_chunks('{"response": "Hello there, friend."}', size=3)
           for c in stream.feed(chunk)]
    for chunk in out:
        validate(chunk, "CreateChatCompletionStreamResponse")
    texts = [c["choices"][0]["delta"].get("content") for c in out]
    assert "".join(t for t in texts if t) == "Hello there, friend."
    assert sum(1 for t in texts if t) > 3  # piece by piece, not at the end
    assert out[-1]["choices"][0]["finish_reason"] == "stop"


def test_responses_stream_calls_as_function_call_events() -> None:
    planned = prepare_response({"model": "local", "input": "Weather in Paris?", "stream": True,
                                "tools": [{"type": "function", "name": "get_weather",
                                           "parameters": WEATHER["function"]["parameters"]}],
                                "tool_choice": "required"},
                               prepare_chat)
    chat_stream = ChatStream(planned.chat)
    events_of = ResponseStream(planned, chat_stream.feed, chat_stream.finish, lambda: 9.0)
    text = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}'
    events = [e for c in engine_chunks(text) for e in events_of.feed(c)] + events_of.finish()
    for event in events:
        validate(event, "ResponseStreamEvent")
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert events[2]["item"]["type"] == "function_call" and events[2]["item"]["arguments"] == ""
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert "".join(deltas) == done["arguments"] == '{"city":"Paris"}' and len(deltas) > 1
    final = events[-1]["response"]
    validate(final, "Response")
    assert kinds[-1] == "response.completed"
    assert [i["type"] for i in final["output"]] == ["function_call"]
    assert final["output"][0]["call_id"].startswith("call_")


def test_a_pydantic_schema_s_refs_still_resolve_inside_the_grammar() -> None:
    """Pydantic puts nested models in ``$defs`` and points at them from the parameters' root."""
    greet = {"type": "function", "function": {"name": "greet", "parameters": {
        "$defs": {"Who": {"type": "object", "properties": {"name": {"type": "string"}},
                          "required": ["name"]}},
        "type": "object", "properties": {"who": {"$ref": "#/$defs/Who"}}, "required": ["who"]}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": greet["function"][
        "parameters"]}}
    schema = prepare_chat(chat(tools=[greet, WEATHER], response_format=fmt)).bodies[0][
        "json_schema"]
    check = jsonschema.Draft202012Validator(schema)
    assert check.is_valid({"tool_calls": [{"name": "greet", "arguments": {"who": {"name": "A"}}}]})
    assert not check.is_valid({"tool_calls": [{"name": "greet", "arguments": {"who": {}}}]})
    assert check.is_valid({"response": {"who": {"name": "A"}}})
    assert not check.is_valid({"response": {"who": 1}})


def test_a_parameters_schema_the_engine_cannot_compile_is_named() -> None:
    error = normalise_error(400, {"error": {"type": "invalid_request_error", "message": (
        "Unable to generate parser for this template. Automatic parser generation failed: "
        "JSON schema error at #/$defs/tool-greet/properties/a: cannot resolve $ref "
        "#/$defs/tool-greet/nope, nope not found")}})["error"]
    assert error["param"] == "tools"
    assert error["message"] == (
        "In 'tools', the 'parameters' of 'greet' is a JSON schema the local engine cannot "
        "turn into a grammar: cannot resolve $ref #/nope, nope not found (at #/properties/a). "
        "Simplify that schema, or use a hosted model.")
