"""evaluate(..., batch=True) against the fake server's Files and Batch APIs.

The fake's batches live on a clock (tests/fakebatches.py): frozen tests move it with
``advance``; the others run it a million times faster than real time, so a "24 h"
batch finishes in milliseconds and nothing here waits for real.
"""

from __future__ import annotations

import json
import re
import sqlite3
from decimal import Decimal

import pytest
from fakebatches import WINDOW, Clock
from fakeserver import Behaviour, FakeServer
from openapi_schema import validate

import gptmagic
from gptmagic.catalog.pricing import cost_of
from gptmagic.errors import RequestError
from gptmagic.eval.batchfiles import line_body
from gptmagic.eval.runner import estimate_run, evaluate

pytestmark = pytest.mark.timeout(60)

KEY = "sk-fake-batchrun-0123456789abcdef"
ROWS = [{"q": f"question {i}"} for i in range(6)]
FAST = {"poll": 0.005}
MINI = "f:gpt-4o-mini"


@pytest.fixture
def fake(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.setenv("FAKE_KEY", KEY)
    gptmagic.add_profile("f", kind="openai", base_url=fake_server.url, api_key_env="FAKE_KEY")
    fake_server.batches.clock = Clock(scale=1e6)  # a fake hour is 3.6 real ms
    return fake_server


def run(rows=ROWS, models=(MINI,), **kw):
    kw.setdefault("progress", False)
    kw.setdefault("batch", FAST)
    return evaluate(rows, "user: {q}", list(models), **kw)


def posts(srv, tail):
    return [r for r in srv.requests if r.method == "POST" and r.path.endswith(tail)]


def uploaded_lines(srv):
    """Every request line of every file uploaded (files the batches answered excluded)."""
    return [json.loads(x) for f in srv.batches.files.values() if f.purpose == "batch"
            for x in f.content.splitlines()]


def frozen(srv):
    srv.batches.clock = Clock(scale=0)
    return srv.batches.clock


# -- the round trip -----------------------------------------------------------------------------


def test_two_models_answered_in_batches_at_batch_prices(fake):
    res = run(models=[MINI, "f:gpt-4.1-nano"])
    df = res.df
    assert len(df) == 12 and df["error"].isna().all() and "pending" not in df
    assert (df["output"] == "echo: " + df["input.q"]).all()
    assert posts(fake, "/chat/completions") == []  # nothing went live
    assert len(posts(fake, "/batches")) == 2 == df["batch"].nunique()  # one per model
    for model, group in df.groupby("model"):
        (b,) = set(group["batch"])
        assert fake.batches.batches[b].lines[0]["body"]["model"] == model
    for line in uploaded_lines(fake):
        validate(line["body"], "CreateChatCompletionRequest")
        assert line["url"] == "/v1/chat/completions" and len(line["custom_id"]) == 64
    for b in fake.batches.batches.values():  # as the run left them: completed, per the spec
        validate(fake.batches._body(b), "Batch")
        assert b.status == "completed" and b.metadata == {"gptmagic_batch": b.metadata[
            "gptmagic_batch"]}
    # Batch prices: genai-prices' batch price of each model, half of the live one here.
    for _, row in df.iterrows():
        usage = {"prompt_tokens": int(row["prompt_tokens"]),
                 "completion_tokens": int(row["completion_tokens"])}
        live = cost_of(usage, row["model"], provider="openai")
        batch = cost_of(usage, row["model"], provider="openai", batch=True)
        assert "batch price" in batch.source
        assert row["cost"] == float(batch.total) == float(live.total) / 2


def test_a_second_run_is_answered_from_the_cache_with_its_batch(fake):
    first = run()
    before = len(fake.requests)
    again = run()
    assert len(fake.requests) == before  # no upload, no batch, no look
    assert again.df["cached"].all() and list(again.df["batch"]) == list(first.df["batch"])
    assert list(again.df["cost"]) == list(first.df["cost"])  # still the batch price


def test_a_line_is_the_request_the_live_call_sends(fake):
    params = {"temperature": 0.5, "max_tokens": 7, "seed": 3}
    live = run(rows=ROWS[:1], batch=False, params=params, cache=False)
    (sent,) = posts(fake, "/chat/completions")
    run(rows=ROWS[:1], params=params)
    (line,) = uploaded_lines(fake)
    assert line["body"] == sent.json
    assert live.df["batch"].isna().all()


def test_the_same_prompt_twice_is_one_line(fake):
    res = run(rows=[{"q": "same"}, {"q": "same"}, {"q": "other"}])
    assert len(uploaded_lines(fake)) == 2
    assert res.df["error"].isna().all() and list(res.df["output"]) == [
        "echo: same", "echo: same", "echo: other"]


def test_files_are_split_at_the_limits(fake):
    res = run(rows=[{"q": f"q{i}"} for i in range(7)], batch={**FAST, "max_requests": 3})
    sizes = sorted(len(b.lines) for b in fake.batches.batches.values())
    assert sizes == [1, 3, 3] and res.df["error"].isna().all()
    one = len(json.dumps(uploaded_lines(fake)[0])) + 1
    fake.batches.batches.clear()
    fake.batches.files.clear()
    res = run(rows=[{"q": f"r{i}"} for i in range(4)], batch={**FAST, "max_bytes": 2 * one + 5})
    assert sorted(len(b.lines) for b in fake.batches.batches.values()) == [2, 2]
    res = run(rows=[{"q": "x" * 5000}], batch={**FAST, "max_bytes": 1000})
    assert res.df["error_type"][0] == "RequestError"
    assert "over the 1,000 bytes a batch file may hold" in res.df["error"][0]


def test_mixed_providers_and_endpoints_get_a_batch_each(fake, monkeypatch):
    with FakeServer() as other:
        other.batches.clock = Clock(scale=1e6)
        gptmagic.add_profile("g", kind="openai", base_url=other.url, api_key_env="FAKE_KEY")
        res = run(models=[MINI, "g:gpt-4o-mini"], api={MINI: "responses"})
        assert res.df["error"].isna().all()
        assert (res.df["output"] == "echo: " + res.df["input.q"]).all()
        (mine,) = fake.batches.batches.values()
        (theirs,) = other.batches.batches.values()
        assert (mine.endpoint, theirs.endpoint) == ("/v1/responses", "/v1/chat/completions")
        for line in uploaded_lines(fake):
            validate(line["body"], "CreateResponse")
        assert set(res.df["api"]) == {"responses", "chat"}
        assert res.df.groupby("api")["batch"].nunique().to_dict() == {"chat": 1,
                                                                      "responses": 1}


def test_prompts_with_tools_run_live_and_say_so(fake, capsys):
    def shout(text: str) -> str:
        """Say it loudly."""
        return text.upper()

    res = evaluate(ROWS[:2], {"plain": "user: {q}", "tool": "user: {q}"}, [MINI],
                   tools={"tool": [shout]}, batch=FAST)
    assert "2 calls run live, not in a batch: its prompt has tools" in capsys.readouterr().err
    by = res.df.set_index("prompt")
    assert by.loc["tool", "batch"].isna().all() and by.loc["plain", "batch"].notna().all()
    assert len(posts(fake, "/chat/completions")) == 2 and len(uploaded_lines(fake)) == 2


def test_batch_needs_the_cache(fake):
    with pytest.raises(RequestError, match="batch=True needs the cache"):
        run(cache=False)
    with pytest.raises(RequestError, match="batch must be True, False"):
        run(batch="yes")
    with pytest.raises(RequestError, match="poll must be"):
        run(batch={"poll": 0})
    assert fake.requests == []


# -- surviving: wait=False, no second batch, collection later -----------------------------------


def test_wait_false_returns_at_once_and_a_later_call_collects(fake, capsys):
    clock = frozen(fake)
    first = evaluate(ROWS, "user: {q}", [MINI], batch=FAST, wait=False)
    assert first.df["output"].isna().all() and first.df["error"].isna().all()
    assert first.df["pending"].str.contains("in batch batch_fake2 .validating, 0/6 done.").all()
    assert "6 pending in batches" in first.describe()
    assert "6 of 6 calls pending" in capsys.readouterr().err
    second = run(wait=False)  # still running: looked at, not submitted again
    assert second.df["pending"].notna().all()
    clock.advance(2 * 3600)
    third = run(wait=False)
    assert third.df["error"].isna().all() and "pending" not in third.df
    assert len(posts(fake, "/batches")) == 1 and len(posts(fake, "/files")) == 1
    assert set(third.df["batch"]) == {"batch_fake2"}


def test_a_call_is_never_in_two_batches(fake):
    frozen(fake)
    run(rows=ROWS[:3], wait=False)
    run(rows=ROWS, wait=False)  # three new rows: a second batch with only those
    first, second = fake.batches.batches.values()
    ids = [x["custom_id"] for b in (first, second) for x in b.lines]
    assert len(ids) == len(set(ids)) == 6 and len(second.lines) == 3


def test_a_batch_made_but_never_written_down_is_found_not_made_again(fake, tmp_path):
    """The process died between the provider making the batch and the store writing its id:
    the next run finds it by its file among the provider's batches."""
    import subprocess
    import sys

    from gptmagic.client.facade import get_client
    from gptmagic.client.portal import get_portal
    from gptmagic.eval.jobs import build_jobs, set_keys
    from gptmagic.eval.ledger import Ledger
    from gptmagic.eval.store import Store

    frozen(fake)
    jobs = build_jobs(ROWS[:2], {"prompt": "user: {q}"}, [MINI], None, {}, {}, 1)
    set_keys(jobs)
    store = Store(tmp_path / "cache.sqlite")
    ledger = Ledger(store)
    local, got = ledger.add(jobs[0].provider, "/v1/chat/completions", "gpt-4o-mini", "test",
                            [j.key for j in jobs])
    content = b"".join(json.dumps({"custom_id": j.key, "method": "POST",
                                   "url": "/v1/chat/completions",
                                   "body": line_body(j)}).encode() + b"\n" for j in jobs)
    batches = get_client().batches(provider=jobs[0].provider)
    f = get_portal().run(batches.upload(content))
    ledger.set_file(local, f.id)
    made = get_portal().run(batches.create(f.id, "/v1/chat/completions"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    store.transact(lambda db: db.execute("UPDATE batches SET pid = ? WHERE local = ?",
                                         (int(dead), local)), None)
    store.close()
    fake.batches.clock.advance(2 * 3600)
    res = run(rows=ROWS[:2])
    assert res.df["error"].isna().all() and set(res.df["batch"]) == {made.id}
    assert len(posts(fake, "/batches")) == 1  # ours above; the run made none


# -- partial outcomes -----------------------------------------------------------------------------


def test_expiry_keeps_what_finished_and_resubmitting_is_asked(fake):
    fake.batches.run_s = 2 * WINDOW  # one line of four is done when the window closes
    res = run(rows=ROWS[:4])
    answered = res.df[res.df["output"].notna()]
    left = res.df[res.df["pending"].notna()]
    assert len(answered) == 1 and len(left) == 3 and res.df["error"].isna().all()
    assert left["pending"].str.contains("batch_expired").all()
    assert left["pending"].str.contains("resubmit=True").all()
    again = run(rows=ROWS[:4])  # not resubmitted unless asked
    assert again.df["pending"].notna().sum() == 3 and len(posts(fake, "/batches")) == 1
    fake.batches.run_s = 3600
    done = run(rows=ROWS[:4], resubmit=True)
    assert done.df["error"].isna().all() and "pending" not in done.df
    assert len(posts(fake, "/batches")) == 2
    first, second = fake.batches.batches.values()
    answered_ids = {out["custom_id"] for out, ok in first.done if ok}
    assert len(second.lines) == 3 and not answered_ids & {x["custom_id"] for x in second.lines}
    assert done.df["cached"].sum() == 1  # what the first batch answered was kept


def test_cancel_keeps_what_finished(fake):
    clock = frozen(fake)
    store = fake.batches
    first = run(rows=ROWS[:4], wait=False)
    (batch_id,) = set(first.df["batch"])
    clock.advance(store.validate_s + store.run_s * 0.5)
    cancelled = gptmagic.cancel_batch(batch_id)
    assert cancelled.status == "cancelling"
    clock.advance(3600)
    res = run(rows=ROWS[:4])
    assert res.df["output"].notna().sum() == 2
    assert res.df["pending"].str.contains("batch_cancelled|cancelled", na=False).sum() == 2


def test_per_request_errors_become_rows_with_their_error(fake):
    frozen(fake)
    first = run(rows=ROWS[:3], wait=False)
    keys = [x["custom_id"] for x in uploaded_lines(fake)]
    fake.batches.fail_ids = {keys[1]}
    fake.batches.clock.advance(2 * 3600)
    res = run(rows=ROWS[:3])
    assert list(res.df["error_type"].fillna("")) == ["", "InternalServerError", ""]
    assert "HTTP 500" in res.df["error"][1] and res.df["batch"].notna().all()
    assert first.df["batch"][1] == res.df["batch"][1]
    fake.batches.fail_ids = set()
    fake.batches.clock = Clock(scale=1e6)
    res = run(rows=ROWS[:3], resubmit=True)  # asked: sent again
    assert res.df["error"].isna().all() and len(posts(fake, "/batches")) == 2


def test_a_malformed_output_line_costs_that_row_only(fake):
    fake.batches.malformed_output = True
    res = run(rows=ROWS[:3])
    assert list(res.df["error_type"].fillna("")) == ["MalformedResponseError", "", ""]
    assert "batch batch_fake2 output line 1 is not JSON" in res.df["error"][0]
    assert res.df["output"][1:].notna().all()


def test_a_validation_failure_names_the_line_and_its_row(fake):
    fake.batches.invalid_lines = {2: "Invalid value for 'temperature'."}
    res = run(rows=ROWS[:3])
    assert res.df["error_type"][1] == "BatchValidationError"
    assert "failed validation: line 2: invalid_request: Invalid value" in res.df["error"][1]
    assert res.df["pending"][[0, 2]].str.contains(
        r"not run: batch batch_fake2 failed \(line 2: Invalid .*\) before it ran").all()


def test_an_upload_refused_names_the_line_and_its_row(fake):
    fake.plan(Behaviour(status=400, body={"error": {
        "message": "Line 2 of the file is not valid JSON.", "type": "invalid_request_error",
        "param": "file", "code": None}}))
    res = run(rows=ROWS[:3])
    assert (res.df["error_type"] == "BadRequestError").all()
    assert ("batch file upload refused: HTTP 400" in res.df["error"][0]
            and "(line 2 is data row 1, prompt 'prompt', model 'gpt-4o-mini', repeat 0)"
            in res.df["error"][0])
    assert posts(fake, "/batches") == []
    again = run(rows=ROWS[:3])  # nothing reached the provider: the calls are free again
    assert again.df["error"].isna().all() and len(posts(fake, "/batches")) == 1


def test_an_upload_too_large_says_so(fake):
    fake.batches.max_upload_bytes = 100
    res = run(rows=ROWS[:2])
    assert (res.df["error_type"] == "APIStatusError").all()
    assert "HTTP 413" in res.df["error"][0] and "too large" in res.df["error"][0]


# -- money ---------------------------------------------------------------------------------------


def test_max_cost_is_checked_before_submitting(fake):
    one = cost_of({"prompt_tokens": 9, "completion_tokens": 5}, "gpt-4o-mini",
                  provider="openai", batch=True).total
    res = run(params={"max_tokens": 5}, max_cost=float(one) * 2.5)
    refused = res.df[res.df["error_type"] == "BudgetExceeded"]
    assert 1 <= len(refused) < 6 and len(uploaded_lines(fake)) == 6 - len(refused)
    assert refused["error"].str.contains("max_cost").all()


def test_estimate_run_at_batch_prices(fake):
    live = estimate_run(ROWS, "user: {q}", [MINI, "f:gpt-4o"], params={"max_tokens": 50})
    batch = estimate_run(ROWS, "user: {q}", [MINI, "f:gpt-4o"], params={"max_tokens": 50},
                         batch=True)
    assert "batch" not in live and batch["batch"].all()
    for col in ("cost_low", "cost_expected", "cost_high"):
        assert list(batch[col]) == pytest.approx([x / 2 for x in live[col]])
    assert batch["price_source"].str.endswith("batch price").all()


# -- Azure OpenAI ------------------------------------------------------------------------------


def test_azure_global_batch_behind_the_same_call(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.setenv("AZ_KEY", KEY)
    fake_server.batches.clock = Clock(scale=1e6)
    gptmagic.add_profile("az", kind="azure", base_url=fake_server.url.removesuffix("/v1"),
                         api_key_env="AZ_KEY", api_version="2024-10-21",
                         batch_deployments={"gpt-4o-mini": "mini-global-batch"})
    res = evaluate(ROWS[:3], "user: {q}", ["az:gpt-4o-mini"], batch=FAST, progress=False)
    assert res.df["error"].isna().all() and res.df["batch"].notna().all()
    paths = {(r.method, re.sub(r"(batch_|file-)fake\d+", "ID", r.path), tuple(r.query))
             for r in fake_server.requests}
    assert paths == {("POST", "/openai/v1/files", ()), ("POST", "/openai/v1/batches", ()),
                     ("GET", "/openai/v1/batches/ID", ()),
                     ("GET", "/openai/v1/files/ID/content", ())}
    assert all(r.headers["api-key"] == KEY for r in fake_server.requests)
    assert posts(fake_server, "/batches")[0].json["endpoint"] == "/chat/completions"
    assert {x["body"]["model"] for x in uploaded_lines(fake_server)} == {"mini-global-batch"}
    # Azure's gpt-4o-mini has no batch price in genai-prices: the discount, said so.
    usage = {"prompt_tokens": int(res.df["prompt_tokens"][0]),
             "completion_tokens": int(res.df["completion_tokens"][0])}
    full = cost_of(usage, "gpt-4o-mini", provider="azure")
    assert res.df["cost"][0] == float(full.total * Decimal("0.5"))
    assert "OpenAI's published Batch API discount" in cost_of(
        usage, "gpt-4o-mini", provider="azure", batch=True).source
    # The same call live still goes to the deployment, with its api-version.
    live = evaluate(ROWS[3:4], "user: {q}", ["az:gpt-4o-mini"], progress=False)
    assert live.df["batch"].isna().all()
    assert fake_server.requests[-1].path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert fake_server.requests[-1].query == {"api-version": "2024-10-21"}


# -- the batches the cache keeps -----------------------------------------------------------------


def test_batches_lists_and_refreshes(fake, tmp_path):
    clock = frozen(fake)
    run(rows=ROWS[:2], models=[MINI, "f:gpt-4.1-nano"], wait=False)
    table = gptmagic.batches(refresh=False)
    assert list(table.columns) == ["id", "provider", "model", "endpoint", "status", "total",
                                   "completed", "failed", "created", "expires", "collected",
                                   "run", "note"]
    assert set(table["status"]) == {"validating"} and set(table["provider"]) == {"f"}
    assert table["run"].str.contains("4 calls · prompt × gpt-4.1-nano, gpt-4o-mini").all()
    assert (table["expires"] - table["created"]).dt.total_seconds().tolist() == [WINDOW] * 2
    clock.advance(2 * 3600)
    table = gptmagic.batches()
    assert set(table["status"]) == {"completed"} and (table["completed"] == 2).all()
    assert not table["collected"].any()
    db = sqlite3.connect(tmp_path / "cache.sqlite")
    assert {s for (s,) in db.execute("SELECT status FROM batches")} == {"completed"}
    db.close()
    with pytest.raises(RequestError, match="no batch 'batch_nope' in the cache"):
        gptmagic.cancel_batch("batch_nope")


def test_the_key_is_nowhere_a_batch_run_writes(fake, tmp_path):
    res = run(rows=ROWS[:2])
    gptmagic.batches()
    cache = (tmp_path / "cache.sqlite").read_bytes()
    wal = tmp_path / "cache.sqlite-wal"
    written = cache + (wal.read_bytes() if wal.exists() else b"")
    assert KEY.encode() not in written and b"FAKE_KEY" in written  # the variable's name only
    files = b"".join(f.content for f in fake.batches.files.values())
    assert KEY.encode() not in files
    assert KEY not in repr(res.df.to_dict()) and KEY not in gptmagic.batches().to_string()


def test_the_progress_bar_shows_statuses_and_counts(fake, capsys):
    frozen(fake)
    run(rows=ROWS[:4], models=[MINI, "f:gpt-4.1-nano"], progress=True, wait=False)
    err = capsys.readouterr().err
    assert "gptmagic batch" in err and "0/8" in err and "2 batches: 2 validating" in err
    fake.batches.fail_ids = {x["custom_id"] for x in uploaded_lines(fake)[:1]}
    fake.batches.clock.advance(2 * 3600)
    run(rows=ROWS[:4], models=[MINI, "f:gpt-4.1-nano"], progress=True)
    err = capsys.readouterr().err
    assert "8/8" in err and "2 batches: 2 completed (collected); 1 request failed" in err
    assert "1 of 8 calls failed: 1 InternalServerError" in err
