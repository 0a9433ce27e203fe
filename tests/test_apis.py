"""The endpoint a chat cell uses and its options on each (gptmagic.notebook.apis), pure."""

from __future__ import annotations

import pytest
from openapi_schema import validate

from gptmagic.errors import RequestError
from gptmagic.notebook.apis import api_options, choose_api, chosen_by, outgoing


def test_choose_api_order_is_option_model_profile_default():
    assert choose_api(None, model="gpt-4o") == "chat"
    assert choose_api(None, model="gpt-4o", default="responses") == "responses"
    assert choose_api(None, model="gpt-4o", profile_api="responses", default="chat") == \
        "responses"
    assert choose_api(None, model="GPT-5-mini", model_api={"gpt-5*": "responses"},
                      profile_api="chat") == "responses"
    assert choose_api("CHAT", model="gpt-5", model_api={"gpt-5*": "responses"}) == "chat"
    with pytest.raises(RequestError, match=r"model_api\['o\*'\] must be one of chat"):
        choose_api(None, model="o3", model_api={"o*": "batch"})


def test_chosen_by_names_the_setting_and_what_it_overrode():
    assert chosen_by(None, model="gpt-4o", profile="p") == (
        "default: no --api, model_api pattern, profile api or %gptmagic api names another")
    assert chosen_by(None, model="gpt-4o", profile="p", profile_api="chat",
                     default="responses") == ("profile 'p' (its api = 'chat'), over "
                                              "%gptmagic api responses")
    assert chosen_by(None, model="gpt-5", profile="p", model_api={"gpt-5*": "chat"},
                     profile_api="responses", default="chat") == (
        "the model_api pattern 'gpt-5*' for 'gpt-5' (%config GptMagics.model_api), over the "
        "api of profile 'p' (responses)")
    assert chosen_by("chat", model="gpt-5", profile="p", default="responses") == (
        "the cell's --api chat, over %gptmagic api responses")


def test_options_on_each_endpoint():
    opts = {"reasoning_effort": "XHIGH", "verbosity": "low", "service_tier": "flex",
            "cache_key": "k", "store": True}
    assert api_options("chat", **opts) == {
        "reasoning_effort": "xhigh", "verbosity": "low", "service_tier": "flex",
        "prompt_cache_key": "k", "store": True}
    assert api_options("responses", reasoning_summary="auto", **opts) == {
        "reasoning": {"effort": "xhigh", "summary": "auto"}, "text": {"verbosity": "low"},
        "service_tier": "flex", "prompt_cache_key": "k", "store": True}
    assert api_options("responses") == {"store": False}  # OpenAI stores unless told not to
    assert api_options("chat") == {}
    with pytest.raises(RequestError, match="--cache-key needs a non-empty key"):
        api_options("chat", cache_key=" ")


def test_responses_params_are_translated_and_a_refusal_names_the_flag():
    cell = [{"role": "user", "content": "a"}]
    out = outgoing("responses", cell, cell, {
        "max_tokens": 9, "response_format": {"type": "json_object"},
        "text": {"verbosity": "high"}, "logprobs": True, "top_logprobs": 3, "n": 1,
        "temperature": 0, "timeout": 5.0}, model="m")
    assert out.params == {"max_output_tokens": 9, "store": False,
                          "text": {"format": {"type": "json_object"}, "verbosity": "high"},
                          "include": ["message.output_text.logprobs"], "top_logprobs": 3,
                          "temperature": 0, "timeout": 5.0}
    assert "timeout" not in out.body("m", stream=False)  # the client's, not the body's
    with pytest.raises(RequestError, match=r"^-n has no equivalent in the Responses API "
                                           r"\(model 'm'\): .*, or send this cell with "
                                           r"--api chat$") as e:
        outgoing("responses", cell, cell, {"n": 2}, model="m")
    assert e.value.param == "-n"


def test_outgoing_bodies_validate_against_the_spec():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    cell = messages[-1:]
    chat = outgoing("chat", messages, cell, {"max_tokens": 5}, model="m")
    validate(chat.body("m", stream=True), "CreateChatCompletionRequest")
    assert chat.input == messages and chat.chained is None
    whole = outgoing("responses", messages, cell, {"max_tokens": 16, "store": False},
                     model="m")
    body = whole.body("m", stream=True)
    validate(body, "CreateResponse")
    assert body["instructions"] == "Be brief." and body["input"] == messages[1:]
    assert whole.count_fields() == {"instructions": "Be brief."}
    validate({"model": "m", "input": whole.input, **whole.count_fields()}, "TokenCountsBody")
    chained = outgoing("responses", messages, cell, {"store": True}, model="m",
                       chain="resp_1")
    body = chained.body("m", stream=False)
    validate(body, "CreateResponse")
    assert body["input"] == cell and body["previous_response_id"] == "resp_1"
    assert chained.count_fields() == {"instructions": "Be brief.",
                                      "previous_response_id": "resp_1"}
    # A system message that is not first stays an input item; a named one is refused.
    late = [*cell, {"role": "system", "content": "x"}]
    assert "instructions" not in outgoing("responses", late, cell, {}, model="m").payload
    named = [{"role": "system", "content": "x", "name": "n"}, *cell]
    with pytest.raises(RequestError, match=r"message 0 \(system\) has a name \('n'\).*"
                                           r"or send this cell with --api chat$"):
        outgoing("responses", named, cell, {}, model="m")


def test_hosted_responses_refuse_fewer_output_tokens_than_the_spec_allows():
    cell = [{"role": "user", "content": "a"}]
    with pytest.raises(RequestError, match="--max-tokens must be at least 16 on the "
                                           "Responses API") as e:
        outgoing("responses", cell, cell, {"max_tokens": 15}, model="m", hosted=True)
    assert e.value.param == "--max-tokens"
    out = outgoing("responses", cell, cell, {"max_tokens": 15}, model="m")  # the embedded model
    assert out.params["max_output_tokens"] == 15
    assert outgoing("chat", cell, cell, {"max_tokens": 1}, model="m",
                    hosted=True).params["max_tokens"] == 1


def test_a_chat_cells_count_fields_are_in_responses_terms():
    cell = [{"role": "user", "content": "a"}]
    schema = {"type": "object", "properties": {}}
    out = outgoing("chat", cell, cell, {
        "max_tokens": 5, "stop": ["x"], "reasoning_effort": "low",
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]},
        model="m")
    fields = out.count_fields()
    assert fields == {"reasoning": {"effort": "low"},
                      "text": {"format": {"type": "json_schema", "name": "s", "schema": schema}},
                      "tools": [{"type": "function", "name": "f", "parameters": schema,
                                 "strict": False}]}
    validate({"model": "m", "input": out.input, **fields}, "TokenCountsBody")
