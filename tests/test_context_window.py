"""A prompt larger than the model's context window (issue 13, item 17).

Hosted models: refused before sending (counted with tiktoken) by %%chat and evaluate(),
against the fake server, which counts what arrives. The embedded model: its engine's
refusal says how large the prompt is, the window, and what to do, through %%chat,
gptmagic.chat and evaluate(), where the row gets the error and the run goes on.
"""

from __future__ import annotations

import random

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from shell_support import new_shell

import gptmagic
from gptmagic.catalog.context import check_window, may_exceed, too_long
from gptmagic.catalog.embedded import CONTEXT_WINDOW
from gptmagic.errors import BadRequestError, RequestError
from gptmagic.eval.runner import evaluate
from gptmagic.tokens import count_tokens

#: ~500k tokens of text: "word" is one token, and so is " word".
HUGE = "word " * 500_000
#: Over the embedded model's window, well under a hosted one's.
LONG_FOR_LOCAL = "word " * (CONTEXT_WINDOW + 800)


def _says_sizes_and_fixes(message: str, prompt: int, window: int) -> None:
    assert f"the prompt is {prompt:,} tokens" in message
    assert f"{window:,}-token context window" in message
    assert "Shorten it" in message and "fewer turns" in message
    assert "a model with a larger window (" in message
    assert "try increasing it" not in message  # the engine's advice, for its operator


# -- the pure pieces -------------------------------------------------------------------------


def test_too_long_names_both_sizes_and_a_larger_model():
    text = too_long(512_003, 128_000, "gpt-4o-mini", max_tokens=256)
    assert "512,003 tokens + 256 reply tokens (max_tokens)" in text
    assert "gpt-4.1-mini: 1,047,576 tokens" in text  # 128k and 400k windows are too small
    assert "split the text" in too_long(2_000_000, 128_000, "gpt-4o-mini")
    assert "fewer turns" not in too_long(9_000, 8_192, "x", chat=False)


def test_check_window_refuses_past_the_window_and_passes_unknown_windows():
    check_window(127_000, "gpt-4o-mini", max_tokens=1_000)
    with pytest.raises(RequestError, match="127,001 tokens") as e:
        check_window(127_001, "gpt-4o-mini", max_tokens=1_000)
    assert e.value.param == "messages"
    check_window(10**9, "my-own-model")  # nobody knows its window: the server decides
    # An estimate (another tokenizer than the model's) is refused only well past it.
    check_window(127_001, "gpt-4o-mini", max_tokens=1_000, exact=False)
    check_window(140_800, "gpt-4o-mini", exact=False)
    with pytest.raises(RequestError, match="140,801 tokens"):
        check_window(140_801, "gpt-4o-mini", exact=False)


def test_a_registered_models_estimated_count_near_its_window_is_sent(fake_server):
    """A model behind a compatible server counted with tiktoken (not its own tokenizer)
    was refused as soon as the estimate passed its window, with no way to send it."""
    gptmagic.add_profile("p", base_url=fake_server.url, default_model="my-ft")
    gptmagic.register_model("my-ft", context_window=1_000, max_output_tokens=100)
    near, far = "word " * 1_020, "word " * 2_000  # ~1,027 and ~2,007 tiktoken tokens
    assert not gptmagic.count_tokens(near, "my-ft").exact
    res = evaluate([{"q": near}, {"q": far}], "user: {q}", ["p:my-ft"], cache=False,
                   progress=False)
    assert len(fake_server.requests) == 1
    assert res.df["error"].isna().tolist() == [True, False]
    assert "context window of 'my-ft'" in res.df["error"][1]


def test_may_exceed_is_never_wrong_about_a_prompt_that_does_not_fit():
    rng = random.Random(13)
    alphabet = ["a", "é", "字", "🙂", " ", "\n", "word ", "<|endoftext|>", "9"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        messages = [{"role": "system", "content": "be brief"},
                    {"role": "user", "content": text, "name": "ann"}]
        tokens = count_tokens(messages, "gpt-4o").total
        for window in (tokens - 1, tokens, tokens + 50, 4 * len(text) + 100):
            if tokens > window:
                assert may_exceed(messages, window), (text, window)
    assert not may_exceed([{"role": "user", "content": "hi"}], 128_000)
    assert may_exceed([{"role": "user", "content": [{"type": "text", "text": "x"}]}], 10**6)


# -- a hosted model behind a profile: refused before sending ---------------------------------


@pytest.fixture
def shell(fake_server, monkeypatch, tmp_path):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    gptmagic.add_profile("fake", base_url=fake_server.url, default_model="fake-model")
    sh = new_shell()
    sh.run_line_magic("load_ext", "gptmagic")
    yield sh
    sh.run_line_magic("unload_ext", "gptmagic")
    InteractiveShell.clear_instance()


def test_a_cell_larger_than_a_hosted_window_is_refused_before_sending(shell, fake_server):
    tokens = count_tokens([{"role": "user", "content": HUGE}], "gpt-4o-mini").total
    assert tokens > 500_000
    with pytest.raises(UsageError) as e, capture_output():
        shell.run_cell_magic("chat", "-m fake:gpt-4o-mini --no-history", HUGE)
    _says_sizes_and_fixes(str(e.value), tokens, 128_000)
    assert "'gpt-4o-mini'" in str(e.value)
    assert fake_server.requests == []
    # Past 128k but within a 1M window: sent (the fake server takes bodies up to 1 MB).
    past = "word " * 130_000
    with pytest.raises(UsageError, match="context window of 'gpt-4o-mini'"), capture_output():
        shell.run_cell_magic("chat", "-m fake:gpt-4o-mini --no-history", past)
    with capture_output():
        shell.run_cell_magic("chat", "-m fake:gpt-4.1-mini --no-history --max-tokens 5", past)
    assert len(fake_server.requests) == 1


def test_an_oversized_row_of_evaluate_is_refused_and_the_run_goes_on(fake_server, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    gptmagic.add_profile("fake", base_url=fake_server.url, default_model="fake-model")
    rows = [{"q": "short one"}, {"q": HUGE}, {"q": "short two"}]
    res = evaluate(rows, "user: {q}", ["fake:gpt-4o-mini"], progress=False)
    assert len(fake_server.requests) == 2
    assert res.df["error"].iloc[[0, 2]].isna().all()
    tokens = count_tokens([{"role": "user", "content": HUGE}], "gpt-4o-mini").total
    message = res.df["error"].iloc[1]
    assert message.startswith("not sent: ") and res.df["error_type"].iloc[1] == "RequestError"
    _says_sizes_and_fixes(message, tokens, 128_000)


# -- the embedded model: the engine's refusal, told as advice ---------------------------------


@pytest.mark.engine
def test_the_embedded_model_says_how_large_the_prompt_and_the_window_are(shell, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    try:
        with pytest.raises(BadRequestError) as e:
            gptmagic.chat(LONG_FOR_LOCAL, model="local", max_tokens=5)
        assert e.value.status_code == 400 and e.value.code == "context_length_exceeded"
        tokens = int(str(e.value).split("the prompt is ")[1].split(" tokens")[0].replace(",", ""))
        assert tokens > CONTEXT_WINDOW
        _says_sizes_and_fixes(str(e.value), tokens, CONTEXT_WINDOW)
        assert "gpt-4o-mini: 128,000 tokens" in str(e.value)

        with pytest.raises(UsageError) as magic, capture_output():
            shell.run_cell_magic("chat", "-m local --max-tokens 5 --no-history", LONG_FOR_LOCAL)
        _says_sizes_and_fixes(str(magic.value), tokens, CONTEXT_WINDOW)

        rows = [{"q": "Say hi."}, {"q": LONG_FOR_LOCAL}, {"q": "Say bye."}]
        res = evaluate(rows, "user: {q}", ["local"], params={"max_tokens": 3}, progress=False)
        assert res.df["error"].iloc[[0, 2]].isna().all() and res.df["output"].iloc[0]
        assert res.df["error_type"].iloc[1] == "BadRequestError"
        _says_sizes_and_fixes(res.df["error"].iloc[1], tokens, CONTEXT_WINDOW)
    finally:
        gptmagic.shutdown()
