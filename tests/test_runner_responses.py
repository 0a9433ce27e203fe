"""evaluate() over the Responses API, against the fake server (issue 14, item 4): the API
per model or for the whole run, chat parameters translated, reasoning effort as a grid
parameter, reasoning / cached / cache-write tokens and their cost as columns, and a cache
that never answers one API's call with the other's."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
from fakeresponses import EFFORT_TOKENS
from fakeserver import Behaviour
from openapi_schema import validate

import gptmagic
from gptmagic.cli import main as cli_main
from gptmagic.client.config import Provider
from gptmagic.core.types import Result, Timings
from gptmagic.errors import RequestError
from gptmagic.eval.apis import call_body
from gptmagic.eval.rows import result_from_dict, result_to_dict, row_result
from gptmagic.eval.runner import estimate_run, evaluate

CASES = [{"q": "two plus two"}, {"q": "capital of France"}, {"q": "colour of the sky"}]
#: The fake's Responses API reasons when the model is a reasoning model's name.
THINKER = "gpt-5-mini"


def run(**kw):
    kw.setdefault("progress", False)
    return evaluate(CASES, kw.pop("prompt", "user: {q}"), kw.pop("models", ["fake:m1"]), **kw)


def api_of(request) -> str:
    return "responses" if request.path.endswith("/responses") else "chat"


def effort_of(request) -> str:
    body = request.json
    return body.get("reasoning_effort") or body["reasoning"]["effort"]


def thinking_chat(fake):
    """Chat replies whose usage reports reasoning by the request's ``reasoning_effort``, as
    the fake's Responses API does for a reasoning model (its chat does not reason). Runs
    with concurrency=1: the last request is the one being answered."""

    def mangle(reply: dict) -> dict:
        u = reply.get("usage") or {}
        if "completion_tokens" in u:
            think = EFFORT_TOKENS[fake.requests[-1].json.get("reasoning_effort", "none")]
            u["completion_tokens"] += think
            u["total_tokens"] += think
            u["completion_tokens_details"]["reasoning_tokens"] = think
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
    # As a %%chat --api responses cell sends it: the leading system line as instructions.
    assert body["instructions"] == "Be brief."
    assert body["input"] == [{"role": "user", "content": "two plus two"}]
    assert body["max_output_tokens"] == 20 and body["top_logprobs"] == 2
    assert body["include"] == ["message.output_text.logprobs"] and body["temperature"] == 0.0
    assert body["store"] is False  # a run's calls are not kept by the provider
    assert body["text"] == {"format": {"type": "json_schema", "name": "a", "schema": schema,
                                       "strict": True}}
    assert not {"max_tokens", "logprobs", "response_format", "messages"} & set(body)
    df = res.df
    assert (df["api"] == "responses").all() and df["error"].isna().all()
    assert (df["output"] == '{"a": "text"}').all()  # the fake's instance of the schema
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
    gptmagic.set_price(THINKER, input_per_mtok="1000000", output_per_mtok="2000000",
                       cached_input_per_mtok="500000", cache_write_per_mtok="1250000")
    fake.set_default(thinking_chat(fake))
    res = run(models=["fake:m1", f"fake:{THINKER}"], api={f"fake:{THINKER}": "responses"},
              grid={"reasoning_effort": ["low", "high"]}, params={"prompt_cache_key": "k"},
              concurrency=1)
    sent = sorted((r.json["model"], api_of(r), effort_of(r)) for r in fake.requests)
    assert sent == sorted((m, api, e) for m, api in (("m1", "chat"), (THINKER, "responses"))
                          for e in ("low", "high") for _ in CASES)
    for r in fake.requests:  # each API's own name for it, and only that
        validate(r.json, "CreateResponse" if api_of(r) == "responses"
                 else "CreateChatCompletionRequest")
        assert ("reasoning" in r.json) == (api_of(r) == "responses")
        assert ("reasoning_effort" in r.json) == (api_of(r) == "chat")

    df = res.df
    assert (df["reasoning_tokens"] == df["reasoning_effort"].map(EFFORT_TOKENS)).all()
    assert (df["reasoning_cost"] == df["reasoning_tokens"] * 2).all()  # the output rate
    thinker = df[df["model"] == THINKER]
    # The first call with the cache key wrote its prompt; every later one read its own.
    assert list(thinker["cache_write_tokens"]) == [3] + [0] * 5
    assert list(thinker["cached_tokens"]) == [0, 3, 3, 3, 4, 4]  # prompts of 3, 3 and 4 words
    assert (thinker["cached_input_cost"] == thinker["cached_tokens"] * 0.5).all()
    assert (thinker["cache_write_cost"] == thinker["cache_write_tokens"] * 1.25).all()
    assert df.loc[df["model"] == "m1", "cache_write_tokens"].isna().all()  # chat: not reported

    s = res.summary().set_index(["model", "reasoning_effort"])
    assert len(s) == 4 and (s["calls"] == 3).all()
    sums = df.groupby(["model", "reasoning_effort"])[
        ["reasoning_tokens", "reasoning_cost", "cached_tokens", "cached_input_cost",
         "cache_write_tokens", "cache_write_cost"]].sum(min_count=1)
    for col in sums:
        pd.testing.assert_series_equal(s[col].sort_index(), sums[col].sort_index(),
                                       check_dtype=False)
    assert s.loc[(THINKER, "high"), "reasoning_tokens"] == 3 * EFFORT_TOKENS["high"]
    assert s.loc[(THINKER, "low"), "cache_write_cost"] == 3 * 1.25
    assert math.isnan(s.loc[("m1", "low"), "cache_write_cost"])
    # More effort, more money: the table to weigh it against the scores.
    assert s.loc[(THINKER, "high"), "total_cost"] > s.loc[(THINKER, "low"), "total_cost"]


def test_cache_reuses_within_an_api_and_never_across(fake):
    same = {"models": [f"fake:{THINKER}"], "params": {"prompt_cache_key": "k"},
            "concurrency": 1}
    chat = run(**same)
    run(**same)
    assert len(fake.requests) == 3  # the second run came from the cache
    first = run(api="responses", **same)  # the same calls, but to the other API
    assert len(fake.requests) == 6 and not first.df["cached"].any()
    assert [api_of(r) for r in fake.requests[3:]] == ["responses"] * 3
    again = run(api="responses", **same)
    assert len(fake.requests) == 6 and again.df["cached"].all()
    cols = ["output", "prompt_tokens", "completion_tokens", "cached_tokens",
            "cache_write_tokens", "reasoning_tokens", "finish_reason", "api"]
    assert again.df[cols].equals(first.df[cols])
    assert list(again.df["cache_write_tokens"]) == [3, 0, 0]
    assert (again.df["reasoning_tokens"] == EFFORT_TOKENS["medium"]).all()
    assert chat.df["cache_write_tokens"].isna().all()
    # The chat results are still there, and still chat's.
    third = run(**same)
    assert len(fake.requests) == 6 and (third.df["api"] == "chat").all()
    assert third.df["cached"].all() and third.df["output"].equals(chat.df["output"])


def test_a_grid_over_the_api_compares_chat_and_responses(fake):
    res = run(grid={"api": ["chat", "responses"]}, params={"max_tokens": 2}, stream=True)
    assert sorted(api_of(r) for r in fake.requests) == ["chat"] * 3 + ["responses"] * 3
    assert res.df["ttft"].notna().all()  # both streamed
    for r in fake.requests:
        assert "api" not in r.json and r.json["stream"] is True
        assert r.json.get("max_tokens" if api_of(r) == "chat" else "max_output_tokens") == 2
    s = res.summary()
    assert list(s["api"]) == ["chat", "responses"] and (s["calls"] == 3).all()
    assert set(res.df["finish_reason"]) == {"length"}  # max_output_tokens was honoured


def test_a_stored_response_comes_back_equal(fake):
    r = gptmagic.respond([{"role": "user", "content": "hello there"}],
                         model=f"fake:{THINKER}", reasoning={"effort": "high", "summary": "auto"},
                         include=["message.output_text.logprobs"], top_logprobs=2,
                         prompt_cache_key="k")
    assert r.kind == "response" and r.usage.reasoning_tokens == EFFORT_TOKENS["high"]
    assert r.usage.cache_write_tokens == 2 and r.status == "completed" and r.reasoning
    assert r.logprobs and r.logprobs[0].top
    kept = Result(**{f: getattr(r, f) for f in Result.__slots__})
    kept.raw = kept.rate_limits = None  # not stored: the body, and headers of the moment
    kept.timings = Timings(r.timings.total, r.timings.ttft, r.timings.attempts)
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


SYS = {"role": "system", "content": "Be brief."}
USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(("messages", "params", "body"), [
    ([SYS, USER], {}, {"instructions": "Be brief.", "input": [USER]}),
    ([SYS], {}, {"input": [SYS]}),  # nothing else to send: the system message is the input
    ([SYS, USER], {"instructions": "Mine."}, {"input": [SYS, USER], "instructions": "Mine."}),
    ([USER, SYS], {}, {"input": [USER, SYS]}),  # only a leading one is the instructions
    ([{**SYS, "content": [{"type": "input_text", "text": "x"}]}, USER], {},
     {"input": [{**SYS, "content": [{"type": "input_text", "text": "x"}]}, USER]}),
    ([USER], {"store": True}, {"input": [USER], "store": True}),
])
def test_a_leading_system_message_is_the_instructions(messages, params, body):
    local = Provider("x", kind="local")
    assert call_body("responses", messages, params, "m", local) == {"store": False, **body}
    assert call_body("chat", messages, params, "m", local) == {"messages": messages, **params}


@pytest.mark.parametrize("kind", ["openai", "azure"])
def test_a_hosted_run_refuses_max_tokens_below_16_before_sending(fake, monkeypatch, kind):
    """A user test: evaluate(api="responses", params={"max_tokens": 5}) on OpenAI sent
    every row and got a 400 each time; a %%chat cell refused it up front."""
    monkeypatch.setenv("HOSTED_KEY", "sk-test-hosted-0123456789")
    extra = {"api_version": "2024-10-21"} if kind == "azure" else {}
    gptmagic.add_profile("hosted", kind=kind, base_url=fake.url, api_key_env="HOSTED_KEY",
                         **extra)
    with pytest.raises(RequestError, match="^parameter 'max_tokens' must be at least 16 on "
                                           "the Responses API \\(model 'gpt-5-mini'\\), "
                                           "where max_output_tokens counts reasoning too; "
                                           "got 5$") as e:
        run(models=["hosted:gpt-5-mini"], api="responses", params={"max_tokens": 5})
    assert e.value.param == "max_tokens" and fake.requests == []
    # On chat, on another server, or from 16 on, it is sent as asked.
    run(models=["hosted:gpt-5-mini"], api="chat", params={"max_tokens": 5})
    run(models=["fake:gpt-5-mini"], api="responses", params={"max_tokens": 5})
    run(models=["hosted:gpt-5-mini"], api="responses", params={"max_tokens": 16})
    sent = [r.json.get("max_tokens") or r.json.get("max_output_tokens") for r in fake.requests
            if r.json is not None]  # (not GET /models, asked for shutdown dates)
    assert sent == [5] * len(CASES) * 2 + [16] * len(CASES)


def test_eval_config_names_the_api(fake, tmp_path, capsys):
    (tmp_path / "cases.csv").write_text("q\nhello\nbye\n")
    cfg = tmp_path / "run.toml"
    cfg.write_text('data = "cases.csv"\nprompt = "user: {q}"\n'
                   f'models = ["fake:m1", "fake:{THINKER}"]\n'
                   'grid = { reasoning_effort = ["low", "high"] }\n'
                   f'[api]\n"fake:{THINKER}" = "responses"\n')
    assert cli_main(["eval", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "8 calls, 0 from cache, 0 errors" in out and "reasoning_tokens" in out
    assert sorted({(r.json["model"], api_of(r)) for r in fake.requests}) == [
        (THINKER, "responses"), ("m1", "chat")]
    cfg.write_text('data = "cases.csv"\nprompt = "user: {q}"\nmodels = ["fake:m1"]\n'
                   'api = "graphql"\n')
    assert cli_main(["eval", str(cfg)]) == 1
    assert "api is 'graphql'; use 'chat' or 'responses'" in capsys.readouterr().err


def test_a_profiles_api_setting_is_the_default(fake):
    gptmagic.add_profile("fake-r", base_url=fake.url, api="responses")
    res = evaluate(CASES[:1], "user: {q}", ["fake-r:m1", "fake:m2", "fake:m1"], progress=False)
    assert sorted((r.json["model"], api_of(r)) for r in fake.requests) == [
        ("m1", "chat"), ("m1", "responses"), ("m2", "chat")]
    assert list(res.df["api"]) == ["responses", "chat", "chat"]
    # One model through two profiles, one on each API: two rows of the summary.
    s = res.summary()
    assert list(zip(s["model"], s["api"], strict=True)) == [
        ("m1", "responses"), ("m2", "chat"), ("m1", "chat")]
    evaluate(CASES[:1], "user: {q}", ["fake-r:m1"], api="chat", progress=False)  # call wins
    assert api_of(fake.requests[-1]) == "chat"


def test_cost_parts_are_unknown_not_zero_without_a_price(fake):
    res = run(api="responses", grid={"reasoning_effort": ["high"]},
              models=["fake:gpt-5-unpriced-fake"], params={"prompt_cache_key": "k"})
    df = res.df
    assert (df["reasoning_tokens"] == EFFORT_TOKENS["high"]).all() and df["cost"].isna().all()
    for part in ("reasoning_cost", "cached_input_cost", "cache_write_cost"):
        assert df[part].isna().all(), part
    s = res.summary()
    assert s.loc[0, "reasoning_tokens"] == 3 * EFFORT_TOKENS["high"]
    assert math.isnan(s.loc[0, "reasoning_cost"]) and math.isnan(s.loc[0, "total_cost"])


@pytest.mark.parametrize(("user_price", "input_rate"), [(False, 0.05), (True, 1.0)])
def test_cache_writes_without_a_cache_write_rate_cost_the_input_rate(fake, user_price,
                                                                     input_rate):
    """gpt-5-nano has no cache-write price in genai-prices (nor the user's price here): the
    first call's writes cost the input rate, so the run's totals are known, not NaN."""
    if user_price:
        gptmagic.set_price("gpt-5-nano", input_per_mtok=str(input_rate), output_per_mtok="2")
    res = run(api="responses", models=["fake:gpt-5-nano"], params={"prompt_cache_key": "k2"},
              concurrency=1)
    first, later = res.df.iloc[0], res.df.iloc[1]
    assert first["cache_write_tokens"] == 3
    assert first["cache_write_cost"] == pytest.approx(3 * input_rate / 1e6)
    assert not res.df["cost"].isna().any() and later["cache_write_cost"] == 0
    assert not math.isnan(res.summary().loc[0, "total_cost"])


@pytest.mark.engine
def test_chat_and_responses_on_the_embedded_model(tmp_path, monkeypatch):
    """The embedded engine answers both APIs; greedy decoding gives the same reply on each."""
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "c.sqlite"))
    try:
        res = evaluate([{"word": "cat"}, {"word": "dog"}], "user: Say the word {word}.",
                       ["local"], grid={"api": ["chat", "responses"]},
                       params={"max_tokens": 8, "temperature": 0, "logprobs": True},
                       progress=False)
    finally:
        gptmagic.shutdown()
    df = res.df
    assert df["error"].isna().all(), df["error"].tolist()
    assert (df["cost"] == 0).all() and (df["completion_tokens"] <= 8).all()
    by_api = df.pivot(index="row", columns="api", values="output")
    assert (by_api["chat"] == by_api["responses"]).all() and by_api["chat"].str.len().gt(0).all()
    assert df["mean_logprob"].notna().all()  # logprobs on both APIs
