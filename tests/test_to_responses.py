"""The one translation of a chat-shaped call to a Responses request (gptmagic.core.to_responses),
pure: parameters renamed and reshaped, refusals that name the parameter as the caller does,
the leading system message as instructions, and the endpoint's choice."""

from __future__ import annotations

import pytest
from openapi_schema import validate

from gptmagic.core.to_responses import (
    APIS,
    choose_api,
    response_fields,
    responses_body,
    split_instructions,
)
from gptmagic.errors import RequestError

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
          "additionalProperties": False}


@pytest.mark.parametrize(("chat", "responses"), [
    ({"max_tokens": 9}, {"max_output_tokens": 9}),
    ({"max_completion_tokens": 5}, {"max_output_tokens": 5}),
    ({"logprobs": False, "top_logprobs": 0}, {"top_logprobs": 0}),
    ({"logprobs": True, "include": ["reasoning.encrypted_content"]},
     {"include": ["reasoning.encrypted_content", "message.output_text.logprobs"]}),
    ({"logprobs": True, "include": ["message.output_text.logprobs"]},
     {"include": ["message.output_text.logprobs"]}),
    ({"response_format": {"type": "json_object"}, "verbosity": "low"},
     {"text": {"format": {"type": "json_object"}, "verbosity": "low"}}),
    ({"response_format": {"type": "json_schema",
                          "json_schema": {"name": "a", "schema": SCHEMA, "strict": True}},
      "text": {"verbosity": "high"}},
     {"text": {"format": {"type": "json_schema", "name": "a", "schema": SCHEMA,
                          "strict": True}, "verbosity": "high"}}),
    ({"reasoning_effort": "minimal", "reasoning": {"summary": "auto"}},
     {"reasoning": {"summary": "auto", "effort": "minimal"}}),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
      "tool_choice": {"type": "function", "function": {"name": "f"}}},
     {"tools": [{"type": "function", "name": "f", "parameters": {}, "strict": False}],
      "tool_choice": {"type": "function", "name": "f"}}),
    ({"tools": [{"type": "function", "function": {"name": "g", "strict": True}}]},
     {"tools": [{"type": "function", "name": "g", "strict": True,
                 "parameters": {"type": "object", "properties": {}}}]}),
    ({"tools": [{"type": "web_search"}], "tool_choice": "required"},
     {"tools": [{"type": "web_search"}], "tool_choice": "required"}),
    ({"temperature": None, "store": False, "prompt_cache_key": "k", "n": 1, "timeout": 5.0},
     {"store": False, "prompt_cache_key": "k", "timeout": 5.0}),
])
def test_chat_params_in_responses_terms(chat, responses):
    assert response_fields(chat) == responses


@pytest.mark.parametrize(("param", "value", "advice"), [
    ("n", 2, "make one call per reply"), ("stop", ["\n"], "cut the text after it arrives"),
    ("seed", 1, "takes no seed"), ("presence_penalty", 1.0, "takes no penalties"),
    ("frequency_penalty", 1.0, "takes no penalties"), ("logit_bias", {"1": 5}, "logit_bias"),
    ("functions", [], "give tools=[...] instead"),
    ("function_call", "auto", "give tool_choice instead"),
    ("stream_options", {"include_usage": True}, "reports usage in its last event"),
])
def test_a_chat_only_param_is_refused_naming_it_the_model_and_the_fix(param, value, advice):
    with pytest.raises(RequestError) as e:
        response_fields({param: value}, model="gpt-5", instead="use chat")
    text = str(e.value)
    assert text.startswith(f"parameter {param!r} has no equivalent in the Responses API "
                           "(model 'gpt-5'): ")
    assert advice in text and text.endswith(", or use chat")
    assert e.value.param == param


def test_a_caller_names_the_param_its_own_way():
    with pytest.raises(RequestError, match="^--stop has no equivalent in the Responses API: "
                                           ".*, or send this cell with --api chat$") as e:
        response_fields({"stop": ["x"]}, names={"stop": "--stop"},
                        instead="send this cell with --api chat")
    assert e.value.param == "--stop"


SYS = {"role": "system", "content": "Be brief."}
USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(("messages", "params", "expected"), [
    ([SYS, USER], {}, ("Be brief.", [USER])),
    ([SYS], {}, (None, [SYS])),  # nothing else to send: the system message is the input
    ([SYS, USER], {"instructions": "Mine."}, (None, [SYS, USER])),
    ([USER, SYS], {}, (None, [USER, SYS])),  # only a leading one is the instructions
    ([{**SYS, "content": [{"type": "input_text", "text": "x"}]}, USER], {},
     (None, [{**SYS, "content": [{"type": "input_text", "text": "x"}]}, USER])),
])
def test_a_leading_system_message_is_the_instructions(messages, params, expected):
    assert split_instructions(messages, params) == expected


def test_the_body_validates_against_the_spec_and_refuses_a_named_message():
    params = {"max_tokens": 20, "logprobs": True, "top_logprobs": 2, "reasoning_effort": "low",
              "response_format": {"type": "json_schema",
                                  "json_schema": {"name": "a", "schema": SCHEMA}},
              "tools": [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}]}
    body = responses_body([SYS, USER], params, model="m")
    validate({"model": "m", **body}, "CreateResponse")
    assert body["store"] is False and body["instructions"] == "Be brief."
    assert responses_body([USER], {"store": True}, model="m")["store"] is True
    with pytest.raises(RequestError, match=r"message 1 \(user\) has a name \('bob'\), which "
                                           r"the Responses API does not take \(model 'm'\): "
                                           r"drop it from the prompt, or go") as e:
        responses_body([SYS, {**USER, "name": "bob"}], {}, model="m", instead="go")
    assert e.value.param == "prompt"


def test_choose_api_order_is_given_per_model_profile_default():
    assert APIS == ("chat", "responses")
    assert choose_api(None, model="gpt-4o") == "chat"
    assert choose_api(None, model="gpt-4o", default="responses") == "responses"
    assert choose_api(None, model="gpt-4o", profile="responses", default="chat") == "responses"
    assert choose_api(None, model="GPT-5-mini", per_model={"gpt-5*": "responses"},
                      profile="chat") == "responses"
    assert choose_api("CHAT", model="gpt-5", per_model={"gpt-5*": "responses"}) == "chat"
    with pytest.raises(RequestError, match=r"^--api must be one of chat, responses; got 'x'$"):
        choose_api("x", model="m", labels=("--api", "model_api"))
    with pytest.raises(RequestError, match=r"model_api\['o\*'\] must be one of chat"):
        choose_api(None, model="o3", per_model={"o*": "batch"}, labels=("--api", "model_api"))


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens", "max_output_tokens"])
def test_openai_and_azure_refuse_fewer_output_tokens_than_the_spec_allows(name):
    messages = [{"role": "user", "content": "a"}]
    with pytest.raises(RequestError, match=f"^{name} must be at least 16 on the Responses API "
                                           r"\(model 'gpt-5'\), where max_output_tokens counts "
                                           "reasoning too; got 15$") as e:
        responses_body(messages, {name: 15}, model="gpt-5", names={name: name}, hosted=True)
    assert e.value.param == name
    assert responses_body(messages, {name: 16}, model="gpt-5",
                          hosted=True)["max_output_tokens"] == 16
    # Another server (the embedded model) takes what it takes.
    assert responses_body(messages, {name: 1}, model="m")["max_output_tokens"] == 1
