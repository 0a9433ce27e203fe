"""Non-streamed requests to the embedded model: the adapter against the bare engine.

Since the adapter streams every generation from llama.cpp and collects it
(so a client that leaves stops its generation), a non-streamed request costs
the SSE framing of each token; and a reply with non-ASCII text and logprobs
costs one engine call per token that llama.cpp merged into a character
(the rebuilt entries). Measured as the median wall time of ``--runs``
requests, same request to both, the bare engine's (llama.cpp's own
``/v1/chat/completions``, no adapter) as the baseline = 1.0; the bare engine's
Japanese logprobs have half the entries (merged), the adapter's one per token.

Run: python benchmarks/bench_local_whole.py [--runs 7] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import httpx

from gptmagic.local.engine import LocalEngine
from gptmagic.local.llama import start_llama

CASES = {
    "plain": ([{"role": "user", "content": "Write a short story about a lighthouse keeper."}],
              {}),
    "logprobs, English": ([{"role": "user", "content": "Write a short story about a cat."}],
                          {"logprobs": True, "top_logprobs": 5}),
    "logprobs, Japanese": ([{"role": "user", "content": "Translate to Japanese: Good morning, "
                             "how are you? Answer in Japanese only."}],
                           {"logprobs": True, "top_logprobs": 5}),
}


def measure(url: str, runs: int, max_tokens: int) -> dict[str, tuple[float, int, int]]:
    """Per case: (median seconds, completion tokens, logprob entries)."""
    out = {}
    with httpx.Client(base_url=url, timeout=120) as client:
        client.post("/chat/completions", json={"messages": CASES["plain"][0], "max_tokens": 4})
        for name, (messages, extra) in CASES.items():
            times: list[float] = []
            answer: Any = None
            for _ in range(runs):
                began = time.perf_counter()
                answer = client.post("/chat/completions", json={
                    "model": "smollm2-135m-instruct", "messages": messages,
                    "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
                    **extra}).json()
                times.append(time.perf_counter() - began)
            lp = answer["choices"][0].get("logprobs") or {}
            out[name] = (statistics.median(times), answer["usage"]["completion_tokens"],
                         len(lp.get("content") or []))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    engine = LocalEngine()
    url = engine.start()
    try:
        adapter = measure(url, args.runs, args.max_tokens)
    finally:
        engine.stop()
    bare_engine = start_llama()
    try:
        bare = measure(bare_engine.url + "/v1", args.runs, args.max_tokens)
    finally:
        bare_engine.stop()
    print(f"{'request':<20} {'bare engine':>12} {'adapter':>10} {'ratio':>6}  entries/tokens")
    for name in CASES:
        (b, bt, be), (a, at, ae) = bare[name], adapter[name]
        print(f"{name:<20} {b * 1000:9.0f} ms {a * 1000:7.0f} ms {a / b:6.2f}  "
              f"bare {be}/{bt}, adapter {ae}/{at}")


if __name__ == "__main__":
    main()
