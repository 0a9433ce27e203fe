"""Results from whole bodies and from streams; logprobs in one internal form."""

from __future__ import annotations

import json
import math
import re

import pytest

from gptmagic.core.logprobs import from_wire, mean_logprob, perplexity, token_bytes
from gptmagic.core.response import Accumulator, parse_response
from gptmagic.core.types import TokenLogprob
from gptmagic.errors import MalformedResponseError

CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "system_fingerprint": "fp",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Hi!", "refusal": None},
            "logprobs": {
                "content": [
                    {
                        "token": "Hi",
                        "logprob": -0.1,
                        "bytes": [72, 105],
                        "top_logprobs": [
                            {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
                            {"token": "Hello", "logprob": -2.5, "bytes": None},
                        ],
                    },
                    {"token": "!", "logprob": -0.7, "bytes": [33], "top_logprobs": []},
                ],
                "refusal": None,
            },
        }
    ],
    "usage": {
        "prompt_tokens": 9,
        "completion_tokens": 2,
        "total_tokens": 11,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}

LEGACY = {
    "id": "cmpl-1",
    "object": "text_completion",
    "created": 1,
    "model": "davinci-002",
    "choices": [
        {
            "index": 0,
            "text": "The sky is blue",
            "finish_reason": "length",
            "logprobs": {
                "tokens": ["The", " sky", " is", " blue"],
                "token_logprobs": [None, -1.0, -0.5, -0.25],
                "top_logprobs": [
                    None,
                    {" sky": -1.0, " sea": -1.5},
                    {" is": -0.5},
                    {" blue": -0.25, " red": -3.0},
                ],
                "text_offset": [0, 3, 7, 10],
            },
        }
    ],
    "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
}


def test_chat_response():
    r = parse_response("chat", CHAT)
    assert (r.text, r.finish_reason, r.model, r.id, r.system_fingerprint) == (
        "Hi!",
        "stop",
        "m",
        "chatcmpl-1",
        "fp",
    )
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (9, 2, 11)
    assert r.usage.cached_tokens == 4 and r.usage.reasoning_tokens == 0
    lp = r.logprobs
    assert [t.token for t in lp] == ["Hi", "!"]
    assert lp[0].bytes == b"Hi" and lp[0].logprob == -0.1
    assert [a.token for a in lp[0].top] == ["Hi", "Hello"]
    assert lp[0].top[1].bytes == b"Hello"  # derived when the provider sends null
    assert r.choices[0].message == {"role": "assistant", "content": "Hi!"}
    assert "Hi!" in repr(r) and "9+2 tokens" in repr(r)


def test_legacy_echo_split_prompt_and_completion():
    # With echo the prompt "The sky" (7 chars) comes back first.
    r = parse_response("completion", LEGACY, prompt_len=7)
    ch = r.choices[0]
    assert [t.token for t in ch.prompt_logprobs] == ["The", " sky"]
    assert all(t.prompt for t in ch.prompt_logprobs)
    assert ch.prompt_logprobs[0].logprob is None
    assert [t.token for t in ch.logprobs] == [" is", " blue"]
    assert [a.token for a in ch.logprobs[1].top] == [" blue", " red"]  # sorted by logprob
    assert ch.logprobs[1].offset == 10


def test_legacy_without_echo_keeps_all_tokens():
    r = parse_response("completion", LEGACY)
    assert len(r.choices[0].logprobs) == 4 and r.choices[0].prompt_logprobs is None


def test_chat_form_from_completions_endpoint():
    # llama.cpp answers /v1/completions with chat-style logprobs; accept both.
    body = {
        "choices": [
            {
                "index": 0,
                "text": "x",
                "finish_reason": "stop",
                "logprobs": CHAT["choices"][0]["logprobs"],
            }
        ],
        "model": "m",
    }
    r = parse_response("completion", body)
    assert [t.token for t in r.logprobs] == ["Hi", "!"]


def test_partial_utf8_byte_tokens():
    assert token_bytes("bytes:\\xe2\\x82") == b"\xe2\x82"
    assert token_bytes("\u20ac") == b"\xe2\x82\xac"
    assert token_bytes("x", [226, 130]) == b"\xe2\x82"
    lp, _ = from_wire({"tokens": ["bytes:\\xe2\\x82", "bytes:\\xac"], "token_logprobs": [-1, -2]})
    assert b"".join(t.bytes for t in lp).decode() == "\u20ac"


def test_perplexity_and_mean():
    r = parse_response("chat", CHAT)
    assert mean_logprob(r.logprobs) == pytest.approx(-0.4)
    assert perplexity(r.logprobs) == pytest.approx(math.exp(0.4))
    assert perplexity([]) is None


def test_statistics_at_the_api_floor_are_one_rule_everywhere():
    """Issue 9 bug 5: perplexity raised OverflowError at -9999; the widget clamped; the
    engine's best_of ranking had a third rule. Now one clamped module serves all three."""
    from gptmagic.core.logprobs import FLOOR, mean_of
    from gptmagic.local.logprobs import mean_logprob as engine_mean
    from gptmagic.views.widgets.state import heatmap_state

    floor = [TokenLogprob("x", -9999.0), TokenLogprob("y", -float("inf")),
             TokenLogprob("z", None), TokenLogprob("w", float("nan"))]
    assert mean_logprob(floor) == FLOOR  # -inf clamped, None and NaN left out
    assert perplexity(floor) == math.inf  # no OverflowError
    summary = heatmap_state(floor)["choices"][0]["summary"]
    assert summary["mean_logprob"] == FLOOR and summary["perplexity"] is None  # JSON: no inf
    mixed = [TokenLogprob("a", -0.5), TokenLogprob("b", -1.5)]
    wire = {"content": [{"token": t.token, "logprob": t.logprob} for t in mixed]}
    assert mean_logprob(mixed) == engine_mean(wire) == mean_of([-0.5, -1.5]) == -1.0
    assert heatmap_state(mixed)["choices"][0]["summary"]["perplexity"] == round(math.e, 4)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ([], "expected a JSON object"),
        ({"model": "m"}, "no 'choices' list"),
        ({"choices": []}, "empty 'choices'"),
        ({"choices": [{"index": 0, "finish_reason": "stop"}]}, "no 'message'"),
        ({"choices": [{"index": 0, "message": {"content": 5}}]}, "not a string"),
        ({"choices": ["x"]}, "expected a JSON object"),
        ({"choices": [{"index": "0", "message": {"content": ""}}]}, "index is not an integer"),
    ],
)
def test_malformed_chat(body, match):
    with pytest.raises(MalformedResponseError, match=match):
        parse_response("chat", body)


def test_malformed_completion():
    with pytest.raises(MalformedResponseError, match="no 'text'"):
        parse_response("completion", {"choices": [{"index": 0}]})


def chunk(choices, **extra):
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "created": 2,
        "choices": choices,
        **extra,
    }


def test_accumulate_chat_stream_two_choices_tools_and_usage():
    acc = Accumulator("chat")
    assert (
        acc.add(
            chunk(
                [
                    {"index": 0, "delta": {"role": "assistant", "content": ""}},
                    {"index": 1, "delta": {"role": "assistant", "content": ""}},
                ]
            )
        )
        == []
    )
    assert acc.add(
        chunk(
            [
                {
                    "index": 1,
                    "delta": {"content": "B"},
                    "logprobs": {"content": [{"token": "B", "logprob": -1.0, "top_logprobs": []}]},
                }
            ]
        )
    ) == [(1, "B")]
    assert acc.add(chunk([{"index": 0, "delta": {"content": "A1"}}])) == [(0, "A1")]
    acc.add(chunk([{"index": 0, "delta": {"content": "A2"}, "finish_reason": None}]))
    acc.add(
        chunk(
            [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "t1",
                                "type": "function",
                                "function": {"name": "get", "arguments": '{"a"'},
                            }
                        ]
                    },
                }
            ]
        )
    )
    acc.add(
        chunk(
            [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
                }
            ]
        )
    )
    assert not acc.finished
    acc.add(
        chunk(
            [
                {"index": 0, "delta": {}, "finish_reason": "tool_calls"},
                {"index": 1, "delta": {}, "finish_reason": "length"},
            ]
        )
    )
    assert acc.finished
    acc.add(chunk([], usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}))
    r = acc.result()
    assert [c.text for c in r.choices] == ["A1A2", "B"]
    assert [c.finish_reason for c in r.choices] == ["tool_calls", "length"]
    assert r.choices[0].tool_calls == [
        {"id": "t1", "type": "function", "function": {"name": "get", "arguments": '{"a": 1}'}}
    ]
    assert [t.token for t in r.choices[1].logprobs] == ["B"]
    assert r.usage.total_tokens == 7 and r.model == "m" and r.id == "c1"


def test_accumulate_legacy_stream_with_echo():
    acc = Accumulator("completion", prompt_len=3)
    acc.add(
        {
            "choices": [
                {
                    "index": 0,
                    "text": "Hi ",
                    "logprobs": {
                        "tokens": ["Hi", " "],
                        "token_logprobs": [None, -0.5],
                        "top_logprobs": [None, {" ": -0.5}],
                        "text_offset": [0, 2],
                    },
                }
            ]
        }
    )
    acc.add(
        {
            "choices": [
                {
                    "index": 0,
                    "text": "there",
                    "finish_reason": "stop",
                    "logprobs": {
                        "tokens": ["there"],
                        "token_logprobs": [-0.1],
                        "top_logprobs": [{"there": -0.1}],
                        "text_offset": [3],
                    },
                }
            ]
        }
    )
    r = acc.result()
    assert r.text == "Hi there"
    assert [t.token for t in r.choices[0].prompt_logprobs] == ["Hi", " "]
    assert [t.token for t in r.choices[0].logprobs] == ["there"]


def test_stream_and_whole_body_agree():
    whole = parse_response("chat", CHAT)
    acc = Accumulator("chat")
    c0 = CHAT["choices"][0]
    for entry in c0["logprobs"]["content"]:
        acc.add(
            chunk(
                [
                    {
                        "index": 0,
                        "delta": {"content": entry["token"]},
                        "logprobs": {"content": [entry]},
                    }
                ]
            )
        )
    acc.add(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}], usage=CHAT["usage"]))
    streamed = acc.result()
    assert streamed.text == whole.text and streamed.finish_reason == whole.finish_reason
    assert streamed.logprobs == whole.logprobs and streamed.usage == whole.usage


def test_malformed_chunks():
    acc = Accumulator("chat")
    with pytest.raises(MalformedResponseError):
        acc.add(["not", "a", "dict"])
    with pytest.raises(MalformedResponseError):
        acc.add({"choices": "nope"})
    with pytest.raises(MalformedResponseError):
        acc.add({"choices": [{"index": 0, "delta": "text"}]})


# -- numbers no server can mean, over real HTTP (the fake server, streamed and not) -----


def _literal(obj: dict, put, literal: str) -> str:
    """``obj`` as JSON with ``put(obj, marker)`` done and the marker swapped for ``literal``
    (for numbers json.dumps cannot write: 1e400)."""
    put(obj, "@@LITERAL@@")
    return json.dumps(obj).replace('"@@LITERAL@@"', literal)


def _in_usage(field: str, value, literal: str | None = None):
    def put(d: dict, v) -> None:
        *path, last = field.split(".")
        target = d["usage"]
        for p in path:
            target = target[p]
        target[last] = v

    def mangle(d: dict):
        if not isinstance(d.get("usage"), dict):
            return d
        return _literal(d, put, literal) if literal else (put(d, value), d)[1]
    return mangle


def _in_logprobs(literal: str):
    def put(d: dict, v) -> None:
        for c in d.get("choices") or []:
            content = (c.get("logprobs") or {}).get("content") or []
            if content:
                content[0]["logprob"] = v

    def mangle(d: dict):
        return _literal(d, put, literal)
    return mangle


def _indices(how: str):
    def mangle(d: dict):
        choices = d.get("choices") or []
        if how == "duplicate":
            d["choices"] = choices + [dict(c) for c in choices]
        for c in choices:
            if how == "negative":
                c["index"] = -1
            elif how == "merged":
                c["index"] = 0
        return d
    return mangle


BAD_NUMBERS = {
    "negative usage": (_in_usage("prompt_tokens", -5), "usage.prompt_tokens"),
    "huge usage": (_in_usage("completion_tokens", None, "1e400"), "1e400"),
    "string usage": (_in_usage("total_tokens", "12"), "usage.total_tokens"),
    "list usage": (_in_usage("completion_tokens", [3]), "usage.completion_tokens"),
    "cached many": (_in_usage("prompt_tokens_details.cached_tokens", "many"), "cached_tokens"),
    "NaN logprob": (_in_logprobs("NaN"), "NaN"),
    "Infinity logprob": (_in_logprobs("Infinity"), "Infinity"),
    "logprob 1000": (_in_logprobs("1000"), "logprob is 1000"),
    "negative index": (_indices("negative"), "index"),
    "duplicate index": (_indices("duplicate"), "index"),
    "merged choices": (_indices("merged"), "index"),
}


@pytest.fixture
async def plain_client(fake_server):
    from gptmagic import Client, Provider, RetryPolicy

    c = Client(Provider(name="fake", base_url=fake_server.url, default_model="m"),
               retry=RetryPolicy(max_attempts=1))
    yield c
    await c.aclose()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("case", list(BAD_NUMBERS))
async def test_bad_numbers_are_a_malformed_response_of_that_call(
        plain_client, fake_server, case, stream):
    from fakeserver import Behaviour

    mangle, where = BAD_NUMBERS[case]
    fake_server.plan(Behaviour(mangle=mangle))
    with pytest.raises(MalformedResponseError, match=re.escape(where)):
        await plain_client.chat("one two three", stream=stream, n=2, logprobs=True,
                                top_logprobs=2)
    # The client is fine, and the same call with sane numbers works.
    r = await plain_client.chat("one two three", stream=stream, n=2, logprobs=True,
                                top_logprobs=2)
    assert [c.text for c in r.choices] == ["echo: one two three #0", "echo: one two three #1"]
    assert len(fake_server.requests) == 2  # a malformed reply is not retried


async def test_a_bad_stream_keeps_the_text_before_the_bad_event(plain_client, fake_server):
    from fakeserver import Behaviour

    from gptmagic.errors import StreamError

    fake_server.plan(Behaviour(mangle=_in_usage("prompt_tokens", -1)))
    with pytest.raises(StreamError) as e:
        await plain_client.chat("one two three", stream=True)
    assert isinstance(e.value, MalformedResponseError)
    assert e.value.partial.text == "echo: one two three"


def test_json_is_standard_and_minus_infinity_is_the_floor():
    from gptmagic.core.response import loads

    for bad in ('{"a": NaN}', '{"a": Infinity}', '{"a": 1e400}', '{"a": -1e400}'):
        with pytest.raises(ValueError):
            loads(bad)
    body = loads(json.dumps(CHAT).replace('"logprob": -0.7', '"logprob": -Infinity'))
    r = parse_response("chat", body)
    assert r.choices[0].logprobs[1].logprob == -9999.0
    assert json.loads(json.dumps([t.logprob for t in r.choices[0].logprobs]))  # valid JSON


def test_a_logprob_rounded_above_zero_is_zero():
    body = json.loads(json.dumps(CHAT).replace('"logprob": -0.7', '"logprob": 1e-7'))
    assert parse_response("chat", body).choices[0].logprobs[1].prob == 1.0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_evaluate_gives_the_bad_row_its_error_and_the_others_their_results(
        fake_server, stream):
    from fakeserver import Behaviour

    import gptmagic

    gptmagic.add_profile("fake", base_url=fake_server.url, default_model="m")
    fake_server.plan(Behaviour(), Behaviour(mangle=_in_usage("completion_tokens", "many")),
                     Behaviour(mangle=_in_logprobs("NaN")), Behaviour())
    res = gptmagic.evaluate([{"q": q} for q in "abcd"], "user: {q}", ["fake:m"],
                            progress=False, concurrency=1, cache=False, stream=stream,
                            params={"logprobs": True})
    df = res.df.set_index("input.q")
    assert list(df.loc[["a", "d"], "output"]) == ["echo: a", "echo: d"]
    assert df.loc[["a", "d"], "error"].isna().all()
    assert "usage.completion_tokens is 'many'" in df.loc["b", "error"]
    assert "NaN" in df.loc["c", "error"]
    assert set(df.loc[["b", "c"], "error_type"]) <= {"MalformedResponseError",
                                                      "MalformedStreamError"}
