"""Tool calls answered for real by the embedded engine (SmolLM2, grammar-constrained).

Against the real engine on loopback: every answer and stream chunk is checked
against OpenAI's spec, every call's arguments against the tool's own schema.
A call, the tool's result and the model's final answer go round once over
chat and once over ``/v1/responses``, whole and streamed, and once through
the official ``openai`` SDK. ``temperature: 0`` keeps the small model's
choices the same from run to run; few requests, each short.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from conftest_local import local_client, local_engine, local_url  # noqa: F401
from openapi_schema import validate

import gptmagic
from gptmagic.catalog.tokens import TokenCount
from gptmagic.client import Client
from gptmagic.local.engine import LocalEngine

PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"], "additionalProperties": False}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": PARAMETERS}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Get the current time in a time zone.",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}},
                   "required": ["zone"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
#: What the tool "returns": the final answer must have read it.
RESULT = "21 C and sunny"
BASE = {"model": "local", "temperature": 0, "max_tokens": 60}


def post(client: httpx.Client, **body: Any) -> dict[str, Any]:
    resp = client.post("/chat/completions", json={**BASE, **body})
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    validate(answer, "CreateChatCompletionResponse")
    return answer


def streamed(client: httpx.Client, **body: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A stream's chunks (each valid against the spec) folded into one message."""
    with client.stream("POST", "/chat/completions", json={**BASE, **body, "stream": True,
                                                          "stream_options": {
                                                              "include_usage": True}}) as resp:
        assert resp.status_code == 200, resp.read()
        datas = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    message: dict[str, Any] = {"role": "assistant", "content": None}
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
        for choice in chunk["choices"]:
            delta = choice["delta"]
            if delta.get("content"):
                message["content"] = (message["content"] or "") + delta["content"]
            for piece in delta.get("tool_calls") or []:
                if piece["index"] not in calls:  # the first piece names the call
                    assert piece["id"].startswith("call_") and piece["type"] == "function"
                    calls[piece["index"]] = {"id": piece["id"], "type": "function", "function": {
                        "name": piece["function"]["name"], "arguments": ""}}
                calls[piece["index"]]["function"]["arguments"] += \
                    piece["function"].get("arguments") or ""
            finish = choice["finish_reason"] or finish
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {"message": message, "finish_reason": finish, "usage": chunks[-1]["usage"]}, chunks


def checked_calls(choice: dict[str, Any], *tools: dict[str, Any]) -> list[tuple[str, Any]]:
    """A choice's tool calls as (name, arguments), each valid against its tool's parameters."""
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    out = []
    for call in choice["message"]["tool_calls"]:
        assert call["id"].startswith("call_") and call["type"] == "function"
        arguments = json.loads(call["function"]["arguments"])
        jsonschema.validate(arguments, schemas[call["function"]["name"]])
        out.append((call["function"]["name"], arguments))
    return out


def answered(messages: list[dict[str, Any]], message: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation after ``message``'s calls, each answered with :data:`RESULT`."""
    return [*messages, message, *[{"role": "tool", "tool_call_id": call["id"], "content": RESULT}
                                  for call in message["tool_calls"]]]


def test_a_call_its_result_and_the_answer(local_client: httpx.Client) -> None:  # noqa: F811
    """``required``: a schema-valid call; with the result sent back, ``auto`` answers in text."""
    first = post(local_client, messages=ASK, tools=[WEATHER], tool_choice="required",
                 parallel_tool_calls=False)
    choice = first["choices"][0]
    assert checked_calls(choice, WEATHER) == [("get_weather", {"city": "Paris"})]
    # The tools' description is part of the prompt the engine processed, and counted so.
    counted = local_client.post("/tokenize", json={
        "messages": ASK, "tools": [WEATHER], "tool_choice": "required",
        "parallel_tool_calls": False}).json()["count"]
    assert first["usage"]["prompt_tokens"] == counted
    plain = local_client.post("/tokenize", json={"messages": ASK}).json()["count"]
    assert counted > plain + 40
    second = post(local_client, messages=answered(ASK, choice["message"]), tools=[WEATHER])
    final = second["choices"][0]
    assert final["finish_reason"] == "stop" and "tool_calls" not in final["message"]
    assert "21" in final["message"]["content"]  # it read what the tool returned


def test_streamed_a_call_its_result_and_the_answer(local_client: httpx.Client) -> None:  # noqa: F811
    """``auto``, streamed: the call comes as OpenAI's tool-call deltas, the answer as text."""
    first, chunks = streamed(local_client, messages=ASK, tools=[WEATHER],
                             parallel_tool_calls=False)
    assert checked_calls(first, WEATHER) == [("get_weather", {"city": "Paris"})]
    pieces = [p for c in chunks for ch in c["choices"] for p in ch["delta"].get("tool_calls", [])]
    assert len(pieces) > 2  # the arguments arrive in pieces, not at the end
    assert first["usage"]["completion_tokens"] > 0
    second, chunks = streamed(local_client, messages=answered(ASK, first["message"]),
                              tools=[WEATHER])
    assert second["finish_reason"] == "stop" and "21" in second["message"]["content"]
    assert sum(1 for c in chunks for ch in c["choices"] if ch["delta"].get("content")) > 2


def test_a_named_tool_is_the_one_called(local_client: httpx.Client) -> None:  # noqa: F811
    """Asked about the weather, told to call get_time: get_time it is. Room for two calls:
    when the engine's slots hold other work, the model sometimes asks for the time twice
    (measured: 1 reply in 12 after unrelated requests), which 60 tokens cut."""
    answer, _ = streamed(local_client, messages=ASK, tools=[WEATHER, TIME], max_tokens=150,
                         tool_choice={"type": "function", "function": {"name": "get_time"}})
    calls = checked_calls(answer, WEATHER, TIME)
    assert calls and {name for name, _ in calls} == {"get_time"}


def test_parallel_calls_off_is_one_call(local_client: httpx.Client) -> None:  # noqa: F811
    ask = [{"role": "user", "content": "What are the weather and the time in Paris?"}]
    many = post(local_client, messages=ask, tools=[WEATHER, TIME], tool_choice="required",
                max_tokens=150)
    assert len(checked_calls(many["choices"][0], WEATHER, TIME)) > 1  # what it does if let
    one = post(local_client, messages=ask, tools=[WEATHER, TIME], tool_choice="required",
               parallel_tool_calls=False)
    assert len(checked_calls(one["choices"][0], WEATHER, TIME)) == 1


def test_count_tokens_counts_the_tools_description(local_engine: LocalEngine,  # noqa: F811
                                                   local_client: httpx.Client) -> None:  # noqa: F811
    """A dry run's count with tools is the request's prompt, the tools' share apart.

    With no system message of the user's, the tools' description is the system
    message, and the template's default system prompt is not in the prompt: the
    breakdown counts the prompt sent (a dry run's counter showed message 0 with the
    default prompt in it, and said so, above a total that had none)."""
    system = [{"role": "system", "content": "Be brief."}, *ASK]

    async def counts() -> list[TokenCount]:
        async with Client("local", engine=local_engine) as client:
            return [await client.count_tokens(m, "local", tools=t)
                    for m in (ASK, system) for t in ([WEATHER, TIME], None)]
    with_tools, plain, sys_tools, sys_plain = asyncio.run(counts())
    sent = post(local_client, messages=ASK, tools=[WEATHER, TIME], max_tokens=1)
    assert with_tools.total == sent["usage"]["prompt_tokens"] and with_tools.exact
    for counted in (with_tools, plain, sys_tools, sys_plain):  # every token in one row
        assert counted.total == (sum(m.total for m in counted.messages)
                                 + counted.reply_priming + counted.tools)
    assert "default system prompt (counted in message 0)" in plain.note
    default = plain.messages[0].overhead - with_tools.messages[0].overhead
    assert default > 10  # "You are a helpful AI assistant named SmolLM, ..."
    assert with_tools.messages[0].content == plain.messages[0].content
    assert "in place of the engine's default system prompt" in with_tools.note
    assert "(counted in message 0)" not in with_tools.note
    assert with_tools.tools == with_tools.total - plain.total + default > 50
    # A system message of the user's takes the description at its end.
    assert sys_tools.tools == sys_tools.total - sys_plain.total > 50
    assert sys_tools.messages == sys_plain.messages and not sys_tools.note


def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return RESULT


def test_count_tokens_takes_functions_as_chat_does(local_engine: LocalEngine) -> None:  # noqa: F811
    """On the engine too, a function is counted as the definition ``chat`` sends for it."""
    spec = gptmagic.tool_from(get_weather).chat_spec()

    async def counts() -> tuple[TokenCount, TokenCount]:
        async with Client("local", engine=local_engine) as client:
            return (await client.count_tokens(ASK, "local", tools=[get_weather]),
                    await client.count_tokens(ASK, "local", tools=[spec]))
    given_fn, given_spec = asyncio.run(counts())
    assert given_fn == given_spec and given_fn.tools > 50
    # The sync facade the notebooks use, on the shared engine.
    assert gptmagic.count_tokens(ASK, "local", tools=[get_weather]).tools == given_fn.tools


def test_a_result_for_no_call_is_a_400_naming_it(local_client: httpx.Client) -> None:  # noqa: F811
    resp = local_client.post("/chat/completions", json={**BASE, "messages": [
        *ASK, {"role": "tool", "tool_call_id": "call_x", "content": RESULT}]})
    assert resp.status_code == 400
    validate(resp.json(), "ErrorResponse")
    assert resp.json()["error"]["param"] == "messages[1].tool_call_id"


# -- /v1/responses ------------------------------------------------------------------------------

RESPONSES_TOOL = {"type": "function", "name": "get_weather", "strict": True,
                  "description": WEATHER["function"]["description"], "parameters": PARAMETERS}
RESPONSES_BASE = {"model": "local", "temperature": 0, "max_output_tokens": 60,
                  "tools": [RESPONSES_TOOL], "parallel_tool_calls": False}


def respond(client: httpx.Client, stream: bool, **body: Any) -> dict[str, Any]:
    """A Response, whole or rebuilt from its events (each valid against the spec)."""
    resp = client.post("/responses", json={**RESPONSES_BASE, **body, "stream": stream})
    assert resp.status_code == 200, resp.text
    if not stream:
        validate(resp.json(), "Response")
        answer: dict[str, Any] = resp.json()
        return answer
    events = [json.loads(line[6:]) for line in resp.text.splitlines()
              if line.startswith("data: ")]
    for event in events:
        validate(event, "ResponseStreamEvent")
    kinds = [e["type"] for e in events]
    final: dict[str, Any] = events[-1]["response"]
    for index, item in enumerate(final["output"]):
        if item["type"] == "function_call":  # announced, streamed, done: as OpenAI does
            added = next(e for e in events if e["type"] == "response.output_item.added"
                         and e.get("output_index") == index)
            assert added["item"]["name"] == item["name"] and added["item"]["arguments"] == ""
            deltas = [e["delta"] for e in events if e.get("output_index") == index and
                      e["type"] == "response.function_call_arguments.delta"]
            done = next(e for e in events if e.get("output_index") == index and
                        e["type"] == "response.function_call_arguments.done")
            assert "".join(deltas) == done["arguments"] == item["arguments"]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    return final


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_responses_a_call_its_output_and_the_answer(local_client: httpx.Client,  # noqa: F811
                                                    stream: bool) -> None:
    ask = [{"role": "user", "content": ASK[0]["content"]}]
    first = respond(local_client, stream, input=ask, tool_choice="required")
    calls = [item for item in first["output"] if item["type"] == "function_call"]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Paris"})]
    assert first["tool_choice"] == "required" and first["parallel_tool_calls"] is False
    outputs = [{"type": "function_call_output", "call_id": c["call_id"], "output": RESULT}
               for c in calls]
    second = respond(local_client, stream, input=[*ask, *calls, *outputs])
    assert [item["type"] for item in second["output"]] == ["message"]
    assert "21" in second["output"][0]["content"][0]["text"]


def test_responses_named_function_choice(local_client: httpx.Client) -> None:  # noqa: F811
    count = local_client.post("/responses/input_tokens", json={
        "model": "local", "input": ASK[0]["content"], "tools": [RESPONSES_TOOL],
        "tool_choice": {"type": "function", "name": "get_weather"}}).json()["input_tokens"]
    answer = respond(local_client, False, input=ASK[0]["content"],
                     tool_choice={"type": "function", "name": "get_weather"})
    assert answer["usage"]["input_tokens"] == count
    assert [item["type"] for item in answer["output"]] == ["function_call"]
    jsonschema.validate(json.loads(answer["output"][0]["arguments"]), PARAMETERS)


# -- the official openai SDK ---------------------------------------------------------------------


def test_the_openai_sdk_gets_tool_calls(local_url: str) -> None:  # noqa: F811
    with openai.OpenAI(base_url=local_url, api_key="unused", max_retries=0) as client:
        with client.chat.completions.stream(model="local", messages=ASK, temperature=0,
                                            max_tokens=60, tools=[WEATHER],
                                            tool_choice="required",
                                            parallel_tool_calls=False) as events:
            for _ in events:
                pass
            completion = events.get_final_completion()  # the SDK folds the deltas itself
        message = completion.choices[0].message
        assert completion.choices[0].finish_reason == "tool_calls" and message.tool_calls
        call = message.tool_calls[0]
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}
        answer = client.responses.create(model="local", input=ASK[0]["content"],
                                          temperature=0, max_output_tokens=60,
                                          tools=[RESPONSES_TOOL], tool_choice="required")
        item = answer.output[0]
        assert item.type == "function_call" and item.name == "get_weather"
        assert json.loads(item.arguments) == {"city": "Paris"}


def test_gptmagics_tool_loop_runs_offline(local_engine: LocalEngine) -> None:  # noqa: F811
    """``Client.chat(tools=[a Python function])`` against the engine: the model calls the
    function with schema-valid arguments, gptmagic runs it and sends the result back, and
    the model's final answer has read it. Once over chat, once over the Responses API."""
    asked: list[str] = []

    def get_weather(city: str) -> str:
        """Get the current weather in a city.

        Args:
            city: The city's name.
        """
        asked.append(city)
        return RESULT

    async def run(api: str) -> Any:
        async with Client("local", engine=local_engine) as client:
            if api == "chat":
                return await client.chat(ASK, model="local", tools=[get_weather],
                                         tool_choice="required", parallel_tool_calls=False,
                                         temperature=0, max_tokens=100)
            return await client.respond(ASK, model="local", tools=[get_weather],
                                        tool_choice="required", parallel_tool_calls=False,
                                        temperature=0, max_output_tokens=100)

    for api in ("chat", "responses"):
        asked.clear()
        result = asyncio.run(run(api))
        assert asked == ["Paris"], api  # the function ran once, with the model's argument
        first = result.steps[0].calls[0]
        assert (first.name, first.args, first.output, first.error) == (
            "get_weather", {"city": "Paris"}, RESULT, None)
        assert result.steps[-1].calls == [] and result.finish_reason == "stop", api
        assert "21" in result.text, (api, result.text)  # the answer read the result
        # What a thread keeps: the call, the result, the answer.
        assert [m["role"] for m in result.exchange] == ["assistant", "tool", "assistant"]
        assert result.usage.prompt_tokens == sum(s.result.usage.prompt_tokens
                                                 for s in result.steps)


@pytest.mark.parametrize("question", ["What is the capital of Italy?", "What is H2O?",
                                      "What is an atom?", "What is gravity?",
                                      "Name a fruit that is yellow."])
def test_a_text_answer_is_not_the_instructions_placeholder(local_client: httpx.Client,  # noqa: F811
                                                           question: str) -> None:
    """Told to answer ``{"response": "<your reply>"}``, SmolLM2 answered each of these
    with the literal ``<your reply>`` (temperature 0, one tool); the instructions now
    describe the answer in words (``benchmarks/bench_local_tool_prompt.py`` counts it)."""
    answer = post(local_client, messages=[{"role": "user", "content": question}],
                  tools=[WEATHER], max_tokens=80)
    message = answer["choices"][0]["message"]
    text = (message.get("content") or "").strip()
    assert message.get("tool_calls") or text, answer  # a call or words, never nothing
    assert "<your" not in text and text not in ("...", "…")
