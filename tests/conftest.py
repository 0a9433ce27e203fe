"""Shared fixtures: an isolated home and environment for every test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

_ENV_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "OPENAI_API_VERSION",
    "GPTMAGIC_PROFILE",
    "GPTMAGIC_CONFIG",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",  # the models list and the eval cache go under the temp HOME
)


@pytest.fixture(autouse=True)
def fresh_state() -> None:
    """Every test starts with gptmagic's process-wide settings as a new process has them
    (profiles, registered models, prices, prompted keys, notices); the live client, portal
    and engine carry over (tests that start them call gptmagic.shutdown())."""
    from gptmagic import state

    state.reset()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME and config at a temp dir; no real keys or proxies leak in."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in _ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GPTMAGIC_CONFIG", str(home / "gptmagic.toml"))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")
    return home


@pytest.fixture
def fake(fake_server, tmp_path, monkeypatch):
    """The fake server as profile ``fake`` (``fake:MODEL``), with a fresh eval cache: what
    the runner's tests use."""
    import gptmagic

    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    gptmagic.add_profile("fake", base_url=fake_server.url, default_model="fake-model")
    return fake_server


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium under Playwright, one per module of browser tests."""
    from browser_support import chromium

    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def server():
    """One fake server for a module's tests that only talk to it (reset by ``srv``)."""
    from fakeserver import FakeServer

    with FakeServer() as srv:
        yield srv


@pytest.fixture
def srv(server):
    """The module's fake server, its plan and records cleared before and after the test."""
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def http(srv):
    """A sync httpx client for ``srv`` (loopback, 5 s timeouts)."""
    import httpx

    with httpx.Client(base_url=srv.url, timeout=5) as c:
        yield c


@pytest.fixture
def fake_server():
    """A fresh fake OpenAI-compatible server on loopback."""
    from fakeserver import FakeServer

    with FakeServer().start() as server:
        yield server


# -- marks: the fast lane (scripts/test.sh -m "not slow") and what each test needs ------------

_ENGINE_FIXTURES = {"local_engine", "local_url", "local_client"}
_ENGINE_MODULES = {"test_client_local", "test_local_engine", "test_local_server",
                   "test_local_faults", "test_local_logprobs", "test_local_verbatim",
                   "test_insertion"}
#: Besides every ``test_browser_*`` module.
_BROWSER_MODULES = {"test_widgets_js", "test_report"}
_NOTEBOOK_MODULES = {"test_notebooks", "test_teaching_notebooks", "test_report"}
#: Minutes, not seconds: a browser, a kernel, or a long load.
_SLOW_MODULES = (_BROWSER_MODULES | _NOTEBOOK_MODULES
                 | {"test_soak", "test_crash", "test_cli",  # processes of their own
                    "test_batch_scale"})  # 20,000 calls


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test by what it needs: ``engine``, ``browser``, ``notebook``, ``slow``."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        fixtures = set(getattr(item, "fixturenames", ()))
        if module in _ENGINE_MODULES or fixtures & _ENGINE_FIXTURES:
            item.add_marker(pytest.mark.engine)
        browser = module in _BROWSER_MODULES or module.startswith("test_browser_")
        if browser:
            item.add_marker(pytest.mark.browser)
        if module in _NOTEBOOK_MODULES:
            item.add_marker(pytest.mark.notebook)
        if module in _SLOW_MODULES or browser:
            item.add_marker(pytest.mark.slow)
