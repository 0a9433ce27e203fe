"""evaluate(tools=...) against the fake server's scripted tool calls (issue 15, item 4): each
row a tool loop whose functions run off the event loop, whose failures are tool results,
bounded by max_steps; the ``steps`` column; tokens and cost summed over the loop's model
calls; the tools in the cache key; the tool scorers; a config file naming functions."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pandas as pd
import pytest
from fakeserver import Behaviour
from openapi_schema import validate
from pydantic import BaseModel

import gptmagic
from gptmagic import scorers as sc
from gptmagic.cli import main as cli_main
from gptmagic.errors import RequestError
from gptmagic.eval.runner import evaluate

CASES = [{"q": "weather in Paris and Lyon"}, {"q": "break things"}]
#: Whether each function call found an event loop running on its thread (it must not).
ON_A_LOOP: list[bool] = []


def _on_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    ON_A_LOOP.append(_on_a_loop())
    return f"sunny in {city}"


def fail(x: int) -> str:
    """Always fails."""
    ON_A_LOOP.append(_on_a_loop())
    raise ValueError(f"no luck with {x}")


#: Row 0: two parallel calls, then the answer. Row 1: a function that raises, a tool that
#: does not exist and malformed arguments, then the answer.
LOOPS = (Behaviour(tool_calls=[("weather", {"city": "Paris"}), ("weather", {"city": "Lyon"})]),
         Behaviour(),
         Behaviour(tool_calls=[("fail", {"x": 1}), ("nope", {}), ("weather", '{"city": ')]),
         Behaviour())


@pytest.fixture
def fake(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    gptmagic.add_profile("fake", base_url=fake_server.url, default_model="fake-model")
    ON_A_LOOP.clear()
    return fake_server


def run(**kw):
    kw.setdefault("progress", False)
    kw.setdefault("concurrency", 1)
    kw.setdefault("tools", [weather, fail])
    return evaluate(kw.pop("cases", CASES), kw.pop("prompt", "user: {q}"),
                    kw.pop("models", ["fake:m1"]), **kw)


def test_each_row_is_a_tool_loop_whose_failures_are_tool_results(fake):
    fake.plan(*LOOPS)
    res = run(scorers=[sc.tool_called("weather", {"city": "Lyon"}),
                       sc.tool_sequence(["weather", "weather"])])
    df = res.df
    assert len(fake.requests) == 4 and df["error"].isna().all()
    first = fake.requests[0].json
    validate(first, "CreateChatCompletionRequest")
    assert [t["function"]["name"] for t in first["tools"]] == ["weather", "fail"]
    assert first["tools"][0]["function"]["description"] == "The weather in a city."
    # The second call carries the calls and their results; the model's answer echoes them.
    validate(fake.requests[1].json, "CreateChatCompletionRequest")
    assert [m["role"] for m in fake.requests[1].json["messages"]] == [
        "user", "assistant", "tool", "tool"]
    assert df.loc[0, "output"] == "tool results: sunny in Paris | sunny in Lyon"
    assert df.loc[0, "steps"] == [
        {"step": 0, "name": "weather", "arguments": '{"city": "Paris"}',
         "args": {"city": "Paris"}, "output": "sunny in Paris", "error": None},
        {"step": 0, "name": "weather", "arguments": '{"city": "Lyon"}',
         "args": {"city": "Lyon"}, "output": "sunny in Lyon", "error": None}]
    broken = df.loc[1, "steps"]
    assert [c["name"] for c in broken] == ["fail", "nope", "weather"]
    assert broken[0]["error"] == "ValueError: no luck with 1"
    assert broken[0]["output"] == "Error: ValueError: no luck with 1"
    assert broken[1]["error"] == "unknown tool 'nope'" and broken[1]["args"] is None
    assert "not valid JSON" in broken[2]["error"] and broken[2]["arguments"] == '{"city": '
    assert df.loc[1, "output"].startswith("tool results: Error: ValueError: no luck with 1 | ")
    # The functions ran, and never on an event loop's thread.
    assert ON_A_LOOP == [False, False, False]
    assert list(df["score.tool_called[weather]"]) == [1.0, 0.0]
    assert list(df["score.tool_sequence"]) == [1.0, 0.0]


def test_max_steps_bounds_a_loop_and_the_row_says_so(fake):
    calling = Behaviour(tool_calls=[("weather", {"city": "Paris"})])
    fake.plan(calling, calling, calling)
    res = run(cases=CASES[:1], max_steps=2)
    assert len(fake.requests) == 2  # the limit, not the plan, ended it
    assert res.df["error"].isna().all() and res.df.loc[0, "finish_reason"] == "tool_calls"
    assert [c["step"] for c in res.df.loc[0, "steps"]] == [0, 1]
    assert "stopped after 2 tool steps (max_steps)" in res._jobs[0].result.warnings


def test_tokens_and_cost_add_up_every_model_call_of_the_loop(fake):
    gptmagic.set_price("m-tools", input_per_mtok="1000000", output_per_mtok="2000000")
    fake.plan(*LOOPS[:2])
    res = run(cases=CASES[:1], models=["fake:m-tools"])
    row = res.df.iloc[0]
    steps = res._jobs[0].result.steps
    assert len(steps) == 2
    prompt = [s.result.usage.prompt_tokens for s in steps]
    completion = [s.result.usage.completion_tokens for s in steps]
    assert row["prompt_tokens"] == sum(prompt) and row["completion_tokens"] == sum(completion)
    assert prompt[1] > prompt[0]  # the second call carried the first one's exchange
    assert Decimal(str(row["cost"])) == sum(prompt) * 1 + sum(completion) * 2
    assert res.summary().loc[0, "total_cost"] == row["cost"]


def test_a_stored_loop_comes_back_with_its_steps_and_tools_are_in_the_key(fake):
    fake.plan(*LOOPS)
    first = run()
    n = len(fake.requests)
    again = run()
    assert len(fake.requests) == n and again.df["cached"].all()  # the same tools: hits
    for col in ("steps", "output", "prompt_tokens", "completion_tokens", "cost"):
        pd.testing.assert_series_equal(first.df[col], again.df[col])
    assert len(again._jobs[0].result.steps) == 2
    # Another tool list, another definition, other code, another limit: asked again.

    def fail(x: int) -> str:  # noqa: F811 - the same name and signature, other code
        """Always fails."""
        raise KeyError(x)

    for kw in ({"tools": [weather]}, {"tools": [weather, fail]}, {"max_steps": 3},
               {"tool_choice": "required"}):
        before = len(fake.requests)
        fake.plan(Behaviour(), Behaviour())
        res = run(**kw)
        assert not res.df["cached"].any() and len(fake.requests) > before, kw


def test_a_loop_over_the_responses_api(fake):
    fake.plan(*LOOPS[:2])
    res = run(cases=CASES[:1], api="responses", scorers=[sc.tool_called("weather")])
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests] == ["responses", "responses"]
    validate(fake.requests[1].json, "CreateResponse")
    assert [i.get("type") for i in fake.requests[1].json["input"]][-2:] == [
        "function_call_output", "function_call_output"]
    assert res.df.loc[0, "output"] == "tool results: sunny in Paris | sunny in Lyon"
    assert [c["args"] for c in res.df.loc[0, "steps"]] == [{"city": "Paris"}, {"city": "Lyon"}]
    assert res.df.loc[0, "score"] == 1.0


class City(BaseModel):
    name: str
    sunny: bool


def test_tools_and_a_schema_per_prompt(fake):
    fake.plan(Behaviour(text="plain"),
              Behaviour(tool_calls=[("weather", {"city": "Paris"})]),
              Behaviour(text='{"name": "Paris", "sunny": true}'))
    res = run(cases=CASES[:1], prompt={"plain": "user: {q}", "agent": "user: {q}"},
              tools={"agent": [weather]}, schema={"agent": City},
              scorers=[sc.tool_called("weather"), sc.field_equals("sunny", "want")])
    assert "tools" not in fake.requests[0].json
    assert "tools" in fake.requests[1].json and "response_format" in fake.requests[2].json
    df = res.df
    assert df.loc[0, "steps"] is None and pd.isna(df.loc[0, "valid"])
    assert df.loc[1, "parsed"] == City(name="Paris", sunny=True)
    assert [c["name"] for c in df.loc[1, "steps"]] == ["weather"]
    assert df.loc[0, "score.tool_called[weather]"] == 0.0
    assert "no column 'want'" in df.loc[1, "score_error"]  # graded per row, never a crash


@pytest.mark.parametrize(("kw", "match"), [
    ({"tools": {"nope": [weather]}}, r"tools names prompt\(s\) 'nope'"),
    ({"tools": [{"type": "function", "function": {"name": "weather"}}]},
     "'weather' is an OpenAI tool dict"),
    ({"tools": weather}, "give a list of functions"),
    ({"tools": [weather, weather]}, "two tools named 'weather'"),
    ({"tools": [lambda x: x]}, "a tool's name must be"),
    ({"tools": None, "max_steps": 3}, "give tools=\\[...\\] too"),
    ({"max_steps": 0}, "max_steps must be a whole number >= 1"),
    ({"tool_choice": "stocks"}, "tool_choice must be 'auto'.*weather, fail"),
    ({"params": {"tools": []}}, "tools is given twice"),
    ({"approve": lambda call: True}, "evaluate\\(\\) has no approve: a run is unattended"),
])
def test_bad_tools_are_a_clear_error_before_any_call(fake, kw, match):
    with pytest.raises(RequestError, match=match):
        run(**kw)
    assert fake.requests == []


def test_a_forced_tool_choice_holds_for_the_first_call(fake):
    res = run(cases=CASES[:1], tool_choice="weather")
    chosen = [r.json.get("tool_choice") for r in fake.requests]
    assert chosen == [{"type": "function", "function": {"name": "weather"}}, None]
    called = res.df.loc[0, "steps"]
    assert [c["name"] for c in called] == ["weather"]  # the fake calls it with {"text": ...}
    assert "do not validate" in called[0]["error"] and res.df["error"].isna().all()


def test_the_budget_counts_every_call_a_loop_may_make(fake):
    gptmagic.set_price("m-b", input_per_mtok="1000000", output_per_mtok="1000000")
    one = run(cases=CASES[:1], models=["fake:m-b"], tools=None,
              params={"max_tokens": 5}, cache=False).df.loc[0, "cost"]
    # Room for one call's worst case, not for three: the loop is not started.
    res = run(cases=CASES[:1], models=["fake:m-b"], params={"max_tokens": 5}, max_steps=3,
              max_cost=float(one) * 2, cache=False)
    assert res.df.loc[0, "error_type"] == "BudgetExceeded"
    assert "or lower max_steps (its tool loop may make 3 calls" in res.df.loc[0, "error"]
    assert len(fake.requests) == 1
    # With max_steps=1 the same budget holds the one call, and it is sent.
    fake.plan(Behaviour(tool_calls=[("weather", {"city": "Paris"})]))
    res = run(cases=CASES[:1], models=["fake:m-b"], params={"max_tokens": 5}, max_steps=1,
              max_cost=float(one) * 2, cache=False)
    assert res.df["error"].isna().all() and len(fake.requests) == 2


def test_a_config_names_tools_and_tool_scorers(fake, tmp_path, capsys):
    (tmp_path / "cases.csv").write_text("q\nweather in Paris\n")
    (tmp_path / "mytools.py").write_text(
        "def weather(city: str) -> str:\n    '''The weather.'''\n    return 'sunny'\n")
    cfg = tmp_path / "run.toml"
    cfg.write_text('data = "cases.csv"\nprompt = "user: {q}"\nmodels = ["fake:m1"]\n'
                   'tools = ["mytools:weather"]\nmax_steps = 2\ntool_choice = "auto"\n'
                   'scorers = [{type = "tool_called", tool = "weather", args = {city = "Paris"}},'
                   ' {type = "tool_sequence", tools = ["weather"]}]\n')
    fake.plan(Behaviour(tool_calls=[("weather", {"city": "Paris"})]), Behaviour())
    assert cli_main(["eval", str(cfg)]) == 0, capsys.readouterr().err
    out = pd.read_csv(tmp_path / "run.results.csv")
    assert out.loc[0, "score"] == 1.0 and out.loc[0, "output"] == "tool results: sunny"
    assert json.loads(out.loc[0, "steps"])[0]["name"] == "weather"
    assert fake.requests[0].json["tool_choice"] == "auto"
    cfg.write_text('data = "cases.csv"\nprompt = "user: {q}"\nmodels = ["fake:m1"]\n'
                   'tools = ["weather"]\n')
    assert cli_main(["eval", str(cfg)]) == 1
    assert "name a Python object as 'module:Name'" in capsys.readouterr().err


def test_estimate_run_holds_a_loop_at_max_steps_calls(fake):
    gptmagic.set_price("m-est", input_per_mtok="1000000", output_per_mtok="2000000")
    kw = {"params": {"max_tokens": 10}}
    plain = gptmagic.estimate_run(CASES, "user: {q}", ["fake:m-est"], **kw)
    loops = gptmagic.estimate_run(CASES, "user: {q}", ["fake:m-est"], tools=[weather],
                                  max_steps=4, **kw)
    assert loops.loc[0, "cost_high"] == 4 * plain.loc[0, "cost_high"]
    assert loops.loc[0, "cost_low"] == plain.loc[0, "cost_low"]
    with pytest.raises(RequestError, match="max_steps must be"):
        gptmagic.estimate_run(CASES, "user: {q}", ["fake:m-est"], tools=[weather], max_steps=0)
    assert fake.requests == []
