"""The SQLite store under the runner, against real files, real locks and real processes:
a write that fails never costs a result, a file that cannot be read is a clear error
before anything is paid, a row that cannot be read is a miss, and two processes on one
file do not pay twice (issue 13, items 5-7; item 4's interrupted evaluate())."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from fakeserver import Behaviour
from store_support import HOLD, stored

import gptmagic
from gptmagic.client.portal import get_portal
from gptmagic.errors import ConfigError
from gptmagic.eval.store import SCHEMA_VERSION, CacheWarning, Store

ROWS = [{"q": f"q{i}"} for i in range(12)]

#: One evaluate() in a process of its own: rows lo..hi-1; prints what came back and the
#: warnings seen. ``fsize`` caps the size of any file it writes (a full disk).
RUN = r"""
import json, sys, warnings
import gptmagic
url, cache, lo, hi = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
opts = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
gptmagic.add_profile("fake", base_url=url, default_model="m")
rows = [{"q": f"row {i}"} for i in range(lo, hi)]
if opts.get("fsize"):
    import resource, signal
    import pandas, tqdm.auto  # imported before the cap, like a notebook that ran a while
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the cap fails, not kills
    resource.setrlimit(resource.RLIMIT_FSIZE, (opts["fsize"], opts["fsize"]))
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    res = gptmagic.evaluate(rows, "user: {q}", ["fake:m"], concurrency=opts.get("c", 4),
                            cache=cache, progress=False)
print(json.dumps({"results": int(res.df["error"].isna().sum()),
                  "cached": int(res.df["cached"].sum()),
                  "warnings": [f"{w.category.__name__}: {w.message}" for w in seen]}))
"""


#: The table and a row exactly as gptmagic wrote them before the store had a version.
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY, created REAL NOT NULL, base_url TEXT, model TEXT,
    request TEXT NOT NULL, result TEXT NOT NULL);
"""
OLD_ROW = {"kind": "chat", "model": "m", "id": "old-1", "created": 1, "request_id": None,
           "usage": [3, 2, 5, None, None], "timings": [0.1, None, 1],
           "choices": [{"i": 0, "text": "from the old cache", "finish": "stop",
                        "role": "assistant", "lp": None, "plp": None}]}


@pytest.fixture
def fake(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    gptmagic.add_profile("fake", base_url=fake_server.url, default_model="m")
    return fake_server


def run(rows=ROWS, **kw):
    kw.setdefault("progress", False)
    return gptmagic.evaluate(rows, "user: {q}", ["fake:m"], **kw)


def asked(fake) -> list[str]:
    return [r.json["messages"][-1]["content"] for r in fake.requests]


def cache_warnings(seen: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in seen if issubclass(w.category, CacheWarning)]


def subprocess_run(fake, cache, lo, hi, **opts) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", RUN, fake.url, str(cache), str(lo), str(hi),
                             json.dumps(opts)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(proc: subprocess.Popen[str]) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


async def until(test: Callable[[], bool], limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not test():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def locked(cache: Path) -> bool:
    """Whether another connection holds the file's write lock now."""
    db = sqlite3.connect(cache, timeout=0, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as e:
        assert "locked" in str(e)
        return True
    finally:
        db.close()


# -- item 6: reading ---------------------------------------------------------------------------


def test_a_cache_made_before_versions_is_migrated_and_read(fake, tmp_path):
    cache = tmp_path / "cache.sqlite"
    db = sqlite3.connect(cache)
    db.executescript(OLD_SCHEMA)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?)",
               (_keys_of(ROWS[:1])[0], time.time(), fake.url, "m", "{}", json.dumps(OLD_ROW)))
    db.commit()
    db.close()
    before = len(fake.requests)
    res = run(ROWS[:1])
    assert len(fake.requests) == before  # read, not asked again
    assert res.df["cached"].all() and res.df["output"][0] == "from the old cache"
    store = Store(cache)
    assert store.version() == SCHEMA_VERSION == 3 and store.count() == 1
    store.close()


def test_a_bad_row_is_a_miss_asked_again_and_overwritten(fake, tmp_path):
    cache = tmp_path / "cache.sqlite"
    run(ROWS[:4])
    db = sqlite3.connect(cache)
    keys = [k for (k,) in db.execute("SELECT key FROM calls ORDER BY key")]
    db.execute("UPDATE calls SET result = '{not json' WHERE key = ?", (keys[0],))
    db.execute("UPDATE calls SET result = ? WHERE key = ?",
               (json.dumps({**OLD_ROW, "format": 99}), keys[1]))  # a later version's row
    db.execute("UPDATE calls SET result = '{\"kind\": \"chat\"}' WHERE key = ?", (keys[2],))
    db.commit()
    db.close()
    before = len(fake.requests)
    res = run(ROWS[:4])
    assert len(fake.requests) - before == 3 and res.df["error"].isna().all()
    assert res.df["cached"].sum() == 1
    again = run(ROWS[:4])  # the rows were overwritten with readable ones
    assert len(fake.requests) - before == 3 and again.df["cached"].all()


def _mangled(row: dict, how: str) -> dict:
    choice = row["choices"][0]
    return {
        "usage_text": {**row, "usage": ["a", "b", "c", None, None]},
        "usage_negative": {**row, "usage": [-5, 3, -2, None, None]},
        "timings_text": {**row, "timings": "xyz"},
        "text_number": {**row, "choices": [{**choice, "text": 5}]},
        "no_choices": {**row, "choices": []},
        "logprob_positive": {**row, "choices": [{**choice, "lp": [
            {"t": "a", "l": 3.0, "b": None, "o": None, "p": False, "k": []}]}]},
    }[how]


@pytest.mark.parametrize("how", ["usage_text", "usage_negative", "timings_text",
                                 "text_number", "no_choices", "logprob_positive"])
def test_a_row_with_values_of_another_type_is_a_miss(fake, tmp_path, how):
    """Valid JSON of the right shape but wrong values was read as a hit, then crashed
    pricing or the summary on every run, or came back as a wrongly typed output."""
    cache = tmp_path / "cache.sqlite"
    run(ROWS[:2])
    db = sqlite3.connect(cache)
    key, blob = db.execute("SELECT key, result FROM calls ORDER BY key").fetchone()
    db.execute("UPDATE calls SET result = ? WHERE key = ?",
               (json.dumps(_mangled(json.loads(blob), how)), key))
    db.commit()
    db.close()
    before = len(fake.requests)
    res = run(ROWS[:2])
    assert len(fake.requests) - before == 1 and res.df["error"].isna().all()
    assert res.df["cached"].sum() == 1 and all(isinstance(o, str) for o in res.df["output"])
    res.summary()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "directory", "foreign"])
def test_a_file_that_cannot_be_read_is_a_clear_error_before_any_call(fake, tmp_path, damage):
    cache = tmp_path / "cache.sqlite"
    if damage == "garbage":
        cache.write_bytes(b"this is not a database\n" * 200)
    elif damage == "truncated":
        run([{"q": "x" * 2000 + str(i)} for i in range(60)])
        data = cache.read_bytes()
        cache.write_bytes(data[: len(data) // 2])
    elif damage == "directory":
        cache.mkdir()
    else:
        db = sqlite3.connect(cache)
        db.execute("CREATE TABLE notes (id INTEGER, body TEXT)")
        db.commit()
        db.close()
    before = len(fake.requests)
    with pytest.raises(ConfigError) as caught:
        run([{"q": "x" * 2000 + str(i)} for i in range(60)])
    message = str(caught.value)
    assert str(cache) in message and "cache=False" in message
    assert ("delete" in message) == (damage != "directory"), message
    assert len(fake.requests) == before  # nothing paid


def _world_readable_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="gptmagic-ro-"))
    path.chmod(0o755)
    return path


def _as_another_user() -> list[str]:
    """Run as nobody when we are root (root writes through any mode bits)."""
    # util-linux's setpriv is on every Debian; without it the test cannot be honest: fail.
    assert os.geteuid() != 0 or shutil.which("setpriv"), "root needs setpriv to drop root"
    return (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            if os.geteuid() == 0 else [])


@pytest.mark.parametrize("read_only", ["directory", "file"])
def test_a_read_only_cache_is_read_and_writes_are_skipped_with_one_warning(
        fake_server, read_only):
    place = _world_readable_dir()
    try:
        cache = place / "cache.sqlite"
        env = {**os.environ, "HOME": str(place), "GPTMAGIC_CONFIG": str(place / "none.toml")}
        first = subprocess.run([sys.executable, "-c", RUN, fake_server.url, str(cache), "0",
                                "6"], capture_output=True, text=True, env=env, timeout=120)
        assert first.returncode == 0, first.stderr
        assert {p.name for p in place.iterdir()} == {"cache.sqlite"}  # closed cleanly
        cache.chmod(0o444)
        # "file": its folder is writable by the reader (it may make -wal and -shm there)
        place.chmod(0o555 if read_only == "directory" else 0o777)
        cmd = [*_as_another_user(), sys.executable, "-c", RUN, fake_server.url, str(cache)]
        before = len(fake_server.requests)
        hit = subprocess.run([*cmd, "0", "6"], capture_output=True, text=True, env=env,
                             timeout=120)
        assert hit.returncode == 0, hit.stderr
        out = json.loads(hit.stdout)
        assert out == {"results": 6, "cached": 6, "warnings": []}
        assert len(fake_server.requests) == before
        more = subprocess.run([*cmd, "0", "9"], capture_output=True, text=True, env=env,
                              timeout=120)
        assert more.returncode == 0, more.stderr
        out = json.loads(more.stdout)
        assert out["results"] == 9 and out["cached"] == 6
        assert len(fake_server.requests) == before + 3
        assert len(out["warnings"]) == 1 and str(cache) in out["warnings"][0]
        assert out["warnings"][0].startswith("CacheWarning")
        assert stored(cache) == 6
    finally:
        place.chmod(0o755)
        for p in place.iterdir():  # the reader may have left -wal/-shm files
            p.chmod(0o644)
            p.unlink()
        place.rmdir()


# -- item 5: writing ---------------------------------------------------------------------------


async def test_a_write_lock_held_8_s_mid_run_costs_nothing(fake, tmp_path):
    """The issue's case: another process holds the write lock for 8 s mid-run. The run
    waits for it off the event loop, then stores everything: nothing is paid twice."""
    fake.set_default(Behaviour(delay=0.05))
    cache = tmp_path / "cache.sqlite"
    rows = [{"q": f"q{i}"} for i in range(60)]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        task = asyncio.ensure_future(gptmagic.aevaluate(rows, "user: {q}", ["fake:m"],
                                                        concurrency=4, progress=False))
        await until(lambda: stored(cache) >= 8)
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(cache), "8"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            # The portal loop answers while the store waits on the lock (writes are off it).
            await asyncio.wrap_future(get_portal().submit(asyncio.sleep(0)))
            assert locked(cache)
            res = await task
        finally:
            holder.wait(30)
    assert res.df["error"].isna().all() and len(res.df) == 60
    assert len(fake.requests) == 60 and cache_warnings(seen) == []
    assert stored(cache) == 60
    again = await gptmagic.aevaluate(rows, "user: {q}", ["fake:m"], progress=False)
    assert again.df["cached"].all() and len(fake.requests) == 60  # paid twice: 0


def test_a_lock_held_past_the_busy_timeout_gives_one_warning_and_every_result(fake, tmp_path):
    fake.set_default(Behaviour(delay=0.05))
    cache = tmp_path / "cache.sqlite"
    store = Store(cache, busy_timeout=0.3)
    rows = [{"q": f"q{i}"} for i in range(40)]
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(cache), "3"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            res = run(rows, cache=store, concurrency=4)
    finally:
        holder.wait(30)
        store.close()
    assert res.df["error"].isna().all() and len(res.df) == 40
    assert len(fake.requests) == 40  # each asked once
    found = cache_warnings(seen)
    assert len(found) == 1 and str(cache) in found[0] and "locked" in found[0]
    kept = stored(cache)
    run(rows)
    assert len(fake.requests) == 40 + 40 - kept  # what was stored is not paid again


def test_a_full_disk_gives_one_warning_and_every_result(fake, tmp_path):
    """A file-size limit (RLIMIT_FSIZE) stands in for a full disk: SQLite's writes fail
    with 'database or disk is full' after a few rows."""
    cache = tmp_path / "cache.sqlite"
    Store(cache).close()
    out = finish(subprocess_run(fake, cache, 0, 80, fsize=128 * 1024))
    assert out["results"] == 80 and len(fake.requests) == 80
    assert len(out["warnings"]) == 1, out["warnings"]
    # SQLite says "database or disk is full" or "disk I/O error" by where the write failed
    assert str(cache) in out["warnings"][0]
    assert "SQLITE_FULL" in out["warnings"][0] or "SQLITE_IOERR" in out["warnings"][0]
    kept = stored(cache)
    assert 0 < kept < 80  # it stored some, then the disk was full
    db = sqlite3.connect(cache)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    again = finish(subprocess_run(fake, cache, 0, 80))
    assert again == {"results": 80, "cached": kept, "warnings": []}
    assert len(fake.requests) == 80 + 80 - kept


def test_a_table_that_refuses_rows_gives_one_warning_and_every_result(fake, tmp_path):
    cache = tmp_path / "cache.sqlite"
    db = sqlite3.connect(cache)
    db.executescript(OLD_SCHEMA.replace("result TEXT NOT NULL)",
                                        "result TEXT NOT NULL, owner TEXT NOT NULL)"))
    db.close()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = run()
    assert res.df["error"].isna().all() and len(fake.requests) == len(ROWS)
    found = cache_warnings(seen)
    assert len(found) == 1 and str(cache) in found[0] and "owner" in found[0]


# -- item 7: two processes on one file ---------------------------------------------------------


def test_two_processes_on_one_cache_pay_once_for_shared_rows(fake, tmp_path):
    """40 + 40 rows, 20 of them shared, started together: 60 requests, not 80. The
    shared rows are the last of the first process and the first of the second."""
    fake.set_default(Behaviour(delay=0.2))
    cache = tmp_path / "cache.sqlite"
    first, second = subprocess_run(fake, cache, 0, 40), subprocess_run(fake, cache, 20, 60)
    a, b = finish(first), finish(second)
    assert a["results"] == b["results"] == 40
    requests = asked(fake)
    assert len(requests) == 60 and len(set(requests)) == 60
    assert a["cached"] + b["cached"] == 20  # the shared rows, reused by whichever waited
    assert stored(cache) == 60


def _claim(cache: Path, keys: list[str], pid: int, at: float) -> None:
    db = sqlite3.connect(cache)
    db.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
                   [(k, f"{pid}-gone", pid, os.uname().nodename, at) for k in keys])
    db.commit()
    db.close()


def _keys_of(rows) -> list[str]:
    from gptmagic.eval.jobs import build_jobs, set_keys

    jobs = build_jobs(rows, {"prompt": "user: {q}"}, ["fake:m"], None, {}, {}, 1)
    set_keys(jobs)
    return [j.key for j in jobs]


@pytest.mark.parametrize("owner", ["dead process", "silent process"])
def test_claims_of_a_dead_or_silent_owner_are_taken_over(fake, tmp_path, owner):
    cache = tmp_path / "cache.sqlite"
    Store(cache).close()
    if owner == "dead process":
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
        pid, at = int(gone.stdout), time.time()
    else:  # alive (our parent) but its heartbeat stopped two minutes ago
        pid, at = os.getppid(), time.time() - 120
    _claim(cache, _keys_of(ROWS), pid, at)
    res = run(concurrency=2)
    assert res.df["error"].isna().all() and len(fake.requests) == len(ROWS)
    db = sqlite3.connect(cache)
    assert db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    db.close()


async def test_a_run_waits_for_the_owner_of_a_claim_and_reuses_its_result(fake, tmp_path):
    """A live claim (this process, heartbeat fresh) is waited for: the result the owner
    stores is reused, and a claim the owner lets go is asked for by the waiting run."""
    cache = tmp_path / "cache.sqlite"
    owner = Store(cache)
    keys = _keys_of(ROWS[:2])
    claim = owner.claim(keys)
    assert claim.mine == keys
    task = asyncio.ensure_future(gptmagic.aevaluate(ROWS[:3], "user: {q}", ["fake:m"],
                                                    progress=False))
    await until(lambda: len(fake.requests) == 1)  # the unclaimed row only
    done = await gptmagic.aevaluate(ROWS[:1], "user: {q}", ["fake:m"], cache=False,
                                    progress=False)
    owner.put(keys[0], "x", "m", {}, done._jobs[0].result)
    owner.release([keys[1]])
    res = await task
    owner.close()
    assert res.df["error"].isna().all()
    assert asked(fake) == ["q2", "q0", "q1"]  # q0 asked only by the owner's stand-in
    assert res.df["cached"].tolist() == [True, False, False]


# -- item 4: an interrupted evaluate() ---------------------------------------------------------

INTERRUPTED = r"""
import sys
from IPython.core.interactiveshell import InteractiveShell
import gptmagic
gptmagic.add_profile("fake", base_url=sys.argv[1], default_model="m")
shell = InteractiveShell.instance()
shell.user_ns["gptmagic"] = gptmagic
shell.run_cell('res = gptmagic.evaluate([{"q": f"row {i}"} for i in range(60)], "user: {q}", '
               '["fake:m"], concurrency=2, cache=' + repr(sys.argv[2]) + ', progress=False)')
print("the kernel goes on", flush=True)
"""


def test_an_interrupted_evaluate_says_what_is_stored_without_a_traceback(fake, tmp_path):
    fake.set_default(Behaviour(delay=0.1))
    cache = tmp_path / "cache.sqlite"
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED, fake.url, str(cache)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while stored(cache) < 6 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # Kernel > Interrupt
    out, err = proc.communicate(timeout=60)
    kept = stored(cache)
    assert 6 <= kept < 60
    assert f"RunInterrupted: {kept}/60 stored; run again to resume" in out, out + err
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err
    assert "the kernel goes on" in out
    first = len(fake.requests)
    fake.set_default(Behaviour())
    res = run([{"q": f"row {i}"} for i in range(60)], cache=str(cache))
    assert res.df["error"].isna().all() and res.df["cached"].sum() == kept
    assert len(fake.requests) - first == 60 - kept  # nothing stored is asked again
