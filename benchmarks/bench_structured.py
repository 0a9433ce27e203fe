"""What structured decoding costs on the embedded model: tokens/s with and without a schema.

The same prompts to the same engine in one run, alternating (free text, then with
``schema=Person``, ...), each request through gptmagic's client, so the schema's
cost includes llama.cpp building its grammar from the JSON schema (per request)
and gptmagic validating the reply. Reported per mode: the median of the engine's
own decoding rate (``timings.predicted_per_second``), of the whole request's
completion tokens per wall-clock second, and of the wall time, and the ratio of
each with a schema to without it (the baseline, 1.0). Both modes stop where the
model stops (a grammar ends the JSON; free text its turn), capped at
``--max-tokens``.

Run: python benchmarks/bench_structured.py [--runs 5] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from pydantic import BaseModel, Field

from gptmagic import Client, Provider
from gptmagic.local.engine import LocalEngine

WORDS = r"^[A-Za-z][A-Za-z .'-]{0,39}$"


class Address(BaseModel):
    city: str = Field(pattern=WORDS)


class Person(BaseModel):
    name: str = Field(pattern=WORDS)
    age: int | None = None
    home: Address


PROMPTS = ["Describe a baker from Lyon.", "Describe a sailor from Lisbon.",
           "Describe a poet from Kyoto.", "Describe a pilot from Oslo."]


async def one(client: Client, prompt: str, schema: Any, max_tokens: int) -> dict[str, float]:
    began = time.perf_counter()
    r = await client.chat(prompt, schema=schema, max_tokens=max_tokens, temperature=0)
    wall = time.perf_counter() - began
    if schema is not None and not r.valid:
        raise SystemExit(f"a reply did not match the schema: {r.text!r}")
    tokens = r.usage.completion_tokens if r.usage else 0
    engine = (r.timings.engine or {}).get("predicted_per_second") or float("nan")
    return {"engine tok/s": float(engine), "tok/s (wall)": tokens / wall, "wall ms": wall * 1e3,
            "tokens": float(tokens)}


async def run(url: str, runs: int, max_tokens: int) -> dict[str, list[dict[str, float]]]:
    out: dict[str, list[dict[str, float]]] = {"free text": [], "schema": []}
    async with Client(Provider(name="engine", base_url=url, default_model="local")) as client:
        await client.chat("Hi", max_tokens=4)  # warm up
        for _ in range(runs):
            for prompt in PROMPTS:
                out["free text"].append(await one(client, prompt, None, max_tokens))
                out["schema"].append(await one(client, prompt, Person, max_tokens))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()
    engine = LocalEngine()
    url = engine.start()
    try:
        got = asyncio.run(run(url, args.runs, args.max_tokens))
    finally:
        engine.stop()
    keys = ["engine tok/s", "tok/s (wall)", "wall ms", "tokens"]
    med = {mode: {k: statistics.median(m[k] for m in rows) for k in keys}
           for mode, rows in got.items()}
    print(f"{len(got['schema'])} requests per mode, medians")
    print(f"{'':<12}" + "".join(f"{k:>15}" for k in keys))
    for mode, values in med.items():
        print(f"{mode:<12}" + "".join(f"{values[k]:15.1f}" for k in keys))
    print(f"{'ratio':<12}" + "".join(f"{med['schema'][k] / med['free text'][k]:15.2f}"
                                     for k in keys))


if __name__ == "__main__":
    main()
