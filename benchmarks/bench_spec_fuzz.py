"""schemathesis against the embedded server, at length: requests generated from OpenAI's spec.

The suite runs 30 requests per operation and mode (``tests/test_local_spec_fuzz.py``);
this runs ``--examples`` (default 400) per operation and mode, valid and
invalid, with fresh random seeds, and reports every answer by status and
every rule broken (no 5xx, every 4xx OpenAI-shaped, every 200 valid against
the spec; see ``tests/spec_fuzz.py``). It ends by checking that no engine
slot is left busy.

Run: python benchmarks/bench_spec_fuzz.py [--examples 400]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx  # noqa: E402
from spec_fuzz import OPERATIONS, run_cases  # noqa: E402

from gptmagic.local.engine import LocalEngine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=400)
    args = parser.parse_args()
    engine = LocalEngine()
    url = engine.start()
    total_broken = 0
    began = time.monotonic()
    try:
        for path, method, negative in OPERATIONS:
            start = time.monotonic()
            count = args.examples if method == "POST" else min(args.examples, 20)
            tally = run_cases(url, path, method, negative, count, derandomize=False)
            mode = "invalid" if negative else "valid"
            print(f"{method} {path} ({mode}): {tally.line()} in {time.monotonic() - start:.0f} s")
            for problem in tally.broken[:10]:
                print("   ", problem[:600])
            total_broken += len(tally.broken)
        busy = httpx.get(url.removesuffix("/v1") + "/slots", timeout=10).json()["busy"]
        print(f"all: {total_broken} broken in {time.monotonic() - began:.0f} s; "
              f"busy slots at the end: {busy}")
    finally:
        engine.stop()


if __name__ == "__main__":
    main()
