"""Pure tests of the local adapter's stream collector, slot gate and merged logprob entries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from openapi_schema import validate

from gptmagic.local.adapt import merge_chat, merge_completions, prepare_chat, prepare_completion
from gptmagic.local.collect import Collector
from gptmagic.local.fragments import Scored, find_splits, generated_ids, rebuild
from gptmagic.local.gate import SlotGate
from gptmagic.local.logprobs import chat_logprobs

ENVELOPE = {"created": 1, "id": "chatcmpl-x", "model": "smollm2-135m-instruct",
            "system_fingerprint": "b0"}


def lp(token: str, logprob: float) -> dict[str, Any]:
    one = {"id": 1, "token": token, "bytes": list(token.encode()), "logprob": logprob}
    return {**one, "top_logprobs": [one]}


def chat_chunk(delta: dict[str, Any], finish: str | None = None, **kw: Any) -> dict[str, Any]:
    choice = {"finish_reason": finish, "index": 0, "delta": delta, **kw}
    return {**ENVELOPE, "object": "chat.completion.chunk", "choices": [choice]}


def test_a_chat_stream_collects_into_the_engine_answer() -> None:
    collector = Collector(chat=True)
    for chunk in [
        chat_chunk({"role": "assistant", "content": None}),
        chat_chunk({"content": "Hello"}, logprobs={"content": [lp("Hello", -1.0)]}),
        chat_chunk({"content": "!"}, logprobs={"content": [lp("!", -0.5)]}),
        chat_chunk({}, "length"),
        {**ENVELOPE, "choices": [], "usage": {"completion_tokens": 2, "prompt_tokens": 9,
                                              "total_tokens": 11}, "timings": {"x": 1}},
    ]:
        collector.feed(chunk)
    answer = collector.answer()
    choice = answer["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Hello!"}
    assert choice["finish_reason"] == "length" and answer["usage"]["prompt_tokens"] == 9
    assert [e["token"] for e in choice["logprobs"]["content"]] == ["Hello", "!"]
    assert answer["timings"] == {"x": 1} and answer["id"] == "chatcmpl-x"
    plan = prepare_chat({"model": "local", "messages": [{"role": "user", "content": "hi"}],
                         "logprobs": True})
    validate(merge_chat(plan, [answer]), "CreateChatCompletionResponse")


def test_tool_call_deltas_are_joined() -> None:
    collector = Collector(chat=True)
    collector.feed(chat_chunk({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                               "function": {"name": "get_", "arguments": ""}}]}))
    collector.feed(chat_chunk({"tool_calls": [{"index": 0, "function": {
        "name": "time", "arguments": '{"tz": '}}]}))
    collector.feed(chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"UTC"}'}}]},
                              "tool_calls"))
    message = collector.answer()["choices"][0]["message"]
    assert message["tool_calls"] == [{"id": "c1", "type": "function", "function": {
        "name": "get_time", "arguments": '{"tz": "UTC"}'}}]
    assert message["content"] is None


def test_a_legacy_stream_collects_text_and_usage() -> None:
    collector = Collector(chat=False)
    collector.feed(None)  # the engine opens multi-prompt streams with `data: null`
    for text, finish in (("The", None), (" end", None), ("", "stop")):
        usage = {"usage": {"completion_tokens": 2, "prompt_tokens": 3, "total_tokens": 5}} \
            if finish else {}
        collector.feed({**ENVELOPE, "object": "text_completion", **usage, "choices": [
            {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]})
    answer = collector.answer()
    assert answer["choices"] == [{"index": 0, "text": "The end", "finish_reason": "stop"}]
    plan = prepare_completion({"model": "local", "prompt": "x"})
    merged = merge_completions(plan, [answer])
    validate(merged, "CreateCompletionResponse")
    assert merged["usage"]["total_tokens"] == 5


def test_the_gate_admits_no_more_than_the_slots() -> None:
    async def run() -> tuple[int, int]:
        gate = SlotGate(2)
        peak = 0

        async def job(i: int) -> None:
            nonlocal peak
            async with gate.admit():
                peak = max(peak, gate.busy)
                await asyncio.sleep(0)

        await asyncio.gather(*(job(i) for i in range(7)))
        return peak, gate.busy

    assert asyncio.run(run()) == (2, 0)


def test_a_request_cancelled_while_queued_gives_its_slots_back() -> None:
    async def run() -> tuple[int, int]:
        gate = SlotGate(3)
        hold = asyncio.Event()

        async def holder() -> None:
            async with gate.admit(2):
                await hold.wait()

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        queued = asyncio.create_task(gate.admit(3).__aenter__())  # needs all three
        await asyncio.sleep(0)
        assert gate.waiting == 1 and gate.busy == 2
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        hold.set()
        await first
        async with gate.admit(99):  # more than the engine has: takes them all
            return gate.busy, gate.waiting

    assert asyncio.run(run()) == (3, 0)


def test_a_gate_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        SlotGate(0)


# --- merged logprob entries (pure) -------------------------------------------------------------

#: How the engine sends "おa": one entry for the two tokens of お (the last one's id,
#: logprob and alternatives, the whole character's bytes), then "a".
OH = "お".encode()  # e3 81 8a
MERGED = [
    {"id": 228, "token": "お", "bytes": list(OH), "logprob": -0.7,
     "top_logprobs": [{"id": 228, "token": "", "bytes": [0x8A], "logprob": -0.7}]},
    {"id": 64, "token": "a", "bytes": [97], "logprob": -0.1,
     "top_logprobs": [{"id": 64, "token": "a", "bytes": [97], "logprob": -0.1}]},
]
PIECES = {"お": [(7365, OH[:2]), (228, OH[2:])]}


def test_a_merged_character_is_found_and_rebuilt() -> None:
    splits = find_splits(MERGED, PIECES)
    assert [(s.index, s.dropped, s.last) for s in splits] == [(0, ((7365, OH[:2]),),
                                                               (228, OH[2:]))]
    assert generated_ids(MERGED, splits) == [7365, 228, 64]
    top = [{"id": 7365, "token": "", "bytes": list(OH[:2]), "logprob": -0.3}]
    out = rebuild(MERGED, splits, {(0, 0): Scored(-0.3, top)})
    assert [e["id"] for e in out] == [7365, 228, 64]
    assert [bytes(e["bytes"]) for e in out] == [OH[:2], OH[2:], b"a"]
    assert [e["logprob"] for e in out] == [-0.3, -0.7, -0.1]
    assert out[0]["top_logprobs"] == top and out[1]["top_logprobs"] == MERGED[0]["top_logprobs"]
    assert out[0]["token"] == "" and out[2] is MERGED[1]
    chat = chat_logprobs({"content": out}, 1)
    assert [e["token"] for e in chat["content"]] == ["bytes:\\xe3\\x81", "bytes:\\x8a", "a"]


@pytest.mark.parametrize("pieces", [
    {"お": [(228, OH)]},  # one token: nothing was merged
    {"お": [(7365, OH[:2]), (999, OH[2:])]},  # another last token: the model wrote it otherwise
    {},  # no tokenization known
])
def test_entries_that_were_not_merged_are_left_alone(pieces: dict[str, Any]) -> None:
    assert find_splits(MERGED, pieces) == []
    assert rebuild(MERGED, [], {}) == MERGED


def test_a_split_without_its_scores_stays_merged() -> None:
    splits = find_splits(MERGED, PIECES)
    assert rebuild(MERGED, splits, {}) == MERGED
