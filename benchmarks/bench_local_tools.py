"""The cost of tool calling on the embedded model: tokens/s with and without the tool grammar.

With ``tools`` the adapter describes the tools in the system message and
decodes the reply under a JSON schema (:mod:`gptmagic.local.toolcalls`).
Both cost something: a longer prompt, and llama.cpp checking every sampled
token against the grammar. Four requests through the adapter, the same run,
interleaved (so machine noise falls on all alike), median of ``--runs``:

* ``plain``: a question, no tools (the baseline = 1.0);
* ``tools' prompt only``: the same question after the tools' description as a
  plain system message, no grammar (the prompt's share of the cost);
* ``tools, auto``: the tools given, the model free to answer or call;
* ``tools, required``: a call forced (``parallel_tool_calls`` left on, so the
  model writes calls until ``--max-tokens``).

Reported: decode speed (the engine's own ``timings``: tokens generated per
second of generating), the whole request's completion tokens per wall-clock
second (prompt processing included), and the prompt's size. ``temperature: 0``.

Run: python benchmarks/bench_local_tools.py [--runs 7] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import httpx

from gptmagic.local.engine import LocalEngine
from gptmagic.local.toolcalls import ToolPlan, system_text

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Get the current time in a time zone.",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}},
                       "required": ["zone"]}}}]
ASK = [{"role": "user", "content": "Tell me about the weather and the time in Paris."}]
DESCRIBED = [{"role": "system", "content": system_text(
    [t["function"] for t in TOOLS], ToolPlan(names=("get_weather", "get_time")))}, *ASK]

CASES: dict[str, dict[str, Any]] = {
    "plain": {"messages": ASK},
    "tools' prompt only": {"messages": DESCRIBED},
    "tools, auto": {"messages": ASK, "tools": TOOLS},
    "tools, required": {"messages": ASK, "tools": TOOLS, "tool_choice": "required"},
}


def one(client: httpx.Client, body: dict[str, Any], max_tokens: int) -> dict[str, float]:
    began = time.perf_counter()
    answer = client.post("/chat/completions", json={
        "model": "local", "temperature": 0, "max_tokens": max_tokens, **body}).json()
    wall = time.perf_counter() - began
    timings, usage = answer["timings"], answer["usage"]
    return {"decode": timings["predicted_n"] / (timings["predicted_ms"] / 1000),
            "wall": usage["completion_tokens"] / wall, "tokens": usage["completion_tokens"],
            "prompt": usage["prompt_tokens"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    engine = LocalEngine()
    url = engine.start()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CASES}
    try:
        with httpx.Client(base_url=url, timeout=300) as client:
            for body in CASES.values():  # warm up: weights paged in, prompts cached alike
                one(client, body, 4)
            for _ in range(args.runs):
                for name, body in CASES.items():
                    runs[name].append(one(client, body, args.max_tokens))
    finally:
        engine.stop()

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    base_decode, base_wall = median("plain", "decode"), median("plain", "wall")
    print(f"{'request':<20} {'prompt':>6} {'tokens':>6} {'decode tok/s':>13} {'ratio':>6} "
          f"{'wall tok/s':>11} {'ratio':>6}")
    for name in CASES:
        decode, wall = median(name, "decode"), median(name, "wall")
        print(f"{name:<20} {median(name, 'prompt'):6.0f} {median(name, 'tokens'):6.0f} "
              f"{decode:13.1f} {decode / base_decode:6.2f} {wall:11.1f} {wall / base_wall:6.2f}")


if __name__ == "__main__":
    main()
