"""Fault soak: evaluate() through a seeded storm of faults on loopback.

Every row comes back exactly once, with a result or a final error of the right
class; no request is repeated after a success; no connection leaks. The CI
size is small; benchmarks/bench_soak.py runs 5,000 requests.
"""

from __future__ import annotations

import time
from collections import Counter

import gptmagic
from gptmagic import Timeouts
from gptmagic.client.facade import get_client

FAULTS = {"ok": 0.70, "429": 0.05, "429_retry_after": 0.05, "500": 0.04, "502": 0.03,
          "503": 0.03, "drop": 0.04, "slow": 0.03, "malformed": 0.03}
FINAL = {"MalformedResponseError", "MalformedStreamError", "StreamError", "APITimeoutError",
         "DeadlineExceededError", "APIConnectionError", "RateLimitError", "InternalServerError"}


def soak(server, n: int, seed: int, tmp_path, faults=FAULTS,
         stream: bool = False) -> tuple[object, float]:
    server.reset()
    # A "slow" reply outlasts the read timeout three times over, and an "ok" reply
    # has a whole second: on a loaded 2-core CI machine a 0.3 s read timeout once cut
    # an "ok" reply in transit, so the client (rightly) asked again and the check
    # below counted two accepted answers for that row.
    server.chaos_slow_delay = 3.0
    if faults:
        server.set_chaos(seed, faults)
    rows = [{"q": f"case number {i}"} for i in range(n)]
    t0 = time.monotonic()
    res = gptmagic.evaluate(rows, "user: {q}", ["soak:m"], concurrency=32, progress=False,
                            cache=tmp_path / f"soak-{seed}-{bool(faults)}.sqlite",
                            timeouts=Timeouts(connect=2, read=1.0, write=2, pool=5,
                                              deadline=10), stream=stream)
    return res, time.monotonic() - t0


def test_fault_soak(fake_server, tmp_path):
    gptmagic.add_profile("soak", base_url=fake_server.url, default_model="m")
    n = 400
    _, clean_time = soak(fake_server, n, 1, tmp_path, faults=None)
    res, chaos_time = soak(fake_server, n, 7, tmp_path)
    df = res.df
    # Every row exactly once, in order.
    assert list(df["row"]) == list(range(n))
    ok = df["error"].isna()
    assert (df.loc[ok, "output"] == "echo: " + df.loc[ok, "input.q"]).all()
    assert set(df.loc[~ok, "error_type"]) <= FINAL, set(df["error_type"])
    assert ok.mean() > 0.9
    # No request repeated after a success: one accepted ("ok") answer per good row,
    # none for rows that ended in an error.
    accepted = Counter(r.json["messages"][0]["content"] for r in fake_server.requests
                       if r.chaos == "ok")
    twice = {q: accepted[q] for q in df.loc[ok, "input.q"] if accepted[q] != 1}
    assert not twice, f"rows answered 'ok' more than once (or never): {twice}"
    never = {q: accepted[q] for q in df.loc[~ok, "input.q"] if accepted[q]}
    assert not never, f"rows that ended in an error had an 'ok' answer: {never}"

    kinds = Counter(r.chaos for r in fake_server.requests)
    assert kinds["drop"] and kinds["slow"] and kinds["429"] and kinds["malformed"]
    # No leaked connections; bounded time against the fault-free run.
    assert get_client().http.in_use() == 0
    print(f"chaos {chaos_time:.1f} s, clean {clean_time:.1f} s")  # ratio: benchmarks/bench_soak.py


def test_streaming_fault_soak(fake_server, tmp_path):
    """Streams cut mid-way and malformed SSE end as StreamError, never retried."""
    gptmagic.add_profile("soak", base_url=fake_server.url, default_model="m")
    faults = {**FAULTS, "stream_cut": 0.05}
    res, _ = soak(fake_server, 200, 11, tmp_path, faults=faults, stream=True)
    df = res.df
    assert list(df["row"]) == list(range(200))
    ok = df["error"].isna()
    assert (df.loc[ok, "output"] == "echo: " + df.loc[ok, "input.q"]).all()
    assert df.loc[ok, "ttft"].notna().all()
    assert set(df.loc[~ok, "error_type"]) <= FINAL
    cut = [r.json["messages"][0]["content"] for r in fake_server.requests
           if r.chaos in ("stream_cut", "malformed")]
    assert cut and set(cut) <= set(df.loc[~ok, "input.q"])  # final, not retried
    assert all(n == 1 for n in Counter(cut).values())
    assert get_client().http.in_use() == 0
