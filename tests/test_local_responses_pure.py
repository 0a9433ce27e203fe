"""The Responses API on the embedded engine, its pure halves: the request planned as chat,
and chat answers and streams rebuilt as a ``Response`` and its events (no engine here)."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
from openapi_schema import validate

from gptmagic.local import adapt
from gptmagic.local.checks import LocalRequestError
from gptmagic.local.response_events import ResponseStream, build_response
from gptmagic.local.responses import chat_messages, prepare_response

prepare_chat = functools.partial(adapt.prepare_chat, gguf_path="/x.gguf")
TOOLS = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]


def plan(**body: Any) -> Any:
    return prepare_response({"model": "local", "input": "hi", **body}, prepare_chat)


def chat_body(**body: Any) -> dict[str, Any]:
    result: dict[str, Any] = plan(**body).chat.bodies[0]
    return result


def test_a_string_input_with_instructions_is_a_system_then_a_user_message() -> None:
    body = chat_body(instructions="Be brief.", max_output_tokens=7, temperature=0.5, top_p=0.9)
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "hi"}]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (7, 0.5, 0.9)
    assert "logprobs" not in body and "stream" not in body


def test_items_become_chat_messages_with_tool_calls_and_outputs() -> None:
    items = {"input": [
        {"role": "developer", "content": "Rules."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Q"}]},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{\"a\": 1}"},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
        {"type": "function_call_output", "call_id": "c2",
         "output": [{"type": "input_text", "text": "7"}]},
    ]}
    messages, sources = chat_messages(items)
    assert sources == ["input[0]", "input[1]", "input[2]", "input[5]", "input[6]"]
    assert messages == [
        {"role": "developer", "content": "Rules."},
        {"role": "user", "content": [{"type": "text", "text": "Q"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look."}],
         "tool_calls": [
             {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
             {"id": "c2", "type": "function", "function": {"name": "g",
                                                           "arguments": "{\"a\": 1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "7"}]},
    ]
    # ... which the engine gets written as text (gptmagic.local.toolcalls.render_history).
    assert chat_body(**items)["messages"][2:] == [
        {"role": "assistant", "content": 'Let me look.\nI call f({}) and g({"a": 1}).'},
        {"role": "user", "content": "f returned: 42"}, {"role": "user", "content": "g returned: 7"}]


def test_function_tools_and_choices_are_chat_s() -> None:
    """Responses' flat function tools and tool choices, in chat's nested shapes."""
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": None},
             {"type": "function", "name": "g"}]
    sent = plan(tools=tools, tool_choice={"type": "function", "name": "g"},
                parallel_tool_calls=False).chat
    assert sent.tools is not None and sent.tools.names == ("g",) and sent.tools.required
    assert not sent.tools.parallel and "tools" not in sent.bodies[0]
    assert sent.bodies[0]["json_schema"]["properties"]["tool_calls"]["maxItems"] == 1
    allowed = plan(tools=tools, tool_choice={"type": "allowed_tools", "mode": "auto", "tools": [
        {"type": "function", "name": "f"}]}).chat.tools
    assert allowed is not None and allowed.names == ("f",) and not allowed.required
    assert plan(tools=tools, tool_choice="none").chat.tools is None


def test_format_logprobs_and_stream_map_to_chat() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = chat_body(text={"format": {"type": "json_schema", "name": "x", "schema": schema,
                                      "strict": True}},
                     include=["message.output_text.logprobs"], top_logprobs=3, stream=True)
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "x", "schema": schema, "strict": True}}
    assert body["logprobs"] is True and body["top_logprobs"] == 3
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert chat_body(text={"format": {"type": "json_object"}})["response_format"] == {
        "type": "json_object"}
    assert "response_format" not in chat_body(text={"format": {"type": "text"}})


def test_what_the_response_echoes() -> None:
    echo = plan(store=True, metadata={"k": "v"}, instructions="I", temperature=0,
                safety_identifier="u1", reasoning={"effort": "none"}).echo
    assert echo["store"] is False  # accepted, but the engine keeps nothing
    assert echo["metadata"] == {"k": "v"} and echo["instructions"] == "I"
    assert echo["temperature"] == 0 and echo["top_p"] == 1.0
    assert echo["safety_identifier"] == "u1" and echo["reasoning"]["effort"] == "none"


@pytest.mark.parametrize("body, param", [
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"background": True}, "background"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ({"reasoning": {"effort": "high"}}, "reasoning.effort"),
    ({"reasoning": {"summary": "auto"}}, "reasoning.summary"),
    ({"text": {"verbosity": "low"}}, "text.verbosity"),
    ({"text": {"format": {"type": "xml"}}}, "text.format"),
    ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format"),
    ({"truncation": "auto"}, "truncation"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"include": ["message.output_text.logprobs"], "top_logprobs": 21}, "top_logprobs"),
    ({"include": ["nonsense"]}, "include[0]"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"top_p": -1}, "top_p"),
    ({"metadata": {"k": 1}}, "metadata"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "name": "a b"}]}, "tools[0].name"),
    ({"tool_choice": "required"}, "tool_choice"),  # no tools to call
    ({"tools": TOOLS, "tool_choice": {"type": "web_search_preview"}}, "tool_choice.type"),
    ({"tools": TOOLS, "tool_choice": {"type": "function"}}, "tool_choice.name"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "name": "g"}}, "tool_choice.name"),
    ({"tools": TOOLS, "tool_choice": {"type": "allowed_tools", "mode": "auto",
                                      "tools": [{"type": "mcp"}]}}, "tool_choice.tools[0].type"),
    ({"tools": TOOLS, "tool_choice": {"type": "allowed_tools", "mode": "x", "tools": []}},
     "tool_choice"),
    ({"tools": TOOLS, "include": ["message.output_text.logprobs"]}, "include"),
    ({"input": [{"role": "user", "content": "hi"},
                {"type": "function_call_output", "call_id": "c1", "output": "42"}]},
     "input[1].call_id"),
    ({"frequency_penalty": 1}, "frequency_penalty"),
    ({"input": 5}, "input"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "u"}]}]},
     "input[0].content[0]"),
    ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
     "input[0].call_id"),
    ({"input": None}, "input"),
    ({"model": "gpt-5"}, "model"),
])
def test_refused_with_a_400_naming_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(LocalRequestError) as caught:
        prepare_response({"model": "local", "input": "hi", **body}, prepare_chat)
    assert caught.value.param == param, str(caught.value)
    assert caught.value.status == (404 if param == "model" else 400)
    validate(caught.value.body(), "ErrorResponse")


# -- answers -------------------------------------------------------------------------------

LOGPROBS = {"content": [
    {"token": "Hi", "logprob": -0.5, "bytes": [72, 105],
     "top_logprobs": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}]},
    {"token": "!", "logprob": -1.0, "bytes": None, "top_logprobs": []}], "refusal": None}
USAGE = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12,
         "prompt_tokens_details": {"cached_tokens": 4}}


def chat_answer(finish: str = "stop", **message: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-abc", "object": "chat.completion", "created": 5, "model": "m",
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": LOGPROBS,
                         "message": {"role": "assistant", "content": "Hi!", **message}}],
            "usage": USAGE}


def test_a_whole_answer_is_a_valid_response_with_usage_and_logprobs() -> None:
    p = plan(include=["message.output_text.logprobs"], top_logprobs=1, metadata={"a": "b"})
    response = build_response(p, chat_answer(), now=9.0)
    validate(response, "Response")
    assert response["id"] == "resp_abc" and response["status"] == "completed"
    assert response["completed_at"] == 9 and response["metadata"] == {"a": "b"}
    assert response["usage"] == {
        "input_tokens": 10, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 12}
    part = response["output"][0]["content"][0]
    assert part["text"] == "Hi!" and [e["token"] for e in part["logprobs"]] == ["Hi", "!"]
    assert part["logprobs"][1]["bytes"] == [33]  # missing bytes are the token's own


def test_a_reply_cut_by_max_output_tokens_is_incomplete_and_logprobs_only_when_included() -> None:
    response = build_response(plan(), chat_answer("length"), now=9.0)
    validate(response, "Response")
    assert response["status"] == "incomplete" and response["completed_at"] is None
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"
    assert response["output"][0]["content"][0]["logprobs"] == []


def test_tool_calls_are_function_call_items() -> None:
    calls = [{"id": "call_1", "type": "function",
              "function": {"name": "f", "arguments": "{\"x\": 1}"}}]
    tools = [{"type": "function", "name": "f"}]  # as the SDK sends it: no strict, no parameters
    response = build_response(plan(tools=tools),
                              chat_answer("tool_calls", content=None, tool_calls=calls), now=1.0)
    validate(response, "Response")
    assert response["tools"] == [{"type": "function", "name": "f", "strict": None,
                                  "parameters": None}]
    assert [item["type"] for item in response["output"]] == ["function_call"]
    assert response["output"][0]["call_id"] == "call_1"
    assert response["output"][0]["arguments"] == "{\"x\": 1}"


def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None
          ) -> dict[str, Any]:
    return {"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 5, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                         "logprobs": logprobs}]}


def run_stream(p: Any, chunks: list[dict[str, Any]], usage: bool = True
               ) -> list[dict[str, Any]]:
    tail = [{"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 5,
             "model": "m", "choices": [], "usage": USAGE}] if usage else []
    stream = ResponseStream(p, lambda c: [c], lambda: tail, clock=lambda: 9.0)
    events = [e for c in chunks for e in stream.feed(c)] + stream.finish()
    for event in events:
        validate(event, "ResponseStreamEvent")
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def test_a_stream_is_openais_event_sequence() -> None:
    lp1 = {"content": LOGPROBS["content"][:1], "refusal": None}
    lp2 = {"content": LOGPROBS["content"][1:], "refusal": None}
    events = run_stream(plan(include=["message.output_text.logprobs"], top_logprobs=1), [
        chunk({"role": "assistant", "content": None}),
        chunk({"content": "Hi"}, logprobs=lp1), chunk({"content": "!"}, logprobs=lp2),
        chunk({}, "stop")])
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert [e["delta"] for e in events[4:6]] == ["Hi", "!"]
    assert events[4]["logprobs"] == [{"token": "Hi", "logprob": -0.5,
                                      "top_logprobs": [{"token": "Hi", "logprob": -0.5}]}]
    final = events[-1]["response"]
    validate(final, "Response")
    assert final["output"][0]["content"][0]["text"] == "Hi!" == events[6]["text"]
    assert len(final["output"][0]["content"][0]["logprobs"]) == 2
    assert final["usage"]["output_tokens"] == 2 and final["completed_at"] == 9


#: A token that is part of a character, then the one that ends it: "é" as two tokens.
SPLIT_E = {"content": [
    {"token": "bytes:\\xc3", "logprob": -0.25, "bytes": [195], "top_logprobs": []},
    {"token": "bytes:\\xa9", "logprob": -0.01, "bytes": [169], "top_logprobs": []}],
    "refusal": None}


def test_entries_sent_after_their_text_come_as_a_delta_with_no_text() -> None:
    """From a reply's first non-ASCII token on, the chat stream sends the text at once and
    its entries in one chunk with no text before the finish; none may be lost."""
    lp1 = {"content": LOGPROBS["content"][:1], "refusal": None}
    events = run_stream(plan(include=["message.output_text.logprobs"], top_logprobs=1), [
        chunk({"role": "assistant", "content": None}),
        chunk({"content": "Hi"}, logprobs=lp1), chunk({"content": "é"}),
        chunk({}, logprobs=SPLIT_E), chunk({}, "length")])
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [e["delta"] for e in deltas] == ["Hi", "é", ""]
    assert [len(e["logprobs"]) for e in deltas] == [1, 0, 2]
    streamed = [lp for e in deltas for lp in e["logprobs"]]
    assert [e["token"] for e in streamed] == ["Hi", "bytes:\\xc3", "bytes:\\xa9"]
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == "Hié" and done["logprobs"] == streamed
    part = events[-1]["response"]["output"][0]["content"][0]
    assert [e["bytes"] for e in part["logprobs"]] == [[72, 105], [195], [169]]
    # Not asked for: such a chunk adds no event.
    plain = run_stream(plan(), [chunk({"content": "é"}), chunk({}, logprobs=SPLIT_E),
                                chunk({}, "stop")])
    assert [e["delta"] for e in plain if e["type"] == "response.output_text.delta"] == ["é"]


def test_a_reply_of_only_entries_opens_its_message_with_them() -> None:
    """A reply of only the end-of-text token: no text, one entry (as the whole answer has)."""
    end = {"content": [{"token": "", "logprob": -0.1, "bytes": [], "top_logprobs": []}],
           "refusal": None}
    events = run_stream(plan(include=["message.output_text.logprobs"]), [
        chunk({"role": "assistant", "content": None}), chunk({}, logprobs=end),
        chunk({}, "stop")])
    kinds = [e["type"] for e in events]
    assert kinds.count("response.output_item.added") == 1
    assert kinds.count("response.output_text.delta") == 1
    part = events[-1]["response"]["output"][0]["content"][0]
    assert part["text"] == "" and part["logprobs"] == end["content"]


def test_a_stream_cut_by_max_output_tokens_ends_incomplete() -> None:
    events = run_stream(plan(), [chunk({"content": "Hi"}), chunk({}, "length")])
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[4]["logprobs"] == []  # not asked for


def test_an_empty_reply_still_has_its_message() -> None:
    events = run_stream(plan(), [chunk({"role": "assistant"}), chunk({}, "stop")])
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == ""
    assert [e["type"] for e in events].count("response.output_item.done") == 1


def test_streamed_tool_calls_are_function_call_items() -> None:
    events = run_stream(plan(), [
        chunk({"content": "Calling."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "f", "arguments": "{\"x\""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        chunk({}, "tool_calls")])
    kinds = [e["type"] for e in events]
    assert kinds.index("response.output_item.done") < kinds.index(
        "response.function_call_arguments.delta")  # the message closes first
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["arguments"] == "{\"x\": 1}" and done["output_index"] == 1
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["message", "function_call"]


def test_an_engine_failure_mid_stream_is_an_error_then_response_failed() -> None:
    p = plan()
    stream = ResponseStream(p, lambda c: [c], lambda: [], clock=lambda: 9.0)
    events = stream.feed(chunk({"content": "Hi"}))
    events += stream.fail(adapt.error_body("The local engine's stream broke off: x",
                                           type="server_error"))
    events += stream.finish()  # nothing more after a failure
    for event in events:
        validate(event, "ResponseStreamEvent")
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-1]["response"]["error"]["code"] == "server_error"
    assert "broke off" in events[-2]["message"]
    assert json.dumps(events)  # plain JSON all through
