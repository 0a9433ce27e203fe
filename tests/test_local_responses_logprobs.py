"""Per-token logprobs of ``/v1/responses`` on the embedded engine, streamed or not.

The chat stream sends the entries of a reply with non-ASCII text after the
text, in one chunk with no text just before the choice ends
(``gptmagic.local.rescore.Splitter.stream``). The Responses stream once
dropped that chunk, so a streamed reply lost every entry from its first
multi-byte character on (``%%chat --api responses --logprobs`` showed 5 of 30).
These tests hold both ways of asking to OpenAI's rule, over several scripts:
as many entries as ``usage.output_tokens``, their bytes spelling the text,
the same entries streamed and not, the ``done`` event's matching the deltas.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest_local import local_client, local_engine, local_url  # noqa: F401
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_schema import validate
from test_local_logprobs import MULTILINGUAL
from test_local_responses import LOGPROBS, create
from test_local_responses import stream as stream_events

from gptmagic import Client, Provider
from gptmagic.core.logprobs import token_bytes

#: Prompts whose greedy replies (seed 7) hold accented letters, Japanese, emoji, or end
#: by themselves (the end-of-text token has an entry and no text).
PROMPTS = {
    "french": "The capital of France is",  # the tester's cell: "cé" at token 6
    "accents": "Écris une phrase en français sur l'été à la plage.",
    "japanese": "Translate to Japanese: Good morning, how are you? Answer in Japanese only.",
    "emoji": "Reply with three emoji.",
    "ends": "What is 2+2?",
}
ASK = {"include": LOGPROBS, "top_logprobs": 3, "max_output_tokens": 30}


def spelled(entries: list[dict[str, Any]]) -> bytes:
    """The bytes a list of logprob entries spells (``bytes`` if given, else from the token)."""
    return b"".join(token_bytes(e["token"], e.get("bytes")) for e in entries)


def assert_spells(joined: bytes, text: str, status: str) -> None:
    """The entries' bytes are the text's, plus, when cut, the bytes of a last token that
    ends in an unfinished character (the engine sends no text for that token)."""
    if status == "completed":
        assert joined == text.encode()
        return
    assert joined.startswith(text.encode())
    tail = joined[len(text.encode()):]  # the last token's bytes, held back with its char
    if tail:
        with pytest.raises(UnicodeDecodeError, match="unexpected end of data"):
            tail.decode("utf-8")
        assert len(tail) < 8


def part_of(response: dict[str, Any]) -> dict[str, Any]:
    part: dict[str, Any] = response["output"][0]["content"][0]
    return part


def plain(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``LogProb`` entries in the ``ResponseLogProb`` shape (no bytes) of a delta."""
    return [{"token": e["token"], "logprob": e["logprob"],
             "top_logprobs": [{"token": a["token"], "logprob": a["logprob"]}
                              for a in e["top_logprobs"]]} for e in entries]


@pytest.mark.parametrize("prompt", list(PROMPTS.values()), ids=list(PROMPTS))
def test_every_token_has_its_entry_streamed_or_not(local_client: httpx.Client,  # noqa: F811
                                                   prompt: str) -> None:
    whole = create(local_client, input=prompt, **ASK)
    part = part_of(whole)
    assert len(part["logprobs"]) == whole["usage"]["output_tokens"]
    assert_spells(spelled(part["logprobs"]), part["text"], whole["status"])

    events = stream_events(local_client, input=prompt, **ASK)  # each event checked: the spec
    final = events[-1]["response"]
    validate(final, "Response")
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    streamed = [lp for e in deltas for lp in e["logprobs"]]
    text = "".join(e["delta"] for e in deltas)
    assert len(streamed) == final["usage"]["output_tokens"] == whole["usage"]["output_tokens"]
    assert_spells(spelled(streamed), text, final["status"])
    assert text == part["text"] and final["status"] == whole["status"]

    # The done events say what the deltas said, and the final Response the same.
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == text and done["logprobs"] == streamed
    part_done = next(e for e in events if e["type"] == "response.content_part.done")
    assert part_done["part"] == part_of(final)
    assert plain(part_of(final)["logprobs"]) == streamed
    assert spelled(part_of(final)["logprobs"]) == spelled(streamed)

    # Greedy with a seed: the same entries as the whole answer (measured equal to the
    # last digit; the margin is for a forward pass batched differently under load).
    assert [e["token"] for e in streamed] == [e["token"] for e in part["logprobs"]]
    for mine, theirs in zip(streamed, plain(part["logprobs"]), strict=True):
        assert mine["logprob"] == pytest.approx(theirs["logprob"], abs=1e-3)
        assert len(mine["top_logprobs"]) == 3
        assert [a["token"] for a in mine["top_logprobs"]] == \
            [a["token"] for a in theirs["top_logprobs"]]
        assert [a["logprob"] for a in mine["top_logprobs"]] == \
            pytest.approx([a["logprob"] for a in theirs["top_logprobs"]], abs=1e-3)


def test_the_prompts_reach_multi_byte_text_and_a_reply_that_ends(
        local_client: httpx.Client) -> None:  # noqa: F811
    """What the test above covers: these replies really have partial and whole
    multi-byte tokens, and one ends by itself with its end-of-text entry."""
    parts = {name: part_of(create(local_client, input=p, **ASK)) for name, p in PROMPTS.items()}
    for name in ("french", "accents", "japanese", "emoji"):
        assert not parts[name]["text"].isascii(), name
    for name in ("japanese", "emoji"):
        assert any(e["token"].startswith("bytes:\\x") for e in parts[name]["logprobs"]), name
    assert parts["ends"]["logprobs"][-1]["bytes"] == []


@pytest.mark.parametrize("name", ["french", "japanese", "emoji"])
async def test_the_client_keeps_every_streamed_entry(local_url: str,  # noqa: F811
                                                     name: str) -> None:
    """``Client.respond(stream=True)`` folds the fixed stream into a Result with all entries."""
    prov = Provider(name="engine", base_url=local_url, default_model="local")
    params = {"include": LOGPROBS, "top_logprobs": 3, "max_output_tokens": 30,
              "temperature": 0, "seed": 7}
    pieces: list[str] = []
    async with Client(prov) as client:
        streamed = await client.respond(PROMPTS[name], stream=True,
                                        on_delta=lambda _, t: pieces.append(t), **params)
        whole = await client.respond(PROMPTS[name], **params)
    assert streamed.usage is not None and streamed.logprobs is not None
    assert len(streamed.logprobs) == streamed.usage.completion_tokens == 30
    assert streamed.text == whole.text == "".join(pieces)
    joined = b"".join(t.bytes or b"" for t in streamed.logprobs)
    assert_spells(joined, streamed.text, "incomplete")
    assert whole.logprobs is not None
    assert [t.token for t in streamed.logprobs] == [t.token for t in whole.logprobs]
    assert [t.bytes for t in streamed.logprobs] == [t.bytes for t in whole.logprobs]
    assert all(len(t.top) == 3 for t in streamed.logprobs)


def entries_of(client: httpx.Client, stream: bool, **body: Any) -> tuple[
        list[dict[str, Any]], str, dict[str, Any]]:
    """(delta entries or the part's, the text, the Response) of one request."""
    if not stream:
        response = create(client, **body)
        return plain(part_of(response)["logprobs"]), part_of(response)["text"], response
    events = stream_events(client, **body)
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    return ([lp for e in deltas for lp in e["logprobs"]], "".join(e["delta"] for e in deltas),
            events[-1]["response"])


@pytest.mark.slow  # 24 generations
@settings(max_examples=12, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(text=st.text(alphabet=st.sampled_from(MULTILINGUAL), min_size=1, max_size=10),
       max_tokens=st.integers(16, 24))
def test_a_stream_has_the_entries_of_the_whole_answer_for_any_script(
        local_url: str, text: str, max_tokens: int) -> None:  # noqa: F811
    """Streamed or not, the same entries, spelling the text, over replies in any script.

    ``max_output_tokens`` is 16 at least (OpenAI's minimum). The count is held to
    ``output_tokens`` by the named prompts above, not here: when the model writes a
    character byte by byte that the tokenizer has as one token (a reply opening with
    "文" to "Repeat exactly: 文aa中"), chat's rebuilding cannot tell which entry hides
    the dropped tokens, so both ways are short by the same number (14 of 16).
    """
    body = {"input": f"Repeat exactly: {text}", "include": LOGPROBS, "top_logprobs": 2,
            "max_output_tokens": max_tokens}
    with httpx.Client(base_url=local_url, timeout=httpx.Timeout(120, connect=5)) as client:
        streamed, streamed_text, response = entries_of(client, True, **body)
        whole, whole_text, _ = entries_of(client, False, **body)
    assert streamed_text == whole_text
    assert [e["token"] for e in streamed] == [e["token"] for e in whole]
    assert len(streamed) <= response["usage"]["output_tokens"] <= max_tokens
    assert_spells(spelled(streamed), streamed_text, response["status"])
