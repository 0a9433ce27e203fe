"""How long a call with ``Timeouts(deadline=D)`` takes when the server never finishes.

Two servers (the fake server on loopback, in this process's thread): one that
never sends headers (``slow``), and one whose stream never ends (``endless``).
Real sleeps, the default retry policy. The figure is wall time / D (1.0 means
the deadline is the whole call) and the attempts the server saw. Before the
deadline covered the whole call, ``slow`` took ~5.7 x D (5 attempts and
their backoff waits, D = 8 s: 46 s).

Run: python benchmarks/bench_deadline.py [--deadline 8]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakeserver import Behaviour, FakeServer  # noqa: E402

from gptmagic import Client, GptmagicError, Provider, Timeouts  # noqa: E402


async def one(url: str, deadline: float, stream: bool) -> tuple[float, str]:
    async with Client(Provider(name="bench", base_url=url),
                      timeouts=Timeouts(deadline=deadline)) as client:
        t0 = time.perf_counter()
        try:
            await client.chat("hi", model="m", stream=stream)
            outcome = "answered"
        except GptmagicError as e:
            outcome = type(e).__name__
        return time.perf_counter() - t0, outcome


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deadline", type=float, default=8.0)
    args = ap.parse_args()
    d = args.deadline
    modes = {"slow": (Behaviour(delay=10 * d), False),
             "endless": (Behaviour(endless=True, stream_delay=0.05), True)}
    for name, (behaviour, stream) in modes.items():
        with FakeServer() as srv:
            srv.set_default(behaviour)
            took, outcome = asyncio.run(one(srv.url, d, stream))
            print(f"{name:8s} deadline {d:g} s: {took:6.2f} s = {took / d:4.2f} x deadline, "
                  f"{len(srv.requests)} attempt(s), {outcome}")


if __name__ == "__main__":
    main()
