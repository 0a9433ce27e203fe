"""Client overhead and pool throughput against the fake server on loopback.

Ratios against a baseline measured in the same run (these machines are noisy):
- overhead: sequential requests at zero latency, gptmagic.Client against a bare
  aiohttp.ClientSession posting the same body (baseline = 1.0);
- throughput: N = 20 x C chat requests to a server answering after 100 ms,
  C at a time; the figure is the fraction of the ideal rate C / 0.1 s reached,
  for gptmagic.Client (over aiohttp), the same client over httpx's
  own pool, and bare aiohttp.

Run: python benchmarks/bench_client.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from gptmagic import Client, Provider

FAKE = Path(__file__).resolve().parent.parent / "tests" / "fakeserver.py"

BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hello there"}]}


async def bare_aiohttp(url: str, n: int, conc: int) -> float:
    conn = aiohttp.TCPConnector(limit=conc)
    sem = asyncio.Semaphore(conc)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def one() -> None:
            async with sem, s.post(url + "/chat/completions", data=json.dumps(BODY),
                                   headers={"Content-Type": "application/json"}) as r:
                data = await r.json()
                assert data["choices"][0]["message"]["content"]
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return time.perf_counter() - t0


async def gptmagic_client(url: str, n: int, conc: int, transport: str) -> float:
    prov = Provider(name="fake", base_url=url, default_model="fake-model")
    sem = asyncio.Semaphore(conc)
    async with Client(prov, max_connections=conc, transport=transport) as c:
        async def one() -> None:
            async with sem:
                r = await c.chat(BODY["messages"])
                assert r.text
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return time.perf_counter() - t0


class Server:
    """The fake server in its own process, so it does not share our GIL."""

    def __init__(self, delay: float) -> None:
        self.proc = subprocess.Popen([sys.executable, str(FAKE), "--delay", str(delay)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


async def main(quick: bool) -> None:
    n = 300 if quick else 1000
    with Server(0.0) as srv:
        await bare_aiohttp(srv.url, 50, 1)  # warm up
        base = min([await bare_aiohttp(srv.url, n, 1) for _ in range(3)])
        ours = min([await gptmagic_client(srv.url, n, 1, "aiohttp") for _ in range(3)])
        print(f"sequential, zero latency, {n} requests:")
        print(f"  bare aiohttp        {base / n * 1e3:6.3f} ms/request  (1.00)")
        print(f"  gptmagic.Client     {ours / n * 1e3:6.3f} ms/request  ({ours / base:.2f}x)")
        print(f"  client overhead     {(ours - base) / n * 1e3:6.3f} ms/request over bare aiohttp")

    latency = 0.1
    with Server(latency) as srv:
        levels = [16, 64] if quick else [16, 64, 256]
        print(f"\nthroughput, server latency {latency * 1e3:.0f} ms, N = 20 x C "
              "(fraction of the ideal C/latency rate):")
        print(f"  {'C':>5} {'bare aiohttp':>13} {'Client(aiohttp)':>16} {'Client(httpx pool)':>19}")
        for conc in levels:
            n = 20 * conc
            ideal = n * latency / conc
            a = ideal / await bare_aiohttp(srv.url, n, conc)
            b = ideal / await gptmagic_client(srv.url, n, conc, "aiohttp")
            c = ideal / await gptmagic_client(srv.url, n, conc, "httpx")
            print(f"  {conc:>5} {a:13.2f} {b:16.2f} {c:19.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    asyncio.run(main(ap.parse_args().quick))
