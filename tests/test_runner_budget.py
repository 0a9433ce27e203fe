"""evaluate()'s spending cap against the fake server: calls are counted where they arrive.

Issue 13, item 8: with ``max_cost`` set, a call without a price is refused before it is
sent, and a call the server answers under a model name of its own is priced as the model
that was asked for.
"""

from __future__ import annotations

import re
import time
from decimal import Decimal

import pytest
from fakeserver import Behaviour
from shell_support import new_shell

import gptmagic
from gptmagic.catalog.pricing import cost_of
from gptmagic.core.types import Usage
from gptmagic.eval.runner import evaluate


@pytest.fixture
def fake(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    gptmagic.add_profile("p", base_url=fake_server.url, default_model="fake-model")
    return fake_server


ROWS = [{"q": f"question {i}"} for i in range(200)]


def test_an_unpriced_model_under_a_budget_sends_nothing_and_says_how_to_price_it(fake):
    res = evaluate(ROWS, "user: {q}", ["p:my-finetune"], max_cost=0.0001, progress=False)
    assert len(fake.requests) == 0
    assert (res.df["error_type"] == "BudgetExceeded").all()
    message = res.df["error"].iloc[0]
    assert "price of 'my-finetune' is unknown" in message
    assert "gptmagic.set_price('my-finetune', input_per_mtok=" in message
    assert "max_tokens" in message  # nothing bounds the reply of an unknown model either
    # Following the advice: priced, the reply bounded, the budget now decides.
    gptmagic.set_price("my-finetune", input_per_mtok="1000000", output_per_mtok="1000000")
    res = evaluate(ROWS[:6], "user: {q}", ["p:my-finetune"], max_cost=20,
                   params={"max_tokens": 5}, concurrency=1, progress=False)
    assert len(fake.requests) == 2 and res.df["cost"].sum() == 10  # as in test_budget_stop


def test_a_price_without_an_output_limit_asks_for_max_tokens(fake):
    gptmagic.set_price("my-finetune", input_per_mtok="1", output_per_mtok="1")
    res = evaluate(ROWS[:3], "user: {q}", ["p:my-finetune"], max_cost=1, progress=False)
    assert len(fake.requests) == 0
    assert "no output limit is known for 'my-finetune'" in res.df["error"].iloc[0]
    assert "register_model('my-finetune'" in res.df["error"].iloc[0]
    gptmagic.register_model("my-finetune", context_window=4096, max_output_tokens=64)
    res = evaluate(ROWS[:3], "user: {q}", ["p:my-finetune"], max_cost=1, progress=False)
    assert len(fake.requests) == 3 and res.df["error"].isna().all()


def _answer_as(model: str, prompt: int, completion: int) -> dict:
    return {"id": "chatcmpl-x", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                         "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}


def test_a_reply_under_another_model_name_is_priced_as_the_requested_model(fake):
    # The server answers every call as "deployment-7" (no price) and bills 100k + 10k tokens:
    # $0.021 at gpt-4o-mini's prices. A $0.05 cap allows three calls (0.042 + a tiny worst
    # case < 0.05; 0.063 + it > 0.05), where pricing them as unknown = $0 sent all ten.
    fake.set_default(Behaviour(body=_answer_as("deployment-7", 100_000, 10_000)))
    res = evaluate(ROWS[:10], "user: {q}", ["p:gpt-4o-mini"], max_cost=0.05,
                   params={"max_tokens": 5}, concurrency=1, progress=False)
    each = cost_of(Usage(100_000, 10_000), "gpt-4o-mini", provider="compatible").total
    assert each == Decimal("0.021")
    assert len(fake.requests) == 3
    assert list(res.df["cost"].iloc[:3]) == [float(each)] * 3
    assert (res.df["error_type"].iloc[3:] == "BudgetExceeded").all()
    # A cached re-run prices the same way (no request sent).
    again = evaluate(ROWS[:3], "user: {q}", ["p:gpt-4o-mini"], params={"max_tokens": 5},
                     progress=False)
    assert len(fake.requests) == 3 and list(again.df["cost"]) == [float(each)] * 3


def test_a_call_without_reported_usage_counts_its_worst_case(fake):
    # Worst case per call: 9 counted prompt + 5 reply tokens at $1 a token = $14. The
    # server reports no usage, so the cost is unknown: the budget counts $14, not $0.
    gptmagic.set_price("m-priced", input_per_mtok="1000000", output_per_mtok="1000000")
    body = _answer_as("m-priced", 1, 1)
    del body["usage"]
    fake.set_default(Behaviour(body=body))
    res = evaluate(ROWS[:6], "user: {q}", ["p:m-priced"], params={"max_tokens": 5},
                   max_cost=20, concurrency=1, progress=False)
    assert len(fake.requests) == 1
    assert res.df["cost"].isna().iloc[0]  # unknown stays unknown in the table
    assert (res.df["error_type"].iloc[1:] == "BudgetExceeded").all()


def test_a_cell_answered_under_another_model_name_shows_the_requested_price(fake, tmp_path,
                                                                           monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    completion_body = _answer_as("deployment-7", 100_000, 10_000)
    completion_body["object"] = "text_completion"
    completion_body["choices"] = [{"index": 0, "text": "ok", "finish_reason": "stop",
                                   "logprobs": None}]
    fake.plan(Behaviour(body=_answer_as("deployment-7", 100_000, 10_000)),
              Behaviour(body=completion_body))
    shell = new_shell()
    shell.run_line_magic("load_ext", "gptmagic")
    try:
        with capture_output():
            reply = shell.run_cell_magic("chat", "-m p:gpt-4o-mini --no-stream", "hi")
            completion = shell.run_cell_magic("complete", "-m p:gpt-4o-mini --no-stream", "hi")
    finally:
        shell.run_line_magic("unload_ext", "gptmagic")
        InteractiveShell.clear_instance()
    for r in (reply, completion):
        assert r.cost.total == Decimal("0.021") and "as asked for" in r.cost.source


def test_calls_that_fail_after_the_server_generated_still_count_against_the_budget(fake):
    """A 200 with a malformed body was billed by the server but counted as $0: a server
    that always answered badly got every row, past any budget."""
    gptmagic.set_price("my-finetune", input_per_mtok="1000000", output_per_mtok="1000000")
    fake.set_default(Behaviour(malformed="json"))
    res = evaluate(ROWS[:6], "user: {q}", ["p:my-finetune"], max_cost=35,
                   params={"max_tokens": 5}, concurrency=1, progress=False)
    assert len(fake.requests) == 2  # each failed call counts its worst case, $15
    assert list(res.df["error_type"]) == ["MalformedResponseError"] * 2 + ["BudgetExceeded"] * 4
    # An HTTP error status is not billed: it does not use the budget up.
    fake.reset()
    fake.set_default(Behaviour(status=400))
    res = evaluate(ROWS[6:12], "user: {q}", ["p:my-finetune"], max_cost=20,
                   params={"max_tokens": 5}, concurrency=1, progress=False)
    assert len(fake.requests) == 6 and (res.df["error_type"] == "BadRequestError").all()


def test_a_run_whose_rows_failed_says_why_where_the_bar_is_seen(fake, capsys):
    """The bar only counted errors=10: the reasons were in res.df alone."""
    res = evaluate(ROWS[:10], "user: {q}", ["p:my-finetune"], max_cost=0.01, progress=True)
    err = capsys.readouterr().err
    assert "gptmagic: 10 of 10 calls failed: 10 BudgetExceeded (not sent: max_cost is set" in err
    assert "gptmagic.set_price('my-finetune'" in err and res.failures() in err
    evaluate(ROWS[:10], "user: {q}", ["p:my-finetune"], max_cost=0.01, progress=False)
    assert "calls failed" not in capsys.readouterr().err  # quiet when asked to be


def test_a_refusal_over_budget_names_the_assumed_output_and_how_to_bound_it(fake):
    """A user test: four tiny calls to gpt-5-mini under $0.10 were all refused with only
    "max_cost $0.1 would be exceeded": the worst case assumed the model's whole output
    limit (128,000 tokens, $0.256), which nothing said."""
    rows = ROWS[:4]
    res = evaluate(rows, "user: {q}", ["p:gpt-5-mini"], api="responses", max_cost=0.10,
                   progress=False)
    assert len(fake.requests) == 0
    assert (res.df["error_type"] == "BudgetExceeded").all()
    message = res.df["error"].iloc[0]
    worst = 128_000 * Decimal(2) / 1_000_000  # gpt-5-mini's output limit at $2 per 1M
    # What happened, what to do, then the arithmetic: a run's failure line cuts the rest.
    assert message.startswith("not sent: max_cost $0.10 would be exceeded; bound the reply "
                              "with params={'max_tokens': N}, N up to about ")
    assert "(1,000 output tokens cost $0.002; a reasoning model counts its reasoning in it), " \
           "or raise max_cost. This call was assumed to write 128,000 output tokens (the " \
           "most the model may write" in message
    assert "as no max_tokens was given" in message
    assert f"at worst it costs ${worst:.3f} with its " in message
    assert "$0.10 of the budget is left ($0.00 spent, $0.00 held for calls in flight)" in message
    fits = int(re.search(r"N up to about ([\d,]+) ", message)[1].replace(",", ""))
    assert 49_000 < fits < 50_000  # ($0.10 - the prompt) / $2 per 1M
    # Following the advice: every call is sent, and its max_tokens is named if still too big.
    res = evaluate(rows, "user: {q}", ["p:gpt-5-mini"], api="responses", max_cost=0.10,
                   params={"max_tokens": 1000}, progress=False)
    assert len(fake.requests) == 4 and res.df["error"].isna().all()
    res = evaluate(ROWS[4:5], "user: {q}", ["p:gpt-5-mini"], api="responses", max_cost=0.10,
                   params={"max_tokens": 60_000}, progress=False)
    assert "assumed to write 60,000 output tokens (its max_tokens=60000)" in res.df["error"][0]


def test_a_refusal_over_budget_shows_its_fix_before_the_failure_line_cuts_it(fake, capsys):
    """A tester saw the refusal cut with "…" on stderr before its fix."""
    evaluate(ROWS[:2], "user: {q}", ["p:gpt-5-mini"], api="responses", max_cost=0.10,
             progress=True)
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("gptmagic: 2 of 2 calls failed"))
    assert "(not sent: max_cost $0.10 would be exceeded; bound the reply with " \
           "params={'max_tokens': N}, N up to about " in line
    assert "or raise max_cost" in line
