"""The embedded model: time to first token and tokens/s, with and without top_logprobs=5.

Measured through gptmagic's client, streamed chat, temperature 0, the same
prompt for every engine:
- xllamacpp behind gptmagic's adapter (what users get),
- xllamacpp's own server with no adapter (adapter cost = ratio of the two),
- llama-cpp-python in-process, when ``--llama-cpp-python PYTHON`` names an
  interpreter that has it (it compiles from source for minutes, so it is not
  a dependency; see README).
tokens/s = completion tokens / (total - time to first token); medians of runs.

Run: python benchmarks/bench_local.py [--runs 5] [--max-tokens 128] [--llama-cpp-python PY]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time

from gptmagic import Client, Provider
from gptmagic.local.engine import LocalEngine
from gptmagic.local.llama import start_llama
from gptmagic.local.model import model_path

MESSAGES = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]

LCP_SCRIPT = r"""
import json, sys, time, statistics
from llama_cpp import Llama
path, runs, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
messages = json.loads(sys.argv[4])
t0 = time.perf_counter()
llm = Llama(model_path=path, n_ctx=8192, n_threads=2, logits_all=True, verbose=False)
load = time.perf_counter() - t0
out = {"load_s": load}
for label, kw in (("plain", {}), ("top_logprobs=5", {"logprobs": True, "top_logprobs": 5})):
    ttfts, rates = [], []
    for _ in range(runs):
        t0 = time.perf_counter(); first = None; n = 0
        for ch in llm.create_chat_completion(messages, max_tokens=max_tokens, temperature=0,
                                             seed=1, stream=True, **kw):
            if ch["choices"] and ch["choices"][0]["delta"].get("content"):
                n += 1
                if first is None:
                    first = time.perf_counter() - t0
        total = time.perf_counter() - t0
        ttfts.append(first); rates.append((n - 1) / (total - first))
    out[label] = {"ttft_ms": statistics.median(ttfts) * 1000, "tok_s": statistics.median(rates)}
print(json.dumps(out))
"""


async def measure(url: str, model: str, runs: int, max_tokens: int, top: int | None) -> dict:
    prov = Provider(name="bench", base_url=url, default_model=model)
    ttfts, rates = [], []
    async with Client(prov) as c:
        await c.chat(MESSAGES, max_tokens=4)  # warm-up
        for _ in range(runs):
            params = {"logprobs": True, "top_logprobs": top} if top else {}
            r = await c.chat(MESSAGES, stream=True, max_tokens=max_tokens, temperature=0, seed=1,
                             **params)
            n = r.usage.completion_tokens
            ttfts.append(r.timings.ttft)
            rates.append((n - 1) / (r.timings.total - r.timings.ttft))
            if top:
                assert r.logprobs and all(len(t.top) == top for t in r.logprobs)
    return {"ttft_ms": statistics.median(ttfts) * 1000, "tok_s": statistics.median(rates)}


def show(name: str, res: dict) -> None:
    for label in ("plain", "top_logprobs=5"):
        r = res[label]
        print(f"  {name:<34} {label:<15} TTFT {r['ttft_ms']:7.1f} ms   {r['tok_s']:6.1f} tok/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--llama-cpp-python", metavar="PYTHON")
    a = ap.parse_args()

    t0 = time.perf_counter()
    engine = LocalEngine()
    url = engine.start()
    started = time.perf_counter() - t0
    print(f"gptmagic local engine (adapter process + xllamacpp) ready in {started:.2f} s")
    res = {}
    try:
        for label, top in (("plain", None), ("top_logprobs=5", 5)):
            res[label] = asyncio.run(measure(url, "local", a.runs, a.max_tokens, top))
    finally:
        engine.stop()
    show("xllamacpp via gptmagic adapter", res)

    raw = start_llama()
    try:
        res_raw = {}
        for label, top in (("plain", None), ("top_logprobs=5", 5)):
            res_raw[label] = asyncio.run(
                measure(raw.url + "/v1", "smollm2-135m-instruct", a.runs, a.max_tokens, top))
    finally:
        raw.stop()
    show("xllamacpp server, no adapter", res_raw)
    for label in res:
        ratio = res[label]["tok_s"] / res_raw[label]["tok_s"]
        extra = res[label]["ttft_ms"] - res_raw[label]["ttft_ms"]
        print(f"  adapter cost ({label}): tok/s ratio {ratio:.2f}, TTFT {extra:+.1f} ms")

    if a.llama_cpp_python:
        out = subprocess.run(
            [a.llama_cpp_python, "-c", LCP_SCRIPT, str(model_path()), str(a.runs),
             str(a.max_tokens), json.dumps(MESSAGES)],
            capture_output=True, text=True, timeout=1800, check=True)
        lcp = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"llama-cpp-python loaded in {lcp['load_s']:.2f} s (in-process, no HTTP)")
        show("llama-cpp-python", lcp)
        for label in res:
            print(f"  xllamacpp/llama-cpp-python ({label}): tok/s ratio "
                  f"{res[label]['tok_s'] / lcp[label]['tok_s']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
