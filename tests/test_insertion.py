"""Insertion: splitting a cell at the marker, and resampling against real HTTP."""

from __future__ import annotations

import pytest
from conftest_local import local_engine, local_url  # noqa: F401
from fakeserver import Behaviour

from gptmagic import Client, Provider
from gptmagic.client.insertion import INSERT_MARKER, ResampleResult, resample, split_insertion
from gptmagic.core.retry import RetryPolicy
from gptmagic.core.types import Choice, Result, Usage
from gptmagic.errors import BadRequestError, InternalServerError, RequestError

# -- split_insertion -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no marker", ("no marker", None)),
        ("a [insert] b", ("a ", " b")),
        ("[insert]tail", ("", "tail")),
        ("head[insert]", ("head", "")),
        ("[insert]", ("", "")),
        ("line 1\n[insert]\nline 3", ("line 1\n", "\nline 3")),
        ("keep \\[insert] literal", ("keep [insert] literal", None)),
        ("\\[insert] at the start", ("[insert] at the start", None)),
        ("x \\[insert] y [insert] z \\[insert]", ("x [insert] y ", " z [insert]")),
        ("[INSERT] and [Insert] are plain text", ("[INSERT] and [Insert] are plain text", None)),
        ("[ insert ] too", ("[ insert ] too", None)),
    ],
)
def test_split(text, expected):
    assert split_insertion(text) == expected


def test_two_markers_name_both_cell_lines():
    with pytest.raises(RequestError) as e:
        split_insertion("a\nb\n[insert]\nc\nd\ne\nf\ng\nh [insert] i")
    assert str(e.value).startswith("cell line 3 and cell line 9: ")
    assert "appears 2 times" in str(e.value) and "\\[insert]" in str(e.value)
    assert e.value.param == "cell"


def test_three_markers_on_one_line():
    with pytest.raises(RequestError, match="cell line 1 and cell line 1: .* 3 times"):
        split_insertion("[insert] [insert] [insert]")


def test_custom_marker():
    assert split_insertion("a <FILL> b [insert]", "<FILL>") == ("a ", " b [insert]")
    assert split_insertion("a \\<FILL> b", "<FILL>") == ("a <FILL> b", None)
    with pytest.raises(RequestError, match="must not be empty") as e:
        split_insertion("x", "")
    assert e.value.param == "--marker"
    assert INSERT_MARKER == "[insert]"


# -- ResampleResult --------------------------------------------------------------


def test_result_properties():
    stop, cut = Choice(0, "x", "stop"), Choice(0, "y", "length")
    rs = ResampleResult(
        kept=[stop],
        results=[
            Result("completion", "m", [cut], usage=Usage(3, 16, 19)),
            Result("completion", "m", [stop], usage=Usage(3, 2, 5)),
            Result("completion", "m", [cut], usage=None),
        ],
        attempts=3,
    )
    assert rs.best is stop
    assert rs.usage_total == Usage(prompt_tokens=6, completion_tokens=18, total_tokens=24)
    assert ResampleResult().best is None and ResampleResult().usage_total == Usage()


# -- resample against the fake server --------------------------------------------

LONG = " one two three four five six"  # six word-tokens: cut by max_tokens=3
SHORT = " done"  # one token: ends with "stop"


@pytest.fixture
async def client(fake_server):
    prov = Provider(name="fake", base_url=fake_server.url, default_model="fake-model")
    async with Client(prov) as c:
        yield c


async def test_every_sample_cut_off_gives_advice(client, fake_server):
    fake_server.set_default(Behaviour(text=LONG))
    rs = await resample(client, "def f(", suffix="\n    return x", k=5, max_tokens=3)
    assert rs.attempts == 5 and len(rs.results) == 5 and len(fake_server.requests) == 5
    assert rs.kept == [] and rs.best is None and rs.all_length
    assert rs.advice == (
        "all 5 samples stopped at max_tokens=3 before reaching the suffix; raise --max-tokens"
    )
    assert rs.usage_total.completion_tokens == 15
    for req in fake_server.requests:
        assert req.path == "/v1/completions"
        assert req.json["suffix"] == "\n    return x" and req.json["max_tokens"] == 3


async def test_stops_at_the_first_sample_that_reaches_the_suffix(client, fake_server):
    fake_server.plan(Behaviour(text=LONG), Behaviour(text=LONG), Behaviour(text=SHORT))
    rs = await resample(client, "The sky is", suffix=".", k=5, max_tokens=3, seed=40)
    assert rs.attempts == 3 and len(fake_server.requests) == 3  # attempts 4 and 5 never sent
    assert [r.finish_reason for r in rs.results] == ["length", "length", "stop"]
    assert rs.best is not None and rs.best.text == SHORT and rs.kept == [rs.best]
    assert not rs.all_length and rs.advice is None
    assert [req.json["seed"] for req in fake_server.requests] == [40, 41, 42]
    assert rs.usage_total.prompt_tokens == 3 * 3  # "The sky is" is 3 words, billed 3 times


async def test_keep_collects_several_stops(client, fake_server):
    fake_server.plan(
        Behaviour(text=SHORT), Behaviour(text=LONG), Behaviour(text=SHORT), Behaviour(text=SHORT)
    )
    rs = await resample(client, "p", suffix="s", k=4, keep=2, max_tokens=3)
    assert rs.attempts == 3 and len(rs.kept) == 2 and rs.advice is None
    # No seed given: none is invented.
    assert all("seed" not in req.json for req in fake_server.requests)


async def test_too_few_kept_says_so(client, fake_server):
    fake_server.plan(Behaviour(text=SHORT), Behaviour(text=LONG))
    rs = await resample(client, "p", suffix="s", k=2, keep=2, max_tokens=3)
    assert len(rs.kept) == 1 and not rs.all_length
    assert rs.advice == "kept 1 of the 2 wanted after 2 attempts; raise --resample"


async def test_n_choices_per_attempt_count_as_samples(client, fake_server):
    fake_server.set_default(Behaviour(text=LONG))
    rs = await resample(client, "p", suffix=None, k=2, n=2, max_tokens=2)
    assert rs.all_length and rs.attempts == 2
    assert rs.advice == "all 4 samples stopped at max_tokens=2 before finishing; raise --max-tokens"
    assert all("suffix" not in req.json and req.json["n"] == 2 for req in fake_server.requests)


async def test_single_sample_without_max_tokens(client, fake_server):
    fake_server.plan(
        Behaviour(
            body={
                "id": "c",
                "object": "text_completion",
                "created": 0,
                "model": "fake-model",
                "choices": [
                    {"index": 0, "text": " cut", "finish_reason": "length", "logprobs": None}
                ],
            }
        )
    )
    rs = await resample(client, "p", suffix="s", k=1)
    assert rs.advice == (
        "the only sample stopped at the default max_tokens before reaching the suffix; "
        "raise --max-tokens"
    )


async def test_other_finish_reasons(client, fake_server):
    filtered = {
        "id": "c",
        "object": "text_completion",
        "created": 0,
        "model": "fake-model",
        "choices": [{"index": 0, "text": "", "finish_reason": "content_filter", "logprobs": None}],
    }
    fake_server.plan(Behaviour(body=filtered), Behaviour(text=LONG))
    rs = await resample(client, "p", suffix="s", k=2, max_tokens=3)
    assert not rs.kept and not rs.all_length
    assert rs.advice == (
        "none of 2 samples ended with 'stop' (finish reasons: content_filter, length); "
        "raise --resample or --max-tokens"
    )


async def test_client_errors_propagate(fake_server):
    prov = Provider(name="fake", base_url=fake_server.url, default_model="fake-model")
    fake_server.plan(Behaviour(text=LONG), Behaviour(status=500))
    async with Client(prov, retry=RetryPolicy(max_attempts=1)) as c:
        with pytest.raises(InternalServerError):
            await resample(c, "p", suffix="s", k=5, max_tokens=3)
    assert len(fake_server.requests) == 2


@pytest.mark.parametrize(
    ("k", "keep", "bad"),
    [
        (0, 1, "k"),
        (-2, 1, "k"),
        (1.5, 1, "k"),
        (True, 1, "k"),
        ("3", 1, "k"),
        (3, 0, "keep"),
        (3, None, "keep"),
    ],
)
async def test_k_and_keep_are_validated(client, fake_server, k, keep, bad):
    with pytest.raises(RequestError, match=f"--resample: {bad} must be a whole number >= 1") as e:
        await resample(client, "p", suffix="s", k=k, keep=keep)
    assert e.value.param == "--resample" and fake_server.requests == []


async def test_seed_must_be_an_integer(client, fake_server):
    with pytest.raises(RequestError, match="seed must be an integer") as e:
        await resample(client, "p", suffix="s", k=2, seed="7")
    assert e.value.param == "seed" and fake_server.requests == []


# -- the real embedded model -----------------------------------------------------


async def test_embedded_model_refuses_suffix_clearly(local_url):  # noqa: F811
    prov = Provider(name="engine", base_url=local_url, default_model="local")
    async with Client(prov) as c:
        with pytest.raises(BadRequestError) as e:
            await resample(c, "def add(a, b):\n", suffix="\n    return c", k=3, max_tokens=8)
    assert e.value.status_code == 400
    assert e.value.body["error"]["param"] == "suffix" and "suffix" in str(e.value)
