"""Model lifecycle (issue 14, item 6): shutdown dates, the warning, GET /models cached a day.

The clock is frozen and injected (``Lifecycle(now=...)``); no test sleeps or
reads the wall clock. The models endpoint is the fake server's, counted there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fakeserver import Behaviour
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from openapi_schema import validate

import gptmagic
from gptmagic import state
from gptmagic.catalog.lifecycle import (
    DEFAULT_CANDIDATES,
    SHUTDOWNS,
    WARN_DAYS,
    cheapest_current,
    model_rows,
    retirement,
    shutdown_of,
)
from gptmagic.client import config
from gptmagic.client.client import Client
from gptmagic.client.lifecycle import Lifecycle, ModelsCache, cache_key
from gptmagic.client.portal import get_portal
from gptmagic.core import defaults as D
from gptmagic.views.models import models_text

KEY = "sk-lifecycle-0123456789abcdef"
RETIRE = date(2027, 1, 14)


class Clock:
    """A frozen UTC clock a test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _on(day: date) -> Clock:
    return Clock(datetime.combine(day, datetime.min.time(), tzinfo=UTC).replace(hour=9))


def _gets(server) -> int:
    return sum(1 for r in server.requests if r.method == "GET" and r.path.endswith("/models"))


@pytest.fixture
def hosted(fake_server, monkeypatch):
    """Profile ``fk``: a hosted OpenAI profile (kind openai) whose base URL is the fake server."""
    monkeypatch.setenv("FAKE_KEY", KEY)
    gptmagic.add_profile("fk", kind="openai", base_url=fake_server.url, api_key_env="FAKE_KEY")
    fake_server.set_models({"gpt-4o-mini": "2027-01-14", "gpt-4.1-nano": None,
                            "gpt-5-mini": ...})
    return fake_server


@pytest.fixture
def clients():
    """Makes clients with a frozen clock and a cache file of the test's; closes them after."""
    made: list[Client] = []

    def make(clock: Clock, cache: Path, notices: list[str]) -> Client:
        made.append(Client(lifecycle=Lifecycle(now=clock, cache=ModelsCache(cache)),
                           on_notice=notices.append))
        return made[-1]

    yield make
    for client in made:
        get_portal().run(client.aclose())


def _chat(client: Client, model: str) -> None:
    get_portal().run(client.chat("hi", model=f"fk:{model}", max_tokens=3))


# -- the table and the date arithmetic (catalog, pure) -------------------------------------------


def test_the_table_holds_the_announced_shutdowns_with_their_sources() -> None:
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"):
        entry = SHUTDOWNS[model]
        assert entry.date == RETIRE and "issue 14" in entry.source
        assert entry.checked == date(2026, 12, 1)
    assert SHUTDOWNS["gpt-3.5-turbo"].date == date(2026, 10, 23)
    assert "deprecations page" in SHUTDOWNS["gpt-5-chat-latest"].source
    assert "gpt-4.1-nano" not in SHUTDOWNS and "gpt-5-mini" not in SHUTDOWNS
    with pytest.raises(TypeError):
        SHUTDOWNS["x"] = SHUTDOWNS["gpt-4o"]  # type: ignore[index]


@pytest.mark.parametrize(("today", "warns"), [
    (RETIRE - timedelta(days=WARN_DAYS + 1), False),  # 31 days before: not yet
    (RETIRE - timedelta(days=WARN_DAYS), True),  # 30 days before
    (RETIRE - timedelta(days=1), True),
    (RETIRE, True),  # the day itself: shut down
    (RETIRE + timedelta(days=WARN_DAYS), True),  # 30 days after
    (RETIRE + timedelta(days=400), True),  # and long after: still worth saying
])
def test_a_warning_30_days_before_the_shutdown_and_after_it(today: date, warns: bool) -> None:
    found = retirement("gpt-4o-mini", today)
    assert (found is not None) is warns
    if found is not None:
        text = found.warning()
        assert "2027-01-14" in text and "gpt-4o-mini" in text and "\n" not in text
        assert ("was shut down on" in text) is (today >= RETIRE)
        assert "gptmagic models" in text  # where to look for another


def test_the_warning_counts_the_days_left() -> None:
    found = retirement("gpt-4.1", date(2027, 1, 13))
    assert found is not None and found.days_left == 1 and "(in 1 day)" in found.warning()
    assert not found.retired


def test_snapshots_take_their_familys_date_and_old_names_do_not() -> None:
    day, source = shutdown_of("gpt-4o-2024-08-06")
    assert day == RETIRE and "as gpt-4o" in source
    assert shutdown_of("gpt-4-1106")[0] is None  # a different model, not "gpt-4"
    assert shutdown_of("gpt-4.1-nano") == (None, "none announced (gptmagic's table)")


def test_the_providers_list_wins_over_the_table_for_the_models_it_lists() -> None:
    listed = {"gpt-4o-mini": date(2026, 12, 20), "gpt-4o": None}
    assert shutdown_of("gpt-4o-mini", listed)[0] == date(2026, 12, 20)
    assert shutdown_of("gpt-4o", listed)[0] is None  # the provider says none is announced
    assert shutdown_of("gpt-4.1", listed)[0] == RETIRE  # not listed: the table
    assert retirement("gpt-4o-mini", date(2026, 12, 1), listed) is not None


# -- the default hosted model ---------------------------------------------------------------------


def test_the_default_hosted_model_is_the_cheapest_current_one() -> None:
    chosen = cheapest_current(date(2026, 12, 1))
    assert chosen == D.DEFAULT_OPENAI_MODEL == "gpt-4.1-nano"
    assert shutdown_of(chosen)[0] is None and chosen in DEFAULT_CANDIDATES
    # A retiring model is never chosen, however cheap: without nano, gpt-4o-mini
    # (cheaper than gpt-4-turbo) is retiring, so gpt-4-turbo it is.
    assert cheapest_current(date(2026, 12, 1), ("gpt-4o-mini", "gpt-4-turbo")) == "gpt-4-turbo"
    assert cheapest_current(date(2026, 12, 1), ("gpt-4o", "gpt-4o-mini")) is None


def test_a_profile_sets_the_default_model(isolated_env, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert config.resolve() == (config.get_profile("openai"), "gpt-4.1-nano")
    (isolated_env / "gptmagic.toml").write_text('[profiles.openai]\ndefault_model = "gpt-5-mini"\n')
    assert config.resolve()[1] == "gpt-5-mini"
    gptmagic.add_profile("work", kind="openai", default_model="gpt-5-nano")
    monkeypatch.setenv("GPTMAGIC_PROFILE", "work")
    assert config.resolve()[1] == "gpt-5-nano"


# -- the fake server's GET /v1/models --------------------------------------------------------------


def test_the_fake_servers_models_follow_the_spec(hosted) -> None:
    import httpx

    body = httpx.get(hosted.url + "/models").json()
    validate(body, "ListModelsResponse")
    for item in body["data"]:
        validate(item, "Model")
    by_id = {m["id"]: m for m in body["data"]}
    assert by_id["gpt-4o-mini"]["shutdown_date"] == "2027-01-14"
    assert by_id["gpt-4.1-nano"]["shutdown_date"] is None
    assert "shutdown_date" not in by_id["gpt-5-mini"]


# -- the client: once per model, a day's cache, the table when unreachable -------------------------


def test_a_retiring_model_warns_once_and_the_list_is_fetched_once(hosted, tmp_path,
                                                                  clients) -> None:
    notices: list[str] = []
    client = clients(_on(date(2026, 12, 15)), tmp_path / "models.json", notices)
    for _ in range(3):
        _chat(client, "gpt-4o-mini")
    _chat(client, "gpt-4.1-nano")  # listed, none announced: silent
    assert len(notices) == 1 and "'gpt-4o-mini' shuts down on 2027-01-14 (in 30 days)" in notices[0]
    assert "the provider's /models" in notices[0]
    assert _gets(hosted) == 1  # one list for both models, the chats went through
    assert sum(r.method == "POST" for r in hosted.requests) == 4


def test_31_days_before_nothing_is_said(hosted, tmp_path, clients) -> None:
    notices: list[str] = []
    client = clients(_on(date(2026, 12, 14)), tmp_path / "models.json", notices)
    _chat(client, "gpt-4o-mini")
    assert notices == []


def test_the_providers_date_wins_over_the_table(hosted, tmp_path, clients) -> None:
    hosted.set_models({"gpt-4o-mini": "2026-12-20"})
    notices: list[str] = []
    _chat(clients(_on(date(2026, 12, 1)), tmp_path / "m.json", notices), "gpt-4o-mini")
    assert len(notices) == 1 and "2026-12-20" in notices[0]


def test_the_list_is_kept_on_disk_for_a_day(hosted, tmp_path, clients) -> None:
    path = tmp_path / "cache" / "models.json"
    clock = _on(date(2026, 12, 15))
    _chat(clients(clock, path, []), "gpt-4o-mini")
    assert _gets(hosted) == 1
    saved = path.read_text()
    assert KEY not in saved and "FAKE_KEY" not in saved  # keyed by URL, never by key
    assert list(json.loads(saved)["providers"]) == [cache_key(hosted.url)]
    # Another session (a new client) 23 hours later: from the disk, no request.
    clock.at += timedelta(hours=23)
    notices: list[str] = []
    _chat(clients(clock, path, notices), "gpt-4o-mini")
    assert _gets(hosted) == 1 and len(notices) == 1  # and it still warns, once per session
    # A day and more later: asked again.
    clock.at += timedelta(hours=2)
    _chat(clients(clock, path, []), "gpt-4o-mini")
    assert _gets(hosted) == 2


# aiohttp sends a GET again, once, on a connection dropped before any reply.
@pytest.mark.parametrize("faults", [(Behaviour(status=500),),
                                    (Behaviour(drop=True), Behaviour(drop=True)),
                                    (Behaviour(body={"nope": 1}),)], ids=["500", "drop", "junk"])
def test_an_unreachable_list_falls_back_to_the_table(hosted, tmp_path, faults, clients) -> None:
    hosted.set_models({"gpt-4o-mini": None})  # would say "none announced", if it answered
    hosted.plan(*faults)  # the first requests are the list's
    notices: list[str] = []
    path = tmp_path / "m.json"
    client = clients(_on(date(2026, 12, 20)), path, notices)
    _chat(client, "gpt-4o-mini")
    assert len(notices) == 1 and "2027-01-14" in notices[0] and "gptmagic's table" in notices[0]
    assert not path.exists()  # a failure is not kept on disk
    _chat(client, "gpt-4.1")  # ... but remembered for the session: no second try
    assert _gets(hosted) == len(faults) and len(notices) == 2


def test_other_providers_are_not_asked(fake_server, tmp_path, monkeypatch, clients) -> None:
    gptmagic.add_profile("compat", base_url=fake_server.url)
    notices: list[str] = []
    client = clients(_on(date(2027, 2, 1)), tmp_path / "m.json", notices)
    get_portal().run(client.chat("hi", model="compat:gpt-4o-mini", max_tokens=3))
    assert notices == [] and _gets(fake_server) == 0


# -- where users meet it: gptmagic.chat, evaluate(), %%chat ------------------------------------


def test_gptmagic_chat_warns_once_on_stderr(hosted, tmp_path, capsys) -> None:
    state.current().client = Client(lifecycle=Lifecycle(now=_on(date(2027, 1, 20)),
                                                        cache=ModelsCache(tmp_path / "m.json")))
    try:
        gptmagic.chat("hi", model="fk:gpt-4o-mini", max_tokens=3)
        gptmagic.complete("hi", model="fk:gpt-4o-mini", max_tokens=3)
    finally:
        gptmagic.shutdown()
    err = capsys.readouterr().err
    assert err.count("gptmagic: model 'gpt-4o-mini' was shut down on 2027-01-14") == 1


def test_evaluate_warns_once_for_many_rows(hosted, tmp_path, clients) -> None:
    notices: list[str] = []
    client = clients(_on(date(2027, 1, 1)), tmp_path / "m.json", notices)
    data = pd.DataFrame({"q": [f"question {i}" for i in range(6)]})
    res = gptmagic.evaluate(data, "user: {q}", ["fk:gpt-4o-mini", "fk:gpt-4.1-nano"],
                            client=client, cache=False, params={"max_tokens": 3})
    assert len(res.df) == 12 and res.df["error"].isna().all()
    assert len(notices) == 1 and "'gpt-4o-mini' shuts down on 2027-01-14" in notices[0]
    assert _gets(hosted) == 1


@pytest.fixture
def shell(hosted, monkeypatch, tmp_path):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "gptmagic")
    yield sh
    sh.run_line_magic("unload_ext", "gptmagic")
    InteractiveShell.clear_instance()


def test_chat_magic_warns_once(shell, hosted, tmp_path) -> None:
    state.current().client = Client(lifecycle=Lifecycle(now=_on(date(2026, 12, 31)),
                                                        cache=ModelsCache(tmp_path / "m.json")))
    err = ""
    try:
        for _ in range(2):
            with capture_output() as cap:
                shell.run_cell_magic("chat", "-p fk -m gpt-4o-mini --max-tokens 3", "user: hi")
            err += cap.stderr
    finally:
        gptmagic.shutdown()
    assert err.count("gptmagic: model 'gpt-4o-mini' shuts down on 2027-01-14 (in 14 days)") == 1


def test_gptmagic_models_magic_lists_prices_and_shutdowns(shell, hosted, tmp_path) -> None:
    state.current().client = Client(lifecycle=Lifecycle(now=_on(date(2026, 12, 1)),
                                                        cache=ModelsCache(tmp_path / "m.json")))
    try:
        with capture_output() as cap:
            shell.run_line_magic("gptmagic", "models --provider fk")
    finally:
        gptmagic.shutdown()
    lines = {ln.split()[0]: ln for ln in cap.stdout.splitlines()[2:] if ln.split()}
    assert "3 models listed by" in cap.stdout
    assert lines["gpt-4o-mini"].split()[1:] == ["128,000", "$0.15", "$0.075", "$0.6",
                                                "2027-01-14", "RETIRING"]
    assert lines["gpt-4.1-nano"].split()[1:] == ["1,047,576", "$0.1", "$0.025", "$0.4", "-"]
    assert lines["gpt-5-mini"].split()[-1] == "-"  # no field: the table has no date either
    with pytest.raises(Exception, match="usage: %gptmagic models"):
        shell.run_line_magic("gptmagic", "models extra")


def test_model_rows_offline_come_from_the_table() -> None:
    rows = model_rows(["gpt-4o", "gpt-3.5-turbo", "gpt-5-nano", "no-such-model"], date(2026, 12, 1),
                      provider="openai")
    by = {r.model: r for r in rows}
    assert by["gpt-4o"].status == "retiring" and by["gpt-3.5-turbo"].status == "shut down"
    assert by["gpt-5-nano"].status == "" and str(by["gpt-5-nano"].input) == "0.05"
    assert by["no-such-model"].input is None and by["no-such-model"].context_window is None
    text = models_text(rows, "note")
    assert "?" in text.splitlines()[-2] and "SHUT DOWN" in text


# -- the command ----------------------------------------------------------------------------------


def test_the_models_command(hosted, tmp_path, isolated_env) -> None:
    (isolated_env / "gptmagic.toml").write_text(
        f'[profiles.fk]\nkind = "openai"\nbase_url = "{hosted.url}"\napi_key_env = "FAKE_KEY"\n')
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "FAKE_KEY": KEY}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gptmagic", "models", *args],
                              capture_output=True, text=True, timeout=60, env=env)

    p = run("--provider", "fk")
    assert p.returncode == 0, p.stderr
    assert "gpt-4o-mini" in p.stdout and "2027-01-14 RETIRING" in p.stdout
    assert "$0.075" in p.stdout and KEY not in p.stdout + p.stderr
    assert (tmp_path / "xdg" / "gptmagic" / "models.json").exists()
    # Unreachable: the package's own table, said so.
    (isolated_env / "gptmagic.toml").write_text(
        '[profiles.fk]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'api_key_env = "FAKE_KEY"\n')
    p = run("--provider", "fk")
    assert p.returncode == 0, p.stderr
    assert "could not be reached" in p.stdout and "gpt-4.1-nano" in p.stdout
    assert "gpt-4o " in p.stdout and "RETIRING" in p.stdout
