"""Client overhead per Responses API request against per chat request, in the same run.

Two figures, each a ratio within one run (these machines are noisy):

- parsing: building the Result from a reply already in memory, a whole body
  (``parse_responses`` vs chat's ``parse_response``) and a stream's events
  (``ResponsesAccumulator`` vs chat's ``Accumulator``), for the same reply
  text of ``WORDS`` tokens. No network: this is the client's own cost.
- over HTTP: sequential requests to the fake server (its own process, no
  delay), in short interleaved rounds; per endpoint and mode, the median time
  of gptmagic.Client minus that of a bare aiohttp session posting the same
  body is the client's overhead per request; the figure is Responses
  overhead / chat overhead. (The difference of two ~1 ms medians: expect
  noise of some tenths.)

Run: python benchmarks/bench_responses.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from gptmagic import Client, Provider
from gptmagic.core.response import Accumulator, parse_response
from gptmagic.core.responses import ResponsesAccumulator, parse_responses

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from fakeresponses import Memory, build  # noqa: E402
from fakeserver import FakeServer  # noqa: E402

WORDS = 50
PROMPT = " ".join(f"w{i}" for i in range(WORDS))


def _best(fn: Callable[[], object], n: int, rounds: int = 5) -> float:
    """Seconds per call: the best of ``rounds`` runs of ``n`` calls."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return min(times)


def _chat_reply() -> tuple[dict, list[dict]]:
    reply, events, _ = FakeServer()._chat(
        {"model": "m", "messages": [{"role": "user", "content": PROMPT}],
         "stream_options": {"include_usage": True}}, _Plain(), 1, "/v1/chat/completions")
    return reply, [json.loads(e) for e in events if e != "[DONE]"]


class _Plain:
    text = None


def _responses_reply() -> tuple[dict, list[tuple[str, dict]]]:
    reply, events, _ = build({"model": "m", "input": PROMPT}, None, 1, Memory())
    return reply, [(name, json.loads(data)) for name, data in events]


def parsing(n: int) -> dict[str, float]:
    chat_body, chat_events = _chat_reply()
    resp_body, resp_events = _responses_reply()

    def chat_stream() -> None:
        acc = Accumulator("chat")
        for e in chat_events:
            acc.add(e)
        acc.result()

    def resp_stream() -> None:
        acc = ResponsesAccumulator()
        for name, e in resp_events:
            acc.add(e, name)
        acc.result()

    return {
        "whole body": _best(lambda: parse_responses(resp_body), n)
        / _best(lambda: parse_response("chat", chat_body), n),
        "stream": _best(resp_stream, n // 10) / _best(chat_stream, n // 10),
        "events per stream (responses / chat)": len(resp_events) / len(chat_events),
    }


async def _bare(s: aiohttp.ClientSession, url: str, body: dict, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        async with s.post(url, data=json.dumps(body),
                          headers={"Content-Type": "application/json"}) as r:
            await r.read()
    return (time.perf_counter() - t0) / n


async def _client(c: Client, kind: str, stream: bool, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        if kind == "chat":
            await c.chat(PROMPT, stream=stream)
        else:
            await c.respond(PROMPT, stream=stream)
    return (time.perf_counter() - t0) / n


async def http(url: str, n: int, rounds: int) -> dict[str, float]:
    """Median seconds per request of each of the four (client / bare x chat / responses),
    interleaved in short rounds so that drift on a shared machine hits all alike."""
    out: dict[str, float] = {}
    prov = Provider(name="fake", base_url=url, default_model="m")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s, Client(
            prov, max_connections=1) as c:
        for stream, label in ((False, "whole body"), (True, "stream")):
            extra = {"stream": True} if stream else {}
            chat_body = {"model": "m", "messages": [{"role": "user", "content": PROMPT}],
                         **extra, **({"stream_options": {"include_usage": True}}
                                     if stream else {})}
            resp_body = {"model": "m", "input": PROMPT, **extra}
            runs: dict[str, list[float]] = {"chat": [], "bare chat": [], "resp": [],
                                            "bare resp": []}
            for _ in range(rounds):
                runs["chat"].append(await _client(c, "chat", stream, n))
                runs["bare chat"].append(await _bare(s, url + "/chat/completions",
                                                     chat_body, n))
                runs["resp"].append(await _client(c, "response", stream, n))
                runs["bare resp"].append(await _bare(s, url + "/responses", resp_body, n))
            med = {k: statistics.median(v) for k, v in runs.items()}
            chat, resp = med["chat"] - med["bare chat"], med["resp"] - med["bare resp"]
            print(f"  {label}: per request, chat {med['chat'] * 1e3:.2f} ms (bare "
                  f"{med['bare chat'] * 1e3:.2f}), responses {med['resp'] * 1e3:.2f} ms "
                  f"(bare {med['bare resp'] * 1e3:.2f})")
            out[label] = resp / chat
    return out


class Server:
    """The fake server in its own process, so it does not share our GIL."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(TESTS / "fakeserver.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = (self.proc.stdout.readline() if self.proc.stdout else "").strip()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(10)


async def main(quick: bool) -> None:
    n = 200 if quick else 1000
    for name, ratio in parsing(n).items():
        print(f"parsing, {name}: {ratio:.2f}" + ("" if name.startswith("events") else "x chat"))
    with Server() as srv:
        for name, ratio in (await http(srv.url, 10, 20 if quick else 60)).items():
            print(f"client overhead over HTTP, {name}: {ratio:.2f}x chat's")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    asyncio.run(main(ap.parse_args().quick))
