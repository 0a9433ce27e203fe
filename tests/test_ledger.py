"""The batch tables of the store (gptmagic/eval/ledger.py): a call is in one batch at most,
whoever writes first; a batch left half-submitted is taken over only when its run is gone."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from gptmagic import Provider
from gptmagic.eval.ledger import Ledger
from gptmagic.eval.store import Store

PROV = Provider(name="p", kind="openai", base_url="http://127.0.0.1:9/v1", api_key_env="K")


@pytest.fixture
def stores(tmp_path):
    made = [Store(tmp_path / "c.sqlite") for _ in range(2)]
    yield made
    for s in made:
        s.close()


def test_two_runs_racing_for_the_same_calls_never_share_one(stores):
    keys = [f"k{i}" for i in range(200)]
    got: list[tuple[str, list[str]]] = []
    start = threading.Barrier(2)

    def add(store: Store, order: list[str]) -> None:
        start.wait()
        got.append(Ledger(store).add(PROV, "/v1/chat/completions", "m", "run", order))

    threads = [threading.Thread(target=add, args=(stores[0], keys)),
               threading.Thread(target=add, args=(stores[1], keys[::-1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    taken = [k for _, ks in got for k in ks]
    assert sorted(taken) == sorted(keys)  # each key in exactly one batch
    ledger = Ledger(stores[0])
    rows = ledger.rows(keys)
    for local, ks in got:
        if ks:
            assert ledger.lines(local) == dict(enumerate(ks, start=1))
            assert {rows[k].local for k in ks} == {local}
            (record,) = ledger.records([local])
            assert (record.total, record.status, record.batch_id) == (len(ks), "preparing",
                                                                      None)


def test_a_batch_is_taken_over_only_from_a_run_that_is_gone(stores):
    mine, theirs = (Ledger(s) for s in stores)
    local, _ = theirs.add(PROV, "/v1/chat/completions", "m", "run", ["a", "b"])
    assert not mine.take_over(local)  # its store is open in this live process
    assert theirs.take_over(local)  # its own
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)
    stores[1].transact(lambda db: db.execute("UPDATE batches SET pid = ?", (dead,)), None)
    assert mine.take_over(local)
    (record,) = mine.records([local])
    assert record.owner == stores[0].owner
    other, _ = theirs.add(PROV, "/v1/chat/completions", "m", "run", ["c"])
    assert theirs.disown(other) and mine.take_over(other)  # let go: anyone may take it


def test_forget_frees_the_calls_and_release_takes_one_out(stores):
    ledger = Ledger(stores[0])
    local, _ = ledger.add(PROV, "/v1/chat/completions", "m", "run", ["a", "b"])
    assert ledger.add(PROV, "/v1/chat/completions", "m", "run", ["a", "b"]) == ("", [])
    ledger.release(["a"])
    again, got = ledger.add(PROV, "/v1/chat/completions", "m", "run", ["a", "b"])
    assert got == ["a"] and ledger.rows(["a"])["a"].local == again
    ledger.forget(local, "upload refused")
    assert set(ledger.rows(["a", "b"])) == {"a"}
    (record,) = ledger.records([local])
    assert (record.status, record.note, record.open) == ("failed", "upload refused", False)
    assert record.profile() == PROV.__class__(**{**record.provider})


def test_an_old_cache_gains_the_batch_tables(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "old.sqlite")
    db.executescript("CREATE TABLE calls (key TEXT PRIMARY KEY, created REAL NOT NULL, "
                     "base_url TEXT, model TEXT, request TEXT NOT NULL, result TEXT NOT NULL);"
                     "PRAGMA user_version = 1;")
    db.close()
    store = Store(tmp_path / "old.sqlite")
    try:
        assert store.version() >= 2 and store.batches
        assert Ledger(store).records() == []
    finally:
        store.close()
