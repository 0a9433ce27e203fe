"""Model lifecycle (issue 14, item 6): shutdown dates, the warning, GET /models cached a day.

The clock is frozen and injected (``Lifecycle(now=...)``); no test sleeps or
reads the wall clock. The models endpoint is the fake server's, counted there.
The list is fetched in the background, never on a call's path: a test that
needs it known waits for that fetch (``_settle``), never for time to pass.
The fake server is not OpenAI's host, so gptmagic's table of OpenAI notices
does not apply to it: only its own ``shutdown_date`` fields count.
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
from shell_support import new_shell

import gptmagic
from gptmagic import state
from gptmagic.catalog.lifecycle import (
    DEFAULT_CANDIDATES,
    NOT_RECORDED,
    SHUTDOWNS,
    WARN_DAYS,
    cheapest_current,
    model_rows,
    retirement,
    shutdown_of,
)
from gptmagic.client import config
from gptmagic.client.client import Client
from gptmagic.client.lifecycle import Lifecycle, ModelsCache, cache_key, is_openai_host
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


def _settle(client: Client) -> None:
    """Wait for the background GET /models (not for time: for that fetch to end)."""
    get_portal().run(client.lifecycle.settled())


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
        assert "`gptmagic models` (`%gptmagic models` in a notebook)" in text


def test_the_warning_counts_the_days_left() -> None:
    found = retirement("gpt-4.1", date(2027, 1, 13))
    assert found is not None and found.days_left == 1 and not found.retired
    # One clean line: model, date, days, source, and where to look (terminal and notebook).
    assert found.warning() == (
        "model 'gpt-4.1' shuts down on 2027-01-14, in 1 day (source: gptmagic's table of "
        "OpenAI notices); for a current model see `gptmagic models` (`%gptmagic models` in a "
        "notebook)")
    gone = retirement("gpt-4.1", date(2027, 1, 20))
    assert gone is not None and ", 6 days ago (source:" in gone.warning()
    for day in (date(2026, 12, 25), date(2027, 1, 14), date(2027, 1, 15)):
        text = retirement("gpt-4.1", day).warning()  # type: ignore[union-attr]
        assert ") (" not in text and text.count("(") == text.count(")") == 2


def test_snapshots_take_their_familys_date_and_old_names_do_not() -> None:
    day, source = shutdown_of("gpt-4o-2024-08-06")
    assert day == RETIRE and "as gpt-4o" in source
    assert shutdown_of("gpt-4-1106")[0] is None  # a different model, not "gpt-4"
    # Not in the table is "not recorded", not "none announced": the table only holds notices.
    assert shutdown_of("gpt-4.1-nano") == (None, NOT_RECORDED)


def test_long_retired_models_have_their_dates_and_sources() -> None:
    for model, day in [("gpt-3.5-turbo-0613", "2024-09-13"), ("gpt-3.5-turbo-0301", "2024-09-13"),
                       ("gpt-4-32k", "2025-06-06"), ("gpt-4-vision-preview", "2024-12-06")]:
        entry = SHUTDOWNS[model]
        assert entry.date == date.fromisoformat(day)
        assert "openai/openai-cookbook" in entry.source and "deprecations" in entry.source
    assert retirement("gpt-4-32k", date(2026, 12, 1)).retired  # type: ignore[union-attr]
    # No source gptmagic can name for these: not recorded, never "none announced".
    assert shutdown_of("o1-preview") == shutdown_of("o1-mini") == (None, NOT_RECORDED)


def test_the_table_is_for_openais_host_only() -> None:
    assert is_openai_host("https://api.openai.com/v1")
    for url in ("http://127.0.0.1:8000/v1", "http://localhost:11434/v1",
                "https://api.openai.com.evil.example/v1", "https://my-proxy.example/openai/v1"):
        assert not is_openai_host(url)
    assert shutdown_of("gpt-4o", table=False) == (None, NOT_RECORDED)
    assert retirement("gpt-4o", date(2027, 1, 1), table=False) is None
    assert retirement("gpt-4o", date(2027, 1, 1), {"gpt-4o": date(2027, 1, 2)},
                      table=False) is not None  # the server's own date still counts


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


# -- the client: once per model, in the background, a day's cache ------------------------------


def test_a_retiring_model_warns_once_and_the_list_is_fetched_once(hosted, tmp_path,
                                                                  clients) -> None:
    notices: list[str] = []
    client = clients(_on(date(2026, 12, 15)), tmp_path / "models.json", notices)
    _chat(client, "gpt-4o-mini")
    _settle(client)
    for _ in range(2):
        _chat(client, "gpt-4o-mini")
    _chat(client, "gpt-4.1-nano")  # listed, none announced: silent
    assert notices == ["model 'gpt-4o-mini' shuts down on 2027-01-14, in 30 days (source: the "
                       "provider's /models); for a current model see `gptmagic models` "
                       "(`%gptmagic models` in a notebook)"]
    assert _gets(hosted) == 1  # one list for both models, the chats went through
    assert sum(r.method == "POST" for r in hosted.requests) == 4


def test_a_models_list_that_never_answers_does_not_hold_up_a_call(hosted, tmp_path) -> None:
    """Issue 14 review, items 1 and 5: /models is off the call's path; a cancelled fetch is
    not remembered, so the warning still comes once the list answers."""
    hosted.set_models({"gpt-5-mini": "2026-12-20"})  # in no table: only the server says
    hosted.plan_models(Behaviour(delay=3600))  # hangs until the client gives up on it
    notices: list[str] = []
    waits: list[float] = []
    ticks = iter(range(1_000))

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    lifecycle = Lifecycle(now=_on(date(2026, 12, 1)), cache=ModelsCache(tmp_path / "m.json"))
    client = Client(lifecycle=lifecycle, on_notice=notices.append, sleep=sleep,
                    clock=lambda: float(next(ticks)) * 0.001)
    try:
        r = get_portal().run(client.chat("hi", model="fk:gpt-5-mini", max_tokens=3,
                                         timeout=1.0))
        assert r.text and r.timings.attempts == 1 and waits == []
        # The call ended while the list was still being fetched: it did not wait for it.
        assert lifecycle.fetching and lifecycle.known(hosted.url) == (False, None)
        assert notices == []
    finally:
        get_portal().run(client.aclose())  # cancels the fetch
    assert not lifecycle.fetching and lifecycle.known(hosted.url) == (False, None)
    # The model was not marked as checked: with a list that answers, it warns.
    again = Client(lifecycle=lifecycle, on_notice=notices.append)
    try:
        _chat(again, "gpt-5-mini")
        _settle(again)
        _chat(again, "gpt-5-mini")
    finally:
        get_portal().run(again.aclose())
    assert len(notices) == 1 and "'gpt-5-mini' shuts down on 2026-12-20" in notices[0]


def test_31_days_before_nothing_is_said(hosted, tmp_path, clients) -> None:
    notices: list[str] = []
    client = clients(_on(date(2026, 12, 14)), tmp_path / "models.json", notices)
    _chat(client, "gpt-4o-mini")
    _settle(client)
    _chat(client, "gpt-4o-mini")
    assert notices == []


def test_the_providers_date_wins_over_the_table(hosted, tmp_path, clients) -> None:
    hosted.set_models({"gpt-4o-mini": "2026-12-20"})
    notices: list[str] = []
    client = clients(_on(date(2026, 12, 1)), tmp_path / "m.json", notices)
    _chat(client, "gpt-4o-mini")
    _settle(client)
    _chat(client, "gpt-4o-mini")
    assert len(notices) == 1 and "2026-12-20" in notices[0]


def test_another_servers_models_are_not_judged_by_openais_table(hosted, tmp_path,
                                                                clients) -> None:
    """Issue 14 review, item 2: a kind="openai" profile on another host (Ollama, vLLM,
    this fake) gets no warning from gptmagic's table of OpenAI notices."""
    hosted.set_models({"gpt-4o": ..., "gpt-4.1": None})  # no field; explicit null
    notices: list[str] = []
    client = clients(_on(date(2027, 1, 1)), tmp_path / "m.json", notices)
    for model in ("gpt-4o", "gpt-4.1", "gpt-4o-mini"):  # the table dates all three 2027-01-14
        _chat(client, model)
        _settle(client)
        _chat(client, model)
    assert notices == [] and _gets(hosted) == 1


def test_the_list_is_kept_on_disk_for_a_day(hosted, tmp_path, clients) -> None:
    path = tmp_path / "cache" / "models.json"
    clock = _on(date(2026, 12, 15))
    first = clients(clock, path, [])
    _chat(first, "gpt-4o-mini")
    _settle(first)
    assert _gets(hosted) == 1
    saved = path.read_text()
    assert KEY not in saved and "FAKE_KEY" not in saved  # keyed by URL, never by key
    assert list(json.loads(saved)["providers"]) == [cache_key(hosted.url)]
    # Another session (a new client) 23 hours later: from the disk, no request, and the
    # warning with the first call (once per session).
    clock.at += timedelta(hours=23)
    notices: list[str] = []
    _chat(clients(clock, path, notices), "gpt-4o-mini")
    assert _gets(hosted) == 1 and len(notices) == 1
    # A day and more later: asked again.
    clock.at += timedelta(hours=2)
    late = clients(clock, path, [])
    _chat(late, "gpt-4o-mini")
    _settle(late)
    assert _gets(hosted) == 2


# aiohttp sends a GET again, once, on a connection dropped before any reply.
@pytest.mark.parametrize("faults", [(Behaviour(status=500),),
                                    (Behaviour(drop=True), Behaviour(drop=True)),
                                    (Behaviour(body={"nope": 1}),)], ids=["500", "drop", "junk"])
def test_a_failed_list_is_remembered_for_minutes(hosted, tmp_path, faults, clients) -> None:
    """Issue 14 review, item 5: a failure is asked again after 10 minutes, not a day."""
    hosted.plan_models(*faults)
    notices: list[str] = []
    path = tmp_path / "m.json"
    clock = _on(date(2026, 12, 20))
    client = clients(clock, path, notices)
    _chat(client, "gpt-4o-mini")
    _settle(client)
    assert not path.exists()  # a failure is not kept on disk
    clock.at += timedelta(minutes=9)
    _chat(client, "gpt-4o-mini")  # remembered: no second try yet, and nothing to say
    _settle(client)
    assert _gets(hosted) == len(faults) and notices == []
    clock.at += timedelta(minutes=2)  # 11 minutes on: asked again, and it answers
    _chat(client, "gpt-4o-mini")
    _settle(client)
    _chat(client, "gpt-4o-mini")
    assert _gets(hosted) == len(faults) + 1 and path.exists()
    assert len(notices) == 1 and "2027-01-14, in 25 days (source: the provider's" in notices[0]


def test_openais_host_answers_from_the_table_at_once(tmp_path) -> None:
    """On api.openai.com the table answers the first call, before any list (which cannot be
    fetched here: the test network is loopback only, so the fetch is a failing function)."""
    fetched: list[str] = []

    async def unreachable() -> list:
        fetched.append("GET /models")
        raise gptmagic.APIConnectionError("no network in tests")

    lifecycle = Lifecycle(now=_on(date(2027, 1, 10)), cache=ModelsCache(tmp_path / "m.json"))
    url = "https://api.openai.com/v1"

    async def calls() -> list[str | None]:
        said = [lifecycle.notice(url, "gpt-4o", unreachable, table=True),
                lifecycle.notice(url, "gpt-4o", unreachable, table=True),
                lifecycle.notice(url, "gpt-4.1-nano", unreachable, table=True)]
        await lifecycle.settled()
        return said

    said = get_portal().run(calls())
    assert said[0] is not None and "in 4 days (source: gptmagic's table" in said[0]
    assert said[1:] == [None, None] and fetched == ["GET /models"]
    assert lifecycle.known(url) == (True, None)  # the failure, remembered for minutes


def test_other_providers_are_not_asked(fake_server, tmp_path, monkeypatch, clients) -> None:
    gptmagic.add_profile("compat", base_url=fake_server.url)
    notices: list[str] = []
    client = clients(_on(date(2027, 2, 1)), tmp_path / "m.json", notices)
    get_portal().run(client.chat("hi", model="compat:gpt-4o-mini", max_tokens=3))
    _settle(client)
    assert notices == [] and _gets(fake_server) == 0


# -- where users meet it: gptmagic.chat, evaluate(), %%chat ------------------------------------


def test_gptmagic_chat_warns_once_on_stderr(hosted, tmp_path, capsys) -> None:
    client = Client(lifecycle=Lifecycle(now=_on(date(2027, 1, 20)),
                                        cache=ModelsCache(tmp_path / "m.json")))
    state.current().client = client
    try:
        gptmagic.chat("hi", model="fk:gpt-4o-mini", max_tokens=3)
        _settle(client)
        gptmagic.complete("hi", model="fk:gpt-4o-mini", max_tokens=3)
    finally:
        gptmagic.shutdown()
    err = capsys.readouterr().err
    assert err.count("gptmagic: model 'gpt-4o-mini' was shut down on 2027-01-14, 6 days ago") == 1


def test_evaluate_warns_once_for_many_rows(hosted, tmp_path, clients) -> None:
    notices: list[str] = []
    client = clients(_on(date(2027, 1, 1)), tmp_path / "m.json", notices)
    get_portal().run(client.model_table(provider="fk"))  # the list, known before the run
    data = pd.DataFrame({"q": [f"question {i}" for i in range(6)]})
    res = gptmagic.evaluate(data, "user: {q}", ["fk:gpt-4o-mini", "fk:gpt-4.1-nano"],
                            client=client, cache=False, params={"max_tokens": 3})
    assert len(res.df) == 12 and res.df["error"].isna().all()
    assert len(notices) == 1 and "'gpt-4o-mini' shuts down on 2027-01-14" in notices[0]
    assert _gets(hosted) == 1


@pytest.fixture
def shell(hosted, monkeypatch, tmp_path):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    sh = new_shell()
    sh.run_line_magic("load_ext", "gptmagic")
    yield sh
    sh.run_line_magic("unload_ext", "gptmagic")
    InteractiveShell.clear_instance()


def test_chat_magic_warns_once(shell, hosted, tmp_path) -> None:
    client = Client(lifecycle=Lifecycle(now=_on(date(2026, 12, 31)),
                                        cache=ModelsCache(tmp_path / "m.json")))
    state.current().client = client
    err = ""
    try:
        for _ in range(2):
            with capture_output() as cap:
                shell.run_cell_magic("chat", "-p fk -m gpt-4o-mini --max-tokens 3", "user: hi")
            err += cap.stderr
            _settle(client)
    finally:
        gptmagic.shutdown()
    assert err.count("gptmagic: model 'gpt-4o-mini' shuts down on 2027-01-14, in 14 days "
                     "(source: the provider's /models); for a current model see `gptmagic "
                     "models` (`%gptmagic models` in a notebook)\n") == 1


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
    # The server's explicit null is "none announced"; no field at all is "not recorded"
    # (and OpenAI's table does not speak for this server).
    assert lines["gpt-4.1-nano"].split()[1:] == ["1,047,576", "$0.1", "$0.025", "$0.4", "-"]
    assert lines["gpt-5-mini"].split()[-1] == "?"
    assert "'?': not recorded" in cap.stdout and "'-': none announced" in cap.stdout
    with pytest.raises(Exception, match="usage: %gptmagic models"):
        shell.run_line_magic("gptmagic", "models extra")


def test_model_rows_offline_come_from_the_table() -> None:
    rows = model_rows(["gpt-4o", "gpt-3.5-turbo", "gpt-5-nano", "no-such-model",
                       "gpt-3.5-turbo-0613", "gpt-4-32k", "o1-preview"], date(2026, 12, 1),
                      provider="openai")
    by = {r.model: r for r in rows}
    assert by["gpt-4o"].status == "retiring" and by["gpt-3.5-turbo"].status == "shut down"
    assert by["gpt-5-nano"].status == "" and str(by["gpt-5-nano"].input) == "0.05"
    assert by["no-such-model"].input is None and by["no-such-model"].context_window is None
    assert by["gpt-3.5-turbo-0613"].status == by["gpt-4-32k"].status == "shut down"
    assert not by["o1-preview"].recorded and not by["gpt-5-nano"].recorded
    text = models_text(rows, "note")
    shown = {ln.split()[0]: ln.split()[-1] for ln in text.splitlines()[2:-1]}
    assert shown["o1-preview"] == shown["gpt-5-nano"] == "?"  # not recorded, not "none"
    assert "2025-06-06 SHUT DOWN" in text and "2024-09-13 SHUT DOWN" in text
    assert "-" not in shown.values()


# -- the command ----------------------------------------------------------------------------------


def test_the_models_command(hosted, tmp_path, isolated_env) -> None:
    (isolated_env / "gptmagic.toml").write_text(
        f'[profiles.fk]\nkind = "openai"\nbase_url = "{hosted.url}"\napi_key_env = "FAKE_KEY"\n'
        '[profiles.oa]\nkind = "openai"\nbase_url = "https://api.openai.com/v1"\n'
        'api_key_env = "NO_SUCH_KEY"\n'
        '[profiles.gone]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'api_key_env = "FAKE_KEY"\n')
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "FAKE_KEY": KEY}
    env.pop("NO_SUCH_KEY", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        # The day is frozen (the hidden --today, for tests): this passes on every date.
        return subprocess.run([sys.executable, "-m", "gptmagic", "models", "--today",
                               "2026-12-01", *args],
                              capture_output=True, text=True, timeout=60, env=env)

    p = run("--provider", "fk")
    assert p.returncode == 0, p.stderr
    assert "gpt-4o-mini" in p.stdout and "2027-01-14 RETIRING" in p.stdout
    assert "$0.075" in p.stdout and KEY not in p.stdout + p.stderr
    assert (tmp_path / "xdg" / "gptmagic" / "models.json").exists()
    p = run("--provider", "fk", "--today", "2027-01-14")  # the last one given wins
    assert "2027-01-14 SHUT DOWN" in p.stdout and "2027-01-14 RETIRING" not in p.stdout
    # OpenAI with no key: the package's own table, said so; nothing is fetched.
    p = run("--provider", "oa")
    assert p.returncode == 0, p.stderr
    assert "could not be reached" in p.stdout and "gpt-4.1-nano" in p.stdout
    assert "gpt-4o " in p.stdout and "RETIRING" in p.stdout
    rows = {ln.split()[0]: ln for ln in p.stdout.splitlines()}
    assert rows["gpt-3.5-turbo-0613"].endswith("2024-09-13 SHUT DOWN")
    assert rows["gpt-4-32k"].endswith("2025-06-06 SHUT DOWN")
    assert rows["o1-preview"].endswith("?") and rows["gpt-4.1-nano"].endswith("?")
    # Another host that cannot be reached: OpenAI's table is not its list.
    p = run("--provider", "gone")
    assert p.returncode == 0, p.stderr
    assert "could not be reached" in p.stdout and "gpt-4o" not in p.stdout
    p = run("--provider", "fk", "--today", "soon")
    assert p.returncode == 2 and "'soon' is not a YYYY-MM-DD date" in p.stderr
