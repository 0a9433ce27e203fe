"""evaluate() against the fake server (and once against the embedded model)."""

from __future__ import annotations

import asyncio
import math
import time

import pandas as pd
import pytest
from fakeserver import Behaviour

import gptmagic
from gptmagic.errors import RateLimitError, RequestError
from gptmagic.eval.limits import Limiter
from gptmagic.eval.runner import evaluate
from gptmagic.eval.store import Store

CASES = [
    {"q": "two plus two", "expected": "echo: two plus two"},
    {"q": "capital of France", "expected": "Paris"},
    {"q": "colour of the sky", "expected": "echo: colour of the sky"},
]


class Exact:
    """A minimal scorer (the scorers module has the full set)."""

    name = "exact"
    weight = 1.0
    is_async = False

    def __call__(self, case):
        return float(case.output == case.row["expected"])


def run(**kw):
    kw.setdefault("progress", False)
    return evaluate(CASES, "user: {q}", kw.pop("models", ["fake:m1"]), **kw)


def test_grid_is_complete_and_ordered(fake):
    res = evaluate(
        CASES,
        {"plain": "user: {q}", "polite": "system: Be polite.\nuser: {q}"},
        ["fake:m1", "fake:m2"],
        grid={"temperature": [0.0, 1.0]},
        repeats=2,
        progress=False,
    )
    df = res.df
    assert len(df) == 3 * 2 * 2 * 2 * 2 == len(fake.requests)
    first = df.iloc[:4]
    assert list(first["row"]) == [0, 0, 0, 0] and list(first["prompt"]) == ["plain"] * 4
    assert list(first["temperature"]) == [0.0, 0.0, 1.0, 1.0] and list(first["repeat"]) == [
        0,
        1,
        0,
        1,
    ]
    assert (df["output"] == "echo: " + df["input.q"]).all()
    assert df["error"].isna().all() and (df["prompt_tokens"] > 0).all()
    sent = {
        (q.json["model"], q.json["temperature"], q.json["messages"][-1]["content"])
        for q in fake.requests
    }
    assert len(sent) == 3 * 2 * 2  # repeats resend the same request, once per repeat
    assert fake.requests[0].json["messages"][0] == {"role": "user", "content": "two plus two"}


def test_cache_rerun_sends_nothing_and_refresh_resends(fake):
    first = run(scorers=[Exact()])
    assert len(fake.requests) == 3 and not first.df["cached"].any()
    again = run(scorers=[Exact()])
    assert len(fake.requests) == 3 and again.df["cached"].all()
    pd.testing.assert_series_equal(first.df["output"], again.df["output"])
    run(refresh=True)
    assert len(fake.requests) == 6
    run(cache=False)
    assert len(fake.requests) == 9


def test_errors_are_rows_not_cached_and_resume_only_missing(fake):
    fake.plan(Behaviour(status=400), Behaviour(), Behaviour())
    res = run(concurrency=1)
    assert res.df["error"].notna().sum() == 1 and res.df.loc[0, "error_type"] == "BadRequestError"
    n = len(fake.requests)
    again = run(concurrency=1)
    assert len(fake.requests) == n + 1  # only the failed call is re-sent
    assert again.df["error"].isna().all() and again.df["cached"].sum() == 2


def test_concurrency_limit_is_respected(fake):
    fake.set_default(Behaviour(delay=0.15))
    evaluate(
        [{"q": f"q{i}"} for i in range(12)],
        "user: {q}",
        ["fake:m"],
        concurrency=3,
        progress=False,
        cache=False,
    )
    assert fake.max_in_flight == 3


def test_concurrency_above_the_default_pool_is_reached(fake):
    """The shared pool (256 connections) grows to the run's concurrency."""
    from gptmagic.core import defaults as D

    conc = D.MAX_CONNECTIONS + 44
    gptmagic.evaluate([{"q": "warm"}], "user: {q}", ["fake:m"], progress=False, cache=False)
    # Each request waits until all of them are in flight (a barrier, bounded at 30 s), so
    # the count does not depend on how fast a loaded machine opens 300 connections.
    fake.set_default(Behaviour(hold_until=conc))
    res = evaluate([{"q": f"q{i}"} for i in range(conc)], "user: {q}", ["fake:m"],
                   concurrency=conc, progress=False, cache=False)
    assert res.df["error"].isna().all()
    assert fake.max_in_flight == conc


def test_quota_error_stops_issuing_calls(fake):
    quota = {
        "error": {
            "message": "You exceeded your quota",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    fake.set_default(Behaviour(status=429, body=quota))
    res = evaluate(
        [{"q": f"q{i}"} for i in range(10)], "user: {q}", ["fake:m"], concurrency=1, progress=False
    )
    assert len(fake.requests) == 1
    assert (res.df["error_type"] == "QuotaExceededError").all()
    assert res.df["error"].iloc[1].startswith("not sent: quota exhausted")


def test_budget_stop(fake):
    gptmagic.set_price("m-priced", input_per_mtok="1000000", output_per_mtok="1000000")
    # Each call's worst case is 9 counted prompt + 5 max completion tokens at $1 a token
    # = $14; the fake server bills 2 + 3 = $5. With $20: $0+14, $5+14 fit; $10+14 does not.
    res = evaluate(
        [{"q": f"question {i}"} for i in range(6)],
        "user: {q}",
        ["fake:m-priced"],
        params={"max_tokens": 5},
        max_cost=20,
        concurrency=1,
        progress=False,
    )
    assert len(fake.requests) == 2
    assert (res.df["error_type"] == "BudgetExceeded").sum() == 4
    assert res.df["cost"].sum() == 10 <= 20


def test_limiter_cooldown_and_recovery():
    async def go():
        lim = Limiter(8)
        lim.on_retry(RateLimitError("slow down", status_code=429), 0.05)
        assert lim.current == 4 and lim.cooldown_until > 0
        t0 = asyncio.get_running_loop().time()
        async with lim:
            pass
        assert asyncio.get_running_loop().time() - t0 >= 0.04
        assert lim.current == 5  # one step back up after a success

    asyncio.run(go())


def test_scores_summary_pareto_and_rescore(fake):
    res = evaluate(
        CASES, "user: {q}", ["fake:cheap", "fake:pricey"], scorers=[Exact()], progress=False
    )
    assert list(res.df["score.exact"][:2]) == [1.0, 1.0] and res.df["score"].iloc[2] == 0.0
    s = res.summary()
    assert set(s["model"]) == {"cheap", "pricey"}
    row = s[s["model"] == "cheap"].iloc[0]
    assert row["calls"] == 3 and row["errors"] == 0
    assert row["score"] == row["pass_rate"] == 0.667  # 2/3, rounded for reading
    assert row["score_se"] > 0 and row["latency_p95"] >= row["latency_p50"]
    n = len(fake.requests)

    class Contains:
        name, weight, is_async = "contains", 1.0, False

        def __call__(self, case):
            return float("echo" in case.output)

    again = res.rescore([Contains()])
    assert len(fake.requests) == n and again.df["score"].eq(1.0).all()
    assert len(res.pareto()) >= 1


def test_bad_input_is_a_clear_error(fake, tmp_path):
    with pytest.raises(RequestError, match="data row 1") as caught:
        evaluate([{"q": "a"}, {"other": "b"}], "user: {q}", ["fake:m"], progress=False)
    # The data's columns, not "the notebook" (issue 13, item 16: the CLI has no notebook).
    assert "name 'q' is not defined in the data (its columns: other)" in str(caught.value)
    with pytest.raises(RequestError, match=r"not defined in the data \(its columns: q\)"):
        evaluate([{"q": "a"}], [{"role": "user", "content": "{qq}"}], ["fake:m"],
                 progress=False)
    with pytest.raises(RequestError, match="does not exist"):
        evaluate(str(tmp_path / "nope.csv"), "user: {q}", ["fake:m"], progress=False)
    path = tmp_path / "cases.jsonl"
    pd.DataFrame(CASES).to_json(path, orient="records", lines=True)
    assert len(evaluate(str(path), "user: {q}", ["fake:m"], progress=False).df) == 3


def test_store_survives_and_is_intact(fake, tmp_path):
    run()
    store = Store(tmp_path / "cache.sqlite")
    assert store.count() == 3 and store.integrity() == "ok"
    store.close()


async def test_works_inside_a_running_event_loop(fake):
    res = evaluate(CASES, "user: {q}", ["fake:m"], progress=False)  # notebook style
    assert len(res.df) == 3
    res2 = await gptmagic.aevaluate(CASES, "user: {q}", ["fake:m"], progress=False)
    assert res2.df["cached"].all()


@pytest.mark.engine
def test_end_to_end_on_the_embedded_model(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "c.sqlite"))
    try:
        res = evaluate(
            [{"word": "cat"}, {"word": "dog"}],
            "user: Say the word {word}.",
            ["local"],
            params={"max_tokens": 8, "temperature": 0, "seed": 1},
            progress=False,
        )
        assert res.df["error"].isna().all() and (res.df["cost"] == 0).all()
        assert (res.df["completion_tokens"] <= 8).all() and res.df["output"].str.len().gt(0).all()
    finally:
        gptmagic.shutdown()


def test_estimate_run_before_spending(fake):
    gptmagic.set_price("m-est", input_per_mtok="1000000", output_per_mtok="2000000")
    try:
        est = gptmagic.estimate_run(CASES, "user: {q}", ["fake:m-est", "local", "fake:mystery"],
                                    params={"max_tokens": 10}, repeats=2)
    finally:
        gptmagic.shutdown()
    assert fake.requests == []  # nothing sent
    row = est[est["model"] == "m-est"].iloc[0]
    assert row["calls"] == 6 and row["prompt_tokens"] > 0
    assert row["cost_low"] == row["prompt_tokens"]  # $1 per prompt token
    assert row["cost_high"] == row["prompt_tokens"] + 6 * 10 * 2  # + max_tokens at $2
    assert row["cost_low"] <= row["cost_expected"] <= row["cost_high"]
    assert est[est["model"] == "smollm2-135m-instruct"].iloc[0]["cost_high"] == 0
    assert math.isnan(est[est["model"] == "mystery"].iloc[0]["cost_high"])  # unknown, not 0


def test_recommend_routes_each_group_to_the_cheapest_good_model(fake):
    gptmagic.set_price("cheap", input_per_mtok="1", output_per_mtok="1")
    gptmagic.set_price("pricey", input_per_mtok="100", output_per_mtok="100")
    cases = [{"kind": "echo", "q": "alpha", "expected": "echo: alpha"},
             {"kind": "echo", "q": "beta", "expected": "echo: beta"},
             {"kind": "hard", "q": "gamma", "expected": "echo: gamma"}]

    class ExactOnPricey:  # the cheap model is "wrong" on hard cases
        name, weight, is_async = "ok", 1.0, False

        def __call__(self, case):
            if case.row["kind"] == "hard" and case.result.model == "cheap":
                return 0.0
            return float(case.output == case.row["expected"])

    res = evaluate(cases, "user: {q}", ["fake:cheap", "fake:pricey"], scorers=[ExactOnPricey()],
                   progress=False)
    rec = res.recommend("kind", threshold=1.0).set_index("kind")
    assert rec.loc["echo", "model"] == "cheap" and rec.loc["hard", "model"] == "pricey"
    assert rec.loc["echo", "saving"] > 0 and rec.loc["hard", "saving"] == 0
    with pytest.raises(RequestError, match="no column 'nope'"):
        res.recommend("nope", threshold=1.0)


def test_bucket_paces_and_headers_are_learned():
    from gptmagic.eval.limits import Bucket

    async def go():
        b = Bucket(600)  # 10 per second
        b.level = 0
        t0 = time.monotonic()
        await b.take(2)
        assert time.monotonic() - t0 >= 0.15  # it waited for the second token
        lim = Limiter(4)
        lim.learn({"x-ratelimit-limit-requests": "500", "x-ratelimit-limit-tokens": "30000"})
        assert lim.requests.per_minute == 500 and lim.tokens.per_minute == 30000
        configured = Limiter(4, rpm=60)
        configured.learn({"x-ratelimit-limit-requests": "500"})
        assert configured.requests.per_minute == 60  # what the user set wins
    asyncio.run(go())


def test_rate_limit_headers_reach_the_result(fake):
    fake.set_default(Behaviour(headers={"x-ratelimit-limit-requests": "77",
                                        "x-ratelimit-remaining-requests": "76"}))
    res = evaluate(CASES[:1], "user: {q}", ["fake:m"], cache=False, progress=False)
    assert res._jobs[0].result.rate_limits == {"x-ratelimit-limit-requests": "77",
                                               "x-ratelimit-remaining-requests": "76"}


async def test_interrupted_run_resumes_with_only_the_missing_calls(fake, tmp_path):
    rows = [{"q": f"q{i}"} for i in range(10)]
    fake.set_default(Behaviour(delay=0.2))
    run = asyncio.ensure_future(gptmagic.aevaluate(rows, "user: {q}", ["fake:m"],
                                                   concurrency=2, progress=False))
    store = Store(tmp_path / "cache.sqlite")
    # Stopped once a few rows are stored (like a kernel interrupt mid-run): by what is
    # stored, not by a clock a loaded machine outruns. Bounded: 30 s.
    for _ in range(1500):
        if run.done() or store.count() >= 3:
            break
        await asyncio.sleep(0.02)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    # The cancelled run winds down on the portal loop after `await run` returns: wait
    # until nothing is in flight and neither the server nor the store has moved for
    # 0.5 s (a settle condition, not an assertion; bounded at 30 s).
    seen, still = None, 0
    for _ in range(600):
        now = (len(fake.requests), store.count(), fake.in_flight)
        still = still + 1 if now == seen and fake.in_flight == 0 else 0
        if still >= 10:
            break
        seen = now
        await asyncio.sleep(0.05)
    done = store.count()
    assert store.integrity() == "ok" and 0 < done < 10
    store.close()
    first = len(fake.requests)
    fake.set_default(Behaviour())
    res = await gptmagic.aevaluate(rows, "user: {q}", ["fake:m"], progress=False)
    assert len(fake.requests) - first == 10 - done  # nothing paid twice
    assert res.df["cached"].sum() == done and res.df["error"].isna().all()


def test_progress_bar_reports_calls_errors_and_cost(fake, capsys):
    fake.plan(Behaviour(status=400))
    evaluate(CASES, "user: {q}", ["fake:m"], concurrency=1, progress=True, cache=False)
    err = capsys.readouterr().err
    assert "gptmagic eval" in err and "3/3" in err and "errors=1" in err


def test_429_puts_the_whole_provider_in_a_cooldown(fake):
    # Two workers; the first answer is a 429 asking for 1 s. The other worker must not
    # start new requests during that cooldown, and concurrency then recovers. The margins
    # (0.2 s after the 429 for a request already sent; 0.3 s per answer) are wide so a
    # loaded machine does not blur them.
    fake.set_default(Behaviour(delay=0.3))
    fake.plan(Behaviour(status=429, headers={"retry-after-ms": "1000"}))
    res = evaluate([{"q": f"q{i}"} for i in range(8)], "user: {q}", ["fake:m"], concurrency=2,
                   progress=False, cache=False)
    assert res.df["error"].isna().all() and len(fake.requests) == 9
    t429 = fake.requests[0].at
    started_in_cooldown = [r for r in fake.requests[1:] if t429 + 0.2 < r.at < t429 + 0.9]
    assert started_in_cooldown == []
    # Concurrency recovers afterwards: later requests overlap again (each takes 0.3 s).
    later = sorted(r.at for r in fake.requests if r.at > t429 + 0.9)
    assert any(b - a < 0.25 for a, b in zip(later, later[1:], strict=False))


def test_a_hosted_model_name_without_a_provider_is_a_clear_error(monkeypatch):
    """Without a key it would go to the embedded model: 404s, and an estimate of $0."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("GPTMAGIC_PROFILE", raising=False)
    for run in (gptmagic.evaluate, gptmagic.estimate_run):
        with pytest.raises(gptmagic.ConfigError, match=r"openai:gpt-4o-mini.*OPENAI_API_KEY"):
            run([{"q": "x"}], "user: {q}", ["gpt-4o-mini"])
    with pytest.raises(gptmagic.ConfigError, match="profile 'local' is the embedded model"):
        gptmagic.estimate_run([{"q": "x"}], "user: {q}", ["local:gpt-4o"])
    with pytest.raises(gptmagic.ConfigError, match="did you mean 'local:gemma-3-270m'"):
        gptmagic.evaluate([{"q": "x"}], "user: {q}", ["local:gemma3"])  # a typo, said so
    est = gptmagic.estimate_run([{"q": "x"}], "user: {q}", ["openai:gpt-4o-mini", "local"])
    assert est.set_index("model").loc["gpt-4o-mini", "cost_low"] > 0
    assert est.set_index("model").loc["smollm2-135m-instruct", "cost_low"] == 0


@pytest.mark.engine
def test_budget_and_token_pacing_count_on_the_engine_without_deadlock(tmp_path, monkeypatch):
    """Issue 9 bug 1: max_cost / tpm on the embedded model made the runner call the sync
    counter inside the loop (``Portal.run called from the portal's own loop``)."""
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "c.sqlite"))
    rows = [{"q": "cat"}, {"q": "dog"}]
    try:
        res = evaluate(rows, "user: {q}", ["local"], max_cost=1, tpm=100_000,
                       params={"max_tokens": 4, "temperature": 0, "seed": 1}, progress=False)
    finally:
        gptmagic.shutdown()
    assert res.df["error"].isna().all(), res.df["error"].tolist()
    assert (res.df["cost"] == 0).all() and len(res.df) == 2


def test_evaluate_takes_a_client(fake):
    """evaluate(..., client=...) sends with the given client, not the shared one."""

    from gptmagic.client.portal import get_portal

    async def make():
        return gptmagic.Client()

    mine = get_portal().run(make())
    sent: list[object] = []
    original = mine.chat

    async def spy(*a, **kw):
        sent.append(kw.get("model"))
        return await original(*a, **kw)

    mine.chat = spy  # type: ignore[method-assign]
    try:
        res = run(client=mine)
    finally:
        get_portal().run(mine.aclose())
    assert sent == ["m1"] * len(CASES) and res.df["error"].isna().all()


def test_colons_in_a_model_name_split_only_on_a_known_profile(fake, monkeypatch):
    """'llama3:8b' on a default profile was read as profile 'llama3' (unknown): an error."""
    monkeypatch.setenv("GPTMAGIC_PROFILE", "fake")
    res = evaluate([{"q": "x"}], "user: {q}", ["llama3:8b", "fake:ft:m:org::id"],
                   progress=False, cache=False)
    assert res.df["error"].isna().all()
    assert sorted(q.json["model"] for q in fake.requests) == ["ft:m:org::id", "llama3:8b"]
    monkeypatch.delenv("GPTMAGIC_PROFILE")
    with pytest.raises(gptmagic.ConfigError, match="unknown profile 'llama3'; known profiles"):
        gptmagic.estimate_run([{"q": "x"}], "user: {q}", ["llama3:8b"])


def test_a_prompts_images_are_read_one_per_row_and_stored_without_base64(fake, tmp_path,
                                                                         monkeypatch):
    import json
    import sqlite3

    from openapi_schema import validate
    from PIL import Image

    for name, colour in (("red.png", "red"), ("blue.png", "blue")):
        Image.new("RGB", (8, 8), colour).save(tmp_path / name)
    monkeypatch.chdir(tmp_path)  # a relative path starts at the working directory
    res = evaluate([{"img": "red.png"}, {"img": "blue.png"}],
                   "user: what colour? ![a square]({img})", ["fake:m1"], progress=False)
    assert res.df["error"].isna().all(), res.df["error"].tolist()
    urls = []
    for request in fake.requests:
        validate(request.json, "CreateChatCompletionRequest")
        urls.append(request.json["messages"][0]["content"][1]["image_url"]["url"])
    assert len(set(urls)) == 2 and all(u.startswith("data:image/png;base64,") for u in urls)
    db = sqlite3.connect(tmp_path / "cache.sqlite")
    kept = json.dumps(db.execute("SELECT request FROM calls").fetchall(), ensure_ascii=False)
    db.close()
    assert "base64,…" in kept and not any(u in kept for u in urls)
    with pytest.raises(RequestError, match=r"data row 0: .*image `!\[a square\]\(\{img\}\)` "
                                           r"names no file"):
        evaluate([{"img": "green.png"}], "user: ![a square]({img})", ["fake:m1"],
                 progress=False)
