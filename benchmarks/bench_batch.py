"""Batch mode at 50,000 requests: building, uploading and mapping back a batch, against
the same rows through the online runner, in the same run.

- build: the jobs' JSONL lines and files (``eval/batchfiles.plan``): rows/s, file size;
- batch: ``evaluate(..., batch=True)`` end to end against the fake server in its own
  process (its batch clock sped up so the "24 h" batch takes no time): rows/s and
  peak memory (ru_maxrss of the process that ran it);
- online: the same rows, ``evaluate(...)`` at concurrency 64 against a fake server
  answering at once (its own process): rows/s and peak memory.

Both runs go through the same fake server code, which does the answering work in
both (per request online; per line when the batch is looked at), so the ratio is
the cost of one path's bookkeeping against the other's on this machine.

Run: python benchmarks/bench_batch.py [--quick] [--rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "fakeserver.py"

RUN = r"""
import json, os, resource, sys, time
import gptmagic
url, cache, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
gptmagic.add_profile("b", kind="openai", base_url=url, api_key_env="BENCH_KEY")
rows = [{"q": f"case {i}: what is the capital of country number {i}?"} for i in range(n)]
kw = {"batch": {"poll": 0.2}} if mode == "batch" else {"concurrency": 64}
t = time.perf_counter()
res = gptmagic.evaluate(rows, "system: Answer in one word.\nuser: {q}", ["b:gpt-4o-mini"],
                        cache=cache, progress=False, **kw)
took = time.perf_counter() - t
assert res.df["error"].isna().all() and res.df["output"].notna().all(), res.failures()
print(json.dumps({"seconds": took, "rss_mb": resource.getrusage(
    resource.RUSAGE_SELF).ru_maxrss / 1024, "cost": float(res.df["cost"].sum())}))
"""


def build(n: int) -> dict[str, float]:
    """Plan the files of ``n`` rows in this process: rows/s and bytes."""
    sys.path.insert(0, str(ROOT))
    import gptmagic
    from gptmagic.eval.batchfiles import plan
    from gptmagic.eval.jobs import build_jobs, set_keys

    os.environ["BENCH_KEY"] = "sk-bench"
    gptmagic.add_profile("b", kind="openai", base_url="http://127.0.0.1:9/v1",
                         api_key_env="BENCH_KEY")
    rows = [{"q": f"case {i}: what is the capital of country number {i}?"} for i in range(n)]
    t = time.perf_counter()
    jobs = build_jobs(rows, {"p": "system: Answer in one word.\nuser: {q}"}, ["b:gpt-4o-mini"],
                      None, {}, {}, 1)
    set_keys(jobs)
    parts, _ = plan(jobs)
    took = time.perf_counter() - t
    size = sum(p.size for p in parts)
    return {"rows_per_s": n / took, "mb": size / 1e6, "files": len(parts)}


def measure(n: int, mode: str) -> dict[str, float]:
    args = [sys.executable, str(FAKE)] + (["--batch-scale", "1e7"] if mode == "batch" else [])
    server = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = server.stdout.readline().strip()
    try:
        with tempfile.TemporaryDirectory() as d:
            env = {**os.environ, "BENCH_KEY": "sk-bench", "PYTHONPATH": str(ROOT)}
            out = subprocess.run([sys.executable, "-c", RUN, url, str(Path(d) / "c.sqlite"),
                                  str(n), mode], capture_output=True, text=True, env=env,
                                 timeout=3600)
            if out.returncode:
                raise SystemExit(out.stderr)
            got = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        server.stdin.close()
        server.wait(30)
    got["rows_per_s"] = n / got["seconds"]
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="5,000 rows instead of 50,000")
    ap.add_argument("--rows", type=int, default=None)
    args = ap.parse_args()
    n = args.rows or (5_000 if args.quick else 50_000)
    b = build(n)
    print(f"build {n:,} lines: {b['rows_per_s']:,.0f} rows/s, {b['mb']:.1f} MB in "
          f"{b['files']:.0f} file(s)")
    batch = measure(n, "batch")
    online = measure(n, "online")
    for name, r in (("batch", batch), ("online, concurrency 64", online)):
        print(f"{name:>24}: {r['seconds']:6.1f} s, {r['rows_per_s']:7,.0f} rows/s, "
              f"peak {r['rss_mb']:5.0f} MB, cost ${r['cost']:.4f}")
    print(f"batch / online rows/s: {batch['rows_per_s'] / online['rows_per_s']:.2f}; "
          f"cost ratio {batch['cost'] / online['cost']:.2f}")


if __name__ == "__main__":
    main()
