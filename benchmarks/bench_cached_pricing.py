"""A fully cached re-run of evaluate() on a priced model against an unpriced one.

A cached re-run sends nothing; what is left is reading the store, pricing each
row and building the table. Pricing a row through genai-prices costs ~0.25 ms,
so before issue 13 (item 21) a priced model's re-run took ~7x the unpriced
one's. Each run now prices through one :class:`gptmagic.catalog.pricing.PriceMemo`.

Rows vary in length (so prompt and completion counts vary row by row: no two
neighbouring rows share a usage), the fake server (own process) answers at
once, and the two models' re-runs are alternated, best of ``--rounds`` each.
The figure that matters is the ratio priced / unpriced, measured in the same
run; the absolute times are for this machine (target: 10,000 priced rows < 1 s).

Run: python benchmarks/bench_cached_pricing.py [--rows 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FAKE = Path(__file__).resolve().parent.parent / "tests" / "fakeserver.py"


def serve() -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen([sys.executable, str(FAKE), "--delay", "0"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    return p, p.stdout.readline().strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3, help="best of N re-runs of each")
    a = ap.parse_args()
    os.environ["GPTMAGIC_CACHE"] = str(Path(tempfile.mkdtemp()) / "bench.sqlite")
    import gptmagic

    rows = [{"q": f"case {i}" + " more" * (i % 37)} for i in range(a.rows)]
    models = {"unpriced": "fast:m", "priced": "fast:gpt-4o-mini"}
    proc, url = serve()
    try:
        gptmagic.add_profile("fast", base_url=url, default_model="m")
        for model in models.values():  # fills the cache
            gptmagic.evaluate(rows, "user: {q}", [model], concurrency=256, progress=False)
        best = dict.fromkeys(models, float("inf"))
        for _ in range(a.rounds):
            for name, model in models.items():
                t0 = time.perf_counter()
                res = gptmagic.evaluate(rows, "user: {q}", [model], progress=False)
                best[name] = min(best[name], time.perf_counter() - t0)
                assert res.df["cached"].all()
                if name == "priced":
                    assert res.df["cost"].notna().all() and res.df["cost"].nunique() > 10
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
    print(f"{a.rows:,} rows, fully cached re-run (best of {a.rounds}): "
          f"unpriced model {best['unpriced']:.2f} s, gpt-4o-mini {best['priced']:.2f} s; "
          f"priced / unpriced = {best['priced'] / best['unpriced']:.2f}")


if __name__ == "__main__":
    main()
