"""%%chat over the Responses API in-process (InteractiveShell), against the fake server:
every option's effect on the request the server received, threads sent whole or chained
with previous_response_id, the reasoning summary and part costs, --exact-count."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from fakeserver import Behaviour
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from openapi_schema import load_spec, validate
from shell_support import chat, fake_shell

import gptmagic
from gptmagic.notebook import apis
from gptmagic.notebook.session import DryRun, Reply

KEY = "sk-fake-responses-0123456789abcdef"


@pytest.fixture
def shell(fake_server, monkeypatch, tmp_path):
    with fake_shell(fake_server.url, monkeypatch, tmp_path, KEY) as sh:
        yield sh


def sent(fake_server, path="/v1/responses"):
    reqs = [r for r in fake_server.requests if r.path == path]
    assert reqs, f"nothing was sent to {path}: {[r.path for r in fake_server.requests]}"
    return reqs[-1].json


def magics(sh):
    return sh.magics_manager.registry["GptMagics"]


# -- the accepted values are the spec's -----------------------------------------------------


def _enum(schema):
    for branch in schema.get("anyOf", [schema]):
        if "enum" in branch:
            return tuple(branch["enum"])
    raise AssertionError(f"no enum in {schema}")


def test_the_options_accept_exactly_the_values_of_the_spec():
    schemas = load_spec()["components"]["schemas"]
    assert apis.REASONING_EFFORTS == _enum(schemas["ReasoningEffort"])
    assert apis.REASONING_SUMMARIES == _enum(schemas["Reasoning"]["properties"]["summary"])
    assert apis.VERBOSITIES == _enum(schemas["Verbosity"])
    assert apis.SERVICE_TIERS == _enum(schemas["ServiceTier"])


# -- one cell over the Responses API ------------------------------------------------------------


def test_responses_cell_sends_every_option_in_the_spec_shape(shell, fake_server):
    line = ("-p fake -m gpt-5-mini --api responses --reasoning-effort high "
            "--reasoning-summary detailed --verbosity low --service-tier flex "
            "--cache-key prefix-1 --max-tokens 50 -t 0.5 --top-p 0.9 --json --top-logprobs 2 "
            "--no-stream")
    r, _ = chat(shell, line, "system: Be brief.\nuser: hello there")
    body = sent(fake_server)
    validate(body, "CreateResponse")
    assert body == {
        "model": "gpt-5-mini",
        "input": [{"role": "user", "content": "hello there"}],
        "instructions": "Be brief.",
        "reasoning": {"effort": "high", "summary": "detailed"},
        "text": {"verbosity": "low", "format": {"type": "json_object"}},
        "service_tier": "flex",
        "prompt_cache_key": "prefix-1",
        "store": False,
        "max_output_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_logprobs": 2,
        "include": ["message.output_text.logprobs"],
    }
    assert isinstance(r, Reply) and r.result.kind == "response"
    assert "hello there" in r.text
    assert shell.user_ns["_chat"] is r and r.status == "completed"
    # The fake reasoning model summarises when asked, and bills its reasoning as output.
    assert r.reasoning and "hello there" in r.reasoning
    assert r.usage.reasoning_tokens > 0 and r.cost_parts["reasoning"].known
    assert r._repr_mimebundle_()[0]["text/markdown"].startswith("<details>")
    assert r.request["api"] == "responses"
    meta = r._repr_mimebundle_()[1]["gptmagic"]
    assert meta["request"]["api"] == "responses"
    assert meta["response"]["status"] == "completed"
    assert meta["response"]["json_valid"] == [False]  # --json read from text.format
    assert "the reply is not valid JSON" in r._repr_mimebundle_()[0]["text/markdown"]


def test_responses_streams_by_default(shell, fake_server):
    r, _ = chat(shell, "-p fake --api responses", "user: stream me")
    body = sent(fake_server)
    assert body["stream"] is True and "stream_options" not in body
    validate(body, "CreateResponse")
    assert "stream me" in r.text and r.usage.prompt_tokens > 0


@pytest.mark.parametrize("line,flag,words", [
    ("--reasoning-effort extreme", "--reasoning-effort", "none, minimal, low, medium, high"),
    ("--reasoning-summary short", "--reasoning-summary", "auto, concise, detailed"),
    ("--verbosity loud", "--verbosity", "low, medium, high"),
    ("--service-tier gold", "--service-tier", "auto, default, flex"),
    ("--api completions", "--api", "chat, responses"),
])
def test_a_bad_value_says_which_option_and_what_it_takes(shell, fake_server, line, flag, words):
    with pytest.raises(UsageError, match=f"{flag} must be one of {words}"):
        chat(shell, f"-p fake --api responses {line}", "user: hi")
    assert fake_server.requests == []


@pytest.mark.parametrize("line,flag", [("--stop END", "--stop"), ("--seed 3", "--seed"),
                                       ("-n 2", "-n"),
                                       ("--presence-penalty 1", "--presence-penalty")])
def test_chat_only_options_are_refused_on_responses(shell, fake_server, line, flag):
    with pytest.raises(UsageError, match=f"^{flag} has no equivalent in the Responses API "
                       r"\(model 'fake-model'\): .*, or send this cell with --api chat$"):
        chat(shell, f"-p fake --api responses {line}", "user: hi")
    assert fake_server.requests == []


# -- the same options on Chat Completions --------------------------------------------------------


def test_chat_maps_the_options_it_has(shell, fake_server):
    line = ("-p fake --api chat --reasoning-effort minimal --verbosity high --service-tier "
            "priority --cache-key k2 --store --no-stream")
    chat(shell, line, "user: hi")
    body = sent(fake_server, "/v1/chat/completions")
    validate(body, "CreateChatCompletionRequest")
    assert {k: body[k] for k in ("reasoning_effort", "verbosity", "service_tier",
                                 "prompt_cache_key", "store")} == {
        "reasoning_effort": "minimal", "verbosity": "high", "service_tier": "priority",
        "prompt_cache_key": "k2", "store": True}


def test_chat_refuses_a_reasoning_summary(shell, fake_server):
    with pytest.raises(UsageError, match="--reasoning-summary needs --api responses"):
        chat(shell, "-p fake --reasoning-summary auto", "user: hi")
    assert fake_server.requests == []


# -- choosing the endpoint: profile, model pattern, setting ------------------------------------


def test_the_endpoint_comes_from_the_profile_the_model_or_the_setting(shell, fake_server):
    gptmagic.add_profile("fresp", base_url=fake_server.url, default_model="fake-model",
                         api_key_env="FAKE_KEY", api="responses")
    chat(shell, "-p fresp --no-stream", "user: a")
    assert fake_server.requests[-1].path == "/v1/responses"
    chat(shell, "-p fresp --api chat --no-stream", "user: b")  # the cell wins
    assert fake_server.requests[-1].path == "/v1/chat/completions"
    m = magics(shell)
    m.model_api = {"reasoner-*": "responses"}
    chat(shell, "-p fake -m reasoner-1 --no-stream", "user: c")
    assert fake_server.requests[-1].path == "/v1/responses"
    chat(shell, "-p fake -m fake-model --no-stream", "user: d")
    assert fake_server.requests[-1].path == "/v1/chat/completions"
    with capture_output() as cap:
        shell.run_line_magic("gptmagic", "api responses")
    assert cap.stdout == ("%%chat now uses the Responses API (responses) by default (was chat), "
                          "unless a cell's --api, a model_api pattern or the profile's api says "
                          "otherwise; %gptmagic api chat switches back\n")
    chat(shell, "-p fake -m fake-model --no-stream", "user: e")
    assert fake_server.requests[-1].path == "/v1/responses"
    with capture_output() as cap:
        shell.run_line_magic("gptmagic", "api responses")
    assert cap.stdout == "%%chat already uses responses by default\n"
    with pytest.raises(UsageError, match="expected chat or responses"):
        shell.run_line_magic("gptmagic", "api completions")
    with pytest.raises(gptmagic.ConfigError, match="api 'completion' is not one of chat"):
        gptmagic.add_profile("bad", base_url=fake_server.url, api="completion")


# -- threads -------------------------------------------------------------------------------------


def test_a_thread_over_responses_sends_its_whole_history(shell, fake_server):
    chat(shell, "-p fake --api responses --no-stream", "system: Be brief.\nuser: one")
    first = sent(fake_server)
    assert first["store"] is False and "previous_response_id" not in first
    chat(shell, "-p fake --api responses --no-stream", "user: two")
    body = sent(fake_server)
    validate(body, "CreateResponse")
    assert body["instructions"] == "Be brief."
    assert [m["role"] for m in body["input"]] == ["user", "assistant", "user"]
    assert body["input"][0]["content"] == "one" and body["input"][2]["content"] == "two"
    assert "previous_response_id" not in body
    with capture_output() as cap:
        shell.run_line_magic("chat", "history --model gpt-4o")
    out = cap.outputs[0]
    assert "history (responses): each cell sends the whole conversation" in out.data["text/html"]


def test_a_stored_thread_chains_with_previous_response_id(shell, fake_server):
    m = magics(shell)
    m.cell_id = "a"
    r1, _ = chat(shell, "-p fake --api responses --store --no-stream",
                 "system: Be brief.\nuser: one")
    assert sent(fake_server)["store"] is True and r1.result.id
    m.cell_id = "b"
    r2, _ = chat(shell, "-p fake --api responses --store --no-stream", "user: two")
    body = sent(fake_server)
    validate(body, "CreateResponse")
    assert body["previous_response_id"] == r1.result.id
    assert body["input"] == [{"role": "user", "content": "two"}]
    assert body["instructions"] == "Be brief."  # instructions are not carried over
    assert r2.request["previous_response_id"] == r1.result.id
    with capture_output() as cap:
        shell.run_line_magic("chat", "history --model gpt-4o")
    page = cap.outputs[0].data["text/plain"]
    assert (f"chained: turn 2 is stored on the server (response {r2.result.id}, on fake at "
            f"{fake_server.url}") in page
    # Re-running the first cell replaces it: the second no longer follows from it, so a
    # stored cell after them sends the whole history, never a chain from an older answer.
    m.cell_id = "a"
    chat(shell, "-p fake --api responses --store --no-stream", "system: Be brief.\nuser: ONE")
    m.cell_id = "c"
    chat(shell, "-p fake --api responses --store --no-stream", "user: three")
    body = sent(fake_server)
    assert "previous_response_id" not in body
    assert [i["content"] for i in body["input"]][-1] == "three" and len(body["input"]) == 5
    # Without --store a cell sends the whole history, even after a stored turn.
    m.cell_id = "d"
    chat(shell, "-p fake --api responses --no-stream", "user: four")
    assert "previous_response_id" not in sent(fake_server)


@pytest.mark.parametrize("how", ["forgotten", "404"])
def test_a_broken_chain_says_so_and_how_to_fall_back(shell, fake_server, how):
    r1, _ = chat(shell, "-p fake --api responses --store --no-stream", "user: one")
    if how == "forgotten":  # the server no longer has it: a 400 naming the parameter
        fake_server.reset()
    else:
        fake_server.plan(Behaviour(status=404, body={"error": {
            "message": f"Previous response with id '{r1.result.id}' not found.",
            "type": "invalid_request_error", "param": "previous_response_id", "code": None}}))
    with pytest.raises(UsageError) as e:
        chat(shell, "-p fake --api responses --store --no-stream", "user: two")
    said = str(e.value)
    assert f"chained to stored response {r1.result.id}" in said
    assert "does not know" in said and "without --store to send the whole history" in said
    assert sent(fake_server)["previous_response_id"] == r1.result.id
    r3, _ = chat(shell, "-p fake --api responses --no-stream", "user: two")  # the fallback
    body = sent(fake_server)
    assert "previous_response_id" not in body and len(body["input"]) == 3 and r3.text


def test_a_thread_chains_only_to_the_provider_that_stored_its_last_turn(shell, fake_server,
                                                                        monkeypatch):
    from fakeserver import FakeServer

    with FakeServer().start() as other:
        gptmagic.add_profile("other", base_url=other.url, default_model="fake-model",
                             api_key_env="FAKE_KEY")
        m = magics(shell)
        m.cell_id = "a"
        r1, _ = chat(shell, "-p fake --api responses --store --no-stream --thread t",
                     "user: one")
        assert r1.result.id
        m.cell_id = "b"
        r2, _ = chat(shell, "-p other --api responses --store --no-stream --thread t",
                     "user: two")
        # The other server never saw r1's response: it gets the whole history.
        body = sent(other)
        assert "previous_response_id" not in body
        assert [i["content"] for i in body["input"]] == ["one", r1.text, "two"]
        assert "not chained: the last turn of thread 't' is stored on fake at" in r2.note
        assert f"this cell went to other at {other.url}, which never saw it" in r2.note
        assert "sent the whole history" in r2._repr_mimebundle_()[0]["text/plain"]
        with capture_output() as cap:
            shell.run_line_magic("chat", "history --thread t --model gpt-4o")
        page = cap.outputs[0].data["text/plain"]
        assert f"(response {r2.result.id}, on other at {other.url})" in page
        # Back on the server that stored the last turn, a --store cell chains again.
        m.cell_id = "c"
        chat(shell, "-p other --api responses --store --no-stream --thread t", "user: three")
        assert sent(other)["previous_response_id"] == r2.result.id
        assert sent(other)["input"] == [{"role": "user", "content": "three"}]
        assert len([q for q in fake_server.requests if q.path == "/v1/responses"]) == 1


# -- dry runs and counting -----------------------------------------------------------------------


def test_dry_run_shows_the_responses_request(shell, fake_server):
    r, _ = chat(shell, "-p fake --api responses --dry-run --reasoning-effort low "
                       "--max-tokens 30", "system: Be brief.\nuser: hi")
    assert isinstance(r, DryRun) and fake_server.requests == []
    validate(r.request, "CreateResponse")
    assert r.url.endswith("/v1/responses")
    assert r.request["input"] == [{"role": "user", "content": "hi"}]
    assert r.request["instructions"] == "Be brief."
    assert r.request["reasoning"] == {"effort": "low"} and r.request["max_output_tokens"] == 30
    assert r.request["stream"] is True and "stream_options" not in r.request
    text = r._repr_mimebundle_()[0]["text/plain"]
    assert "POST " in text and '"instructions": "Be brief."' in text
    assert "offline estimate" in text


@pytest.fixture
def openai_fake(fake_server, monkeypatch):
    """OpenAI's own API (kind openai) at the fake server's address."""
    monkeypatch.setenv("FAKE_OPENAI_KEY", KEY)
    gptmagic.add_profile("oai", kind="openai", base_url=fake_server.url,
                         api_key_env="FAKE_OPENAI_KEY", default_model="gpt-4o-mini")
    return fake_server


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_exact_count_asks_the_server(shell, openai_fake, api):
    r, _ = chat(shell, f"-p oai --api {api} --dry-run --exact-count",
                "system: Be brief.\nuser: count these words please")
    assert isinstance(r, DryRun)
    asked = [q for q in openai_fake.requests if q.path == "/v1/responses/input_tokens"]
    assert len(asked) == 1 and len(openai_fake.requests) == 1
    validate(asked[0].json, "TokenCountsBody")
    assert asked[0].json["model"] == "gpt-4o-mini"
    user = {"role": "user", "content": "count these words please"}
    if api == "responses":  # as the cell would send it: the system message as instructions
        assert asked[0].json["instructions"] == "Be brief." and asked[0].json["input"] == [user]
    else:  # chat's messages, every one an input item
        assert asked[0].json["input"] == [{"role": "system", "content": "Be brief."}, user]
    assert asked[0].headers["authorization"] == f"Bearer {KEY}"
    assert isinstance(r.exact_count, int) and r.exact_count > 0
    assert r.estimate.prompt_tokens == r.exact_count
    data, meta = r._repr_mimebundle_()
    assert f"Exact prompt tokens: {r.exact_count:,} (counted by the server" in data["text/plain"]
    assert meta["gptmagic"]["dry_run"]["exact_prompt_tokens"] == r.exact_count
    assert KEY not in json.dumps(meta) and all(KEY not in v for v in data.values())


def test_exact_count_sends_nothing_without_a_key(shell, openai_fake, monkeypatch):
    monkeypatch.delenv("FAKE_OPENAI_KEY")
    r, _ = chat(shell, "-p oai --api responses --dry-run --exact-count", "user: hi")
    assert openai_fake.requests == []
    assert r.exact_count is None
    assert "no API key" in r.exact_note and "offline estimate" in r.exact_note
    assert "offline estimate" in r._repr_mimebundle_()[0]["text/plain"]


def test_exact_count_is_not_asked_of_another_server(shell, fake_server):
    r, _ = chat(shell, "-p fake --api responses --dry-run --exact-count", "user: hi")
    assert fake_server.requests == [] and r.exact_count is None
    assert "is not OpenAI's API" in r.exact_note


def test_without_exact_count_the_count_is_an_estimate_and_nothing_is_sent(shell, openai_fake):
    r, _ = chat(shell, "-p oai --api responses --dry-run", "user: hi")
    assert openai_fake.requests == [] and r.exact_count is None
    assert "offline estimate" in r.exact_note and "--exact-count" in r.exact_note


# -- the reply view: reasoning summary and what the parts cost ---------------------------------


def _response_body(model: str) -> dict:
    """A reasoning model's Response, as OpenAI's spec shapes it."""
    return {
        "id": "resp_fake_reasoning", "object": "response", "created_at": 1_700_000_000,
        "status": "completed", "model": model, "error": None, "incomplete_details": None,
        "instructions": None, "metadata": {}, "temperature": 1.0, "top_p": 1.0,
        "tools": [], "tool_choice": "auto", "parallel_tool_calls": True,
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [
                {"type": "summary_text", "text": "Weighed <b>two</b> options."}]},
            {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "Pick the second.",
                          "annotations": [], "logprobs": []}]},
        ],
        "usage": {"input_tokens": 2048, "output_tokens": 1100, "total_tokens": 3148,
                  "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 1024}},
    }


# -- a cell and evaluate() send the same request ------------------------------------------------

SAME_SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
               "additionalProperties": False}
#: Chat parameters a cell can only give through its Session (no flag for them) and
#: evaluate() takes as they are.
SAME_PARAMS = {
    "max_tokens": 50, "logprobs": True, "top_logprobs": 2, "temperature": 0.5,
    "response_format": {"type": "json_schema",
                        "json_schema": {"name": "a", "schema": SAME_SCHEMA, "strict": True}},
    "tools": [{"type": "function",
               "function": {"name": "lookup", "description": "Look a word up.",
                            "parameters": SAME_SCHEMA}}],
    "tool_choice": {"type": "function", "function": {"name": "lookup"}},
}


def _evaluated(fake_server, params):
    from gptmagic.eval.runner import evaluate

    evaluate([{"q": "hello there"}], "system: Be brief.\nuser: {q}", ["fake:gpt-5-mini"],
             api="responses", params=params, progress=False)
    return sent(fake_server)


def test_a_cell_and_evaluate_send_the_same_responses_body(shell, fake_server, tmp_path,
                                                          monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    chat(shell, "-p fake -m gpt-5-mini --api responses --no-stream --no-history "
                "--max-tokens 50 --top-logprobs 2 -t 0.5 --json --reasoning-effort high "
                "--verbosity low --service-tier flex --cache-key k",
         "system: Be brief.\nuser: hello there")
    from_cell = sent(fake_server)
    from_eval = _evaluated(fake_server, {
        "max_tokens": 50, "top_logprobs": 2, "logprobs": True, "temperature": 0.5,
        "response_format": {"type": "json_object"}, "reasoning_effort": "high",
        "verbosity": "low", "service_tier": "flex", "prompt_cache_key": "k"})
    assert len(fake_server.requests) == 2
    validate(from_cell, "CreateResponse")
    assert from_cell == from_eval
    assert from_cell["reasoning"] == {"effort": "high"} and from_cell["max_output_tokens"] == 50


def test_a_sessions_call_and_evaluate_send_the_same_schema_and_tools(shell, fake_server,
                                                                    tmp_path, monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    # What %%chat hands its session for the cell "system: ...\nuser: ..." with these options.
    magics(shell).session.chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
        key="k1", models=["gpt-5-mini"], params=dict(SAME_PARAMS), thread=None,
        profile="fake", stream=False, api="responses",
        options={"reasoning_effort": "low"})
    from_cell = sent(fake_server)
    from_eval = _evaluated(fake_server, {**SAME_PARAMS, "reasoning_effort": "low"})
    assert len(fake_server.requests) == 2
    validate(from_cell, "CreateResponse")
    assert from_cell == from_eval
    assert from_cell["text"]["format"] == {"type": "json_schema", "name": "a",
                                           "schema": SAME_SCHEMA, "strict": True}
    assert from_cell["tools"][0]["name"] == "lookup"
    assert from_cell["tool_choice"] == {"type": "function", "name": "lookup"}


def test_the_reasoning_summary_shows_collapsed_and_reasoning_is_priced(shell, fake_server):
    import genai_prices

    body = _response_body("gpt-5-mini")
    validate(body, "Response")
    fake_server.plan(Behaviour(body=body))
    r, _ = chat(shell, "-p fake -m gpt-5-mini --api responses --reasoning-summary auto "
                       "--no-stream", "user: which?")
    assert r.reasoning == "Weighed <b>two</b> options." and r.text == "Pick the second."
    assert shell.user_ns["_chat"].reasoning == r.reasoning
    assert r.usage.reasoning_tokens == 1024 and r.usage.cached_tokens == 1024
    data, meta = r._repr_mimebundle_()
    md = data["text/markdown"]
    assert md.startswith("<details><summary>reasoning summary</summary>")
    assert "Weighed &lt;b&gt;two&lt;/b&gt; options." in md  # model output made inert
    assert md.index("</details>") < md.index("Pick the second.")
    plain = data["text/plain"]
    assert plain.startswith("── reasoning summary ──\nWeighed <b>two</b> options.")
    # Reasoning tokens at the output rate, cached input at the cached rate: genai-prices'.
    ref = genai_prices.calc_price(genai_prices.Usage(output_tokens=1024), "gpt-5-mini",
                                  provider_id="openai")
    reasoning = r.cost_parts["reasoning"]
    assert reasoning.total == ref.output_price
    cached = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1024, cache_read_tokens=1024), "gpt-5-mini",
        provider_id="openai")
    assert r.cost_parts["cached"].total == cached.input_price
    # The $ escaped and alone in its element: MathJax never pairs it with the next one.
    assert f"reasoning 1,024 tok <span>\\$</span>{str(reasoning)[1:]}" in md
    assert f"reasoning 1,024 tok {reasoning}" in plain
    assert f"cached input 1,024 tok {r.cost_parts['cached']}" in plain
    assert meta["gptmagic"]["response"]["reasoning"] == r.reasoning
    assert meta["gptmagic"]["response"]["usage"]["reasoning_tokens"] == 1024
    assert Decimal(meta["gptmagic"]["response"]["cost_usd"]) == r.cost.total


def test_a_reply_the_server_did_not_store_is_not_chained_from(shell, fake_server):
    def unstored(obj):
        if obj.get("object") == "response":
            obj["store"] = False
        return obj

    fake_server.plan(Behaviour(mangle=unstored))
    r1, _ = chat(shell, "-p fake --api responses --store --no-stream", "user: one")
    assert "the server did not store this reply" in r1.note
    assert "did not store" in r1._repr_mimebundle_()[0]["text/markdown"]
    chat(shell, "-p fake --api responses --store --no-stream", "user: two")
    body = sent(fake_server)
    assert "previous_response_id" not in body and len(body["input"]) == 3


# -- the embedded model over the Responses API ---------------------------------------------------


@pytest.mark.engine
def test_the_embedded_model_answers_a_responses_cell(shell, monkeypatch):
    from gptmagic.client.client import Client

    try:
        r, cap = chat(shell, "-m local --api responses --max-tokens 8 -t 0 --top-logprobs 2",
                      "system: Be brief.\nuser: Say hello.")
        assert r.result.kind == "response" and r.text and r.status in ("completed", "incomplete")
        assert r.usage.completion_tokens <= 8 and r.cost.total == 0
        assert len(r.logprobs[0].top) == 2
        assert r.text.split()[0] in cap.stdout  # streamed to the terminal as it came
        r2, _ = chat(shell, "-m local --api responses --max-tokens 4 -t 0", "user: Again.")
        assert r2.text and r2.usage.prompt_tokens > r.usage.prompt_tokens  # history sent
        # The engine keeps nothing (its Response says store: false): no chain is tried.
        r3, _ = chat(shell, "-m local --api responses --store --max-tokens 4 -t 0", "user: Go.")
        assert "did not store" in r3.note
        # --exact-count never asks the engine's server: its own count is exact already.

        async def refuse(*a, **k):
            raise AssertionError("input_tokens was called for the embedded model")

        monkeypatch.setattr(Client, "input_tokens", refuse)
        d, _ = chat(shell, "-m local --api responses --dry-run --exact-count", "user: Hi.")
        assert d.exact_count is None and "engine's own" in d.exact_note
        assert d.request["input"][-1] == {"role": "user", "content": "Hi."}
        assert "Hi." in d.engine_prompt
    finally:
        gptmagic.shutdown()


def test_tokens_magic_asks_for_the_exact_count_only_when_it_can(shell, openai_fake,
                                                                  monkeypatch):
    with capture_output():
        counter = shell.run_cell_magic("tokens", "-m oai:gpt-4o-mini --exact-count",
                                       "system: Be brief.\nuser: count these words")
    said = f"exact prompt tokens: {counter.exact_count:,} (counted by the server"
    assert said in counter.data["note"]  # the widget's state: its JS, HTML and text show it
    assert said in counter.to_text() and said in counter.to_html()
    asked = [q.json for q in openai_fake.requests]
    assert [q.path for q in openai_fake.requests] == ["/v1/responses/input_tokens"]
    validate(asked[0], "TokenCountsBody")
    assert asked[0]["instructions"] == "Be brief."
    assert isinstance(counter.exact_count, int) and counter.exact_count > 0
    with capture_output():  # without --exact-count: the estimate alone, nothing sent
        plain = shell.run_cell_magic("tokens", "-m oai:gpt-4o-mini", "user: hi")
    assert plain.exact_count is None and len(openai_fake.requests) == 1
    monkeypatch.delenv("FAKE_OPENAI_KEY")
    with capture_output():
        keyless = shell.run_cell_magic("tokens", "-m oai:gpt-4o-mini --exact-count", "user: hi")
    assert keyless.exact_count is None and len(openai_fake.requests) == 1
    assert "no API key" in keyless.to_text()
    with pytest.raises(UsageError, match="use %%tokens"):
        shell.run_line_magic("tokens", "--exact-count")


def test_exact_count_goes_with_a_dry_run(shell, openai_fake):
    with pytest.raises(UsageError, match="--exact-count goes with --dry-run"):
        chat(shell, "-p oai --api responses --exact-count", "user: hi")
    assert openai_fake.requests == []


def test_in_a_terminal_the_reasoning_summary_comes_with_the_footer(shell, fake_server):
    r, cap = chat(shell, "-p fake -m gpt-5-mini --api responses --reasoning-summary concise",
                  "user: think first")
    assert "think first" in cap.stdout  # the reply streamed as text
    # While it reasoned, one line said so (the summary comes with the footer).
    assert cap.stdout.startswith("(reasoning… gpt-5-mini)\n")
    assert cap.stdout.count("reasoning…") == 1
    plain = r._repr_mimebundle_()[0]["text/plain"]
    assert plain.startswith(f"── reasoning summary ──\n{r.reasoning}\n── finish: stop")
    assert f"reasoning {r.usage.reasoning_tokens:,} tok $" in plain


def test_in_a_notebook_a_responses_dry_run_counts_instructions_and_input(shell, fake_server,
                                                                        monkeypatch):
    monkeypatch.setattr(shell, "kernel", object(), raising=False)  # a notebook
    r, _ = chat(shell, "-p fake -m gpt-4o --api responses --dry-run --max-tokens 40",
                "system: Be brief.\nuser: hi")
    rows = r.counter.data["rows"]
    assert [row[0] for row in rows] == ["system", "user"]
    assert r.counter.max_tokens == 40 and fake_server.requests == []


def test_a_responses_dry_run_calls_its_count_an_estimate_even_for_a_verified_model(
        shell, openai_fake, monkeypatch):
    r, _ = chat(shell, "-p oai -m gpt-4o --api responses --dry-run", "user: hi")
    text, meta = r._repr_mimebundle_()
    assert "prompt tokens (approximate, o200k_base): the Responses API's prompt overhead is " \
           "not published" in text["text/plain"]
    assert "(exact," not in text["text/plain"] and meta["gptmagic"]["dry_run"]["exact"] is False
    # The same model over chat keeps its verified count.
    chat_run, _ = chat(shell, "-p oai -m gpt-4o --api chat --dry-run", "user: hi")
    assert chat_run.count.exact is True
    # In a notebook the counter under the dry run says so too.
    monkeypatch.setattr(shell, "kernel", object(), raising=False)
    r, _ = chat(shell, "-p oai -m gpt-4o --api responses --dry-run", "user: hi")
    assert r.counter.data["exact"] is False
    assert "Responses API's prompt overhead is not published" in r.counter.data["note"]
    # A model whose chat format is not verified either: one reason, said once. Before:
    # "chat overhead rule verified for gpt-3.5/gpt-4/gpt-4o; estimated here; an estimate
    # (the Responses API's prompt overhead ...)".
    r, _ = chat(shell, "-p oai -m gpt-5-mini --api responses --dry-run", "user: hi")
    assert r.counter.data["note"] == ("the Responses API's prompt overhead is not published, "
                                      "so it is counted in chat's format")
    assert openai_fake.requests == []


def test_a_chained_dry_run_says_the_chained_turns_are_not_counted_and_prices_the_exact_count(
        shell, openai_fake, monkeypatch):
    monkeypatch.setattr(shell, "kernel", object(), raising=False)  # a notebook
    m = magics(shell)
    m.cell_id = "a"
    r1, _ = chat(shell, "-p oai -m gpt-5-mini --api responses --store --no-stream",
                 "user: tell me a story about a fox and a crow in the woods")
    m.cell_id = "b"
    r, _ = chat(shell, "-p oai -m gpt-5-mini --api responses --store --dry-run",
                "user: and then?")
    assert r.request["previous_response_id"] == r1.result.id
    # Counted as sent, the new input alone, and said plainly.
    assert [row.role for row in r.count.messages] == ["user"]
    assert f"chained on stored response {r1.result.id}" in r.note
    assert "they are not in the count or the cost estimate" in r.note
    assert "--exact-count asks OpenAI's server for the whole prompt, and prices it" in r.note
    assert "not counting the chained turns the server holds" in r.counter.data["note"]
    r, _ = chat(shell, "-p oai -m gpt-5-mini --api responses --store --dry-run --exact-count",
                "user: and then?")
    plain = r._repr_mimebundle_()[0]["text/plain"]
    assert f"Exact prompt tokens: {r.exact_count:,} (counted by the server" in plain
    assert r.estimate.prompt_tokens == r.exact_count
    assert f"Cost estimate on the exact count: expected {r.estimate.expected}" in plain
    assert "the server's exact count includes them" in plain
    asked = [q for q in openai_fake.requests if q.path == "/v1/responses/input_tokens"]
    assert asked[-1].json["previous_response_id"] == r1.result.id


def test_several_models_answer_over_responses_side_by_side(shell, fake_server):
    r, _ = chat(shell, "-p fake -m fake-model,gpt-5-mini --api responses --reasoning-effort "
                       "low", "user: both")
    paths = sorted((q.path, q.json["model"]) for q in fake_server.requests)
    assert paths == [("/v1/responses", "fake-model"), ("/v1/responses", "gpt-5-mini")]
    # One reasoning option for both: the model that does not reason refuses it, in its column.
    assert "reasoning.effort" in r.results["fake-model"]
    assert r.results["gpt-5-mini"].kind == "response" and r.request["api"] == "responses"


def test_side_by_side_shows_each_reasoning_summary_and_what_reasoning_cost(shell, fake_server):
    r, _ = chat(shell, "-p fake -m fake-model,gpt-5-mini --api responses "
                       "--reasoning-summary auto", "user: both")
    reasoned = r.results["gpt-5-mini"]
    assert reasoned.reasoning and reasoned.usage.reasoning_tokens
    data, _ = r._repr_mimebundle_()
    n = reasoned.usage.reasoning_tokens
    for mime in ("text/plain", "text/markdown", "text/html"):
        assert "Reasoning about: both" in data[mime], mime
        assert f"reasoning {n:,} tok " in data[mime], mime  # and its cost ($ marked up apiece)
    assert f"reasoning {n:,} tok $0.0" in data["text/plain"]
    assert f"reasoning {n:,} tok <span>\\$</span>0.0" in data["text/markdown"]
    assert "<details><summary>reasoning summary</summary>" in data["text/markdown"]
    # The model that refused the summary shows none, and no reasoning cost.
    plain_other = data["text/plain"].split("== gpt-5-mini ==")[0]
    assert "reasoning summary" not in plain_other and " tok $" not in plain_other


def test_the_summary_line_says_when_the_responses_api_answered(shell, fake_server):
    r, _ = chat(shell, "-p fake --api responses --no-stream", "user: hi")
    assert " · fake-model · responses" in r._repr_mimebundle_()[0]["text/plain"]
    r, _ = chat(shell, "-p fake --api chat --no-stream", "user: hi")
    plain = r._repr_mimebundle_()[0]["text/plain"]
    assert "fake-model" in plain and "· responses" not in plain


def test_a_config_file_profile_sets_the_endpoint(shell, fake_server, monkeypatch, tmp_path):
    conf = tmp_path / "config.toml"
    conf.write_text(f'[profiles.filed]\nbase_url = "{fake_server.url}"\n'
                    'default_model = "fake-model"\napi = "responses"\n', encoding="utf-8")
    monkeypatch.setenv("GPTMAGIC_CONFIG", str(conf))
    chat(shell, "-p filed --no-stream", "user: from the file")
    assert fake_server.requests[-1].path == "/v1/responses"
    conf.write_text(f'[profiles.filed]\nbase_url = "{fake_server.url}"\napi = "respones"\n',
                    encoding="utf-8")
    with pytest.raises(UsageError, match=r"config.toml: profile 'filed': api 'respones' is "
                                         r"not one of chat, responses"):
        chat(shell, "-p filed --no-stream", "user: typo")
    assert len(fake_server.requests) == 1


@pytest.mark.engine
@pytest.mark.parametrize("api", ["responses", "chat"])
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_an_embedded_reply_keeps_an_entry_per_token(shell, api, stream):
    """A tester's cell: over Responses, streamed, the reply kept 5 entries of 30 (the
    engine's stream lost them from the first non-ASCII token on); every way keeps 30."""
    line = (f"-m local --api {api} --logprobs --top-logprobs 3 --max-tokens 30 "
            f"--temperature 0{'' if stream else ' --no-stream'}")
    try:
        r, _ = chat(shell, line, "user: The capital of France is")
        assert not r.text.isascii()  # the reply has a multi-byte character
        assert len(r.logprobs) == r.usage.completion_tokens == 30
        assert all(len(t.top) == 3 for t in r.logprobs)
        assert shell.user_ns["_chat"] is r  # what the tester looked at
    finally:
        gptmagic.shutdown()


# -- what a new user met in JupyterLab -------------------------------------------------------


def test_history_says_a_stale_stored_thread_sends_its_whole_history(shell, fake_server):
    m = magics(shell)
    line = "-m fake:fake-model --api responses --store --no-stream --thread st"
    m.cell_id = "a"
    chat(shell, line, "user: one")
    m.cell_id = "b"
    chat(shell, line, "user: two")
    m.cell_id = "a"
    chat(shell, line, "user: ONE")  # turn 2 now answered the older turn 1
    with capture_output() as cap:
        shell.run_line_magic("chat", "history --thread st --model gpt-4o")
    page = cap.outputs[0].data["text/plain"]
    assert "chained:" not in page
    assert "turn 2 answered an older version" in page
    assert "the next cell sends the whole history, --store or not" in page
    m.cell_id = "c"
    chat(shell, line, "user: three")  # and so it does
    body = sent(fake_server)
    assert "previous_response_id" not in body and len(body["input"]) == 5


def test_a_chained_cell_repeating_the_system_line_sends_it_once(shell, fake_server):
    m = magics(shell)
    line = "-m fake:fake-model --api responses --store --no-stream --thread st"
    m.cell_id = "a"
    r1, _ = chat(shell, line, "system: Be brief.\nuser: one")
    m.cell_id = "b"
    chat(shell, line, "system: Be brief.\nuser: two")
    body = sent(fake_server)
    validate(body, "CreateResponse")
    assert body["previous_response_id"] == r1.result.id
    assert body["instructions"] == "Be brief."
    assert body["input"] == [{"role": "user", "content": "two"}]
    m.cell_id = "c"
    r, _ = chat(shell, line + " --dry-run", "system: Be brief.\nuser: three")
    assert [row.role for row in r.count.messages] == ["system", "user"]  # counted once


def test_refused_and_dry_run_cells_leave_no_thread(shell, fake_server):
    with pytest.raises(UsageError):
        chat(shell, "-p fake --api responses --seed 1 --thread refused", "user: hi")
    chat(shell, "-p fake --api responses --dry-run --thread dry", "user: hi")
    chat(shell, "-p fake --api responses --no-stream --thread kept", "user: hi")
    with capture_output() as cap:
        shell.run_line_magic("chat", "threads")
    assert "refused" not in cap.stdout and "dry" not in cap.stdout
    assert "kept: 1 turn(s)" in cap.stdout


def test_an_empty_reply_is_not_added_to_the_thread_and_says_why(shell, fake_server):
    r, _ = chat(shell, "-m fake:gpt-5-mini --api responses --no-stream --max-tokens 4 "
                       "--thread st", "user: think hard")
    assert r.text == "" and r.result.status == "incomplete"
    said = ("the reply is empty, so nothing was added to thread 'st': it stopped at the "
            "token limit (reasoning used them all); raise --max-tokens")
    assert said in r.note and said in r._repr_mimebundle_()[0]["text/plain"]
    assert "st" not in magics(shell).session.threads.names()
    r, _ = chat(shell, "-m fake:gpt-5-mini --api responses --no-stream --thread st",
                "user: think hard")
    assert r.text and len(magics(shell).session.threads.get("st").turns) == 1


def test_not_chained_to_another_profile_on_the_same_url_says_they_differ(shell, fake_server):
    gptmagic.add_profile("oai", base_url=fake_server.url, default_model="fake-model",
                         api_key_env="FAKE_KEY")
    chat(shell, "-p fake --api responses --store --no-stream --thread S", "user: one")
    r, _ = chat(shell, "-p oai --api responses --store --no-stream --thread S", "user: two")
    assert "previous_response_id" not in sent(fake_server)
    assert (f"not chained: the last turn of thread 'S' is stored on fake at {fake_server.url}, "
            "and this cell went to profile oai, a different profile at the same URL") in r.note
    assert "'S''s" not in r.note


def test_a_refusal_names_the_setting_that_chose_the_endpoint(shell, fake_server):
    shell.run_line_magic("gptmagic", "api responses")
    magics(shell).model_api = {"gpt-5*": "chat"}
    with pytest.raises(UsageError) as e:
        chat(shell, "-m fake:gpt-5-mini --reasoning-summary auto", "user: hi")
    assert str(e.value) == (
        "--reasoning-summary needs --api responses: Chat Completions returns no reasoning "
        "summary; this cell goes to chat by the model_api pattern 'gpt-5*' for 'gpt-5-mini' "
        "(%config GptMagics.model_api), over %gptmagic api responses")
    gptmagic.add_profile("fchat", base_url=fake_server.url, api_key_env="FAKE_KEY", api="chat")
    with pytest.raises(UsageError, match=r"goes to chat by profile 'fchat' \(its api = 'chat'\), "
                                         "over %gptmagic api responses$"):
        chat(shell, "-p fchat -m fake-model --reasoning-summary auto", "user: hi")
    shell.run_line_magic("gptmagic", "api chat")
    with pytest.raises(UsageError, match=r"goes to chat by %gptmagic api chat \(GptMagics.api\)$"):
        chat(shell, "-p fake --reasoning-summary auto", "user: hi")
    with pytest.raises(UsageError, match=r"goes to chat by the cell's --api chat$"):
        chat(shell, "-p fake --api chat --reasoning-summary auto", "user: hi")
    assert fake_server.requests == []


def test_gptmagic_api_alone_shows_the_default_and_where_it_comes_from(shell, fake_server):
    def shown():
        with capture_output() as cap:
            shell.run_line_magic("gptmagic", "api")
        return cap.stdout

    assert shown() == ("%%chat's default endpoint: chat (built in: GptMagics.api is not set), "
                       "unless a cell's --api, a model_api pattern or the profile's api says "
                       "otherwise; %gptmagic api chat|responses changes it\n")
    shell.run_line_magic("gptmagic", "api responses")
    magics(shell).model_api = {"gpt-5*": "chat"}
    assert shown().startswith("%%chat's default endpoint: responses (set by %gptmagic api), "
                              "unless a cell's --api, a model_api pattern ({'gpt-5*': 'chat'})")
    shell.run_line_magic("config", "GptMagics.api = 'chat'")
    assert shown().startswith("%%chat's default endpoint: chat (from %config GptMagics.api")
