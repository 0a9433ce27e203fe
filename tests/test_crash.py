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
