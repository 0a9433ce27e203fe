"""The cost of structured decoding on the embedded model, and what it buys.

One run, the same engine, the same cases (a short description of a person each),
temperature 0, three ways of asking for JSON:

- ``plain``: the prompt asks for JSON; nothing constrains decoding;
- ``json_object``: JSON mode (``response_format: json_object``): any JSON;
- ``json_schema``: a strict schema (``response_format: json_schema``), which
  llama.cpp turns into a grammar: only tokens that keep the output schema-valid;
- ``pattern``: the same schema, its strings bounded by a regex ``pattern``.

Per mode: how many replies parse as JSON and validate against the schema, and
generation speed (the engine's own ``predicted_per_second``, median over cases).
The figure is the ratio of the schema's tokens/s to plain's, in the same run:
what the grammar costs per token. Modes are interleaved case by case, so drift
in the machine's speed falls on all three alike.

Run: python benchmarks/bench_structured.py [--cases 12] [--max-tokens 80]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

import jsonschema

from gptmagic import Client, Provider
from gptmagic.local.engine import LocalEngine

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                   "city": {"type": "string"}},
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}
PEOPLE = [("Ada", 36, "London"), ("Linus", 54, "Portland"), ("Grace", 85, "Arlington"),
          ("Alan", 41, "Manchester"), ("Margaret", 38, "Boston"), ("Edsger", 72, "Austin"),
          ("Barbara", 60, "Cambridge"), ("Ken", 80, "Murray Hill"), ("Frances", 50, "Dayton"),
          ("John", 47, "Princeton"), ("Hedy", 45, "Vienna"), ("Dennis", 70, "Bronxville")]
#: The same schema with its strings bounded by a ``pattern`` (what the README advises
#: against runaway strings; strict mode refuses ``maxLength``).
PATTERNED = {**SCHEMA, "properties": {
    "name": {"type": "string", "pattern": "^[A-Za-z .'-]{1,40}$"}, "age": {"type": "integer"},
    "city": {"type": "string", "pattern": "^[A-Za-z .'-]{1,40}$"}}}
MODES: dict[str, dict[str, Any]] = {
    "plain": {},
    "json_object": {"response_format": {"type": "json_object"}},
    "json_schema": {"response_format": {"type": "json_schema", "json_schema": {
        "name": "Person", "strict": True, "schema": SCHEMA}}},
    "pattern": {"response_format": {"type": "json_schema", "json_schema": {
        "name": "Person", "strict": True, "schema": PATTERNED}}},
}


def prompt(name: str, age: int, city: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Reply with JSON only: an object with the keys "
                                          "name (string), age (integer) and city (string)."},
            {"role": "user", "content": f"{name} is {age} years old and lives in {city}."}]


def vague(name: str, age: int, city: str) -> list[dict[str, str]]:
    """The same request, the keys not spelled out: JSON mode must guess them."""
    return [{"role": "system", "content": "Reply with JSON only."},
            {"role": "user", "content": f"Describe this person as JSON: {name} is {age} "
                                        f"years old and lives in {city}."}]


def valid(text: str) -> bool:
    try:
        jsonschema.validate(json.loads(text), SCHEMA)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


async def run(url: str, cases: int, max_tokens: int,
              ask: Any = prompt) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, list[float]]] = {m: {"ok": [], "tok_s": []} for m in MODES}
    async with Client(Provider(name="bench", base_url=url, default_model="local")) as c:
        await c.chat(prompt(*PEOPLE[0]), max_tokens=4)  # warm-up
        for person in (PEOPLE * (cases // len(PEOPLE) + 1))[:cases]:
            for mode, params in MODES.items():
                r = await c.chat(ask(*person), max_tokens=max_tokens, temperature=0, seed=1,
                                 **params)
                out[mode]["ok"].append(float(valid(r.text)))
                engine = r.timings.engine or {}
                if engine.get("predicted_per_second"):
                    out[mode]["tok_s"].append(engine["predicted_per_second"])
    return {m: {"valid": sum(v["ok"]) / len(v["ok"]), "n": len(v["ok"]),
                "tok_s": statistics.median(v["tok_s"]) if v["tok_s"] else float("nan")}
            for m, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=12)
    ap.add_argument("--max-tokens", type=int, default=80)
    a = ap.parse_args()
    engine = LocalEngine()
    t0 = time.perf_counter()
    url = engine.start()
    print(f"embedded engine ready in {time.perf_counter() - t0:.1f} s")
    try:
        for label, ask in (("keys named in the prompt", prompt), ("keys not named", vague)):
            res = asyncio.run(run(url, a.cases, a.max_tokens, ask))
            print(label)
            for mode, r in res.items():
                print(f"  {mode:<12} schema-valid {r['valid']:6.0%} of {r['n']:<3}  "
                      f"{r['tok_s']:6.1f} tok/s")
            base = res["plain"]["tok_s"]
            for mode in ("json_object", "json_schema", "pattern"):
                print(f"  {mode} tok/s / plain tok/s: {res[mode]['tok_s'] / base:.2f}")
    finally:
        engine.stop()


if __name__ == "__main__":
    sys.exit(main())
