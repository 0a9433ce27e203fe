"""Crash and resume: a batch killed with SIGKILL at random points finishes on resume,
the SQLite store stays intact, and nothing stored is ever requested again."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

from fakeserver import Behaviour

SCRIPT = r"""
import sys, gptmagic
url, cache, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
gptmagic.add_profile("crash", base_url=url, default_model="m")
res = gptmagic.evaluate([{"q": f"row {i}"} for i in range(n)], "user: {q}", ["crash:m"],
                        concurrency=4, cache=cache, progress=False)
print(int(res.df["error"].isna().sum()), int(res.df["cached"].sum()))
"""


def stored_rows(cache) -> set[str]:
    if not os.path.exists(cache):
        return set()
    db = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    try:
        return {json.loads(r)["messages"][0]["content"]
                for (r,) in db.execute("SELECT request FROM calls")}
    except sqlite3.OperationalError:  # table not created yet
        return set()
    finally:
        db.close()


def test_sigkill_at_random_points_then_resume(fake_server, tmp_path):
    fake_server.set_default(Behaviour(delay=0.05))
    cache = str(tmp_path / "crash.sqlite")
    n = 120
    rng = random.Random(5)
    env = {**os.environ, "GPTMAGIC_CACHE": cache}
    kills = []
    for _ in range(3):
        before = len(stored_rows(cache))
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, fake_server.url, cache, str(n)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)
        target = before + rng.randint(5, 25)
        deadline = time.monotonic() + 60
        while len(stored_rows(cache)) < target and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills.append((len(fake_server.requests), stored_rows(cache)))
    sizes = [len(rows) for _, rows in kills]
    assert sizes == sorted(sizes) and 0 < sizes[0] and sizes[-1] < n  # killed mid-run
    done = subprocess.run([sys.executable, "-c", SCRIPT, fake_server.url, cache, str(n)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    results, cached = map(int, done.stdout.split())
    assert results == n and cached == len(kills[-1][1])
    db = sqlite3.connect(cache)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == n
    # The killed runs' claims were taken over (their pids are dead) and released.
    assert db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    db.close()
    # Nothing stored before a kill was asked for again afterwards.
    for index, rows in kills:
        later = [r.json["messages"][0]["content"] for r in fake_server.requests[index:]]
        assert not rows.intersection(later)
    # Requests repeated at all are bounded by what was in flight at each kill.
    asked = [r.json["messages"][0]["content"] for r in fake_server.requests]
    assert len(asked) - n <= 4 * len(kills)


BATCH_SCRIPT = r"""
import os, sys, gptmagic
url, cache, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
gptmagic.add_profile("crash", kind="openai", base_url=url, api_key_env="CRASH_KEY")
res = gptmagic.evaluate([{"q": f"row {i}"} for i in range(n)], "user: {q}",
                        ["crash:gpt-4o-mini", "crash:gpt-4.1-nano"], cache=cache,
                        batch={"poll": 0.02, "max_requests": 7}, progress=False)
print(int(res.df["error"].isna().sum()), int(res.df["output"].notna().sum()),
      res.df["batch"].nunique())
"""


def batch_ids(cache) -> list[str | None]:
    if not os.path.exists(cache):
        return []
    db = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    try:
        return [b for (b,) in db.execute("SELECT batch_id FROM batches")]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def test_batch_run_killed_while_polling_is_collected_by_the_next(fake_server, tmp_path):
    """SIGKILL once every batch is submitted (their ids in the store, the fake's clock
    stopped so they stay validating); a new process submits nothing and collects."""
    from fakebatches import Clock

    fake_server.batches.clock = Clock(scale=0)
    cache = str(tmp_path / "batch.sqlite")
    env = {**os.environ, "CRASH_KEY": "sk-crash-0123456789"}
    n = 10  # 20 calls over two models, 7 a file: 4 batches
    proc = subprocess.Popen([sys.executable, "-c", BATCH_SCRIPT, fake_server.url, cache, str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        ids = batch_ids(cache)
        looked = [r for r in fake_server.requests if r.method == "GET"]
        if len(ids) == 4 and all(ids) and looked:  # all made, written down, and polled
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert len(fake_server.batches.batches) == 4 and all(batch_ids(cache))
    made = [r for r in fake_server.requests if r.method == "POST" and r.path == "/v1/batches"]
    fake_server.batches.clock.advance(2 * 3600)
    done = subprocess.run([sys.executable, "-c", BATCH_SCRIPT, fake_server.url, cache, str(n)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["20", "20", "4"]
    again = [r for r in fake_server.requests if r.method == "POST" and r.path == "/v1/batches"]
    assert again == made  # not one batch more
    assert not [r for r in fake_server.requests if r.path.endswith("/chat/completions")]
    db = sqlite3.connect(cache)
    assert db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 20
    assert db.execute("SELECT COUNT(*) FROM batches WHERE collected IS NULL").fetchone()[0] == 0
    assert {s for (s,) in db.execute("SELECT state FROM batch_rows")} == {"done"}
    db.close()


def test_batch_run_killed_while_submitting_never_pays_twice(fake_server, tmp_path):
    """SIGKILL at random points while the batches are being uploaded and created: each
    restart submits only what no batch holds; the last run collects every call once."""
    from fakebatches import Clock

    fake_server.batches.clock = Clock(scale=0)
    fake_server.set_default(Behaviour(delay=0.03))  # uploads and creates take a moment
    cache = str(tmp_path / "batch.sqlite")
    env = {**os.environ, "CRASH_KEY": "sk-crash-0123456789"}
    n, rng = 35, random.Random(7)  # 70 calls, 7 a file: 10 batches
    for _ in range(3):
        before = len(batch_ids(cache))
        proc = subprocess.Popen([sys.executable, "-c", BATCH_SCRIPT, fake_server.url, cache,
                                 str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        target = before + rng.randint(1, 3)
        deadline = time.monotonic() + 60
        while len(batch_ids(cache)) < target and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    fake_server.set_default(Behaviour())
    fake_server.batches.clock = Clock(scale=1e6)
    done = subprocess.run([sys.executable, "-c", BATCH_SCRIPT, fake_server.url, cache, str(n)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["70", "70"]
    sent = [x["custom_id"] for b in fake_server.batches.batches.values() for x in b.lines]
    assert len(sent) == len(set(sent)) == 70  # every call in exactly one batch
