"""gptmagic's client against the real embedded model (llama.cpp via the adapter)."""

from __future__ import annotations

import pytest
from conftest_local import local_engine, local_url  # noqa: F401
from openapi_schema import validate

import gptmagic
from gptmagic import Client, Provider
from gptmagic.errors import BadRequestError, NotFoundError


@pytest.fixture
async def client(local_url):  # noqa: F811
    prov = Provider(name="engine", base_url=local_url, default_model="local")
    async with Client(prov) as c:
        yield c


MSGS = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the capital of France?"},
]


async def test_chat_with_logprobs_streamed_and_not(client):
    whole = await client.chat(
        MSGS, max_tokens=12, temperature=0, seed=3, logprobs=True, top_logprobs=5
    )
    pieces = []
    streamed = await client.chat(
        MSGS,
        max_tokens=12,
        temperature=0,
        seed=3,
        logprobs=True,
        top_logprobs=5,
        stream=True,
        on_delta=lambda i, t: pieces.append(t),
    )
    assert whole.text and streamed.text == whole.text == "".join(pieces)
    assert whole.model == "smollm2-135m-instruct"
    for r in (whole, streamed):
        assert r.usage.completion_tokens == len(r.logprobs)
        assert all(len(t.top) == 5 for t in r.logprobs)
        assert all(t.logprob <= 0 and t.top[0].logprob >= t.top[-1].logprob for t in r.logprobs)
        # Tokens' bytes rebuild the text exactly.
        assert b"".join(t.bytes for t in r.logprobs).decode() == r.text
    assert [t.token for t in streamed.logprobs] == [t.token for t in whole.logprobs]
    assert streamed.usage.prompt_tokens == whole.usage.prompt_tokens > 10
    assert streamed.timings.ttft is not None and streamed.timings.ttft < streamed.timings.total


async def test_completion_logprobs_and_length(client):
    r = await client.complete("The capital of France is", max_tokens=6, temperature=0, logprobs=3)
    ch = r.choices[0]
    assert ch.finish_reason == "length" and r.usage.completion_tokens == 6
    assert len(ch.logprobs) == 6 and all(len(t.top) == 3 for t in ch.logprobs)
    assert "".join(t.token for t in ch.logprobs) == ch.text
    assert ch.logprobs[0].offset == len("The capital of France is")
    validate(r.raw, "CreateCompletionResponse")


async def test_n_choices_and_stream_usage(client):
    r = await client.chat(
        "Tell me a word.", n=3, max_tokens=5, temperature=1.0, seed=11, stream=True
    )
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.text for c in r.choices)
    assert r.usage is not None and r.usage.completion_tokens >= 3
    c = await client.complete("Once upon a time", n=2, max_tokens=4, stream=True, logprobs=1)
    assert len(c.choices) == 2
    assert all("".join(t.token for t in ch.logprobs) == ch.text for ch in c.choices)


async def test_determinism_with_seed(client):
    a = await client.chat("Say something.", max_tokens=10, temperature=0, seed=5)
    b = await client.chat("Say something.", max_tokens=10, temperature=0, seed=5)
    assert a.text == b.text


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [({"suffix": " world"}, "suffix"), ({"echo": True, "logprobs": 2}, "echo")],
)
async def test_unsupported_parameters_are_clear_errors(client, kwargs, param):
    with pytest.raises(BadRequestError) as e:
        await client.complete("Hello", max_tokens=3, **kwargs)
    assert e.value.body["error"]["param"] == param and param in str(e.value)
    assert e.value.status_code == 400


async def test_echo_emulation_through_client(client):
    r = await client.complete("Hello there", max_tokens=3, echo=True, temperature=0)
    assert r.text.startswith("Hello there") and len(r.text) > len("Hello there")


async def test_unknown_model_is_not_found(client):
    with pytest.raises(NotFoundError, match="does not exist"):
        await client.chat("hi", model="gpt-4o")


async def test_models_lists_the_local_models(client):
    assert await client.models() == ["smollm2-135m-instruct", "gemma-3-270m"]


async def test_input_tokens_on_the_local_provider_is_the_replys_prompt_count(local_engine):  # noqa: F811
    """The ``local`` provider asks its engine's /responses/input_tokens: the count is exact."""
    async with Client("local", engine=local_engine) as c:
        n = await c.input_tokens("What is the capital of France?",
                                 instructions="You are terse.")
        r = await c.respond("What is the capital of France?", instructions="You are terse.",
                            max_output_tokens=4)
    assert r.usage is not None and n == r.usage.prompt_tokens > 10


def test_default_path_starts_the_engine_on_first_use():
    """No key, no config: gptmagic.chat() reaches the embedded model by itself."""
    from gptmagic.local import engine

    try:
        r = gptmagic.chat("Hi!", max_tokens=5, temperature=0)
        assert r.model == "smollm2-135m-instruct" and r.usage.completion_tokens <= 5
        assert engine.get_engine().running
    finally:
        gptmagic.shutdown()
    assert not engine.get_engine().running


async def test_local_tokenize_pieces(client):
    from gptmagic.views.widgets.pieces import piece_bytes

    text = "Café 😀 ok"
    try:
        plain = await client.local_tokenize(text=text)
        data = await client.local_tokenize(text=text, pieces=True)
    finally:
        gptmagic.shutdown()  # local_tokenize started the shared engine
    assert data["tokens"] == plain["tokens"] and "pieces" not in plain
    assert b"".join(piece_bytes(p) for p in data["pieces"]) == text.encode()


# -- an engine that comes back (issue 9 bug 2) ----------------------------------------


def _wait_dead(engine, seconds: float = 10.0) -> None:
    import time

    end = time.monotonic() + seconds
    while engine.running and time.monotonic() < end:
        time.sleep(0.05)
    assert not engine.running


@pytest.fixture
def own_engine():
    """A fresh engine of this test's own, so killing it disturbs no other test."""
    from gptmagic.local.engine import LocalEngine

    engine = LocalEngine()
    yield engine
    engine.stop()


@pytest.mark.slow
async def test_a_killed_engine_is_restarted_once_with_a_notice(own_engine):
    import os
    import signal

    notes: list[str] = []
    async with Client("local", engine=own_engine, on_notice=notes.append) as c:
        first = await c.chat("Hi", max_tokens=3, temperature=0)
        pid = own_engine.pid
        os.kill(pid, signal.SIGKILL)
        _wait_dead(own_engine)
        again = await c.chat("Hi", max_tokens=3, temperature=0)
        counted = await c.count_tokens("Hi there", "local")
    assert first.text and again.text and counted.total > 0
    assert notes == ["local engine exited (signal 9, SIGKILL); restarted"]
    assert own_engine.running and own_engine.pid != pid


@pytest.mark.slow
async def test_a_kill_the_client_has_not_noticed_yet_is_survived(own_engine, capfd):
    """The connection is refused before the death is seen: the retry restarts the engine,
    and the user reads exactly one line about it on stderr."""
    import os
    import signal

    async with Client("local", engine=own_engine) as c:
        await c.chat("Hi", max_tokens=2)
        capfd.readouterr()
        os.kill(own_engine.pid, signal.SIGKILL)  # no wait: the next call races the death
        r = await c.chat("Hi", max_tokens=2)
    err = capfd.readouterr().err
    assert r.text
    assert [ln for ln in err.splitlines() if "restarted" in ln] == [
        "gptmagic: local engine exited (signal 9, SIGKILL); restarted"]


@pytest.mark.slow
async def test_a_stream_cut_by_the_engine_dying_keeps_its_text_and_says_why(own_engine):
    import os
    import signal

    from gptmagic.errors import StreamError

    got: list[str] = []

    def on_delta(i: int, text: str) -> None:
        got.append(text)
        if len(got) == 3:
            os.kill(own_engine.pid, signal.SIGKILL)

    async with Client("local", engine=own_engine, on_notice=lambda _: None) as c:
        with pytest.raises(StreamError) as e:
            await c.chat("Tell me a long story about a dragon.", max_tokens=200,
                         temperature=0, seed=1, stream=True, on_delta=on_delta)
        assert "the local engine exited: signal 9" in str(e.value)
        assert e.value.partial is not None and e.value.partial.text == "".join(got)
        assert len(got) >= 3
        after = await c.chat("Hi", max_tokens=2)  # and the next call works again
    assert after.text


@pytest.mark.slow
def test_stop_engine_then_the_next_call_starts_it_again():
    """gptmagic.local.stop_engine() used to leave the shared client on a dead port."""
    from gptmagic.local import engine, stop_engine

    try:
        gptmagic.chat("Hi", model="local", max_tokens=2)
        first = engine.get_engine().pid
        stop_engine()
        assert not engine.get_engine().running
        r = gptmagic.chat("Hi", model="local", max_tokens=2)
        assert r.text and engine.get_engine().running and engine.get_engine().pid != first
    finally:
        gptmagic.shutdown()
