"""Tests against the real embedded engine: the adapter's HTTP API and the child's lifecycle.

One engine serves the session (``conftest_local``). Deterministic text uses
``temperature=0``; exact token counts use the engine's ``ignore_eos`` (an
unknown parameter, so it also checks pass-through).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest
from conftest_local import local_client, local_engine, local_url  # noqa: F401
from openapi_schema import validate

from gptmagic.errors import ConfigError
from gptmagic.local import engine as engine_mod
from gptmagic.local.engine import LocalEngine
from gptmagic.local.model import model_path

pytestmark = pytest.mark.engine

PROMPT = "The capital of France is"
CHAT = [{"role": "user", "content": "Write a long story about a cat."}]


def chat(client: httpx.Client, **kw: Any) -> httpx.Response:
    return client.post("/chat/completions", json={"model": "local", "messages": CHAT, **kw})


def complete(client: httpx.Client, **kw: Any) -> httpx.Response:
    return client.post("/completions", json={"model": "local", "prompt": PROMPT, **kw})


def events(client: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON events of an SSE stream; asserts it ends with ``[DONE]``."""
    out: list[dict[str, Any]] = []
    datas: list[str] = []
    with client.stream("POST", path, json={"model": "local", **body, "stream": True}) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: "):
                datas.append(line[6:])
    assert datas and datas[-1] == "[DONE]"
    for data in datas[:-1]:
        out.append(json.loads(data))
    return out


def validate_legacy_chunk(chunk: dict[str, Any]) -> None:
    """Validate a legacy stream chunk against ``CreateCompletionResponse``.

    The spec shares that object between streamed and whole responses but only
    allows a string ``finish_reason``; OpenAI itself streams ``null`` until the
    last chunk, so nulls are filled in before validating.
    """
    chunk = json.loads(json.dumps(chunk))
    for choice in chunk.get("choices", []):
        if choice.get("finish_reason") is None:
            choice["finish_reason"] = "stop"
    validate(chunk, "CreateCompletionResponse")


def assert_error(resp: httpx.Response, status: int, param: str | None,
                 code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["param"] == param and err["code"] == code and err["message"]
    return err


# --- start-up and plain endpoints ---------------------------------------------------------------


def test_startup_time_is_recorded(local_engine: LocalEngine) -> None:  # noqa: F811
    assert local_engine.running and local_engine.url.endswith("/v1")
    # ~0.8 s measured on an idle 2-core machine; generous for a busy one.
    # How long it takes is benchmarks/bench_local.py's to measure, not a test's to assert.
    assert local_engine.startup_seconds is not None and local_engine.startup_seconds > 0


def test_models_lists_both_installed_models(local_client: httpx.Client) -> None:  # noqa: F811
    body = local_client.get("/models").json()
    assert [m["id"] for m in body["data"]] == ["smollm2-135m-instruct", "gemma-3-270m"]
    assert [m["kind"] for m in body["data"]] == ["instruct", "base"]
    model = body["data"][0]
    assert body["object"] == "list" and model["object"] == "model"
    assert model["owned_by"] == "gptmagic-local" and isinstance(model["created"], int)
    validate(body, "ListModelsResponse")


def test_health_and_routes_without_v1(local_url: str) -> None:  # noqa: F811
    root = local_url.removesuffix("/v1")
    with httpx.Client(base_url=root, timeout=60) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/models").status_code == 200
        resp = client.post("/chat/completions", json={"messages": CHAT, "max_tokens": 2})
        assert resp.status_code == 200
        resp = client.post("/completions", json={"prompt": PROMPT, "max_tokens": 2})
        assert resp.status_code == 200


def test_unknown_url_and_bad_json(local_client: httpx.Client) -> None:  # noqa: F811
    assert_error(local_client.post("/nowhere", json={}), 404, None)
    resp = local_client.post("/chat/completions", content=b"{not json",
                             headers={"content-type": "application/json"})
    assert_error(resp, 400, None)


# --- chat ---------------------------------------------------------------------------------------


def test_chat_non_stream_valid_and_length(local_client: httpx.Client) -> None:  # noqa: F811
    body = chat(local_client, max_tokens=3, ignore_eos=True).json()
    validate(body, "CreateChatCompletionResponse")
    choice = body["choices"][0]
    assert body["model"] == "smollm2-135m-instruct" and body["id"].startswith("chatcmpl-")
    assert choice["finish_reason"] == "length" and choice["message"]["refusal"] is None
    assert choice["logprobs"] is None and body["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("kw, k", [({"logprobs": True}, 0),
                                   ({"logprobs": True, "top_logprobs": 3}, 3)])
def test_chat_logprobs(local_client: httpx.Client, kw: dict[str, Any], k: int) -> None:  # noqa: F811
    body = chat(local_client, max_tokens=5, temperature=0, **kw).json()
    validate(body, "CreateChatCompletionResponse")
    content = body["choices"][0]["logprobs"]["content"]
    assert content and all(len(t["top_logprobs"]) == k for t in content)
    assert "".join(t["token"] for t in content) == body["choices"][0]["message"]["content"]


def test_chat_stream_with_logprobs(local_client: httpx.Client) -> None:  # noqa: F811
    chunks = events(local_client, "/chat/completions",
                    {"messages": CHAT, "max_tokens": 6, "logprobs": True, "top_logprobs": 2,
                     "temperature": 0, "seed": 1})
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    tokens = [t for c in chunks for ch in c["choices"] if ch.get("logprobs")
              for t in ch["logprobs"]["content"]]
    assert tokens and all(len(t["top_logprobs"]) == 2 for t in tokens)
    text = "".join(ch["delta"].get("content") or "" for c in chunks for ch in c["choices"])
    whole = chat(local_client, max_tokens=6, temperature=0, seed=1).json()
    assert text == whole["choices"][0]["message"]["content"]
    assert all("usage" not in c for c in chunks)


def test_chat_n2_non_stream_counts_every_choice(local_client: httpx.Client) -> None:  # noqa: F811
    body = chat(local_client, n=2, max_tokens=4, ignore_eos=True, seed=3).json()
    validate(body, "CreateChatCompletionResponse")
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert body["usage"]["completion_tokens"] == 8


@pytest.mark.parametrize("options, expect_usage", [
    (None, False), ({"include_usage": False}, False), ({"include_usage": True}, True)])
def test_chat_n2_stream_and_usage_only_when_asked(local_client: httpx.Client,  # noqa: F811
                                                  options: Any, expect_usage: bool) -> None:
    body: dict[str, Any] = {"messages": CHAT, "n": 2, "max_tokens": 4, "ignore_eos": True}
    if options is not None:
        body["stream_options"] = options
    chunks = events(local_client, "/chat/completions", {**body, "stream": True})
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    finished = {ch["index"]: ch["finish_reason"] for c in chunks for ch in c["choices"]
                if ch["finish_reason"]}
    assert finished == {0: "length", 1: "length"}
    with_usage = [c for c in chunks if c.get("usage")]
    if expect_usage:
        assert with_usage == [chunks[-1]] and chunks[-1]["choices"] == []
        usage = chunks[-1]["usage"]
        assert usage["completion_tokens"] == 8
        assert usage["total_tokens"] == usage["prompt_tokens"] + 8
    else:
        assert with_usage == []


def test_temperature_zero_with_seed_is_deterministic(local_client: httpx.Client) -> None:  # noqa: F811
    texts = {chat(local_client, max_tokens=12, temperature=0, seed=42)
             .json()["choices"][0]["message"]["content"] for _ in range(3)}
    assert len(texts) == 1


def test_name_reaches_the_model(local_client: httpx.Client) -> None:  # noqa: F811
    plain = chat(local_client, max_tokens=1).json()["usage"]["prompt_tokens"]
    named = local_client.post("/chat/completions", json={
        "model": "local", "max_tokens": 1,
        "messages": [{**CHAT[0], "name": "Bartholomew"}]}).json()["usage"]["prompt_tokens"]
    assert named > plain


def test_max_completion_tokens_and_model_path(local_client: httpx.Client) -> None:  # noqa: F811
    body = chat(local_client, max_completion_tokens=2, ignore_eos=True,
                model=str(model_path())).json()
    assert body["usage"]["completion_tokens"] == 2
    assert body["model"] == "smollm2-135m-instruct"


# --- legacy completions -------------------------------------------------------------------------


def test_completion_legacy_logprobs(local_client: httpx.Client) -> None:  # noqa: F811
    body = complete(local_client, max_tokens=5, logprobs=3, temperature=0).json()
    validate(body, "CreateCompletionResponse")
    assert body["id"].startswith("cmpl-") and body["object"] == "text_completion"
    choice = body["choices"][0]
    lp = choice["logprobs"]
    assert set(lp) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
    assert "".join(lp["tokens"]) == choice["text"]
    assert all(len(alts) == 3 for alts in lp["top_logprobs"])
    assert lp["text_offset"][0] == len(PROMPT)
    for i in range(1, len(lp["tokens"])):
        assert lp["text_offset"][i] == lp["text_offset"][i - 1] + len(lp["tokens"][i - 1])


def test_completion_logprobs_zero(local_client: httpx.Client) -> None:  # noqa: F811
    lp = complete(local_client, max_tokens=3, logprobs=0).json()["choices"][0]["logprobs"]
    assert len(lp["token_logprobs"]) == len(lp["tokens"]) > 0
    assert all(alts == {} for alts in lp["top_logprobs"])


def test_completion_stream_legacy_logprobs(local_client: httpx.Client) -> None:  # noqa: F811
    chunks = events(local_client, "/completions",
                    {"prompt": PROMPT, "max_tokens": 6, "logprobs": 2, "temperature": 0,
                     "stream": True, "stream_options": {"include_usage": True}})
    for chunk in chunks:
        validate_legacy_chunk(chunk)
        assert chunk["id"].startswith("cmpl-")
    offsets, tokens = [], []
    for chunk in chunks:
        for ch in chunk["choices"]:
            if ch["logprobs"]:
                assert all(len(alts) == 2 for alts in ch["logprobs"]["top_logprobs"])
                offsets += ch["logprobs"]["text_offset"]
                tokens += ch["logprobs"]["tokens"]
    assert offsets[0] == len(PROMPT)
    assert offsets == [len(PROMPT) + len("".join(tokens[:i])) for i in range(len(tokens))]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6
    assert all("usage" not in c for c in chunks[:-1])


def test_completion_stream_without_include_usage_has_no_usage(
        local_client: httpx.Client) -> None:  # noqa: F811
    chunks = events(local_client, "/completions",
                    {"prompt": ["Hello", "Bye"], "n": 2, "max_tokens": 3, "stream": True})
    assert all("usage" not in c for c in chunks)
    assert {ch["index"] for c in chunks for ch in c["choices"]} == {0, 1, 2, 3}


def test_completion_n2_and_multi_prompt_usage(local_client: httpx.Client) -> None:  # noqa: F811
    one = complete(local_client, max_tokens=1).json()["usage"]["prompt_tokens"]
    body = complete(local_client, prompt=[PROMPT, PROMPT], n=2, max_tokens=3,
                    ignore_eos=True).json()
    validate(body, "CreateCompletionResponse")
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert body["usage"]["completion_tokens"] == 12
    assert body["usage"]["prompt_tokens"] == 2 * one


def test_echo_emulation(local_client: httpx.Client) -> None:  # noqa: F811
    body = complete(local_client, echo=True, max_tokens=3).json()
    assert body["choices"][0]["text"].startswith(PROMPT)
    chunks = events(local_client, "/completions",
                    {"prompt": PROMPT, "echo": True, "n": 2, "max_tokens": 3, "stream": True})
    first: dict[int, str] = {}
    for chunk in chunks:
        for ch in chunk["choices"]:
            first.setdefault(ch["index"], ch["text"])
    assert first == {0: PROMPT, 1: PROMPT}


def test_echo_with_token_prompt_is_detokenised(local_client: httpx.Client) -> None:  # noqa: F811
    # 19556, 905 are SmolLM2's ids for "Hello", " world".
    body = complete(local_client, prompt=[19556, 905], echo=True, max_tokens=2).json()
    assert body["choices"][0]["text"].startswith("Hello world")


def test_best_of_emulation(local_client: httpx.Client) -> None:  # noqa: F811
    body = complete(local_client, n=1, best_of=3, max_tokens=4, ignore_eos=True,
                    temperature=1.0).json()
    validate(body, "CreateCompletionResponse")
    assert len(body["choices"]) == 1 and body["choices"][0]["logprobs"] is None
    assert body["usage"]["completion_tokens"] == 12  # every candidate is billed
    body = complete(local_client, n=2, best_of=4, max_tokens=4, ignore_eos=True,
                    logprobs=1).json()
    means = [sum(c["logprobs"]["token_logprobs"]) / len(c["logprobs"]["token_logprobs"])
             for c in body["choices"]]
    assert len(means) == 2 and means[0] >= means[1]


def test_partial_utf8_tokens_are_named_like_openai(local_client: httpx.Client) -> None:  # noqa: F811
    body = complete(local_client, prompt="Emoji list: 😀 🎉 🐱 ", max_tokens=3, logprobs=5,
                    temperature=0).json()
    names = [k for alts in body["choices"][0]["logprobs"]["top_logprobs"] for k in alts]
    assert "" not in names
    assert any(n.startswith("bytes:\\x") for n in names)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path, body, status, param, code", [
    ("/completions", {"prompt": "a", "suffix": "b"}, 400, "suffix", None),
    ("/completions", {"prompt": "a", "echo": True, "logprobs": 1}, 400, "echo", None),
    ("/completions", {"prompt": "a", "best_of": 2, "stream": True}, 400, "best_of", None),
    ("/completions", {"prompt": "a", "best_of": 1, "n": 2}, 400, "best_of", None),
    ("/completions", {"prompt": "a", "max_tokens": 0}, 400, "max_tokens", None),
    ("/chat/completions", {"messages": CHAT, "top_logprobs": 2}, 400, "top_logprobs", None),
    ("/chat/completions", {"messages": []}, 400, "messages", None),
    ("/chat/completions", {"messages": CHAT, "temperature": "hot"}, 400, "temperature", None),
    ("/chat/completions", {"messages": CHAT, "model": "gpt-4o"}, 404, "model",
     "model_not_found"),
    ("/completions", {"prompt": "a", "model": "davinci-002"}, 404, "model", "model_not_found"),
    ("/completions", {"prompt": "hello " * 9000, "max_tokens": 1}, 400, "prompt",
     "context_length_exceeded"),
    ("/completions", {"prompt": "hello " * 9000, "stream": True}, 400, "prompt",
     "context_length_exceeded"),
])
def test_errors_are_openai_shaped(local_client: httpx.Client, path: str,  # noqa: F811
                                  body: dict[str, Any], status: int, param: str,
                                  code: str | None) -> None:
    resp = local_client.post(path, json={"model": "local", **body})
    assert_error(resp, status, param, code)


def test_connections_after_streams_and_in_parallel(local_client: httpx.Client) -> None:  # noqa: F811
    for _ in range(3):
        events(local_client, "/chat/completions", {"messages": CHAT, "max_tokens": 2,
                                                   "stream": True})
        assert chat(local_client, max_tokens=2).status_code == 200
    statuses: list[int] = []

    def one() -> None:
        statuses.append(chat(local_client, max_tokens=3).status_code)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert statuses == [200] * 6


# --- lifecycle ----------------------------------------------------------------------------------


def _gone(pid: int, within: float) -> bool:
    """True once ``pid`` has exited (a zombie counts) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow  # a process of its own: seconds
def test_stop_leaves_no_process() -> None:
    engine = LocalEngine()
    url = engine.start()
    pid, log_path = engine.pid, engine.log_path
    assert pid and log_path and httpx.get(url + "/models", timeout=30).status_code == 200
    engine.stop()
    assert not engine.running and engine.url is None and engine.last_returncode == 0
    assert _gone(pid, within=1) and not log_path.exists()
    engine.stop()  # idempotent


@pytest.mark.slow  # a process of its own: seconds
def test_closing_stdin_stops_the_server() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "gptmagic.local.server", "--watch-stdin"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        info = json.loads(proc.stdout.readline())
        assert info["pid"] == proc.pid and info["model"] == "smollm2-135m-instruct"
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0  # seconds here; 10 s was passed once under load
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.mark.slow  # a process of its own: seconds
def test_dead_parent_leaves_no_orphan() -> None:
    code = ("import os\nfrom gptmagic.local.engine import LocalEngine\n"
            "e = LocalEngine(); e.start(); print(e.pid, e.log_path.parent, flush=True)\n"
            "os._exit(0)\n")
    parent = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    pid, log_dir = parent.stdout.split()
    try:
        assert _gone(int(pid), within=10)
    finally:
        # A parent killed this hard cannot remove the child's log directory.
        shutil.rmtree(log_dir, ignore_errors=True)


def test_child_dying_during_start_reports_its_log() -> None:
    engine = LocalEngine(extra_args=["--threads", "many"])
    with pytest.raises(ConfigError, match=r"exited during start-up(.|\n)*invalid int value"):
        engine.start(timeout=30)
    assert not engine.running


def test_missing_xllamacpp_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine_mod.importlib.util.find_spec
    monkeypatch.setattr(engine_mod.importlib.util, "find_spec",
                        lambda name: None if name == "xllamacpp" else real(name))
    with pytest.raises(ConfigError, match="pip install xllamacpp"):
        LocalEngine().start()


def test_ensure_started_is_shared_and_thread_safe() -> None:
    urls: list[str] = []
    try:
        threads = [threading.Thread(target=lambda: urls.append(engine_mod.ensure_started()))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(urls) == 4 and len(set(urls)) == 1
        assert engine_mod.get_engine().running
        pid = engine_mod.get_engine().pid
    finally:
        engine_mod.stop_engine()
    assert pid is not None and _gone(pid, within=1)
    assert not engine_mod.get_engine().running


def test_server_main_reports_config_errors(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from gptmagic.local import llama, server

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # restored after the test

    def missing() -> Any:
        raise ConfigError("weights missing")

    monkeypatch.setattr(llama, "weights_path", lambda *_: missing())
    assert server.main(["--port", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "weights missing" in captured.err
    assert os.environ.get("OMP_WAIT_POLICY")  # set before xllamacpp could load


@pytest.mark.slow  # a process of its own: seconds
def test_child_environment_holds_no_provider_key(monkeypatch, isolated_env) -> None:
    import gptmagic
    from gptmagic.errors import register_secret

    keys = {"OPENAI_API_KEY": "sk-openai-aaaaaaaaaaaa", "AZURE_OPENAI_API_KEY": "azure-bbbbbbbbbb",
            "MY_SERVICE_API_KEY": "svc-cccccccccc", "HF_TOKEN": "hf_dddddddddd",
            # Named by profiles only: one added in the session, one in the config file.
            "WORK_LLM": "work-eeeeeeeeee", "TEAM_LLM_CRED": "team-ffffffffff",
            # A key the client has used, under a name that says nothing.
            "SOMETHING": "used-gggggggggg"}
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GPTMAGIC_HARMLESS", "kept")
    gptmagic.add_profile("work", base_url="http://127.0.0.1:9/v1", api_key_env="WORK_LLM")
    (isolated_env / "gptmagic.toml").write_text(
        '[profiles.team]\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "TEAM_LLM_CRED"\n')
    assert "team" in gptmagic.profiles()
    register_secret("used-gggggggggg")
    engine = LocalEngine()
    engine.start()
    try:
        with open(f"/proc/{engine.pid}/environ", "rb") as f:
            environ = f.read()
    finally:
        engine.stop()
    assert b"GPTMAGIC_HARMLESS=kept" in environ  # the real child's environment was read
    for name, value in keys.items():
        assert name.encode() + b"=" not in environ and value.encode() not in environ, name
