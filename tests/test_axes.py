"""Cost axes that are measured: engine timings kept (engine → client → store → table),
``compute`` and ``tokens_per_s``, plot / pareto / recommend on any axis, and scorer
explanations (``Score``, ``explain.<scorer>``)."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import pytest
from fakeserver import Behaviour
from lazy import lazy

import gptmagic
import gptmagic.scorers as sc
from gptmagic.core.types import Choice, Result, Timings, Usage
from gptmagic.errors import RequestError
from gptmagic.eval.columns import engine_seconds
from gptmagic.eval.results import EvalResults
from gptmagic.eval.rows import result_from_dict, result_to_dict, row_result
from gptmagic.local import adapt
from gptmagic.local.response_events import ResponseStream, build_response
from gptmagic.local.responses import prepare_response

matplotlib = lazy("matplotlib")

CASES = [{"q": f"question {i}", "expected": f"echo: question {i}"} for i in range(4)]
ENGINE = {"prompt_n": 5, "prompt_ms": 40.0, "predicted_n": 3, "predicted_ms": 60.0,
          "predicted_per_second": 50.0}


def exact(case: Any) -> bool:
    return case.output == case.row["expected"]


# -- the embedded server keeps llama.cpp's timings on every path (pure) -------------------------


def _chat_plan(stream: bool) -> Any:
    return adapt.prepare_chat({"model": "local", "messages": [{"role": "user", "content": "hi"}],
                               "stream": stream, "stream_options": {"include_usage": True}})


def _engine_chunks() -> list[dict[str, Any]]:
    """A chat stream as the engine sends it: text, then a usage chunk with the timings."""
    envelope = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                "model": "x"}
    return [{**envelope, "choices": [{"index": 0, "delta": {"content": "hi"},
                                      "finish_reason": None}]},
            {**envelope, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**envelope, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1,
                                                  "total_tokens": 6}, "timings": ENGINE}]


def test_a_chat_stream_keeps_the_engines_timings_on_its_usage_chunk() -> None:
    stream = adapt.ChatStream(_chat_plan(True))
    sent = [c for chunk in _engine_chunks() for c in stream.feed(chunk)]
    # Before: the usage chunk carrying them was folded away, and the timings with it.
    assert all("timings" not in c for c in sent)
    [last] = stream.finish()
    assert last["timings"] == ENGINE and last["usage"]["total_tokens"] == 6


def test_a_responses_answer_keeps_the_engines_timings() -> None:
    planned = prepare_response({"model": "local", "input": "hi"}, adapt.prepare_chat)
    chat = {"id": "chatcmpl-1", "created": 1, "timings": ENGINE, "usage": {},
            "choices": [{"message": {"role": "assistant", "content": "hi"},
                         "finish_reason": "stop"}]}
    assert build_response(planned, chat, 2.0)["timings"] == ENGINE
    del chat["timings"]
    assert "timings" not in build_response(planned, chat, 2.0)

    planned = prepare_response({"model": "local", "input": "hi", "stream": True},
                               adapt.prepare_chat)
    chat_stream = adapt.ChatStream(planned.chat)
    events = ResponseStream(planned, chat_stream.feed, chat_stream.finish, lambda: 2.0)
    sent = [e for chunk in _engine_chunks() for e in events.feed(chunk)] + events.finish()
    assert sent[-1]["type"] == "response.completed" and sent[-1]["timings"] == ENGINE
    assert all("timings" not in e for e in sent[:-1])


# -- kept in the store --------------------------------------------------------------------------


def _result(engine: dict[str, Any] | None) -> Result:
    return Result(kind="chat", model="m", choices=[Choice(index=0, text="hi")],
                  usage=Usage(5, 3, 8), timings=Timings(total=0.5, engine=engine))


def test_a_row_keeps_the_engines_numbers_and_old_rows_still_read() -> None:
    row = result_to_dict(_result({**ENGINE, "note": "text is dropped"}))
    assert row["engine"] == ENGINE
    assert result_from_dict(json.loads(json.dumps(row))).timings.engine == ENGINE
    hosted = result_to_dict(_result(None))
    assert "engine" not in hosted  # an older version reads the same row
    assert result_from_dict(hosted).timings.engine is None
    old = {k: v for k, v in row.items() if k != "engine"}  # a row written before
    assert row_result(json.dumps(old)).timings.engine is None
    assert row_result(json.dumps({**row, "engine": {"prompt_ms": "fast"}})) is None  # a miss


@pytest.mark.parametrize(("timings", "seconds"), [
    (ENGINE, 0.1), ({"prompt_ms": 0, "predicted_ms": 250}, 0.25),
    (None, None), ({"predicted_ms": 3.0}, None), ({"prompt_ms": -1, "predicted_ms": 1}, None),
    ({"prompt_ms": True, "predicted_ms": 1}, None), ("x", None),
])
def test_engine_seconds(timings: Any, seconds: float | None) -> None:
    assert engine_seconds(timings) == (None if seconds is None else pytest.approx(seconds))


# -- the columns and summary, against the fake server --------------------------------------------


def _with_timings(body: dict[str, Any]) -> dict[str, Any]:
    """The fake server answering as llama.cpp does, for models named ``engine-*``."""
    return {**body, "timings": ENGINE} if str(body.get("model", "")).startswith("engine") else body


def test_compute_and_tokens_per_second_columns(fake) -> None:
    fake.set_default(Behaviour(mangle=_with_timings))
    res = gptmagic.evaluate(CASES, "user: {q}", ["fake:engine-a", "fake:hosted"],
                            scorers=[sc.custom(exact)], progress=False)
    df = res.df
    local, hosted = df[df["model"] == "engine-a"], df[df["model"] == "hosted"]
    assert local["compute"].tolist() == pytest.approx([0.1] * 4)
    assert hosted["compute"].isna().all()
    assert (df["tokens_per_s"] == df["completion_tokens"] / df["latency"]).all()
    s = res.summary().set_index("model")
    assert s.loc["engine-a", "compute_total"] == pytest.approx(0.4)
    assert math.isnan(s.loc["hosted", "compute_total"])
    for model, g in df.groupby("model"):
        speed = g["completion_tokens"].sum() / g["latency"].sum()
        assert s.loc[model, "tokens_per_s"] == round(speed, 1) > 0
        assert s.loc[model, "total_tokens"] == (g["prompt_tokens"] + g["completion_tokens"]).sum()
    # The store keeps the engine's timings: a cached run has the same compute.
    again = gptmagic.evaluate(CASES, "user: {q}", ["fake:engine-a"],
                              scorers=[sc.custom(exact)], progress=False)
    assert again.df["cached"].all() and again.df["compute"].tolist() == pytest.approx([0.1] * 4)


def test_the_plot_on_each_axis(fake) -> None:
    matplotlib.use("Agg")
    fake.set_default(Behaviour(mangle=_with_timings))
    gptmagic.set_price("hosted", input_per_mtok="1", output_per_mtok="2")
    res = gptmagic.evaluate(CASES, "user: {q}", ["fake:engine-a", "fake:hosted"],
                            scorers=[sc.custom(exact)], progress=False)
    s = res.summary()
    labels = {"cost": "total cost (USD)", "latency": "median latency (s)",
              "tokens": "total tokens (prompt + completion)",
              "compute": "engine time, total (s)"}
    columns = {"cost": "total_cost", "latency": "latency_p50", "tokens": "total_tokens",
               "compute": "compute_total"}
    for x, label in labels.items():
        ax = res.plot(x=x)
        assert ax.get_xlabel() == label
        xs = sorted(float(c.get_offsets()[0][0]) for c in ax.collections)
        want = s[columns[x]].dropna() if x == "compute" else s[columns[x]].fillna(0)
        assert xs == pytest.approx(sorted(want)), x
        matplotlib.pyplot.close(ax.figure)
    # The hosted model has no engine time: left out, and the title says so.
    ax = res.plot(x="compute")
    assert len(ax.collections) == 1
    assert ax.get_title() == "1 configuration with no engine time (hosted) not shown"
    assert res.plot().get_title() == ""  # one model is priced: cost it is


def test_compute_with_only_hosted_models_and_bad_axes_are_clear_errors(fake) -> None:
    res = gptmagic.evaluate(CASES[:2], "user: {q}", ["fake:hosted"],
                            scorers=[sc.custom(exact)], progress=False)
    with pytest.raises(RequestError, match="x='compute' is the embedded engine's own time.*"
                                           "x='latency'") as e:
        res.plot(x="compute")
    assert e.value.param == "x"
    choices = "choose one of 'cost', 'latency', 'tokens', 'compute'"
    for call in (lambda: res.plot(x="dollars"), lambda: res.pareto(x="speed"),
                 lambda: res.recommend("q", 0.5, x="time")):
        with pytest.raises(RequestError, match=choices):
            call()
    with pytest.raises(RequestError, match=r"name the axis: plot\(x='latency'\)"):
        res.plot("latency")


# -- the frontier and recommend() on a chosen axis (a hand-made case) ---------------------------


def _hand_made() -> EvalResults:
    """Four configurations whose latency, tokens, compute and cost are known.

    ==== ======= ====== ======= ===== =====
    name latency tokens compute cost  score
    ==== ======= ====== ======= ===== =====
    a    1.0     100    0.5     0.04  0.5
    b    2.0     50     0.2     0.01  0.9
    c    3.0     10     None    0.02  1.0
    d    0.5     200    0.1     0.03  0.2
    ==== ======= ====== ======= ===== =====
    """
    specs = {"a": (1.0, 100, 0.5, 0.04, 0.5), "b": (2.0, 50, 0.2, 0.01, 0.9),
             "c": (3.0, 10, None, 0.02, 1.0), "d": (0.5, 200, 0.1, 0.03, 0.2)}
    rows = []
    for name, (latency, tokens, compute, cost, score) in specs.items():
        for case, kind in enumerate(["x", "y"]):
            rows.append({"input.kind": kind, "row": case, "prompt": "p", "model": name,
                         "repeat": 0, "output": "o", "prompt_tokens": tokens // 2,
                         "completion_tokens": tokens - tokens // 2, "cost": cost / 2,
                         "latency": latency, "compute": None if compute is None
                         else compute / 2, "cached": False, "error": None,
                         "score.s": score, "score": score})
    return EvalResults(pd.DataFrame(rows), [], [], [], ["prompt", "model"])


@pytest.mark.parametrize(("x", "front"), [
    ("cost", ["b", "c"]),
    ("latency", ["d", "a", "b", "c"]),
    ("tokens", ["c"]),
    ("compute", ["d", "b", "c"]),  # c has no engine time: it counts as the worst
])
def test_the_frontier_on_each_axis(x: str, front: list[str]) -> None:
    res = _hand_made()
    assert res.pareto(x=x)["model"].tolist() == front
    if x == "cost":
        assert res.pareto()["model"].tolist() == front  # the default, as before


def _frontier_line(ax: Any) -> Any:
    (line,) = [ln for ln in ax.lines if ln.get_label() == "Pareto frontier"]
    return line


def test_the_plotted_frontier_is_its_points_ringed_and_joined_by_steps() -> None:
    matplotlib.use("Agg")
    ax = _hand_made().plot(x="latency")  # every configuration on it: d, a, b, c
    line = _frontier_line(ax)
    assert list(line.get_xdata()) == [0.5, 1.0, 2.0, 3.0]
    assert list(line.get_ydata()) == [0.2, 0.5, 0.9, 1.0]
    assert line.get_drawstyle() == "steps-post"  # best score so far, then up at the next
    assert line.get_marker() == "o" and line.get_markerfacecolor() == "none"  # ringed
    # One legend entry for it, drawn as a line with its ring.
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts.count("Pareto frontier") == 1
    # The configurations stay the scatter collections (one each), under the rings.
    assert len(ax.collections) == 4
    matplotlib.pyplot.close("all")


def test_a_frontier_of_one_point_is_a_ringed_point_not_a_line_across() -> None:
    matplotlib.use("Agg")
    ax = _hand_made().plot(x="tokens")  # one point on the frontier: c, at 20 tokens
    line = _frontier_line(ax)
    # Before: [20, 400] at score 1.0, a horizontal line to the right edge that read as a
    # threshold. Now: the point alone, ringed.
    assert list(line.get_xdata()) == [20] and list(line.get_ydata()) == [1.0]
    assert line.get_marker() == "o"
    assert len(ax.lines) == 1  # nothing else drawn across the plot
    ax = _hand_made().plot(x="compute")  # c has no engine time: not drawn, not at 0
    assert list(_frontier_line(ax).get_xdata()) == [0.1, 0.2]
    matplotlib.pyplot.close("all")


def test_recommend_on_latency_names_its_columns_after_it() -> None:
    res = _hand_made()
    rec = res.recommend("kind", 0.8, x="latency")
    assert rec["model"].tolist() == ["b", "b"] and rec["latency"].tolist() == [2.0, 2.0]
    assert rec["best_overall_latency"].tolist() == [3.0, 3.0]  # c: the best score
    assert rec["saving"].tolist() == [1.0, 1.0]
    by_cost = res.recommend("kind", 0.8)
    assert {"cost", "best_overall_cost", "saving"} <= set(by_cost.columns)
    assert by_cost["model"].tolist() == ["b", "b"]
    # compute: c has no engine time, so it ranks last; it is picked only when alone
    assert res.recommend("kind", 0.95, x="compute")["model"].tolist() == ["c", "c"]
    assert res.recommend("kind", 0.3, x="compute")["model"].tolist() == ["b", "b"]


# -- scorer explanations ------------------------------------------------------------------------


def why(output: str, row: dict[str, Any]) -> gptmagic.Score:
    ok = output == row["expected"]
    return gptmagic.Score(ok, None if ok else f"wanted {row['expected']!r}")


def test_a_score_with_an_explanation(fake) -> None:
    assert gptmagic.Score is sc.Score
    res = gptmagic.evaluate(CASES[:2], {"a": "user: {q}", "b": "user: {q}!"}, ["fake:m"],
                            scorers=[sc.custom(why, name="why"), sc.custom(exact)],
                            progress=False)
    df = res.df.set_index("prompt")
    assert df.loc["a", "score.why"].tolist() == [1.0, 1.0]
    assert df.loc["a", "explain.why"].tolist() == [None, None]
    assert df.loc["b", "explain.why"].tolist() == ["wanted 'echo: question 0'",
                                                   "wanted 'echo: question 1'"]
    assert df["explain.exact"].isna().all()  # every scorer's column, once one explained
    plain = res.rescore([sc.custom(exact)])  # nothing explains: no explain columns
    assert not [c for c in plain.df if c.startswith("explain.")]
    back = plain.rescore([sc.custom(why, name="why")])
    assert back.df["explain.why"].tolist() == res.df["explain.why"].tolist()
    assert "explain.why" not in plain.df and "explain.why" in res.df  # not shared


def test_a_judges_reply_is_its_explanation(fake) -> None:
    """The fake server echoes the judge's prompt: its first number in scale is the
    rubric's 4, and the whole reply is the explanation."""
    grade = sc.judge("A polite reply earns 4.", model="judge", provider="fake")
    res = gptmagic.evaluate(CASES[:2], "user: {q}", ["fake:m"], scorers=[grade],
                            progress=False)
    assert res.df["score.judge"].tolist() == [0.75, 0.75]
    for text, out in zip(res.df["explain.judge"], res.df["output"], strict=True):
        assert text.startswith("echo: Grade the response") and out in text
    [asked] = [r for r in fake.requests if r.json.get("model") == "judge"][:1]
    prompt = asked.json["messages"][-1]["content"]
    assert "then, after it, one short sentence saying why" in prompt
    assert asked.json["max_tokens"] == 80


@pytest.mark.parametrize(("value", "expected"), [
    (gptmagic.Score(1, "fine"), gptmagic.Score(1.0, "fine")),
    (gptmagic.Score(True, ""), 1.0),  # an empty explanation is none
    (0.5, 0.5),
])
def test_custom_and_combine_pass_explanations_on(value: Any, expected: Any) -> None:
    scorer = sc.custom(lambda out, row: value, name="c")
    assert scorer(sc.Case("o", {})) == expected
    both = sc.combine(scorer, sc.custom(lambda o, r: gptmagic.Score(0, "no"), name="d"))
    got = both(sc.Case("o", {}))
    assert got.explanation == ("c: fine; d: no" if value == gptmagic.Score(1, "fine")
                               else "d: no")
    assert got.value == pytest.approx(float(getattr(value, "value", value)) / 2)


@pytest.mark.parametrize(("value", "message"), [
    (gptmagic.Score(2, "x"), "outside"), (gptmagic.Score(0.5, 3), "explanation of type int"),
    (gptmagic.Score("yes", "x"), "returned str"),
])
async def test_a_bad_score_is_a_scorer_error(value: Any, message: str) -> None:
    scorer = sc.custom(lambda out, row: value, name="bad")
    with pytest.raises(sc.ScorerError, match=message):
        await sc.score_async(scorer, sc.Case("o", {}))


# -- the embedded engine -------------------------------------------------------------------------


@pytest.mark.engine
def test_every_engine_path_reports_its_timings() -> None:
    """Chat, completions and the Responses API, streamed and not: llama.cpp's timings
    reach the Result (before, a streamed chat and both Responses paths lost them)."""
    hi = [{"role": "user", "content": "hi"}]
    calls = {"chat": (gptmagic.chat, hi, {"max_tokens": 4}),
             "complete": (gptmagic.complete, "Hello", {"max_tokens": 4}),
             "respond": (gptmagic.respond, hi, {"max_output_tokens": 16})}
    try:
        for name, (fn, ask, limit) in calls.items():
            for stream in (False, True):
                r = fn(ask, model="local", stream=stream, temperature=0, **limit)
                assert r.timings.engine is not None, (name, stream)
                assert engine_seconds(r.timings.engine) > 0
                assert r.timings.engine["predicted_n"] == r.usage.completion_tokens
    finally:
        gptmagic.shutdown()


@pytest.mark.engine
def test_a_local_run_measures_compute(tmp_path, monkeypatch) -> None:
    matplotlib.use("Agg")
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "c.sqlite"))
    cases = [{"word": "cat"}, {"word": "dog"}]
    params = {"max_tokens": 6, "temperature": 0, "seed": 1}
    try:
        prompts = {"say": "user: Say {word}.", "spell": "user: Spell {word}."}
        res = gptmagic.evaluate(cases, prompts, ["local"], params=params,
                                scorers=[sc.custom(lambda o, r: r["word"] in o.lower())],
                                progress=False)
        responses = gptmagic.evaluate(cases[:1], "user: Say {word}.", ["local"],
                                      api="responses", params={"max_tokens": 16},
                                      progress=False)
    finally:
        gptmagic.shutdown()
    assert res.df["error"].isna().all(), res.df["error"].tolist()
    assert (res.df["compute"] > 0).all() and (res.df["tokens_per_s"] > 0).all()
    assert (responses.df["compute"] > 0).all()  # the Responses API path too
    s = res.summary()
    assert (s["compute_total"] > 0).all() and (s["tokens_per_s"] > 0).all()
    assert (s["latency_p95"] >= s["latency_p50"]).all()
    ax = res.plot()  # every model is free: latency, and the title says so
    assert ax.get_xlabel() == "median latency (s)"
    assert ax.get_title() == "every model is free or unpriced: latency instead of cost"
    ax = res.plot(x="compute")
    xs = sorted(float(c.get_offsets()[0][0]) for c in ax.collections)
    assert xs == pytest.approx(sorted(s["compute_total"])) and ax.get_title() == ""


def _unpriced() -> EvalResults:
    """The hand-made case with a fifth model, ``e``: the best score, no price (a model the
    price table does not know), the fastest."""
    res = _hand_made()
    extra = res.df[res.df["model"] == "c"].assign(model="e", cost=None, latency=0.1)
    return EvalResults(pd.concat([res.df, extra], ignore_index=True), [], [], [],
                       ["prompt", "model"])


def test_unknown_cost_is_unknown_in_pareto_and_last_in_recommend() -> None:
    """pareto() showed inf for an unpriced model; recommend() summed its cost to $0 and
    picked it as the cheapest. Both now rank it last, show NaN and say why."""
    res = _unpriced()
    front = res.pareto()
    assert front["model"].tolist() == ["b", "c"]  # e, unpriced, ties c on score: dominated
    alone = EvalResults(res.df[res.df["model"].isin(["a", "e"])], [], [], [],
                        ["prompt", "model"])
    table = alone.pareto()
    assert table["model"].tolist() == ["a", "e"]
    assert math.isnan(table.loc[1, "total_cost"])  # not inf
    hosted = _hand_made().pareto(x="compute")  # c: no engine time
    assert math.isnan(hosted.loc[hosted["model"] == "c", "compute_total"].item())
    rec = res.recommend("kind", 0.95)
    assert rec["model"].tolist() == ["c", "c"]  # not e at "$0"
    assert rec["cost"].tolist() == [0.01, 0.01]
    assert rec["note"].tolist() == ["cost unknown, ranked last: p · e"] * 2
    by_latency = res.recommend("kind", 0.95, x="latency")  # e is known there: fastest
    assert by_latency["model"].tolist() == ["e", "e"] and "note" not in by_latency
