"""The two embedded models: start time, resident memory and tokens/s, each alone and both.

One run measures, on this machine, as a user gets them (the engine child
process behind gptmagic's adapter):

- **SmolLM2 alone** (``local``, the baseline) and **Gemma alone**
  (``local:gemma-3-270m``): the child's start time until it answers (weights
  loaded), its resident memory (VmRSS of the child, the only process), and
  generation speed;
- **both**: one child started for SmolLM2, then Gemma loaded by its first
  request (the lazy load's cost = that request's time minus a warm one's), the
  memory of the child with both, and each model's speed with the other loaded,
  then both generating at once (two requests in parallel on 2 cores);
- Gemma's weights: assembling them from the chunk packages (into a temp dir),
  hashing the 253 MB file, and the marker check that replaces the hash on
  later starts.

Speed: a legacy completion of ``--max-tokens`` tokens (``ignore_eos``, so both
models generate the same count), temperature 0; ``engine tok/s`` is
llama.cpp's own ``predicted_per_second``, ``wall tok/s`` completion tokens over
the request's wall time. Medians of ``--runs``. Ratios are against SmolLM2 in
the same run.

Run: python benchmarks/bench_models.py [--runs 3] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from gptmagic.catalog.embedded import GEMMA, SMOLLM2, EmbeddedModel
from gptmagic.local import gemma
from gptmagic.local.engine import LocalEngine

PROMPT = "Once upon a time, in a small village by the sea,"


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def complete(url: str, model: str, max_tokens: int) -> dict[str, float]:
    began = time.perf_counter()
    r = httpx.post(f"{url}/completions", timeout=300, json={
        "model": model, "prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0,
        "ignore_eos": True})
    wall = time.perf_counter() - began
    r.raise_for_status()
    body = r.json()
    n = body["usage"]["completion_tokens"]
    return {"wall": wall, "tokens": n, "wall_tok_s": n / wall,
            "engine_tok_s": float(body["timings"]["predicted_per_second"])}


def speed(url: str, model: str, runs: int, max_tokens: int) -> dict[str, float]:
    got = [complete(url, model, max_tokens) for _ in range(runs)]
    return {k: statistics.median(g[k] for g in got) for k in ("wall_tok_s", "engine_tok_s")}


def alone(model: EmbeddedModel, runs: int, max_tokens: int) -> dict[str, Any]:
    engine = LocalEngine()
    try:
        url = engine.start(model=model)
        assert engine.pid is not None and engine.startup_seconds is not None
        out: dict[str, Any] = {"start_s": engine.startup_seconds, "rss_mb": rss_mb(engine.pid)}
        out.update(speed(url, model.id, runs, max_tokens))
        out["rss_after_mb"] = rss_mb(engine.pid)
        return out
    finally:
        engine.stop()


def both(runs: int, max_tokens: int) -> dict[str, Any]:
    engine = LocalEngine()
    try:
        url = engine.start(model=SMOLLM2)
        assert engine.pid is not None
        out: dict[str, Any] = {"start_s": engine.startup_seconds}
        first = complete(url, GEMMA.id, 8)["wall"]  # loads Gemma in the running child
        warm = statistics.median(complete(url, GEMMA.id, 8)["wall"] for _ in range(3))
        out["gemma_lazy_load_s"] = first - warm
        out["rss_mb"] = rss_mb(engine.pid)
        out["smollm2"] = speed(url, SMOLLM2.id, runs, max_tokens)
        out["gemma"] = speed(url, GEMMA.id, runs, max_tokens)
        with ThreadPoolExecutor(2) as pool:  # both generating at once
            rounds = [list(pool.map(lambda m: complete(url, m, max_tokens),
                                    (SMOLLM2.id, GEMMA.id))) for _ in range(runs)]
        out["parallel"] = {name: statistics.median(r[i]["wall_tok_s"] for r in rounds)
                           for i, name in enumerate(("smollm2", "gemma"))}
        out["rss_after_mb"] = rss_mb(engine.pid)
        return out
    finally:
        engine.stop()


def weights() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        path = gemma.gemma_path(cache_dir=Path(tmp))
        assemble = time.perf_counter() - began
        began = time.perf_counter()
        hashlib.sha256(path.read_bytes()).hexdigest()
        hashed = time.perf_counter() - began
        began = time.perf_counter()
        gemma.gemma_path(cache_dir=Path(tmp))
        trusted = time.perf_counter() - began
    return {"assemble_s": assemble, "sha256_s": hashed, "marker_check_s": trusted}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()
    gemma.gemma_path()  # the user cache holds the weights before any start is timed
    w = weights()
    print(f"Gemma weights: assemble {w['assemble_s']:.2f} s (SHA-256 checked), "
          f"hash alone {w['sha256_s']:.2f} s, marker check {w['marker_check_s'] * 1e3:.2f} ms")
    smol = alone(SMOLLM2, args.runs, args.max_tokens)
    gem = alone(GEMMA, args.runs, args.max_tokens)
    two = both(args.runs, args.max_tokens)

    def x(value: float, base: float) -> str:
        return f"{value:.2f} ({value / base:.2f}x)" if value < 10 else \
            f"{value:.0f} ({value / base:.2f}x)"

    base_rate = smol["engine_tok_s"]
    print(f"\n{args.max_tokens} tokens per completion, median of {args.runs} runs; ratios "
          "against SmolLM2 alone; tok/s: the engine's own (wall tok/s in brackets)\n")
    print("| setup | start (s) | RSS (MB) | SmolLM2 tok/s | Gemma tok/s |")
    print("|---|---|---|---|---|")
    print(f"| SmolLM2 alone | {x(smol['start_s'], smol['start_s'])} | "
          f"{x(smol['rss_after_mb'], smol['rss_after_mb'])} | {x(base_rate, base_rate)} "
          f"[{smol['wall_tok_s']:.0f}] | - |")
    print(f"| Gemma alone | {x(gem['start_s'], smol['start_s'])} | "
          f"{x(gem['rss_after_mb'], smol['rss_after_mb'])} | - | "
          f"{x(gem['engine_tok_s'], base_rate)} [{gem['wall_tok_s']:.0f}] |")
    s2, g2 = two["smollm2"], two["gemma"]
    print(f"| both, one child (Gemma loaded by its first request) | "
          f"{two['start_s']:.2f} + {two['gemma_lazy_load_s']:.2f} | "
          f"{x(two['rss_after_mb'], smol['rss_after_mb'])} | "
          f"{x(s2['engine_tok_s'], base_rate)} [{s2['wall_tok_s']:.0f}] | "
          f"{x(g2['engine_tok_s'], base_rate)} [{g2['wall_tok_s']:.0f}] |")
    par = two["parallel"]
    print(f"| both generating at once (wall tok/s each) | | | "
          f"{x(par['smollm2'], smol['wall_tok_s'])} | {x(par['gemma'], smol['wall_tok_s'])} |")

if __name__ == "__main__":
    main()
