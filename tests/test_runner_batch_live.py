"""Live runs and batch runs on one store: a call is paid for once, whichever asks first.

A run without ``batch`` does not send live what a batch not yet collected holds (its row
is ``pending``, saying how to collect it) unless ``resubmit=True`` asks; a batch run
does not put in a batch what another run is asking for live at that moment (it waits
for that run's answer, as two live runs do).
"""

from __future__ import annotations

import threading
import time

import pytest
from fakebatches import Clock
from shell_support import new_shell
from test_runner_batch import KEY, MINI, ROWS, frozen, posts, run, uploaded_lines

import gptmagic
from gptmagic.eval.jobs import build_jobs, set_keys
from gptmagic.eval.ledger import Ledger
from gptmagic.eval.store import Store

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def fake(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.setenv("FAKE_KEY", KEY)
    gptmagic.add_profile("f", kind="openai", base_url=fake_server.url, api_key_env="FAKE_KEY")
    fake_server.batches.clock = Clock(scale=1e6)
    return fake_server


def keys_of(rows):
    jobs = build_jobs(rows, {"prompt": "user: {q}"}, [MINI], None, {}, {}, 1)
    set_keys(jobs)
    return [j.key for j in jobs]


def test_a_live_run_leaves_calls_pending_in_a_batch_to_the_batch(fake, capsys):
    clock = frozen(fake)
    run(rows=ROWS[:3], wait=False)
    live = run(batch=False, progress=True)  # three in the batch, three new
    assert len(posts(fake, "/chat/completions")) == 3  # only the new ones went live
    by = live.df.set_index("input.q")
    held = by.loc[[r["q"] for r in ROWS[:3]]]
    assert held["output"].isna().all() and held["error"].isna().all()
    assert (held["batch"] == "batch_fake2").all()
    assert held["pending"].str.contains(
        r"in batch batch_fake2 \(validating\), not sent live: evaluate\(\.\.\., batch=True\) "
        "collects it; resubmit=True sends it live now").all()
    assert by.loc[[r["q"] for r in ROWS[3:]], "output"].notna().all()
    assert "3 of 6 calls pending" in capsys.readouterr().err
    clock.advance(2 * 3600)
    collected = run(rows=ROWS[:3])
    again = run(batch=False)
    assert again.df["cached"].all() and len(posts(fake, "/chat/completions")) == 3
    # read back without batch=True, still the batch's rows at the batch's price
    assert list(again.df["batch"][:3]) == ["batch_fake2"] * 3
    assert list(again.df["cost"][:3]) == list(collected.df["cost"])
    assert list(again.df["cost"][3:]) == list(live.df["cost"][3:])
    fresh = run(rows=ROWS[:1], batch=False, refresh=True)  # asked live again: a live row
    assert fresh.df["batch"].isna().all()
    assert run(rows=ROWS[:1], batch=False).df["cost"][0] == 2 * collected.df["cost"][0]


def test_resubmit_sends_them_live_all_the_same(fake):
    frozen(fake)
    run(rows=ROWS[:2], wait=False)
    live = run(rows=ROWS[:2], batch=False, resubmit=True)
    assert live.df["error"].isna().all() and "pending" not in live.df
    assert len(posts(fake, "/chat/completions")) == 2 and live.df["batch"].isna().all()


def test_a_call_being_asked_live_is_not_put_in_a_batch(fake, tmp_path):
    """Another run claimed row 0's call and is asking for it: the batch run leaves it out
    of its file and waits for that run's answer, as a second live run would."""
    first = keys_of(ROWS[:1])[0]
    other = Store(tmp_path / "cache.sqlite")
    try:
        assert other.claim([first]).mine == [first]
        donor = run(rows=ROWS[:1], batch=False, cache=tmp_path / "donor.sqlite").df
        with_answer = Store(tmp_path / "donor.sqlite")
        result = with_answer.get_many([first])[first]
        with_answer.close()
        answered = threading.Event()

        def answer_when_the_batch_is_made() -> None:
            for _ in range(500):  # bounded: 5 s
                if posts(fake, "/batches"):
                    other.put(first, "x", "gpt-4o-mini", {}, result)
                    answered.set()
                    return
                time.sleep(0.01)

        threading.Thread(target=answer_when_the_batch_is_made, daemon=True).start()
        res = run(rows=ROWS[:3])
        assert answered.is_set()
        assert first not in {x["custom_id"] for x in uploaded_lines(fake)}
        assert len(uploaded_lines(fake)) == 2
        assert res.df["error"].isna().all() and "pending" not in res.df
        assert res.df["output"][0] == donor["output"][0] and res.df["cached"][0]
        assert len(posts(fake, "/chat/completions")) == 1  # the donor's only
    finally:
        other.close()


def test_a_claim_refuses_a_call_pending_in_a_batch(tmp_path):
    """Atomic, in the claim's own transaction: a batch written down after a live run
    looked keeps its calls."""
    stores = [Store(tmp_path / "c.sqlite") for _ in range(2)]
    try:
        ledger = Ledger(stores[0])
        prov = gptmagic.Provider(name="p", kind="openai", base_url="http://127.0.0.1:9/v1",
                                 api_key_env="K")
        local, got = ledger.add(prov, "/v1/chat/completions", "m", "run", ["a", "b"])
        claim = stores[1].claim(["a", "c"])
        assert (claim.batched, claim.mine) == (["a"], ["c"])
        assert stores[1].claim(["a"], batched=False).mine == ["a"]
        # and the other way: keys claimed live elsewhere go in no batch
        assert ledger.add(prov, "/v1/chat/completions", "m", "run", ["c", "d"])[1] == ["d"]
        ledger.settle(local, {"a": ("failed", "x", "E"), "b": ("unrun", "y", "E")})
        assert stores[1].claim(["b"]).mine == ["b"]  # not pending any more: free to send
    finally:
        for s in stores:
            s.close()


def test_refresh_in_batch_mode_batches_again_what_was_stored_before(fake):
    run(rows=ROWS[:2])
    again = run(rows=ROWS[:2], refresh=True)
    assert again.df["error"].isna().all() and len(posts(fake, "/batches")) == 2
    assert not again.df["cached"].any()



# -- Ctrl-C while waiting -------------------------------------------------------------------------


def test_ctrl_c_while_waiting_says_the_batches_go_on_and_how_to_collect(fake, capsys):
    """A real SIGINT to the main thread while evaluate() polls a batch: one line (no
    traceback), naming the batch, and the same call later collects it, submitting none."""
    import signal

    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from gptmagic.eval.runner import evaluate

    fake.batches.clock = Clock(scale=1.0)  # real time: an hour-long batch, still running
    main = threading.main_thread().ident
    assert main == threading.get_ident()

    def interrupt_when_polled() -> None:
        for _ in range(500):  # bounded: 5 s
            if [r for r in fake.requests if r.method == "GET" and "/batches/" in r.path]:
                signal.pthread_kill(main, signal.SIGINT)
                return
            time.sleep(0.01)

    threading.Thread(target=interrupt_when_polled, daemon=True).start()
    shell = new_shell()
    shell.user_ns.update(evaluate=evaluate, ROWS=ROWS)
    try:
        with capture_output() as cap:
            outcome = shell.run_cell("evaluate(ROWS, 'user: {q}', ['f:gpt-4o-mini'], "
                                     "batch={'poll': 0.05}, progress=False)")
    finally:
        InteractiveShell.clear_instance()
    said = str(outcome.error_in_exec)
    assert isinstance(outcome.error_in_exec, gptmagic.RunInterrupted)
    assert "0/6 stored" in said and "the 6 calls in batch batch_fake2 go on" in said
    assert "evaluate(..., batch=True) again" in said and "gptmagic.batches()" in said
    # What the user sees: the one line, no traceback through the portal's wait.
    assert cap.stderr + cap.stdout == f"RunInterrupted: {said}\n"
    fake.batches.clock.advance(3 * 3600)
    res = run()
    assert res.df["error"].isna().all() and set(res.df["batch"]) == {"batch_fake2"}
    assert len(posts(fake, "/batches")) == 1


# -- a batch the provider will not show ----------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_batch_the_provider_refuses_to_show_ends_the_wait_saying_why(fake):
    """A 404 (the key now belongs to another project, the batch was deleted) or a 401 is
    not waited out: the run returns, its rows saying what the provider answered."""
    frozen(fake)
    run(rows=ROWS[:2], wait=False)
    fake.batches.batches.clear()  # the provider no longer knows it
    fake.requests.clear()
    res = run(rows=ROWS[:2])
    assert res.df["output"].isna().all()
    assert res.df["pending"].str.contains(
        "in batch batch_fake2, which could not be looked at: .*HTTP 404.*No batch found").all()
    looks = [r for r in fake.requests if r.method == "GET" and "/batches/" in r.path]
    assert len(looks) == 1  # asked once: a 404 is not asked again and again


@pytest.mark.timeout(20)
def test_an_output_file_the_provider_refuses_ends_the_wait_saying_why(fake):
    clock = frozen(fake)
    run(rows=ROWS[:2], wait=False)
    clock.advance(2 * 3600)
    (b,) = fake.batches.batches.values()
    fake.batches._body(b)  # finished now: its output file written
    del fake.batches.files[b.output_file_id]  # and gone (deleted, or past its expiry)
    res = run(rows=ROWS[:2])
    assert res.df["pending"].str.contains(
        r"which could not be collected \(its files could not be downloaded: .*HTTP 404").all()
    assert gptmagic.batches(refresh=False)["collected"].tolist() == [False]


# -- what an output file may hold --------------------------------------------------------------


def test_output_lines_in_any_order_duplicates_and_strangers(fake):
    """Lines out of order map by custom_id; a call answered and also listed as failed (a
    provider's retry) keeps its answer; a custom_id the batch never sent is not stored."""
    import json

    clock = frozen(fake)
    run(rows=ROWS[:3], wait=False)
    clock.advance(2 * 3600)
    (b,) = fake.batches.batches.values()
    fake.batches._body(b)
    out = fake.batches.files[b.output_file_id]
    lines = out.content.decode().splitlines()
    first = json.loads(lines[0])
    stranger = {**first, "custom_id": "f" * 64}
    stranger["response"] = {**first["response"], "body": {
        **first["response"]["body"], "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant",
                                                              "content": "not yours"}}]}}
    out.content = "\n".join([*lines[::-1], json.dumps(stranger)]).encode() + b"\n"
    failed = {"id": "batch_req_x", "custom_id": first["custom_id"], "response": {
        "status_code": 500, "request_id": "r", "body": {"error": {"message": "retried"}}},
        "error": None}
    b.error_file_id = fake.batches._add_output("errors.jsonl", [json.dumps(failed)])
    res = run(rows=ROWS[:3])
    assert res.df["error"].isna().all()
    assert list(res.df["output"]) == [f"echo: {r['q']}" for r in ROWS[:3]]
    from gptmagic.eval.store import Store
    store = Store()
    try:
        assert store.get_many(["f" * 64]) == {} and store.count() == 3
    finally:
        store.close()
    (note,) = gptmagic.batches(refresh=False)["note"]
    assert f"batch_fake2 output line 4: custom_id '{'f' * 64}' is not in the batch" in note


def test_the_bar_says_what_the_collected_batches_cost(fake, capsys):
    rows = [{"q": f"{i} " + "word " * 1500} for i in range(3)]
    run(rows=rows + rows, progress=True)  # the same three twice: three lines, paid once
    err = capsys.readouterr().err
    res = run(rows=rows)
    spent = res.df["cost"].sum()
    assert spent > 0.001 and f"; ${spent:.4f} at batch prices" in err


def test_a_batch_refused_whole_says_why_without_a_line(fake):
    """OpenAI's enqueued-token limit fails the batch with no line: its rows say so, and
    that resubmit=True sends them again (in smaller batches, or later)."""
    fake.batches.batch_errors = [{"code": "token_limit_exceeded", "line": None,
                                  "message": "Enqueued token limit reached for gpt-4o-mini."}]
    res = run(rows=ROWS[:2])
    assert res.df["pending"].str.fullmatch(
        r"not run: batch batch_fake2 failed \(token_limit_exceeded: Enqueued token limit "
        r"reached for gpt-4o-mini\.\) before it ran; evaluate\(\.\.\., batch=True, "
        r"resubmit=True\) sends it again").all()
    fake.batches.batch_errors = []
    again = run(rows=ROWS[:2], resubmit=True)
    assert again.df["error"].isna().all() and "pending" not in again.df


def test_answers_stored_but_their_batch_not_marked_collected_are_healed(fake, tmp_path):
    """A run stopped between storing a batch's answers and marking the batch collected
    (two writes): the next run collects it again, so its rows are the batch's, at its
    price, and the batch is no longer listed as waiting."""
    import sqlite3

    first = run(rows=ROWS[:2])
    db = sqlite3.connect(tmp_path / "cache.sqlite")
    with db:
        db.execute("UPDATE batch_rows SET state = 'pending'")
        db.execute("UPDATE batches SET collected = NULL")
    db.close()
    again = run(rows=ROWS[:2])
    assert list(again.df["batch"]) == list(first.df["batch"])
    assert list(again.df["cost"]) == list(first.df["cost"])
    assert gptmagic.batches(refresh=False)["collected"].tolist() == [True]
    assert len(posts(fake, "/batches")) == 1


# -- processes racing on one cache ---------------------------------------------------------------

_RACER = r"""
import sys, gptmagic
url, cache, n, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "batch"
gptmagic.add_profile("f", kind="openai", base_url=url, api_key_env="FAKE_KEY")
res = gptmagic.evaluate([{"q": f"row {i}"} for i in range(n)], "user: {q}", ["f:gpt-4o-mini"],
                        concurrency=4, cache=cache, progress=False,
                        batch={"poll": 0.02, "max_requests": 25} if batch else False)
print(int(res.df["output"].notna().sum()), int(res.df["error"].notna().sum()))
"""


@pytest.mark.slow
@pytest.mark.parametrize("gap", [0.0, 0.3])
def test_live_and_batch_processes_on_one_cache_pay_each_call_once(fake_server, tmp_path, gap):
    """Two live runs and two batch runs of the same 150 calls, started together (or the
    batch runs while the live ones are sending): every call is asked once, live or in a
    batch line, never both."""
    import collections
    import json
    import os
    import subprocess
    import sys

    from fakeserver import Behaviour

    fake_server.batches.clock = Clock(scale=2000)
    fake_server.set_default(Behaviour(delay=0.02))
    cache = str(tmp_path / "c.sqlite")
    env = {**os.environ, "FAKE_KEY": KEY}
    procs = []
    for kind in ("live", "live", "batch", "batch"):
        procs.append(subprocess.Popen(
            [sys.executable, "-c", _RACER, fake_server.url, cache, "150", kind],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
        time.sleep(gap)
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [e[-500:] for _, e in outs]
    live = collections.Counter(r.json["messages"][0]["content"] for r in fake_server.requests
                               if r.method == "POST" and r.path.endswith("/chat/completions"))
    lines = collections.Counter(json.loads(x)["body"]["messages"][0]["content"]
                                for f in fake_server.batches.files.values()
                                if f.purpose == "batch" for x in f.content.splitlines())
    asked = live + lines
    assert len(asked) == 150 and set(asked.values()) == {1}, (live.total(), lines.total())
    # the batch runs waited for everything; a live run may leave batched calls pending
    assert [o.split()[1] for o, _ in outs] == ["0"] * 4
    assert [o.split()[0] for o, _ in outs[2:]] == ["150", "150"]
