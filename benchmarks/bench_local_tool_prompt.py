"""How well the embedded model follows the tool emulation's instructions, counted.

SmolLM2's template has no tools, so the adapter describes them in the system
message and tells the model how to answer (:func:`gptmagic.local.toolcalls.system_text`);
the grammar makes every reply one of the two shapes, but not a sensible one. A
135M model sometimes copies the instruction's placeholder (the reply
``<your reply>``), answers nothing, calls a tool it does not need, or does not call
the one it needs. This counts those over a fixed set of prompts at temperature 0,
through the adapter as a user's request goes (so it measures whatever wording
``toolcalls.py`` has: run it on two versions to compare them):

* **auto**: 10 weather questions (the tool is needed) and 10 others (it is not);
  counted: a call when needed, a call when not, a placeholder or empty reply;
* **after a call**: ``tool_choice: "required"`` on the first step (as a notebook
  does with a small model), the tool's result sent back, then ``auto``: the
  answer should be text that uses the result; counted: the placeholder, an empty
  answer, another call, an answer holding the result;

each with one tool (``get_weather``), two tools (and ``get_time``, with 4 time
questions more), and one tool under a system message of the user's; then
**general**: 40 questions no tool helps with, one tool, ``auto`` (where the old
wording's placeholder showed most).

Run: python benchmarks/bench_local_tool_prompt.py [--max-tokens 80]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

import httpx

from gptmagic.local.engine import LocalEngine

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Get the current time in a time zone.",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}},
                   "required": ["zone"], "additionalProperties": False}}}
#: What each tool "returns"; an answer after a call that holds its first word used it.
RESULTS = {"get_weather": "21 C and sunny", "get_time": "14:05"}
NEEDED = {"get_weather": [
    "What is the weather in Paris?", "Is it raining in London right now?",
    "How hot is it in Cairo today?", "Should I take an umbrella in Oslo?",
    "What's the temperature in Tokyo?", "Is it sunny in Madrid?",
    "Do I need a coat in Berlin today?", "What's the weather like in Rome?",
    "Is it windy in Chicago?", "Will it snow in Moscow today?"],
    "get_time": ["What time is it in New York?", "Tell me the current time in Europe/Berlin.",
                 "What is the time in Sydney now?", "What's the local time in UTC?"]}
UNNEEDED = ["Who wrote Hamlet?", "What is 2 + 2?", "Translate 'good morning' into French.",
            "What is the capital of Italy?", "Name three primary colours.",
            "Who painted the Mona Lisa?", "What is the boiling point of water in Celsius?",
            "Write a haiku about the sea.", "How many legs does a spider have?",
            "What does CPU stand for?"]
CONFIGS: dict[str, tuple[list[dict[str, Any]], str | None]] = {
    "one tool": ([WEATHER], None),
    "two tools": ([WEATHER, TIME], None),
    "one tool, system message": ([WEATHER], "You are a helpful assistant."),
}
GENERAL = [
    "Who wrote Hamlet?", "What is the capital of Italy?", "What is the capital of France?",
    "Who discovered penicillin?", "What is the largest planet?", "How many days are in a week?",
    "What colour is the sky?", "Who is the author of 1984?", "What is the square root of 16?",
    "Name a famous composer.", "What language is spoken in Brazil?", "What is H2O?",
    "Who was the first man on the moon?", "What is the speed of light?",
    "Give me a synonym for happy.", "What is the opposite of cold?",
    "Spell the word 'necessary'.", "What year did World War II end?", "What is photosynthesis?",
    "Tell me a joke.", "What is the chemical symbol for gold?", "Who invented the telephone?",
    "How many continents are there?", "What is the tallest mountain?", "What is a noun?",
    "Recommend a book.", "What is the currency of Japan?", "Who wrote Pride and Prejudice?",
    "What is 10 times 5?", "Say hello in Spanish.", "What is an atom?",
    "Describe a cat in one sentence.", "What is the main ingredient of guacamole?",
    "Who painted Starry Night?", "What is the longest river?", "What do bees make?",
    "What is gravity?", "Name a fruit that is yellow.", "What is the freezing point of water?",
    "Who is Sherlock Holmes?"]
#: A reply that is an instruction's placeholder copied (the old and the new wordings').
PLACEHOLDERS = ("<your reply>", "...", "…")


def kind(message: dict[str, Any]) -> str:
    """``call``, ``placeholder``, ``empty`` or ``text``."""
    if message.get("tool_calls"):
        return "call"
    text = (message.get("content") or "").strip()
    if not text:
        return "empty"
    if text.lower() in PLACEHOLDERS or "<your" in text.lower():
        return "placeholder"
    return "text"


def post(client: httpx.Client, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
         max_tokens: int, **extra: Any) -> dict[str, Any]:
    resp = client.post("/chat/completions", json={
        "model": "local", "temperature": 0, "max_tokens": max_tokens, "messages": messages,
        "tools": tools, **extra})
    resp.raise_for_status()
    message: dict[str, Any] = resp.json()["choices"][0]["message"]
    return message


def run(client: httpx.Client, tools: list[dict[str, Any]], system: str | None,
        max_tokens: int) -> Counter[str]:
    names = [t["function"]["name"] for t in tools]
    head = [{"role": "system", "content": system}] if system else []
    needed = [(q, name) for name in names for q in NEEDED[name]]
    counts: Counter[str] = Counter(needed=len(needed), unneeded=len(UNNEEDED))
    for question, name in [*needed, *((q, None) for q in UNNEEDED)]:
        ask = [*head, {"role": "user", "content": question}]
        first = post(client, ask, tools, max_tokens)
        got = kind(first)
        counts[f"auto {'needed' if name else 'unneeded'}: {got}"] += 1
        if got == "call" and name is not None:
            counts["auto needed: the right tool"] += first["tool_calls"][0]["function"][
                "name"] == name
        forced = post(client, ask, tools, max_tokens, tool_choice="required",
                      parallel_tool_calls=False)
        if not forced.get("tool_calls"):  # cut off by max_tokens before a call
            counts["after a call: no call forced"] += 1
            continue
        call = forced["tool_calls"][0]
        result = RESULTS[call["function"]["name"]]
        then = post(client, [*ask, {"role": "assistant", "content": None,
                                    "tool_calls": [call]},
                             {"role": "tool", "tool_call_id": call["id"], "content": result}],
                    tools, max_tokens)
        after = kind(then)
        counts[f"after a call: {after}"] += 1
        counts["after a call: uses the result"] += after == "text" and \
            result.split()[0] in then["content"]
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=80)
    args = parser.parse_args()
    engine = LocalEngine()
    url = engine.start()
    total: Counter[str] = Counter()
    try:
        with httpx.Client(base_url=url, timeout=300) as client:
            for name, (tools, system) in CONFIGS.items():
                counts = run(client, tools, system, args.max_tokens)
                total.update(counts)
                print(f"== {name}: {json.dumps(dict(sorted(counts.items())))}", flush=True)
            general: Counter[str] = Counter(
                kind(post(client, [{"role": "user", "content": q}], [WEATHER], args.max_tokens))
                for q in GENERAL)
            print(f"== general: {json.dumps(dict(sorted(general.items())))}", flush=True)
    finally:
        engine.stop()
    asked = total["needed"] + total["unneeded"]
    print(f"\nall: {asked} prompts ({total['needed']} needing a tool), temperature 0")
    rows = [
        ("placeholder or empty, first reply", total["auto needed: placeholder"]
         + total["auto unneeded: placeholder"] + total["auto needed: empty"]
         + total["auto unneeded: empty"], asked),
        ("placeholder or empty, answer after a call", total["after a call: placeholder"]
         + total["after a call: empty"], asked),
        ("a call when needed (auto)", total["auto needed: call"], total["needed"]),
        ("  of the right tool", total["auto needed: the right tool"], total["needed"]),
        ("a call when not needed (auto)", total["auto unneeded: call"], total["unneeded"]),
        ("answer after a call uses the result", total["after a call: uses the result"], asked),
        ("another call after a call", total["after a call: call"], asked),
    ]
    rows += [("general: placeholder or empty", general["placeholder"] + general["empty"],
              len(GENERAL)),
             ("general: a call (none is needed)", general["call"], len(GENERAL))]
    for label, n, of in rows:
        print(f"  {label:<42} {n:>3} / {of:<3} ({n / of:.0%})")


if __name__ == "__main__":
    main()
