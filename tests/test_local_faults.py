"""The embedded server under clients that leave, and requests that used to hang or 500.

Against the real engine (``conftest_local``): requests abandoned mid-generation
must free the engine's slots, the server must stop quickly with a request in
flight, and valid-but-unsupported or malformed requests get OpenAI's 400s.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import pytest
from conftest_local import local_client, local_engine, local_url  # noqa: F401
from openapi_schema import validate

from gptmagic.local.engine import LocalEngine

pytestmark = pytest.mark.engine

#: A request that would keep a slot busy for minutes if nobody stopped it.
ENDLESS = {"model": "local", "messages": [{"role": "user", "content": "Tell a long story."}],
           "max_tokens": 6000, "ignore_eos": True, "temperature": 1}


def busy_slots(base: str) -> int:
    """How many of the engine's slots are generating now (the adapter's ``/slots``)."""
    answer = httpx.get(base.removesuffix("/v1") + "/slots", timeout=10).json()
    assert len(answer["slots"]) == 4
    return int(answer["busy"])


def wait_until_idle(base: str, bound: float) -> int:
    """Poll ``/slots`` until no slot is busy or ``bound`` seconds pass; the busy count."""
    end = time.monotonic() + bound
    busy = busy_slots(base)
    while busy and time.monotonic() < end:
        time.sleep(0.2)
        busy = busy_slots(base)
    return busy


async def abandon(base: str, stream: bool, path: str = "/chat/completions",
                  body: dict[str, Any] | None = None) -> str:
    """Start a generation, take a little of it, then go away; what was seen."""
    body = body or ENDLESS
    # 5 s: a first token takes well under a second, but on a loaded 2-core machine a
    # stream's first chunk once took over 1.5 s and was counted as "timed out".
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(5, connect=5)) as client:
        try:
            if stream:
                async with client.stream("POST", path, json={**body, "stream": True}) as resp:
                    async for chunk in resp.aiter_bytes():
                        if b"data: {" in chunk:
                            return "streamed"  # leaving the block closes the connection
                return "ended"
            await client.post(path, json=body)
            return "answered"
        except httpx.TimeoutException:
            return "timed out"


def test_abandoned_requests_free_their_slots(local_url: str) -> None:  # noqa: F811
    """10 streams and 10 plain requests abandoned mid-generation: the engine goes idle."""
    assert wait_until_idle(local_url, 30) == 0

    async def run() -> list[str]:
        jobs = [abandon(local_url, stream=i % 2 == 0) for i in range(20)]
        return await asyncio.gather(*jobs)

    seen = asyncio.run(run())
    # 4 slots: some streams are still queued when their client gives up.
    assert set(seen) == {"streamed", "timed out"} and seen.count("timed out") >= 10
    # Each would generate 6,000 tokens (about a minute per slot); with the
    # upstream request cancelled they stop within the watchdog's interval.
    assert wait_until_idle(local_url, 15) == 0

    async def four() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=local_url, timeout=60) as client:
            bodies = [{**ENDLESS, "max_tokens": 8, "seed": i} for i in range(4)]
            answers = await asyncio.gather(*(client.post("/chat/completions", json=b)
                                             for b in bodies))
        return [a.json() for a in answers]

    for answer in asyncio.run(four()):
        assert answer["usage"]["completion_tokens"] == 8
    assert busy_slots(local_url) == 0


def test_abandoned_legacy_and_empty_prompt_streams_free_their_slots(
        local_url: str) -> None:  # noqa: F811
    """The empty-prompt ``n`` > 1 stream used to hang the engine for good."""
    assert wait_until_idle(local_url, 30) == 0
    body = {"model": "local", "prompt": "", "n": 3, "max_tokens": 6000, "ignore_eos": True}

    async def run() -> list[str]:
        return await asyncio.gather(abandon(local_url, True, "/completions", body),
                                    abandon(local_url, False, "/completions", body))

    assert sorted(asyncio.run(run())) == ["streamed", "timed out"]
    assert wait_until_idle(local_url, 15) == 0


def test_empty_prompt_streams_with_n_finish(local_client: httpx.Client) -> None:  # noqa: F811
    """``prompt: ""`` (or null) is the start of a document, as on OpenAI: text comes back."""
    for prompt in ("", None):
        body = {"model": "local", "prompt": prompt, "n": 2, "max_tokens": 4, "ignore_eos": True,
                "stream": True, "stream_options": {"include_usage": True}}
        with local_client.stream("POST", "/completions", json=body, timeout=30) as resp:
            lines = [ln[6:] for ln in resp.iter_lines() if ln.startswith("data: ")]
        assert lines[-1] == "[DONE]"
        chunks = [json.loads(x) for x in lines[:-1]]
        usage = chunks[-1]["usage"]
        assert usage["completion_tokens"] == 8 and usage["prompt_tokens"] == 1
        texts = {c["choices"][0]["index"] for c in chunks if c["choices"]}
        assert texts == {0, 1}
    plain = local_client.post("/completions", json={"model": "local", "prompt": "",
                                                    "max_tokens": 3, "ignore_eos": True}).json()
    validate(plain, "CreateCompletionResponse")
    assert plain["usage"]["completion_tokens"] == 3
    assert plain["choices"][0]["finish_reason"] == "length" and plain["choices"][0]["text"]


def test_no_prompts_is_no_choices(local_client: httpx.Client) -> None:  # noqa: F811
    plain = local_client.post("/completions", json={"model": "local", "prompt": []})
    assert plain.status_code == 200
    validate(plain.json(), "CreateCompletionResponse")
    assert plain.json()["choices"] == []
    body = {"model": "local", "prompt": [], "stream": True,
            "stream_options": {"include_usage": True}}
    with local_client.stream("POST", "/completions", json=body) as resp:
        lines = [ln[6:] for ln in resp.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]" and json.loads(lines[0])["usage"]["total_tokens"] == 0


@pytest.mark.slow  # an engine of its own: seconds
def test_stopping_with_a_request_in_flight_is_clean() -> None:
    """SIGTERM with a generation running: the child exits 0 within the grace period.

    Before, the server waited up to 60 s for the request, and the parent's
    5 s grace ran out: the child was killed (exit status -9).
    """
    engine = LocalEngine()
    url = engine.start()
    errors: list[BaseException] = []

    def long_request() -> None:
        try:
            httpx.post(url + "/chat/completions", json=ENDLESS, timeout=120)
        except httpx.HTTPError as exc:
            errors.append(exc)

    worker = threading.Thread(target=long_request)
    worker.start()
    try:
        assert wait_for_busy(url) == 1
        engine.stop()
        assert engine.last_returncode == 0
    finally:
        engine.stop()
        worker.join(timeout=30)
    assert len(errors) == 1  # the client saw its connection end, not a hang


def wait_for_busy(base: str, bound: float = 30) -> int:
    end = time.monotonic() + bound
    busy = busy_slots(base)
    while not busy and time.monotonic() < end:
        time.sleep(0.1)
        busy = busy_slots(base)
    return busy


@pytest.mark.parametrize("body, param", [
    ({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]},
     "messages[0].content[1]"),
    ({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": "hi"}, {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "custom", "custom": {"name": "f", "input": "x"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"}]},
     "messages[1].tool_calls[0].type"),
    ({"messages": [{"role": ["user"], "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "hi"}],
      "tool_choice": {"type": "function", "function": {"name": "later"}},
      "tools": [{"type": "function", "function": {"name": "now", "parameters": {}}}]},
     "tool_choice.function.name"),
    ({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "required",
      "tools": [{"type": "function", "function": {"name": "now", "parameters": {
          "type": "object", "properties": {"at": {"$ref": "#/$defs/Missing"}}}}}]},
     "tools"),  # the engine cannot compile the schema: its 400, said about the tool
])
def test_unsupported_parts_are_400_not_500(local_client: httpx.Client, body: dict[str, Any],  # noqa: F811
                                           param: str) -> None:
    resp = local_client.post("/chat/completions", json={"model": "local", **body})
    assert resp.status_code == 400 and resp.headers["content-type"].startswith(
        "application/json")
    err = resp.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error"
    assert param.removesuffix(".type") in err["message"]


def test_integer_valued_floats_are_accepted(local_client: httpx.Client) -> None:  # noqa: F811
    resp = local_client.post("/chat/completions", json={
        **ENDLESS, "n": 1.0, "max_tokens": 3.0, "seed": 4.0})
    assert resp.status_code == 200 and resp.json()["usage"]["completion_tokens"] == 3


def test_405_says_which_methods(local_url: str) -> None:  # noqa: F811
    resp = httpx.get(local_url + "/chat/completions", timeout=10)
    assert resp.status_code == 405 and "POST" in resp.headers["allow"]
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_a_final_empty_assistant_message_keeps_the_reply_header(
        local_client: httpx.Client) -> None:  # noqa: F811
    """A final assistant message is a finished turn (no prefill), as on OpenAI."""
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]
    counted = local_client.post("/tokenize", json={"messages": messages}).json()
    assert counted["prompt"].endswith(
        "<|im_start|>assistant\n<|im_end|>\n<|im_start|>assistant\n")
    answer = local_client.post("/chat/completions", json={
        "model": "local", "messages": messages, "max_tokens": 5, "temperature": 0}).json()
    assert answer["usage"]["prompt_tokens"] == counted["count"]
    assert not answer["choices"][0]["message"]["content"].startswith("assistant")


def test_a_refusal_reaches_the_model(local_client: httpx.Client) -> None:  # noqa: F811
    messages = [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": None, "refusal": "I will not."},
                {"role": "user", "content": "why?"}]
    answer = local_client.post("/chat/completions", json={
        "model": "local", "messages": messages, "max_tokens": 2})
    assert answer.status_code == 200
    shown = local_client.post("/tokenize", json={"messages": messages}).json()["prompt"]
    assert "<|im_start|>assistant\nI will not.<|im_end|>" in shown


def test_an_empty_reply_is_empty_text(local_client: httpx.Client) -> None:  # noqa: F811
    answer = local_client.post("/chat/completions", json={
        "model": "local", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5,
        "logit_bias": {"2": 100}}).json()  # 2 is <|im_end|>: the reply ends at once
    assert answer["choices"][0]["message"]["content"] == ""
    assert answer["choices"][0]["finish_reason"] == "stop"


def test_an_assistant_refusal_part_reaches_the_model(local_client: httpx.Client) -> None:  # noqa: F811
    messages = [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "I refuse."}]},
                {"role": "user", "content": "why"}]
    answer = local_client.post("/chat/completions", json={
        "model": "local", "messages": messages, "max_tokens": 2})
    assert answer.status_code == 200, answer.text
    shown = local_client.post("/tokenize", json={"messages": messages}).json()["prompt"]
    assert "<|im_start|>assistant\nI refuse.<|im_end|>" in shown


def test_legacy_completions_stop_at_16_tokens_by_default(local_client: httpx.Client) -> None:  # noqa: F811
    """OpenAI's default; the engine alone would write until the context is full."""
    answer = local_client.post("/completions", json={
        "model": "local", "prompt": "1, 2, 3, 4, 5,", "ignore_eos": True}).json()
    assert answer["usage"]["completion_tokens"] == 16


@pytest.mark.slow  # an engine of its own, and a long prompt: seconds
def test_stopping_during_a_long_prompt_is_clean() -> None:
    """llama.cpp finishes the batch it is decoding before it stops; the child does not wait."""
    engine = LocalEngine()
    url = engine.start()
    worker = threading.Thread(target=lambda: _quietly(lambda: httpx.post(
        url + "/chat/completions", timeout=120, json={
            "model": "local", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hello " * 7000}]})))
    worker.start()
    try:
        assert wait_for_busy(url) == 1
        engine.stop()
        assert engine.last_returncode == 0  # not killed after the 5 s grace
    finally:
        engine.stop()
        worker.join(timeout=30)


def _quietly(call: Any) -> None:
    try:
        call()
    except httpx.HTTPError:
        pass
