"""Widget states: counts, pieces and logprobs to compact JSON (docs/widgets.md)."""

from __future__ import annotations

import json
import math
import random
import time
from decimal import Decimal

import pytest

import gptmagic
from gptmagic.catalog.tokens import get_encoding
from gptmagic.client.facade import engine_tokens
from gptmagic.core.messages import CellSyntaxError
from gptmagic.core.types import Choice, Result, TokenLogprob, TopLogprob
from gptmagic.tokens import count_tokens
from gptmagic.views.widgets import NoLogprobsError
from gptmagic.views.widgets.scale import STOPS
from gptmagic.views.widgets.state import (
    counter_state,
    error_counter_state,
    heatmap_state,
    tokenview_state,
)

MSGS = [{"role": "system", "content": "You are terse."},
        {"role": "user", "name": "alice", "content": "Summarise\n\nthe   text " + "x " * 80}]


def compact(state: dict) -> bytes:
    return json.dumps(state, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


# -- counter -----------------------------------------------------------------------


def test_counter_chat_rows_match_count_tokens() -> None:
    s = counter_state(MSGS, "gpt-4o", max_tokens=100)
    c = count_tokens(MSGS, "gpt-4o")
    assert s["v"] == 1 and s["kind"] == "counter" and s["mode"] == "chat"
    assert s["total"] == c.total and s["reply_priming"] == 3 and s["exact"]
    assert [r[:5] for r in s["rows"]] == [
        [m.role, MSGS[i].get("name"), m.content, m.name, m.overhead]
        for i, m in enumerate(c.messages)]
    preview = s["rows"][1][5]
    assert "\n" not in preview and len(preview) == 80 and preview.endswith("…")
    assert preview.startswith("Summarise the text x")
    assert s["context_window"] == 128_000 and s["max_output_tokens"] == 16_384
    assert s["fill"] == round(s["total"] / 128_000, 6)
    cost = s["cost"]
    assert cost["max_completion_tokens"] == 100 and cost["expected_completion_tokens"] == 100
    assert Decimal(cost["low"]) < Decimal(cost["expected"]) <= Decimal(cost["high"])
    assert cost["source"].startswith("genai-prices") and cost["currency"] == "USD"
    assert all(isinstance(cost[k], str) for k in ("low", "expected", "high"))
    compact(s)


def test_counter_text_and_cell_grammar() -> None:
    text = counter_state("Hello there", "gpt-4o")
    assert text["mode"] == "text" and text["rows"] == [] and text["total"] == 2
    assert text["reply_priming"] == 0
    cell = counter_state("system: be brief\nuser (bob): hi", "gpt-4o", mode="chat")
    assert [r[:2] for r in cell["rows"]] == [["system", None], ["user", "bob"]]
    assert cell["total"] == count_tokens([{"role": "system", "content": "be brief"},
                                         {"role": "user", "name": "bob", "content": "hi"}],
                                        "gpt-4o").total
    empty = counter_state("  \n", "gpt-4o", mode="chat")
    assert empty["total"] == 0 and empty["rows"] == [] and empty["error"] is None
    with pytest.raises(CellSyntaxError, match="line 1"):
        counter_state("stray\nuser: x", "gpt-4o", mode="chat")
    with pytest.raises(gptmagic.RequestError, match="mode"):
        counter_state("x", "gpt-4o", mode="poem")
    with pytest.raises(gptmagic.RequestError, match="max_tokens"):
        counter_state("x", "gpt-4o", max_tokens=-1)


def test_counter_prices_unknown_is_null_user_and_local(monkeypatch) -> None:
    unknown = counter_state("hi", "mystery-model-9")
    assert unknown["cost"] is None and unknown["context_window"] is None
    assert unknown["fill"] is None and not unknown["exact"] and "mystery" in unknown["note"]
    gptmagic.set_price("mystery-model-9", input_per_mtok="1", output_per_mtok="2")
    priced = counter_state("hi", "mystery-model-9", max_tokens=10)
    assert priced["cost"]["low"] == "0.000001" and priced["cost"]["source"] == "user price"
    assert priced["cost"]["high"] == "0.000021"
    tiny = counter_state("hi", "gpt-4o-mini")["cost"]
    assert "E" not in tiny["low"]  # plain decimals, never exponents


def test_counter_tools_and_error_state() -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": "d",
                                               "parameters": {"properties": {}}}}]
    s = counter_state(MSGS, "gpt-4o", tools=tools)
    assert s["tools"] > 0 and not s["exact"] and s["note"]
    err = error_counter_state("gpt-4o", "boom")
    assert err["error"] == "boom" and set(err) == set(s)


def test_counter_counts_long_prompts() -> None:
    enc, _ = get_encoding("o200k_base")
    rng = random.Random(3)
    words = ["token", "counter", "Jupyter", "widget", "the", "of", "ünïcode", "日本", "🎉", "\n"]
    for n in (10_000, 50_000):
        text = " ".join(rng.choice(words) for _ in range(n))
        while len(enc.encode(text)) < n:
            text += " " + text
        text = enc.decode(enc.encode(text)[:n])
        counter_state("user: " + text, "gpt-4o", mode="chat")  # warm up
        t0 = time.perf_counter()
        s = counter_state("user: " + text, "gpt-4o", mode="chat")
        ms = (time.perf_counter() - t0) * 1000
        print(f"\ncounter_state {n} tokens: {ms:.1f} ms")
        assert abs(s["total"] - n) < 20


# -- token view --------------------------------------------------------------------


def test_tokenview_one_and_two_panes() -> None:
    text = "Hello, world 🎉 日本語"
    one = tokenview_state(text, "gpt-4o")
    assert one["v"] == 1 and one["kind"] == "tokens" and len(one["panes"]) == 1
    pane = one["panes"][0]
    assert pane["label"] == "gpt-4o · o200k_base" and pane["model"] == "gpt-4o"
    assert pane["count"] == len(pane["ids"]) == len(pane["pieces"]) == 7
    assert "".join(pane["pieces"]) == text and pane["exact"]
    two = tokenview_state(text, ["gpt-4o", "cl100k_base"])
    cl = two["panes"][1]
    assert cl["model"] is None and cl["label"] == "cl100k_base"
    assert "".join(cl["pieces"]) == text and cl["partial"] and cl["partial"][0][1] == "8e"
    assert cl["pieces"][cl["partial"][0][0]] == ""
    unknown = tokenview_state(text, "mystery-model")["panes"][0]
    assert not unknown["exact"] and "o200k_base" in unknown["note"]
    compact(two)


@pytest.mark.parametrize("bad", [[], ["a", "b", "c"], [""], 5])
def test_tokenview_refuses_other_than_one_or_two(bad) -> None:
    with pytest.raises(gptmagic.RequestError):
        tokenview_state("x", bad)


# -- heatmap -----------------------------------------------------------------------


def tl(token: str | bytes, lp: float | None, *alts: tuple[str | bytes, float],
       prompt: bool = False) -> TokenLogprob:
    raw = token if isinstance(token, bytes) else token.encode()
    top = tuple(TopLogprob(a if isinstance(a, str) else repr(a),
                           v, a if isinstance(a, bytes) else a.encode()) for a, v in alts)
    return TokenLogprob(raw.decode("utf-8", "replace"), lp, raw, top, prompt=prompt)


def test_heatmap_of_a_result_with_echoed_prompt_and_split_character() -> None:
    prompt = [tl("The", None, prompt=True), tl(" sky", -1.5, (" sky", -1.5), prompt=True)]
    gen = [tl(" is", -0.01, (" is", -0.01), (" was", -4.6)),
           tl(b" \xf0\x9f", -2.5, (b" \xf0\x9f", -2.5), (" blue", -0.2)),
           tl(b"\x8c\x8a", -0.0000001, (b"\x8c\x8a", -0.0000001), (b"\x8c\x8b", -9.0)),
           tl(".", float("-inf"))]
    r = Result("chat", "m", [Choice(0, "x", "stop", prompt_logprobs=prompt, logprobs=gen)])
    s = heatmap_state(r, threshold=0.2)
    assert s["v"] == 1 and s["kind"] == "heatmap" and s["threshold"] == 0.2
    assert s["scale"] == STOPS and s["scale"] is not STOPS
    c = s["choices"][0]
    assert c["index"] == 0 and c["finish_reason"] == "stop" and c["n_prompt"] == 2
    assert c["t"] == ["The", " sky", " is", " ", "🌊", "."]
    assert c["lp"] == [None, -1.5, -0.01, -2.5, 0.0, -9999.0]
    assert c["partial"] == []
    assert c["top"][4] == [["🌊", 0.0], ["🌋", -9.0]]  # alternatives decoded in context
    assert c["top"][3] == [[" ", -2.5], [" blue", -0.2]]
    summary = c["summary"]
    assert summary["tokens"] == 4 and summary["least"][0] == [5, -9999.0]
    assert [i for i, _ in summary["least"]] == [5, 3, 2, 4]
    assert summary["perplexity"] is None  # exp(2500) is no float
    compact(s)


def test_heatmap_inputs_choice_list_tokens_and_partial() -> None:
    toks = [tl("a", -0.1), tl(b"\xe6", -0.2), tl(b"\x97", -0.3), tl(b"\xa5", -0.4)]
    one = heatmap_state(toks)["choices"][0]
    assert one["t"] == ["a", "", "", "日"] and one["partial"] == [[1, "e6"], [2, "97"]]
    assert one["summary"]["mean_logprob"] == -0.25
    assert one["summary"]["perplexity"] == round(math.exp(0.25), 4)
    flagged = heatmap_state([tl("Q", None, prompt=True), tl("A", -1.0)])["choices"][0]
    assert flagged["n_prompt"] == 1 and flagged["summary"]["tokens"] == 1
    choices = [Choice(0, logprobs=toks[:1]), Choice(1, logprobs=[tl("b", -2.0)])]
    many = heatmap_state(choices)
    assert [c["index"] for c in many["choices"]] == [0, 1]
    assert heatmap_state(choices[1])["choices"][0]["t"] == ["b"]


@pytest.mark.parametrize("source, where", [
    (Result("chat", "m", [Choice(0, "hi")]), "chat result"),
    (Choice(3, "hi"), "choice 3"),
    ([Choice(0, "hi")], "none of these"),
    ([], "empty list"),
])
def test_heatmap_without_logprobs_says_how_to_ask(source, where) -> None:
    with pytest.raises(NoLogprobsError, match=where) as e:
        heatmap_state(source)
    assert "--logprobs" in str(e.value) and "top_logprobs=5" in str(e.value)
    assert isinstance(e.value, gptmagic.GptmagicError) and e.value.param == "logprobs"


@pytest.mark.parametrize("bad", ["text", 5, [1, 2]])
def test_heatmap_refuses_other_inputs(bad) -> None:
    with pytest.raises(gptmagic.RequestError, match="Result .*, a Choice"):
        heatmap_state(bad)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, True, "0.1", float("nan")])
def test_heatmap_threshold_is_a_probability(threshold) -> None:
    with pytest.raises(gptmagic.RequestError, match="threshold"):
        heatmap_state([tl("a", -0.1)], threshold=threshold)


def synthetic_tokens(n: int, k: int = 5, seed: int = 0) -> list[TokenLogprob]:
    """Realistic English tokens (o200k) with k alternatives each."""
    rng = random.Random(seed)
    enc, _ = get_encoding("o200k_base")
    words = ("The model answers the question with a short sentence, then explains why "
             "each step follows from the previous one; numbers like 3.14 and names like "
             "Zürich appear too. ").split()
    text = " ".join(rng.choice(words) for _ in range(n))
    ids = enc.encode(text)[:n]
    vocab = sorted(set(ids))
    out = []
    for i in ids:
        b = enc.decode_single_token_bytes(i)
        lp = -abs(rng.gauss(0, 1.2)) if rng.random() < 0.3 else -abs(rng.gauss(0, 0.05))
        alts = [TopLogprob(b.decode(), lp, b)]
        for j in rng.sample(vocab, k - 1):
            bj = enc.decode_single_token_bytes(j)
            alts.append(TopLogprob(bj.decode(), lp - abs(rng.gauss(3, 2)), bj))
        out.append(TokenLogprob(b.decode(), lp, b, tuple(sorted(alts, key=lambda a: -a.logprob))))
    return out


def test_heatmap_state_is_compact() -> None:
    toks = synthetic_tokens(4000)
    heatmap_state(toks[:50])  # warm up
    t0 = time.perf_counter()
    s = heatmap_state(toks)
    ms = (time.perf_counter() - t0) * 1000
    per_token = len(compact(s)) / 4000
    default = len(json.dumps(s, ensure_ascii=False).encode()) / 4000
    print(f"\nheatmap 4k tokens top-5: {per_token:.1f} B/token compact, {default:.1f} B/token "
          f"with json.dumps' default separators; state in {ms:.0f} ms")
    assert per_token < 150  # the time: benchmarks/bench_widgets.py
    assert all(len(str(v)) <= 7 for v in s["choices"][0]["lp"])  # 4 decimals


@pytest.mark.engine
def test_heatmap_and_token_view_of_the_local_engine() -> None:
    """Real logprobs from the embedded model, chat and legacy completions."""
    try:
        chat = gptmagic.chat("Name a colour.", model="local", max_tokens=12, temperature=0,
                             seed=1, logprobs=True, top_logprobs=5)
        legacy = gptmagic.complete("The capital of France is", model="local", max_tokens=6,
                                   temperature=0, logprobs=5, echo=False)
        view = tokenview_state("Bonjour 😀 日本語\n\tok", ["local", "gpt-4o"],
                               engine_tokens=engine_tokens)
        pair = tokenview_state("Bonjour 😀 日本語\n\tok", ["local", "local:gemma-3-270m"],
                               engine_tokens=engine_tokens)
        local_count = count_tokens("Bonjour 😀 日本語\n\tok", "local").total
    finally:
        gptmagic.shutdown()
    for r in (chat, legacy):
        s = heatmap_state(r)
        c = s["choices"][0]
        assert "".join(c["t"]) == r.text and len(c["t"]) == r.usage.completion_tokens
        assert c["n_prompt"] == 0 and all(len(top) == 5 for top in c["top"])
        assert all(lp is not None and lp <= 0 for lp in c["lp"])
        assert c["summary"]["tokens"] == len(c["t"]) and c["summary"]["perplexity"] >= 1
        assert len(c["summary"]["least"]) == min(5, len(c["t"]))
        compact(s)
    local, gemma = view["panes"][0], pair["panes"][1]
    assert local["label"] == "local · smollm2 (engine)" and local["exact"]
    # Each embedded model by its own tokenizer (Gemma's splits this text differently).
    assert gemma["label"] == "local:gemma-3-270m · gemma (engine)" and gemma["exact"]
    assert gemma["ids"] != local["ids"]
    # The state builder does no I/O of its own: without a way to reach the engine it says so.
    with pytest.raises(gptmagic.RequestError, match="tokenized by its engine"):
        tokenview_state("hi", "local")
    assert "".join(local["pieces"]) == "Bonjour 😀 日本語\n\tok"
    assert local["count"] == local_count == len(local["ids"])
    assert local["partial"] and all(local["pieces"][i] == "" for i, _ in local["partial"])
