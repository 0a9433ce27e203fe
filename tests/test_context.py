from __future__ import annotations

import pytest

import gptmagic
from gptmagic import fit_messages
from gptmagic.catalog.context import SUMMARY_PREFIX
from gptmagic.errors import RequestError
from gptmagic.tokens import count_tokens


def conversation(turns: int, words: int = 40) -> list[dict]:
    msgs = [{"role": "system", "content": "You are a patient tutor."}]
    for t in range(turns):
        msgs.append({"role": "user", "content": f"question {t} " + "word " * words})
        msgs.append({"role": "assistant", "content": f"answer {t} " + "reply " * words})
    msgs.append({"role": "user", "content": "And finally?"})
    return msgs


def test_already_fits_is_unchanged():
    msgs = conversation(2)
    r = fit_messages(msgs, "gpt-4o", max_tokens=100, context_window=10_000)
    assert r.messages == msgs and not r.changed and r.fits
    assert r.prompt_tokens == count_tokens(msgs, "gpt-4o").total and "fits" in r.note


@pytest.mark.parametrize("window", [300, 500, 800])
def test_drops_oldest_whole_turns_keeps_system_and_last(window):
    msgs = conversation(10)
    r = fit_messages(msgs, "gpt-4o", max_tokens=64, context_window=window)
    assert r.fits and r.prompt_tokens + 64 <= window
    assert r.prompt_tokens == count_tokens(r.messages, "gpt-4o").total
    assert r.messages[0] == msgs[0] and r.messages[-1] == msgs[-1]
    assert r.messages[1]["role"] == "user"  # no orphaned assistant reply first
    # Removed messages are the oldest ones, in order, and nothing else changed.
    assert r.removed == msgs[1 : 1 + len(r.removed)]
    assert r.messages == [msgs[0]] + msgs[1 + len(r.removed) :]
    assert r.removed_indices == list(range(1, 1 + len(r.removed)))
    # Minimal: putting back the last removed turn would not fit.
    back = [msgs[0]] + msgs[len(r.removed) - 1 :]
    assert count_tokens(back, "gpt-4o").total + 64 > window
    assert "dropped" in r.note


def test_summarise_replaces_removed_turns():
    msgs = conversation(10)
    seen = []

    def summarize(removed):
        seen.append(removed)
        return f"{len(removed)} earlier messages about questions."

    r = fit_messages(msgs, "gpt-4o", max_tokens=64, context_window=500, summarize=summarize)
    assert r.fits and r.summary and seen[-1] == r.removed
    assert r.messages[0] == msgs[0]
    assert r.messages[1] == {"role": "system", "content": SUMMARY_PREFIX + r.summary}
    assert r.prompt_tokens == count_tokens(r.messages, "gpt-4o").total <= 500 - 64
    assert "summarised" in r.note


def test_system_messages_anywhere_are_never_removed():
    msgs = conversation(6)
    msgs.insert(5, {"role": "developer", "content": "Mid-conversation instruction."})
    r = fit_messages(msgs, "gpt-4o", max_tokens=10, context_window=250)
    assert {"role": "developer", "content": "Mid-conversation instruction."} in r.messages
    assert all(m["role"] not in ("system", "developer") for m in r.removed)


def test_cannot_fit_says_so():
    msgs = [{"role": "system", "content": "rule " * 500}, {"role": "user", "content": "hi"}]
    r = fit_messages(msgs, "gpt-4o", max_tokens=10, context_window=200)
    assert not r.fits and r.messages == msgs and "does not fit" in r.note


def test_bad_budgets_are_clear_errors():
    with pytest.raises(RequestError, match="max_tokens=5000") as e:
        fit_messages(conversation(1), "gpt-4o", max_tokens=5000, context_window=4096)
    assert e.value.param == "max_tokens"
    with pytest.raises(RequestError, match="context window"):
        fit_messages(conversation(1), "my-custom-model", max_tokens=10)


@pytest.mark.engine
def test_local_model_fits_its_real_window():
    try:
        # Counting only: a conversation well over SmolLM2's 8,192-token window.
        r = fit_messages(conversation(60, words=60), "local", max_tokens=256)
        assert r.fits and r.context_window == 8192 and r.removed
        assert 8192 - 256 - 300 < r.prompt_tokens <= 8192 - 256
        # The engine agrees with the count (a small window keeps the prompt short).
        small = fit_messages(conversation(12, words=12), "local", max_tokens=32, context_window=420)
        assert small.fits and small.removed
        reply = gptmagic.chat(small.messages, model="local", max_tokens=1)
        assert reply.usage.prompt_tokens == small.prompt_tokens <= 420 - 32
    finally:
        gptmagic.shutdown()


def test_a_max_tokens_filling_the_window_says_so_without_a_possessive_after_a_quote():
    with pytest.raises(RequestError) as e:
        fit_messages([{"role": "user", "content": "hi"}], "gpt-4o", max_tokens=128_000)
    assert str(e.value).startswith("max_tokens=128000 leaves no room for a prompt in the "
                                   "128,000-token context window of 'gpt-4o'")
