"""Two embedded models behind one engine manager: SmolLM2 (``local``) and Gemma 3 270M.

Against the real engine: one child process serves both, each model's engine
started on its first request; counts, windows, ids and the install hint are
each model's own.
"""

from __future__ import annotations

import json

import httpx
import pytest
from conftest_local import local_client, local_engine, local_url  # noqa: F401
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from openapi_schema import validate
from shell_support import new_shell

import gptmagic
from gptmagic import Client
from gptmagic.catalog.embedded import GEMMA, SMOLLM2
from gptmagic.catalog.models import model_info
from gptmagic.errors import ConfigError
from gptmagic.local.engine import LocalEngine

GEMMA_NAME = "local:gemma-3-270m"
CITY = {"type": "object", "properties": {"city": {"type": "string"},
                                         "country": {"type": "string"}},
        "required": ["city", "country"], "additionalProperties": False}


@pytest.fixture
async def client(local_engine):  # noqa: F811
    async with Client("local", engine=local_engine) as c:
        yield c


async def test_both_models_answer_in_one_session_from_one_process(client, local_engine):  # noqa: F811
    pid = local_engine.pid
    smol = await client.chat("What is the capital of France?", model="local", max_tokens=8,
                             temperature=0)
    gemma = await client.chat("What is the capital of France?", model=GEMMA_NAME,
                              max_tokens=8, temperature=0)
    again = await client.chat("Hi", model="local", max_tokens=2, temperature=0)
    assert (smol.model, gemma.model, again.model) == (SMOLLM2.id, GEMMA.id, SMOLLM2.id)
    assert smol.text and gemma.text
    assert local_engine.pid == pid  # the same child serves both: no second process
    assert gemma.timings.engine and gemma.timings.engine["predicted_n"] == 8


def test_models_lists_both_with_their_windows_and_kinds(local_client):  # noqa: F811
    body = local_client.get("/models").json()
    validate(body, "ListModelsResponse")
    by_id = {m["id"]: m for m in body["data"]}
    assert list(by_id) == [SMOLLM2.id, GEMMA.id]
    assert (by_id[SMOLLM2.id]["context_window"], by_id[SMOLLM2.id]["kind"]) == (8192, "instruct")
    assert (by_id[GEMMA.id]["context_window"], by_id[GEMMA.id]["kind"]) == (32768, "base")
    assert "Gemma terms of use" in by_id[GEMMA.id]["licence"]
    assert model_info(GEMMA_NAME.split(":")[1]).context_window == 32768


async def test_counts_use_each_models_tokenizer_and_match_usage(client):
    text = "Tokenizers differ: antidisestablishmentarianism, naïve café, 12345."
    smol = await client.count_tokens(text, "local")
    gemma = await client.count_tokens(text, GEMMA_NAME)
    assert smol.encoding == "smollm2 (engine)" and gemma.encoding == "gemma (engine)"
    assert smol.exact and gemma.exact and smol.total != gemma.total
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of France?"}]
    for name in ("local", GEMMA_NAME):
        counted = await client.count_tokens(msgs, name)
        reply = await client.chat(msgs, model=name, max_tokens=1, temperature=0)
        assert reply.usage is not None and counted.total == reply.usage.prompt_tokens, name
    gemma_msgs = await client.count_tokens(msgs, GEMMA_NAME)
    assert gemma_msgs.messages == () and "folds the system message" in gemma_msgs.note


def test_gemma_chat_completion_logprobs_and_json_schema(local_client):  # noqa: F811
    chat = local_client.post("/chat/completions", json={
        "model": "gemma-3-270m", "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 6, "temperature": 0, "logprobs": True, "top_logprobs": 3}).json()
    validate(chat, "CreateChatCompletionResponse")
    assert chat["model"] == "gemma-3-270m"
    entries = chat["choices"][0]["logprobs"]["content"]
    assert len(entries) == chat["usage"]["completion_tokens"] == 6
    assert all(len(e["top_logprobs"]) == 3 for e in entries)
    done = local_client.post("/completions", json={
        "model": "gemma-3-270m", "prompt": "The capital of France is", "max_tokens": 5,
        "temperature": 0, "logprobs": 2}).json()
    validate(done, "CreateCompletionResponse")
    assert done["model"] == "gemma-3-270m"
    assert "".join(done["choices"][0]["logprobs"]["tokens"]) == done["choices"][0]["text"]
    shaped = local_client.post("/chat/completions", json={
        "model": "gemma-3-270m", "temperature": 0, "max_tokens": 60,
        "messages": [{"role": "user", "content": "Name a city and its country."}],
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "c", "strict": True, "schema": CITY}}})
    reply = json.loads(shaped.json()["choices"][0]["message"]["content"])
    assert set(reply) == {"city", "country"} and all(isinstance(v, str) for v in reply.values())


def test_gemma_chat_uses_the_gemma_turn_format_and_streams(local_client):  # noqa: F811
    counted = local_client.post("/tokenize", json={
        "model": "gemma-3-270m", "messages": [{"role": "user", "content": "Hi"}]}).json()
    assert counted["model"] == "gemma-3-270m"
    assert counted["prompt"] == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    with local_client.stream("POST", "/chat/completions", json={
            "model": "gemma-3-270m", "stream": True, "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": "Hi"}]}) as resp:
        chunks = [json.loads(line[6:]) for line in resp.iter_lines()
                  if line.startswith("data: {")]
    assert chunks and {c["model"] for c in chunks} == {"gemma-3-270m"}


async def test_the_responses_api_on_gemma(client):
    r = await client.respond("Say hi", model=GEMMA_NAME, max_output_tokens=5)
    assert r.model == GEMMA.id and r.usage is not None and r.usage.completion_tokens == 5


async def test_a_missing_gemma_is_a_config_error_with_the_install_hint():
    engine = LocalEngine(gemma_package="gptmagic_no_such_weights")
    async with Client("local", engine=engine) as c:
        with pytest.raises(ConfigError) as info:
            await c.chat("Hi", model=GEMMA_NAME, max_tokens=1)
        assert not engine.running  # said before anything started
        for needed in ("gptmagic[local-gemma]", "Gemma terms of use", "gptmagic_no_such_weights"):
            assert needed in str(info.value)
        try:  # the child, told the same, lists SmolLM2 alone and refuses Gemma with the hint
            await c.chat("Hi", model="local", max_tokens=1)
            assert engine.url is not None
            with httpx.Client(base_url=engine.url, timeout=60) as http:
                assert [m["id"] for m in http.get("/models").json()["data"]] == [SMOLLM2.id]
                refused = http.post("/completions", json={"model": "gemma-3-270m",
                                                          "prompt": "x", "max_tokens": 1})
            assert refused.status_code == 404
            assert "gptmagic[local-gemma]" in refused.json()["error"]["message"]
            with pytest.raises(ConfigError, match="local-gemma"):
                await c.chat("Hi", model=GEMMA_NAME, max_tokens=1)
        finally:
            engine.stop()


def test_gptmagic_models_lists_both_with_kind_and_terms(capsys):
    from gptmagic.cli import main

    try:
        assert main(["models", "--provider", "local"]) == 0
    finally:
        gptmagic.shutdown()
    out = capsys.readouterr().out
    assert "2 models listed by local" in out
    rows = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert {SMOLLM2.id, GEMMA.id} <= rows
    assert "local:gemma-3-270m (gemma-3-270m): base model; Gemma terms of use apply" in out
    assert "local (smollm2-135m-instruct): instruct model; Apache-2.0" in out


def test_gemma_control_token_text_is_counted_as_sent(local_client):  # noqa: F811
    """Text that spells a Gemma control token goes as text, after the <bos> the engine adds."""
    msgs = [{"role": "user", "content": "What does <end_of_turn> mean?"}]
    counted = local_client.post("/tokenize", json={"model": "gemma-3-270m",
                                                   "messages": msgs}).json()
    reply = local_client.post("/chat/completions", json={
        "model": "gemma-3-270m", "messages": msgs, "max_tokens": 1, "temperature": 0}).json()
    assert counted["tokens"][0] == 2  # <bos>
    assert counted["count"] == reply["usage"]["prompt_tokens"]


#: A prompt Gemma 3 270M (a base model) answers in a loop that never ends its turn.
LOOPS = "What is the capital of France? Answer in one sentence."


def test_gemma_without_a_limit_ends_at_its_default_cap(local_client):  # noqa: F811
    """llama.cpp's own default is unlimited: in a notebook this streamed 67,000
    characters for 10 minutes, to the deadline. Now each model has a cap, listed."""
    chat = local_client.post("/chat/completions", json={
        "model": "gemma-3-270m", "temperature": 0,
        "messages": [{"role": "user", "content": LOOPS}]}).json()
    assert chat["choices"][0]["finish_reason"] == "length"
    assert chat["usage"]["completion_tokens"] == GEMMA.default_max_tokens == 256
    listed = {m["id"]: m["default_max_tokens"] for m in local_client.get("/models").json()["data"]}
    assert listed == {SMOLLM2.id: 1024, GEMMA.id: 256}


async def test_responses_without_a_limit_end_incomplete_at_the_cap(client):
    r = await client.respond(LOOPS, model=GEMMA_NAME, temperature=0)
    assert r.status == "incomplete" and r.finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 256


async def test_smollm2_without_a_limit_still_ends_a_short_answer_itself(client):
    # (Not the capital of France: unprompted, SmolLM2 answers that in French, in a loop.)
    reply = await client.chat("What is 2+2?", model="local", temperature=0)
    assert reply.finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens < SMOLLM2.default_max_tokens


def test_the_magic_says_which_cap_cut_the_reply(local_url, tmp_path, monkeypatch):  # noqa: F811
    """The footer a user reads under the cut reply: not "the token limit" (they set none)
    but the engine's default for this model, and how to change it."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    gptmagic.add_profile("engine-cap", kind="compatible", base_url=local_url)
    sh = new_shell()
    sh.run_line_magic("load_ext", "gptmagic")
    try:
        with capture_output():
            r = sh.run_cell_magic("chat", "-p engine-cap -m gemma-3-270m -t 0 --no-history",
                                  f"user: {LOOPS}")
        assert r.finish_reason == "length" and r.result.usage.completion_tokens == 256
        footer = r._repr_mimebundle_()[0]["text/plain"].splitlines()
        assert any("finish: length — hit the embedded base model gemma-3-270m's default cap "
                   "of 256 tokens; pass --max-tokens to change it" in line for line in footer)
    finally:
        sh.run_line_magic("unload_ext", "gptmagic")
        InteractiveShell.clear_instance()
        gptmagic.shutdown()
