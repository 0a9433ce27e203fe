from __future__ import annotations

import traceback

import pytest

from gptmagic.client import config
from gptmagic.errors import ConfigError


def test_no_key_defaults_to_local_with_one_notice(capsys, monkeypatch):
    prov, model = config.resolve()
    assert (prov.kind, model) == ("local", "smollm2-135m-instruct")
    config.resolve()
    err = capsys.readouterr().err
    assert err.count("embedded local model") == 1


def test_openai_key_selects_openai(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdefghijklmnop")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-1")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-1")
    prov, model = config.resolve()
    assert (prov.name, model) == ("openai", "gpt-4.1-nano")  # not a retiring model
    h = prov.auth_headers()
    assert h["Authorization"] == "Bearer sk-test-abcdefghijklmnop"
    assert h["OpenAI-Organization"] == "org-1" and h["OpenAI-Project"] == "proj-1"
    assert prov.endpoint("chat/completions", model) == (
        "https://api.openai.com/v1/chat/completions",
        {},
    )
    assert "sk-test" not in repr(prov)


def test_openai_base_url_env(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    assert (
        config.get_profile("openai").endpoint("completions", "m")[0]
        == "http://127.0.0.1:9/v1/completions"
    )


def test_local_model_name_picks_local_even_with_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdefghijklmnop")
    assert config.resolve(model="local")[0].kind == "local"
    assert config.resolve(model="local")[1] == "smollm2-135m-instruct"


def test_missing_key_is_a_clear_error():
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        config.get_profile("openai").auth_headers()


def test_azure_deployment_urls(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azkey-0123456789")
    prov = config.get_profile("azure")
    url, query = prov.endpoint("chat/completions", "my gpt4o")
    assert url == "https://res.openai.azure.com/openai/deployments/my%20gpt4o/chat/completions"
    assert query == {"api-version": "2024-10-21"}
    h = prov.auth_headers()
    assert h == {"api-key": "azkey-0123456789"}


def test_a_profile_names_its_global_batch_deployments(isolated_env):
    (isolated_env / "gptmagic.toml").write_text(
        "[profiles.az]\n"
        'kind = "azure"\n'
        'base_url = "https://r.openai.azure.com"\n'
        'batch_deployments = { "gpt-4o" = "gpt-4o-global-batch" }\n')
    prov = config.get_profile("az")
    assert prov.batch_model("gpt-4o") == "gpt-4o-global-batch"
    assert prov.batch_model("gpt-4.1") == "gpt-4.1"  # not named: the model itself


def test_profiles_from_file(isolated_env):
    (isolated_env / "gptmagic.toml").write_text(
        'default_profile = "vllm"\n'
        "[profiles.vllm]\n"
        'base_url = "http://127.0.0.1:8000/v1"\n'
        'default_model = "qwen"\n'
        'headers = {"X-Team" = "blue"}\n'
        "[profiles.openai]\n"
        'default_model = "gpt-4.1-nano"\n'
    )
    prov, model = config.resolve()
    assert (prov.name, prov.kind, model) == ("vllm", "compatible", "qwen")
    assert prov.auth_headers() == {"X-Team": "blue"}  # no key needed for a compatible server
    # Overriding a built-in keeps its other settings.
    assert config.get_profile("openai").default_model == "gpt-4.1-nano"
    assert config.get_profile("openai").api_key_env == "OPENAI_API_KEY"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[profiles.x\n", "not valid TOML"),
        ('[profiles.x]\napi_key = "sk-abc"\n', "unknown key|must not hold a key"),
        ('[profiles.x]\nbase = "u"\n', "unknown key"),
        ('[profiles.x]\nkind = "weird"\n', "kind 'weird'"),
        ("profiles = 3\n", "must be a table"),
    ],
)
def test_bad_config_files(isolated_env, text, match):
    path = isolated_env / "gptmagic.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as e:
        config.profiles()
    assert str(path) in str(e.value)


def test_add_profile_and_unknown_profile(monkeypatch):
    config.add_profile(
        "mine", base_url="http://127.0.0.1:1/v1", default_model="m", api_key_env="MY_KEY"
    )
    monkeypatch.setenv("MY_KEY", "secret-value-123")
    p = config.get_profile("mine")
    assert p.auth_headers()["Authorization"] == "Bearer secret-value-123"
    with pytest.raises(ConfigError, match="unknown profile 'nope'; known profiles: .*mine"):
        config.get_profile("nope")
    with pytest.raises(ConfigError, match="api_key_env"):
        config.add_profile("bad", headers={"Authorization": "Bearer x"})
    with pytest.raises(ConfigError, match="unknown setting\\(s\\) colour; known settings: api, "
                                          "api_key_env, api_version, base_url, "):
        config.add_profile("bad", colour="x")


@pytest.mark.parametrize("setting", ["api_key", "key", "token"])
def test_a_key_given_to_add_profile_is_refused_with_the_way_to_give_one(setting):
    key = "sk-proj-do-not-echo-0123456789"
    with pytest.raises(ConfigError) as e:
        config.add_profile("bad", base_url="http://127.0.0.1:1/v1", **{setting: key})
    text = str(e.value)
    assert text.startswith(f"add_profile('bad'): {setting} is not a setting: a profile never "
                           "holds a key. ")
    assert "api_key_env='MY_KEY_VAR'" in text and "prompt_key=True" in text
    assert ("known settings: api, api_key_env, api_version, base_url, batch_deployments, "
            "default_model, ") in text
    # Not in the message, nor in a traceback that prints the frames' locals (%xmode Verbose).
    frames = traceback.TracebackException.from_exception(e.value, capture_locals=True).stack
    ours = [f for f in frames if "/gptmagic/" in f.filename]
    assert ours and "settings" in ours[-1].locals  # add_profile's locals, as Verbose shows them
    assert key not in text and not any(key in repr(f.locals) for f in ours)
    assert "bad" not in config.profiles()


def test_prompted_key_stays_in_memory(monkeypatch):
    monkeypatch.setattr(config.getpass, "getpass", lambda prompt: "typed-key-98765")
    p = config.add_profile(
        "asky",
        kind="openai",
        base_url="http://127.0.0.1:1/v1",
        api_key_env="UNSET_VAR",
        prompt_key=True,
        default_model="m",
    )
    assert p.api_key() == "typed-key-98765"
    monkeypatch.setattr(config.getpass, "getpass", lambda prompt: pytest.fail("asked twice"))
    assert p.api_key() == "typed-key-98765"


def test_a_prompted_key_is_asked_on_the_callers_thread(monkeypatch, fake_server):
    """Issue 9 bug 3: getpass ran on the background loop's thread, inside the request
    path, stalling every request in flight. Now it runs before the call is scheduled."""
    import threading

    import gptmagic

    asked_on: list[str] = []

    def fake_getpass(prompt: str) -> str:
        asked_on.append(threading.current_thread().name)
        return "typed-key-thread-123"

    monkeypatch.setattr(config.getpass, "getpass", fake_getpass)
    config.add_profile("asky-thread", kind="compatible", base_url=fake_server.url,
                       api_key_env="UNSET_VAR_2", prompt_key=True, default_model="m")
    try:
        r = gptmagic.chat("hi", provider="asky-thread")
    finally:
        gptmagic.shutdown()
    assert asked_on == [threading.current_thread().name] and "loop" not in asked_on[0]
    assert r.text and fake_server.requests[-1].headers["authorization"] == (
        "Bearer typed-key-thread-123")


async def test_the_request_path_never_prompts(monkeypatch, fake_server):
    """A client used directly with a prompt_key profile whose key is unknown says what to do."""
    from gptmagic.client.client import Client

    monkeypatch.setattr(config.getpass, "getpass", lambda prompt: pytest.fail("prompted"))
    config.add_profile("asky-never", kind="openai", base_url=fake_server.url,
                       api_key_env="UNSET_VAR_3", prompt_key=True, default_model="m")
    async with Client("asky-never") as c:
        with pytest.raises(ConfigError, match=r"get_profile\('asky-never'\)\.api_key\(\)"):
            await c.chat("hi")
    assert not fake_server.requests


def test_a_judges_prompted_key_is_asked_before_the_run_not_on_the_loop(monkeypatch, fake_server):
    """A judge scorer on a prompt_key profile: asked on the caller's thread by evaluate();
    the loop itself never prompts (the judge's own call goes through the facade there)."""
    import threading

    import gptmagic
    from gptmagic import scorers

    asked_on: list[str] = []

    def fake_getpass(prompt: str) -> str:
        asked_on.append(threading.current_thread().name)
        return "typed-judge-key-123"

    monkeypatch.setattr(config.getpass, "getpass", fake_getpass)
    gptmagic.add_profile("plain", base_url=fake_server.url, default_model="m")
    config.add_profile("judgy", kind="compatible", base_url=fake_server.url,
                       api_key_env="UNSET_VAR_4", prompt_key=True, default_model="m")
    grade = scorers.judge("Is it polite?", model="m", provider="judgy", scale=(0, 1))
    try:
        res = gptmagic.evaluate([{"q": "hi"}], "user: {q}", ["plain:m"], scorers=[grade],
                                progress=False, cache=False)
        again = res.rescore([scorers.combine(grade, name="mix")])
    finally:
        gptmagic.shutdown()
    assert asked_on == [threading.current_thread().name]  # once, here, never on the loop
    judged = [r for r in fake_server.requests
              if r.headers.get("authorization") == "Bearer typed-judge-key-123"]
    assert len(judged) == 2  # the judge asked its model in the run and in the rescore
    assert len(res.df) == 1 and len(again.df) == 1


def test_the_facade_never_prompts_on_the_loop_thread(monkeypatch):
    from gptmagic.client import facade
    from gptmagic.client.portal import get_portal

    monkeypatch.setattr(config.getpass, "getpass", lambda prompt: pytest.fail("prompted"))
    config.add_profile("loopy", kind="openai", base_url="http://127.0.0.1:9/v1",
                       api_key_env="UNSET_VAR_5", prompt_key=True, default_model="m")

    async def on_the_loop():
        return facade._ready({"provider": "loopy"})

    with pytest.raises(ConfigError, match="never done inside a request"):
        get_portal().run(on_the_loop())


# -- "profile:model" names (issue 18, item 6) ---------------------------------------------------


def test_a_profile_prefix_splits_only_when_it_names_a_known_profile(monkeypatch):
    """'vllm:llama3:8b' is profile vllm + model 'llama3:8b'; 'llama3:8b' and fine-tune ids
    keep their colons when the part before the first one names no profile."""
    config.add_profile("vllm", base_url="http://127.0.0.1:1/v1", default_model="qwen")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdefghijklmnop")
    assert [(p.name, m) for p, m in (
        config.resolve(model="vllm:llama3:8b"),
        config.resolve(model="openai:gpt-4o"),
        config.resolve(model="local:local"),
        config.resolve(model="ft:gpt-4o-mini:my-org::abc123"),
        config.resolve(model="llama3:8b"),
        config.resolve(model="vllm:"),  # the profile's default model
    )] == [("vllm", "llama3:8b"), ("openai", "gpt-4o"), ("local", "smollm2-135m-instruct"),
           ("openai", "ft:gpt-4o-mini:my-org::abc123"), ("openai", "llama3:8b"),
           ("vllm", "qwen")]
    assert config.split_model("vllm:llama3:8b") == (config.get_profile("vllm"), "llama3:8b")
    assert config.split_model("llama3:8b") == (None, "llama3:8b")


def test_an_explicit_provider_takes_the_model_whole_and_a_default_gives_way(monkeypatch):
    config.add_profile("ollama", base_url="http://127.0.0.1:1/v1")
    config.add_profile("llama3", base_url="http://127.0.0.1:2/v1")  # a clash, on purpose
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdefghijklmnop")
    # provider= (or %%chat -p): never split, so a clashing name is still reachable.
    assert config.resolve("ollama", "llama3:8b")[0].name == "ollama"
    assert config.resolve("ollama", "llama3:8b")[1] == "llama3:8b"
    # A default (a Client's provider, %gptmagic profile) gives way to a named profile...
    assert config.resolve(None, "openai:gpt-4o", default="ollama")[0].name == "openai"
    # ... and applies otherwise, local model names included, as an explicit one did.
    assert config.resolve(None, "qwen:7b", default="ollama")[0].name == "ollama"
    assert config.resolve(None, "local", default="ollama") == (
        config.get_profile("ollama"), "local")


def test_an_unknown_profile_prefix_never_falls_back_to_the_embedded_model(isolated_env):
    """No key, no default profile: 'myprofile:m' went to the embedded engine as model
    'myprofile:m'. Now it is an error naming the profile and the known ones."""
    config.add_profile("mine", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match=r"unknown profile 'myprofile'; known profiles: "
                                          r"azure, local, mine, openai") as e:
        config.resolve(model="myprofile:gpt-4o")
    assert "'myprofile:gpt-4o'" in str(e.value) and "embedded model" in str(e.value)
    with pytest.raises(ConfigError, match="unknown profile 'ft'"):
        config.resolve(model="ft:gpt-4o-mini:my-org::abc123")
    (isolated_env / "gptmagic.toml").write_text('default_profile = "local"\n')
    with pytest.raises(ConfigError, match="unknown profile 'myprofile'"):
        config.resolve(model="myprofile:gpt-4o")
    # A profile with no model after its name, and no default model, says so.
    with pytest.raises(ConfigError, match="'mine:'.*default_model"):
        config.resolve(model="mine:")
    # Counting and pricing read the name without choosing a provider: no error there.
    assert config.model_name("ft:gpt-4o-mini:my-org::abc123") == "ft:gpt-4o-mini:my-org::abc123"
    assert config.model_name("mine:gpt-4o") == "gpt-4o"
    assert config.model_name(None) == "smollm2-135m-instruct"


def test_gemma_names_other_providers_use_go_to_the_default_profile(isolated_env, monkeypatch):
    """With GPTMAGIC_PROFILE=ollama, 'gemma' went to the embedded Gemma 270M instead of
    Ollama's gemma; a bare 'gemma-3-270m' may be another server's too. Only 'local:'
    (or a local default) reaches the embedded one."""
    config.add_profile("ollama", base_url="http://127.0.0.1:1/v1")
    assert config.resolve(model="gemma-3-270m") == (config.get_profile("local"), "gemma-3-270m")
    monkeypatch.setenv("GPTMAGIC_PROFILE", "ollama")
    for name in ("gemma", "gemma3-270m", "gemma-3-270m", "Gemma-3-270M"):
        assert config.resolve(model=name) == (config.get_profile("ollama"), name)
    assert config.resolve(model="local:gemma-3-270m") == (config.get_profile("local"),
                                                          "gemma-3-270m")
    assert config.resolve(model="local")[0].name == "local"  # the engine's own name still
    with pytest.raises(ConfigError, match="serves only"):  # the old aliases reach nothing
        config.refuse_misrouted(config.get_profile("local"), "gemma", "local:gemma", named=True)
