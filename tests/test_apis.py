"""The endpoint a chat cell uses and its options on each (gptmagic.notebook.apis), pure."""

from __future__ import annotations

import pytest
from openapi_schema import validate

from gptmagic.errors import RequestError
from gptmagic.notebook.apis import api_options, choose_api, outgoing, to_responses


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


def test_to_responses_renames_and_merges():
    got = to_responses({"max_tokens": 9, "response_format": {"type": "json_object"},
                        "text": {"verbosity": "high"}, "logprobs": True, "top_logprobs": 3,
                        "n": 1, "temperature": 0, "timeout": 5.0})
    assert got == {"max_output_tokens": 9, "text": {"format": {"type": "json_object"},
                                                    "verbosity": "high"},
                   "include": ["message.output_text.logprobs"], "top_logprobs": 3,
                   "temperature": 0, "timeout": 5.0}
    assert to_responses({"logprobs": False}) == {}
    with pytest.raises(RequestError, match="-n has no Responses API equivalent") as e:
        to_responses({"n": 2})
    assert e.value.param == "-n"


def test_outgoing_bodies_validate_against_the_spec():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    cell = messages[-1:]
    chat = outgoing("chat", messages, cell, {"max_tokens": 5})
    validate(chat.body("m", stream=True), "CreateChatCompletionRequest")
    assert chat.input == messages and chat.chained is None
    whole = outgoing("responses", messages, cell, {"max_tokens": 16, "store": False})
    body = whole.body("m", stream=True)
    validate(body, "CreateResponse")
    assert body["instructions"] == "Be brief." and body["input"] == messages[1:]
    assert whole.count_fields() == {"instructions": "Be brief."}
    validate({"model": "m", "input": whole.input, **whole.count_fields()}, "TokenCountsBody")
    chained = outgoing("responses", messages, cell, {"store": True}, chain="resp_1")
    body = chained.body("m", stream=False)
    validate(body, "CreateResponse")
    assert body["input"] == cell and body["previous_response_id"] == "resp_1"
    assert chained.count_fields() == {"instructions": "Be brief.",
                                      "previous_response_id": "resp_1"}
    # A system message that is not first, or that carries a name, stays an input item.
    named = [{"role": "system", "content": "x", "name": "n"}, *cell]
    assert "instructions" not in outgoing("responses", named, cell, {}).payload


def test_hosted_responses_refuse_fewer_output_tokens_than_the_spec_allows():
    cell = [{"role": "user", "content": "a"}]
    with pytest.raises(RequestError, match="--max-tokens must be at least 16 on the "
                                           "Responses API") as e:
        outgoing("responses", cell, cell, {"max_tokens": 15}, hosted=True)
    assert e.value.param == "--max-tokens"
    out = outgoing("responses", cell, cell, {"max_tokens": 15})  # the embedded model's call
    assert out.params["max_output_tokens"] == 15
    assert outgoing("chat", cell, cell, {"max_tokens": 1}, hosted=True).params["max_tokens"] == 1
