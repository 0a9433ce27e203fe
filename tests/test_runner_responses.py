"""evaluate() over the Responses API, against the fake server (issue 14, item 4): the API
per model or for the whole run, chat parameters translated, reasoning effort as a grid
parameter, reasoning / cached / cache-write tokens and their cost as columns, and a cache
that never answers one API's call with the other's."""

from __future__ import annotations

import json
import math
import re

import pytest
from fakeserver import Behaviour
from openapi_schema import validate

import gptmagic
from gptmagic.cli import main as cli_main
from gptmagic.core.types import Result, Timings
from gptmagic.errors import RequestError
from gptmagic.eval.apis import response_params
from gptmagic.eval.rows import result_from_dict, result_to_dict, row_result
from gptmagic.eval.runner import estimate_run, evaluate

CASES = [{"q": "two plus two"}, {"q": "capital of France"}, {"q": "colour of the sky"}]
#: Hidden reasoning the fake "model" does per effort level (added to its usage below).
THINKS = {"low": 3, "high": 40}


@pytest.fixture
def fake(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    gptmagic.add_profile("fake", base_url=fake_server.url, default_model="fake-model")
    return fake_server


def run(**kw):
    kw.setdefault("progress", False)
    return evaluate(CASES, kw.pop("prompt", "user: {q}"), kw.pop("models", ["fake:m1"]), **kw)


def api_of(request) -> str:
    return "responses" if request.path.endswith("/responses") else "chat"


def thinking(fake):
    """A Behaviour whose usage reports reasoning, cached and cache-written tokens, as a
    reasoning model with a prompt cache would: reasoning by the request's effort (runs
    with concurrency=1, so the last request is the one being answered)."""

    def mangle(reply: dict) -> dict:
        body = fake.requests[-1].json
        effort = body.get("reasoning_effort") or (body.get("reasoning") or {}).get("effort")
        think = THINKS.get(effort, 0)
        u = reply["usage"]
        if "input_tokens" in u:  # Responses
            u["output_tokens"] += think
            u["output_tokens_details"]["reasoning_tokens"] = think
            u["input_tokens_details"].update(cached_tokens=2, cache_write_tokens=1)
        else:
            u["completion_tokens"] += think
            u["completion_tokens_details"]["reasoning_tokens"] = think
            u["prompt_tokens_details"]["cached_tokens"] = 2
        u["total_tokens"] += think
        return reply

    return Behaviour(mangle=mangle)


def test_responses_run_sends_input_items_and_translated_params(fake):
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
              "additionalProperties": False}
    res = run(prompt="system: Be brief.\nuser: {q}", api="responses",
              params={"max_tokens": 20, "logprobs": True, "top_logprobs": 2,
                      "temperature": 0.0,
                      "response_format": {"type": "json_schema",
                                          "json_schema": {"name": "a", "schema": schema,
                                                          "strict": True}}})
    assert [r.path for r in fake.requests] == ["/v1/responses"] * 3
    body = fake.requests[0].json
    validate(body, "CreateResponse")
    assert body["input"] == [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "two plus two"}]
    assert body["max_output_tokens"] == 20 and body["top_logprobs"] == 2
    assert body["include"] == ["message.output_text.logprobs"] and body["temperature"] == 0.0
    assert body["text"] == {"format": {"type": "json_schema", "name": "a", "schema": schema,
                                       "strict": True}}
    assert not {"max_tokens", "logprobs", "response_format", "messages"} & set(body)
    df = res.df
    assert (df["api"] == "responses").all() and df["error"].isna().all()
    assert (df["output"] == "echo: " + df["input.q"]).all()
    assert df["mean_logprob"].notna().all()  # logprobs came back through include


def test_the_api_per_model_and_the_default_chat(fake):
    res = run(models=["fake:m1", "fake:m2"], api={"fake:m2": "responses"})
    sent = sorted((r.json["model"], api_of(r)) for r in fake.requests)
    assert sent == [("m1", "chat")] * 3 + [("m2", "responses")] * 3
    assert dict(zip(res.df["model"], res.df["api"], strict=True)) == {"m1": "chat",
                                                                     "m2": "responses"}
    assert res.df["error"].isna().all()


def test_a_grid_over_reasoning_effort_is_one_variant_per_level_on_both_apis(fake):
    gptmagic.set_price("m1", input_per_mtok="1000000", output_per_mtok="2000000")
    gptmagic.set_price("m2", input_per_mtok="1000000", output_per_mtok="2000000",
                       cached_input_per_mtok="500000", cache_write_per_mtok="1250000")
    fake.set_default(thinking(fake))
    res = run(models=["fake:m1", "fake:m2"], api={"fake:m2": "responses"},
              grid={"reasoning_effort": ["low", "high"]}, concurrency=1)
    bodies = {(r.json["model"], api_of(r)): r.json for r in fake.requests}
    assert bodies["m1", "chat"]["reasoning_effort"] in THINKS
    assert "reasoning" not in bodies["m1", "chat"]
    assert bodies["m2", "responses"]["reasoning"]["effort"] in THINKS
    assert "reasoning_effort" not in bodies["m2", "responses"]
    assert sorted((r.json["model"], r.json.get("reasoning_effort")
                   or r.json["reasoning"]["effort"]) for r in fake.requests) == sorted(
        (m, e) for m in ("m1", "m2") for e in THINKS for _ in CASES)

    s = res.summary().set_index(["model", "reasoning_effort"])
    assert len(s) == 4 and (s["calls"] == 3).all()
    for (model, effort), row in s.iterrows():
        assert row["reasoning_tokens"] == 3 * THINKS[effort]
        # Reasoning is output: at m's output rate of $2 a token.
        assert row["reasoning_cost"] == 3 * THINKS[effort] * 2
        assert row["cached_tokens"] == 6
        assert row["cached_input_cost"] == (6 * 0.5 if model == "m2" else 6 * 1)
    assert s.loc[("m2", "low"), "cache_write_tokens"] == 3
    assert s.loc[("m2", "low"), "cache_write_cost"] == 3 * 1.25
    # Chat reports no cache writes: unknown, not zero.
    assert math.isnan(s.loc[("m1", "low"), "cache_write_tokens"])
    df = res.df.set_index(["model", "reasoning_effort", "row"])
    one = df.loc[("m2", "high", 0)]
    assert one["reasoning_tokens"] == 40 and one["cost"] > one["reasoning_cost"] > 0


def test_cache_reuses_within_an_api_and_never_across(fake):
    fake.set_default(thinking(fake))
    chat = run(concurrency=1)
    run(concurrency=1)
    assert len(fake.requests) == 3  # the second run came from the cache
    first = run(api="responses", concurrency=1)
    assert len(fake.requests) == 6 and not first.df["cached"].any()
    assert [api_of(r) for r in fake.requests[3:]] == ["responses"] * 3
    again = run(api="responses", concurrency=1)
    assert len(fake.requests) == 6 and again.df["cached"].all()
    cols = ["output", "prompt_tokens", "completion_tokens", "cached_tokens",
            "cache_write_tokens", "reasoning_tokens", "finish_reason", "api"]
    assert again.df[cols].equals(first.df[cols])
    assert (again.df["cache_write_tokens"] == 1).all()
    assert chat.df["cache_write_tokens"].isna().all()
    # The chat results are still there, and still chat's.
    third = run(concurrency=1)
    assert len(fake.requests) == 6 and (third.df["api"] == "chat").all()
    assert third.df["cached"].all()


def test_a_grid_over_the_api_compares_chat_and_responses(fake):
    res = run(grid={"api": ["chat", "responses"]}, params={"max_tokens": 2})
    assert sorted(api_of(r) for r in fake.requests) == ["chat"] * 3 + ["responses"] * 3
    for r in fake.requests:
        assert "api" not in r.json
        assert r.json.get("max_tokens" if api_of(r) == "chat" else "max_output_tokens") == 2
    s = res.summary()
    assert list(s["api"]) == ["chat", "responses"] and (s["calls"] == 3).all()
    assert set(res.df["finish_reason"]) == {"length"}  # max_output_tokens was honoured


def test_a_stored_response_comes_back_equal(fake):
    fake.set_default(thinking(fake))
    r = gptmagic.respond([{"role": "user", "content": "hello there"}], model="fake:m",
                         reasoning={"effort": "high"})
    assert r.kind == "response" and r.usage.reasoning_tokens == 40
    assert r.usage.cache_write_tokens == 1 and r.status == "completed"
    kept = Result(**{f: getattr(r, f) for f in Result.__slots__})
    kept.raw = kept.rate_limits = None  # not stored: the body, and headers of the moment
    kept.timings = Timings(r.timings.total, r.timings.ttft, r.timings.attempts)
    kept.reasoning = "Thought about it."  # a reasoning summary, as a reasoning model sends
    back = result_from_dict(json.loads(json.dumps(result_to_dict(kept))))
    assert back == kept
    # A row of the format before the Responses API still reads.
    old = {"kind": "chat", "model": "m", "id": "x", "created": 1, "request_id": None,
           "usage": [3, 2, 5, 1, None], "timings": [0.1, None, 1],
           "choices": [{"i": 0, "text": "old", "finish": "stop", "role": "assistant",
                        "lp": None, "plp": None}]}
    was = row_result(json.dumps(old))
    assert was is not None and was.text == "old" and was.usage.cached_tokens == 1
    assert was.usage.cache_write_tokens is None
    # ... but not with the newer usage shape, nor a kind this version does not know.
    assert row_result(json.dumps({**old, "usage": [3, 2, 5, 1, None, 0]})) is None
    assert row_result(json.dumps({**old, "format": 2, "kind": "embedding"})) is None


def test_estimate_run_counts_and_prices_responses_calls(fake):
    gptmagic.set_price("m-est", input_per_mtok="1000000", output_per_mtok="2000000")
    est = estimate_run(CASES, "user: {q}", ["fake:m-est"], grid={"api": ["chat", "responses"]},
                       params={"max_tokens": 10})
    assert list(est["api"]) == ["chat", "responses"] and (est["calls"] == 3).all()
    chat, resp = est.iloc[0], est.iloc[1]
    assert resp["prompt_tokens"] == chat["prompt_tokens"] > 0
    assert resp["cost_high"] == resp["prompt_tokens"] + 3 * 10 * 2  # max_tokens bounds it
    est = estimate_run(CASES, "user: {q}", ["fake:m-est"], api="responses",
                       params={"max_output_tokens": 5})
    assert list(est["api"]) == ["responses"]
    assert est.iloc[0]["cost_high"] == est.iloc[0]["prompt_tokens"] + 3 * 5 * 2
    assert not fake.requests


@pytest.mark.parametrize(("kw", "match"), [
    ({"api": "respond"}, "api is 'respond'; use 'chat' or 'responses'"),
    ({"api": {"fake:m9": "responses"}}, "api names model 'fake:m9', which is not in models"),
    ({"api": {"fake:m1": "rest"}}, "api['fake:m1'] is 'rest'"),
    ({"api": 3}, "api must be 'chat', 'responses' or a dict"),
    ({"params": {"api": "responses"}}, "'api' is not a request parameter"),
    ({"grid": {"api": ["chat", "completions"]}}, "grid 'api' has 'completions'"),
    ({"api": "responses", "params": {"stop": ["\n"]}},
     "parameter 'stop' has no equivalent in the Responses API (model 'm1'"),
    ({"api": "responses", "prompt": "user(bob): {q}"},
     "has a name ('bob'), which the Responses API does not take"),
])
def test_bad_api_settings_are_clear_errors_before_any_call(fake, kw, match):
    with pytest.raises(RequestError, match=re.escape(match)):
        run(**kw)
    assert not fake.requests


@pytest.mark.parametrize(("chat", "responses"), [
    ({"max_completion_tokens": 5}, {"max_output_tokens": 5}),
    ({"logprobs": False, "top_logprobs": 0}, {"top_logprobs": 0}),
    ({"logprobs": True, "include": ["reasoning.encrypted_content"]},
     {"include": ["reasoning.encrypted_content", "message.output_text.logprobs"]}),
    ({"response_format": {"type": "json_object"}, "verbosity": "low"},
     {"text": {"format": {"type": "json_object"}, "verbosity": "low"}}),
    ({"reasoning_effort": "minimal", "reasoning": {"summary": "auto"}},
     {"reasoning": {"summary": "auto", "effort": "minimal"}}),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
      "tool_choice": {"type": "function", "function": {"name": "f"}}},
     {"tools": [{"type": "function", "name": "f", "parameters": {}}],
      "tool_choice": {"type": "function", "name": "f"}}),
    ({"temperature": None, "store": False, "prompt_cache_key": "k"},
     {"store": False, "prompt_cache_key": "k"}),
])
def test_chat_params_in_responses_terms(chat, responses):
    assert response_params(chat, "m") == responses


def test_eval_config_names_the_api(fake, tmp_path, capsys):
    (tmp_path / "cases.csv").write_text("q\nhello\nbye\n")
    cfg = tmp_path / "run.toml"
    cfg.write_text('data = "cases.csv"\nprompt = "user: {q}"\nmodels = ["fake:m1", "fake:m2"]\n'
                   'grid = { reasoning_effort = ["low", "high"] }\n'
                   '[api]\n"fake:m2" = "responses"\n')
    assert cli_main(["eval", str(cfg)]) == 0
    assert "8 calls, 0 from cache, 0 errors" in capsys.readouterr().out
    assert sorted({(r.json["model"], api_of(r)) for r in fake.requests}) == [
        ("m1", "chat"), ("m2", "responses")]
    cfg.write_text('data = "cases.csv"\nprompt = "user: {q}"\nmodels = ["fake:m1"]\n'
                   'api = "graphql"\n')
    assert cli_main(["eval", str(cfg)]) == 1
    assert "api is 'graphql'; use 'chat' or 'responses'" in capsys.readouterr().err


def test_a_profiles_api_setting_is_the_default(fake):
    gptmagic.add_profile("fake-r", base_url=fake.url, api="responses")
    res = evaluate(CASES[:1], "user: {q}", ["fake-r:m1", "fake:m2"], progress=False)
    assert sorted((r.json["model"], api_of(r)) for r in fake.requests) == [
        ("m1", "responses"), ("m2", "chat")]
    assert list(res.df["api"]) == ["responses", "chat"]
    evaluate(CASES[:1], "user: {q}", ["fake-r:m1"], api="chat", progress=False)  # call wins
    assert api_of(fake.requests[-1]) == "chat"


def test_cost_parts_are_unknown_not_zero_without_a_price(fake):
    fake.set_default(thinking(fake))
    res = run(api="responses", grid={"reasoning_effort": ["high"]}, models=["fake:mystery"],
              concurrency=1)
    df = res.df
    assert (df["reasoning_tokens"] == 40).all() and df["cost"].isna().all()
    assert df["reasoning_cost"].isna().all() and df["cached_input_cost"].isna().all()
    s = res.summary()
    assert s.loc[0, "reasoning_tokens"] == 120 and math.isnan(s.loc[0, "reasoning_cost"])
