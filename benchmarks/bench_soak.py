"""Fault soak at full size: 5,000 requests through evaluate() against a seeded storm.

Prints the time against a fault-free run, the faults injected, the final
errors, and the checks of tests/test_soak.py (run there at a CI size).

Run: python benchmarks/bench_soak.py [--n 5000] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fakeserver import FakeServer  # noqa: E402
from test_soak import FAULTS, soak  # noqa: E402

import gptmagic  # noqa: E402
from gptmagic.client.facade import get_client  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    with FakeServer() as srv:
        gptmagic.add_profile("soak", base_url=srv.url, default_model="m")
        _, clean = soak(srv, a.n, 1, tmp, faults=None)
        res, chaos = soak(srv, a.n, a.seed, tmp)
        kinds = Counter(r.chaos for r in srv.requests)
        df = res.df
        accepted = Counter(r.json["messages"][0]["content"] for r in srv.requests
                           if r.chaos == "ok")
        ok = df["error"].isna()
        repeated = sum(1 for q in df.loc[ok, "input.q"] if accepted[q] != 1)
        print(f"{a.n} rows: fault-free {clean:.1f} s, with faults {chaos:.1f} s "
              f"({chaos / clean:.1f}x); {len(srv.requests)} requests sent")
        print(f"faults injected: {dict(kinds)}  (weights {FAULTS})")
        print(f"rows present once: {list(df['row']) == list(range(a.n))}; results "
              f"{int(ok.sum())}; final errors {dict(Counter(df.loc[~ok, 'error_type']))}")
        print(f"rows answered more than once: {repeated}; connections in use after: "
              f"{get_client().http.in_use()}")


if __name__ == "__main__":
    main()
