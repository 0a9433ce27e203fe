"""One logprob entry per token from the embedded engine, for text in any script.

llama.cpp merges the tokens of a character that takes several (most CJK,
emoji, many accented letters) into one entry; the adapter rebuilds one entry
per token (``gptmagic.local.fragments``, ``gptmagic.local.rescore``). These
tests hold it to OpenAI's rule: as many entries as ``completion_tokens``,
streamed or not, chat or legacy.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from conftest_local import local_client, local_engine, local_url  # noqa: F401
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_schema import validate

pytestmark = pytest.mark.engine

JAPANESE = [{"role": "user", "content": "Translate to Japanese: Good morning, how are you? "
                                        "Answer in Japanese only."}]
#: Characters that take one, two, three and four tokens in this model's vocabulary.
MULTILINGUAL = list("日本語のテキスト中文字符한국어éàüñçøßœÀÉ😀🎉🙂ĳŁΩжщ") + [" ", "a", "."]


def chat_entries(client: httpx.Client, stream: bool, **kw: Any) -> tuple[list[Any], int, str]:
    """(logprob entries, completion tokens, text) of a chat reply with logprobs."""
    body = {"model": "local", "messages": JAPANESE, "logprobs": True, "top_logprobs": 3,
            "temperature": 0, **kw}
    if not stream:
        answer = client.post("/chat/completions", json=body).json()
        validate(answer, "CreateChatCompletionResponse")
        choice = answer["choices"][0]
        return (choice["logprobs"]["content"], answer["usage"]["completion_tokens"],
                choice["message"]["content"] or "")
    body.update(stream=True, stream_options={"include_usage": True})
    entries: list[Any] = []
    text, usage = "", 0
    with client.stream("POST", "/chat/completions", json=body) as resp:
        for line in resp.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            validate(chunk, "CreateChatCompletionStreamResponse")
            usage = (chunk.get("usage") or {}).get("completion_tokens", usage)
            for choice in chunk["choices"]:
                text += choice["delta"].get("content") or ""
                entries += (choice.get("logprobs") or {}).get("content") or []
    return entries, usage, text


def legacy_entries(client: httpx.Client, stream: bool, prompt: Any,
                   **kw: Any) -> tuple[list[str], list[float], int]:
    """(tokens, token logprobs, completion tokens) of a legacy completion with logprobs."""
    body = {"model": "local", "prompt": prompt, "logprobs": 2, "temperature": 0, **kw}
    if not stream:
        answer = client.post("/completions", json=body).json()
        validate(answer, "CreateCompletionResponse")
        lp = answer["choices"][0]["logprobs"]
        return lp["tokens"], lp["token_logprobs"], answer["usage"]["completion_tokens"]
    body.update(stream=True, stream_options={"include_usage": True})
    tokens: list[str] = []
    logprobs: list[float] = []
    usage = 0
    with client.stream("POST", "/completions", json=body) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                usage = (chunk.get("usage") or {}).get("completion_tokens", usage)
                for choice in chunk["choices"]:
                    if choice.get("logprobs"):
                        tokens += choice["logprobs"]["tokens"]
                        logprobs += choice["logprobs"]["token_logprobs"]
    return tokens, logprobs, usage


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_japanese_reply_has_one_entry_per_token(local_client: httpx.Client,  # noqa: F811
                                                  stream: bool) -> None:
    entries, used, text = chat_entries(local_client, stream, max_tokens=20)
    assert len(entries) == used == 20
    assert any(e["token"].startswith("bytes:\\x") for e in entries)  # partial characters
    joined = b"".join(bytes(e["bytes"]) for e in entries)
    assert joined.decode("utf-8", errors="ignore").startswith(text)
    for entry in entries:
        # Greedy: each chosen token is in its own list, at its head up to a near tie
        # (a rebuilt entry is scored in a second forward pass, whose batching can move
        # a logprob by a few thousandths).
        top = entry["top_logprobs"]
        assert len(top) == 3 and entry["token"] in [t["token"] for t in top]
        assert entry["logprob"] >= top[0]["logprob"] - 0.1


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("cut", [1, 3])
def test_a_character_cut_by_max_tokens_keeps_its_entries(local_client: httpx.Client,  # noqa: F811
                                                         stream: bool, cut: int) -> None:
    """The engine sends neither text nor logprobs for an unfinished last character."""
    entries, used, text = chat_entries(local_client, stream, max_tokens=cut)
    assert len(entries) == used == cut
    assert entries[-1]["token"].startswith("bytes:\\x")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_legacy_completions_have_one_entry_per_token(local_client: httpx.Client,  # noqa: F811
                                                     stream: bool) -> None:
    prompt = "English: Thank you very much.\nJapanese:"
    tokens, logprobs, used = legacy_entries(local_client, stream, prompt, max_tokens=16)
    assert len(tokens) == len(logprobs) == used == 16
    assert any(t.startswith("bytes:\\x") for t in tokens)


def test_a_rebuilt_entry_is_the_engines_own_distribution(local_client: httpx.Client) -> None:  # noqa: F811
    """The first token of a merged character, scored apart, is what the engine reports there.

    The engine reports a position's distribution only for a whole-character
    token, so the reference forces one (a logit bias changes the choice, not the
    reported probabilities) after the same prompt ids and reads the partial
    token among the alternatives.
    """
    prompt = "English: Thank you very much.\nJapanese:"
    whole = local_client.post("/completions", json={
        "model": "local", "prompt": prompt, "max_tokens": 16, "temperature": 0,
        "logprobs": 5}).json()["choices"][0]["logprobs"]
    # This reply opens with " お" in two tokens, the first a partial character.
    assert whole["tokens"][0].startswith("bytes:\\x20\\xe3")
    ids = local_client.post("/tokenize", json={"text": prompt}).json()["tokens"]
    plain = local_client.post("/tokenize", json={"text": "."}).json()["tokens"][0]
    reference = local_client.post("/completions", json={
        "model": "local", "prompt": ids, "max_tokens": 1, "temperature": 0, "logprobs": 5,
        "logit_bias": {str(plain): 100}}).json()
    assert reference["choices"][0]["text"] == "."  # the bias chose, the engine reported
    alternatives = reference["choices"][0]["logprobs"]["top_logprobs"][0]
    first = 0
    token = whole["tokens"][first]
    # Two forward passes, batched differently: equal up to a few thousandths.
    assert alternatives[token] == pytest.approx(whole["token_logprobs"][first], abs=0.02)
    shared = set(alternatives) & set(whole["top_logprobs"][first])
    assert len(shared) >= 4
    for key in shared:
        assert whole["top_logprobs"][first][key] == pytest.approx(alternatives[key], abs=0.02)


@pytest.mark.slow  # 16 generations
@settings(max_examples=16, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(text=st.text(alphabet=st.sampled_from(MULTILINGUAL), min_size=1, max_size=10),
       max_tokens=st.integers(1, 24), stream=st.booleans(), legacy=st.booleans())
def test_entries_equal_completion_tokens_for_any_script(local_url: str, text: str,  # noqa: F811
                                                        max_tokens: int, stream: bool,
                                                        legacy: bool) -> None:
    with httpx.Client(base_url=local_url, timeout=httpx.Timeout(120, connect=5)) as client:
        if legacy:
            tokens, _, used = legacy_entries(client, stream, f"Say: {text}\n{text}",
                                             max_tokens=max_tokens)
            assert len(tokens) == used
        else:
            messages = [{"role": "user", "content": f"Repeat exactly: {text}"}]
            entries, used, _ = chat_entries(client, stream, max_tokens=max_tokens,
                                            messages=messages)
            assert len(entries) == used
    assert 1 <= used <= max_tokens


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_reply_that_ends_itself_has_its_end_token_entry(local_client: httpx.Client,  # noqa: F811
                                                          stream: bool) -> None:
    """The engine counts the end-of-text token; its stream sends no entry for it."""
    entries, used, text = chat_entries(local_client, stream, max_tokens=60, messages=[
        {"role": "user", "content": "What is 2+2?"}])
    assert text and len(entries) == used < 60
    assert entries[-1]["bytes"] == [] and entries[-1]["token"] == ""
    assert b"".join(bytes(e["bytes"]) for e in entries).decode() == text


def test_a_stream_with_logprobs_keeps_streaming_its_text(local_client: httpx.Client) -> None:  # noqa: F811
    """The rebuilt entries come at a choice's end; its text is never held up for them."""
    body = {"model": "local", "messages": JAPANESE, "logprobs": True, "top_logprobs": 1,
            "temperature": 0, "max_tokens": 30, "stream": True}
    kinds = []
    entries: list[Any] = []
    with local_client.stream("POST", "/chat/completions", json=body) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                choice = json.loads(line[6:])["choices"][0]
                lp = (choice.get("logprobs") or {}).get("content") or []
                entries += lp
                kinds.append("finish" if choice["finish_reason"] else
                             "text" if choice["delta"].get("content") else
                             "entries" if lp else "other")
    assert kinds.count("text") >= 10 and kinds[-1] == "finish"
    assert kinds[-2] == "entries" and len(entries) == 30  # in one chunk, just before the end


def test_tools_with_logprobs(local_client: httpx.Client) -> None:  # noqa: F811
    """With tools the reply is JSON under a grammar, whose logprobs are not the reply's:
    refused, naming ``logprobs``; with ``tool_choice: "none"`` it is a plain reply."""
    body = {"model": "local", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5,
            "temperature": 0,
            "logprobs": True, "tools": [{"type": "function", "function": {
                "name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]}
    refused = local_client.post("/chat/completions", json=body)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "logprobs"
    answer = local_client.post("/chat/completions", json={**body, "tool_choice": "none"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["choices"][0]["logprobs"]["content"]) == \
        answer.json()["usage"]["completion_tokens"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_text_offsets_advance_by_character(local_client: httpx.Client,  # noqa: F811
                                           stream: bool) -> None:
    """The tokens of one character share its offset; each character moves it on by one."""
    prompt = "English: Thank you very much.\nJapanese:"
    body = {"model": "local", "prompt": prompt, "max_tokens": 16, "temperature": 0,
            "logprobs": 1}
    offsets: list[int] = []
    text = ""
    if not stream:
        choice = local_client.post("/completions", json=body).json()["choices"][0]
        offsets, text = choice["logprobs"]["text_offset"], choice["text"]
    else:
        with local_client.stream("POST", "/completions", json={**body, "stream": True}) as resp:
            for line in resp.iter_lines():
                if line.startswith("data: {"):
                    choice = json.loads(line[6:])["choices"][0]
                    text += choice["text"]
                    offsets += (choice.get("logprobs") or {}).get("text_offset") or []
    assert len(offsets) == 16 and offsets == sorted(offsets) and offsets[0] == len(prompt)
    started = len(set(offsets))  # one offset per character begun
    assert len(text) <= started <= len(text) + 1 and started < 16


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_reply_of_only_the_end_token(local_client: httpx.Client, stream: bool) -> None:  # noqa: F811
    entries, used, text = chat_entries(local_client, stream, max_tokens=5,
                                       logit_bias={"2": 100})  # 2 is <|im_end|>
    assert text == "" and used == len(entries) == 1 and entries[0]["bytes"] == []
