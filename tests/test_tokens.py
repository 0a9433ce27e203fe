"""Token counts against OpenAI's published figures, offline, and the local engine."""

from __future__ import annotations

import random
import socket

import pytest

import gptmagic
from gptmagic.catalog import tokens
from gptmagic.catalog.tokens import encoding_for, get_encoding
from gptmagic.errors import ConfigError, RequestError
from gptmagic.tokens import count_tokens

# The OpenAI cookbook's example conversation and the prompt_tokens the API
# reported for it ("How to count tokens with tiktoken").
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that "
        "translates corporate jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more "
        "bandwidth to touch base on opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean "
        "for the client deliverable.",
    },
]
WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
WEATHER_MSGS = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Counting must never touch the network, and must not rely on tiktoken's cache."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    real = socket.socket.connect

    def guard(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access to {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guard)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-3.5-turbo-0301", 127),
        ("gpt-3.5-turbo-0613", 129),
        ("gpt-3.5-turbo", 129),
        ("gpt-4-0314", 129),
        ("gpt-4-0613", 129),
        ("gpt-4", 129),
        ("gpt-4o", 124),
        ("gpt-4o-mini", 124),
        ("gpt-4o-2024-08-06", 124),
    ],
)
def test_chat_overhead_matches_api_figures(model, expected):
    c = count_tokens(COOKBOOK, model)
    assert c.total == expected and c.exact
    assert sum(m.total for m in c.messages) + c.reply_priming == c.total
    assert c.reply_priming == 3
    named = c.messages[1]
    assert named.name == len(get_encoding(c.encoding)[0].encode("example_user")) + (
        -1 if model.endswith("0301") else 1
    )


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)],
)
def test_tool_definitions_match_cookbook(model, expected):
    c = count_tokens(WEATHER_MSGS, model, tools=WEATHER_TOOLS)
    assert c.total == expected
    assert not c.exact and "tool" in c.note  # the cookbook rule is an estimate
    assert c.tools == expected - count_tokens(WEATHER_MSGS, model).total


def _get_current_weather(location: str, unit: str) -> str:
    """Get the current weather in a given location

    Args:
        location: The city and state, e.g. San Francisco, CA
        unit: The unit of temperature to return
    """
    return f"20 {unit} in {location}"


@pytest.mark.parametrize("model", ["gpt-4", "gpt-4.1-nano"])
def test_tools_given_as_functions_count_as_their_definitions(model):
    """``count_tokens(tools=[f])`` takes what ``chat(tools=[f])`` takes: a function (or a
    Tool) is counted as the definition it is sent as, a raw dict as it is."""
    spec = gptmagic.tool_from(_get_current_weather).chat_spec()
    want = count_tokens(WEATHER_MSGS, model, tools=[spec])
    assert count_tokens(WEATHER_MSGS, model, tools=[_get_current_weather]) == want
    assert count_tokens(WEATHER_MSGS, model,
                        tools=[gptmagic.tool_from(_get_current_weather)]) == want
    both = count_tokens(WEATHER_MSGS, model, tools=[_get_current_weather, *WEATHER_TOOLS])
    assert both == count_tokens(WEATHER_MSGS, model, tools=[spec, *WEATHER_TOOLS])
    with pytest.raises(RequestError, match="a tool must be a Python function"):
        count_tokens(WEATHER_MSGS, model, tools=[42])


def test_known_token_ids():
    cl100k, exact = get_encoding("cl100k_base")
    assert exact and cl100k.encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    o200k, exact = get_encoding("o200k_base")
    assert exact and o200k.decode(o200k.encode("héllo wörld 日本語 🦄")) == "héllo wörld 日本語 🦄"
    assert o200k.n_vocab > 199_000 and cl100k.n_vocab > 100_000
    assert count_tokens("tiktoken is great!", "gpt-4").total == 6


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("davinci-002", "cl100k_base"),
        ("text-davinci-003", "p50k_base"),
        ("gpt-oss-20b", "o200k_harmony"),
        ("openai/gpt-4o", "o200k_base"),
        ("local", "local"),
        ("smollm2", "local"),
        ("llama-3-8b", "unknown"),
    ],
)
def test_encoding_for(model, encoding):
    assert encoding_for(model) == encoding


def test_unavailable_and_unknown_are_labelled_estimates():
    p50k = count_tokens("def f(x): return x", "text-davinci-003")
    assert not p50k.exact and "p50k_base" in p50k.note and str(p50k).startswith("~")
    unknown = count_tokens([{"role": "user", "content": "hi"}], "llama-3-8b")
    assert not unknown.exact and "unknown model" in unknown.note
    newer = count_tokens([{"role": "user", "content": "hi"}], "gpt-4.1")
    assert newer.encoding == "o200k_base" and not newer.exact  # rule unverified for 4.1
    assert count_tokens("hi", "gpt-4.1").exact  # plain text is exact


def test_corrupt_shipped_file_is_refused(monkeypatch):
    monkeypatch.setattr(tokens, "_cache", {})
    with pytest.raises(ConfigError, match="does not match"):
        tokens._offline_bpe("https://x/cl100k_base.tiktoken", expected_hash="0" * 64)


def test_special_token_text_is_counted_as_text():
    assert count_tokens("<|endoftext|>", "gpt-4o").total > 1


def test_non_text_parts_and_bad_messages():
    parts = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "x"}},
            ],
        }
    ]
    c = count_tokens(parts, "gpt-4o")
    assert not c.exact and c.messages[0].content == count_tokens("What is this?", "gpt-4o").total
    with pytest.raises(RequestError, match=r"messages\[0\]"):
        count_tokens([{"content": "no role"}], "gpt-4o")
    with pytest.raises(RequestError, match="string or a list"):
        count_tokens([{"role": "user", "content": 5}], "gpt-4o")


def _random_conversation(rng: random.Random) -> list[dict]:
    words = [
        "hello",
        "world",
        "Wie",
        "geht's?",
        "日本語",
        "😀",
        "code:",
        "def f(x):",
        "\n",
        "  indented",
        "{json}",
        "<b>html</b>",
        "Paris",
        "ünïcödé",
        "12345",
        "—",
        "",
    ]
    msgs = []
    if rng.random() < 0.6:
        msgs.append(
            {
                "role": rng.choice(["system", "developer"]),
                "content": " ".join(rng.choices(words, k=rng.randint(1, 12))),
            }
        )
    for i in range(rng.randint(1, 5)):
        role = "user" if i % 2 == 0 else "assistant"
        m = {"role": role, "content": " ".join(rng.choices(words, k=rng.randint(1, 20))) or "x"}
        if rng.random() < 0.25:
            m["name"] = rng.choice(["bob", "example_user", "Anna-2"])
        msgs.append(m)
    if msgs[-1]["role"] != "user" and rng.random() < 0.5:
        msgs.append({"role": "user", "content": "ok"})
    return msgs


@pytest.mark.engine
@pytest.mark.slow
def test_local_counts_equal_engine_usage_over_many_conversations():
    rng = random.Random(1234)
    try:
        for _ in range(25):
            msgs = _random_conversation(rng)
            c = count_tokens(msgs, "local")
            r = gptmagic.chat(msgs, model="local", max_tokens=1)
            assert c.total == r.usage.prompt_tokens, msgs
            assert c.exact and sum(m.total for m in c.messages) + c.reply_priming == c.total
            assert all(m.content >= 0 and m.overhead > 0 for m in c.messages)
            # A final assistant message is a finished turn, as on OpenAI: the reply
            # is primed after it too (the engine's prefill is off).
            assert c.reply_priming > 0
        text = "Bonjour le monde 😀"
        assert (
            count_tokens(text, "local").total
            == gptmagic.complete(text, model="local", max_tokens=1).usage.prompt_tokens
        )
    finally:
        gptmagic.shutdown()


@pytest.mark.engine
async def test_async_count_from_a_running_loop():
    try:
        c = await gptmagic.acount_tokens([{"role": "user", "content": "hi"}], "local")
        assert c.total > 2
        assert (await gptmagic.acount_tokens("hi", "gpt-4o")).total == 1
    finally:
        gptmagic.shutdown()


def test_one_token_is_singular() -> None:
    """Issue 13, item 16: not "1 tokens"."""
    assert str(count_tokens("a", "gpt-4o-mini")).startswith("1 token (")
    assert str(count_tokens("a b", "gpt-4o-mini")).startswith("2 tokens (")


@pytest.mark.engine
def test_an_empty_assistant_reply_is_counted():
    """Issue 13, item 14: ``%chat history`` after an empty reply; counting raised."""
    try:
        for msgs in ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}],
                     [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""},
                      {"role": "user", "content": "again"}]):
            c = count_tokens(msgs, "local")
            assert c.exact and len(c.messages) == len(msgs)
            assert c.messages[1].content == 0 and c.messages[1].overhead > 0
            assert c.total == gptmagic.chat(msgs, model="local", max_tokens=1).usage.prompt_tokens
    finally:
        gptmagic.shutdown()
