"""The runner's SQLite store under contention (issue 13, items 5 and 7).

- a write lock held by another process for 8 s in the middle of a 500-row run:
  results returned, rows stored, calls paid twice (a re-run's requests), and
  the run's time against the same run without the lock;
- the same with a 1 s busy timeout, so the store gives up writing: results
  returned, warnings, what a re-run pays again;
- two processes on one file, 400 + 400 rows of which 200 are shared, started
  together: requests the server saw (800 before claims);
- what storing and claiming cost: a 5,000-row run against a zero-latency
  server with the cache against the same run with ``cache=False``.

Run: python benchmarks/bench_store.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakeserver import Behaviour, FakeServer  # noqa: E402
from store_support import HOLD, stored  # noqa: E402

RUN = r"""
import json, sys, gptmagic
url, cache, lo, hi = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
gptmagic.add_profile("fake", base_url=url, default_model="m")
res = gptmagic.evaluate([{"q": f"row {i}"} for i in range(lo, hi)], "user: {q}", ["fake:m"],
                        concurrency=16, cache=cache, progress=False)
print(json.dumps({"results": int(res.df["error"].isna().sum()),
                  "cached": int(res.df["cached"].sum())}))
"""


def locked_run(srv: FakeServer, place: Path, n: int, hold: float | None,
               busy_timeout: float | None) -> dict:
    """One run of n rows; with ``hold``, another process takes the write lock for that
    long once a fifth of the rows are stored."""
    import gptmagic
    from gptmagic.eval.store import CacheWarning, Store

    cache = place / f"lock-{hold}-{busy_timeout}.sqlite"
    rows = [{"q": f"row {i}"} for i in range(n)]
    store = Store(cache, busy_timeout=busy_timeout) if busy_timeout else str(cache)
    holder = None

    def take_lock() -> None:
        nonlocal holder
        while stored(cache) < n // 5:
            time.sleep(0.01)
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(cache), str(hold)],
                                  stdout=subprocess.PIPE, text=True)

    srv.reset()
    srv.set_default(Behaviour(delay=0.02))
    taker = threading.Thread(target=take_lock) if hold else None
    if taker:
        taker.start()
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = gptmagic.evaluate(rows, "user: {q}", ["fake:m"], concurrency=16, cache=store,
                                progress=False)
    took = time.perf_counter() - t0
    if taker:
        taker.join()
        assert holder is not None
        holder.wait(120)
    if isinstance(store, Store):
        store.close()
    asked = len(srv.requests)
    kept = stored(cache)
    gptmagic.evaluate(rows, "user: {q}", ["fake:m"], concurrency=16, cache=str(cache),
                      progress=False)
    return {"results": int(res.df["error"].isna().sum()), "asked": asked, "stored": kept,
            "paid_twice": len(srv.requests) - asked,
            "warnings": sum(issubclass(w.category, CacheWarning) for w in seen), "s": took}


def two_processes(srv: FakeServer, place: Path) -> tuple[int, list[dict]]:
    srv.reset()
    srv.set_default(Behaviour(delay=0.05))
    cache = place / "two.sqlite"
    procs = [subprocess.Popen([sys.executable, "-c", RUN, srv.url, str(cache), lo, hi],
                              stdout=subprocess.PIPE, text=True)
             for lo, hi in (("0", "400"), ("200", "600"))]
    outs = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in procs]
    return len(srv.requests), outs


def overhead(srv: FakeServer, place: Path, n: int) -> tuple[float, float]:
    import gptmagic

    srv.reset()
    srv.set_default(Behaviour())
    best = {True: float("inf"), False: float("inf")}
    for i in range(3):  # alternate, best of three each
        for cached in (False, True):
            rows = [{"q": f"round {i} row {j}"} for j in range(n)]
            cache = str(place / f"over-{i}.sqlite") if cached else False
            t0 = time.perf_counter()
            gptmagic.evaluate(rows, "user: {q}", ["fake:m"], concurrency=64, cache=cache,
                              progress=False)
            best[cached] = min(best[cached], time.perf_counter() - t0)
    return best[False], best[True]


def main() -> None:
    place = Path(tempfile.mkdtemp())
    os.environ["GPTMAGIC_CACHE"] = str(place / "default.sqlite")
    import gptmagic

    with FakeServer().start() as srv:
        gptmagic.add_profile("fake", base_url=srv.url, default_model="m")
        # Warm up: the first run imports pandas, tqdm and the price table.
        gptmagic.evaluate([{"q": "warm"}], "user: {q}", ["fake:m"], cache=False,
                          progress=False)
        base = locked_run(srv, place, 500, None, None)
        held = locked_run(srv, place, 500, 8.0, None)
        gave_up = locked_run(srv, place, 500, 8.0, 1.0)
        for name, r in (("no lock", base), ("8 s lock", held),
                        ("8 s lock, 1 s busy timeout", gave_up)):
            print(f"{name:>27}: {r['results']}/500 results, {r['asked']} asked, "
                  f"{r['stored']} stored, paid twice {r['paid_twice']}, "
                  f"{r['warnings']} warning(s), {r['s']:.1f} s "
                  f"({r['s'] / base['s']:.1f}x the run without the lock)")
        asked, outs = two_processes(srv, place)
        print(f"two processes, 400 + 400 rows, 200 shared: {asked} requests "
              f"(results {outs[0]['results']} + {outs[1]['results']}, reused "
              f"{outs[0]['cached'] + outs[1]['cached']})")
        off, on = overhead(srv, place, 5000)
        print(f"5,000 rows, zero-latency server: cache on {on:.2f} s, cache=False {off:.2f} s "
              f"(x{on / off:.2f})")


if __name__ == "__main__":
    main()
