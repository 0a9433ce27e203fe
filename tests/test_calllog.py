"""The magics' call log (issue 17, item 2): every %%chat / %%complete reply in the cache
file, searchable with gptmagic.log() and %chat log, never a key; opt out; a log that
cannot be written never breaks a cell. In-process IPython shell, real fake server, real
SQLite."""

from __future__ import annotations

import sqlite3
import warnings
from datetime import date, datetime, timedelta

import pytest
from IPython.utils.capture import capture_output
from shell_support import chat, fake_shell

import gptmagic
from gptmagic.errors import RequestError
from gptmagic.eval.calllog import call_detail, public_url
from gptmagic.eval.store import CacheWarning, Store

KEY = "sk-fake-calllog-0123456789abcdef"
HEADER = "hdr-secret-9876543210"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache.sqlite"
    monkeypatch.setenv("GPTMAGIC_CACHE", str(path))
    return path


@pytest.fixture
def shell(fake_server, monkeypatch, tmp_path, cache):
    with fake_shell(fake_server.url, monkeypatch, tmp_path, KEY) as sh:
        yield sh


def magics(sh):
    return sh.magics_manager.registry["GptMagics"]


def line(sh, magic, text):
    with capture_output() as cap:
        sh.run_line_magic(magic, text)
    return cap


def test_every_chat_and_complete_reply_is_logged(shell, cache):
    chat(shell, "-p fake --temperature 0 --max-tokens 20 --thread t1", "user: hello there")
    chat(shell, "-p fake -m one,two --no-history", "user: side by side")
    with capture_output():
        shell.run_cell_magic("complete", "-p fake --max-tokens 5", "Once upon")
    df = gptmagic.log()
    assert list(df["model"]) == ["fake-model", "two", "one", "fake-model"]  # newest first
    assert list(df["kind"]) == ["completion", "chat", "chat", "chat"]
    first = df.iloc[-1]
    assert first["request"] == "user: hello there" and first["reply"] == "echo: hello there"
    assert first["thread"] == "t1" and first["provider"] == "fake"
    assert (first["prompt_tokens"], first["completion_tokens"]) == (2, 3)
    assert first["latency"] > 0 and first["when"].tzinfo is not None
    assert df.iloc[0]["request"] == "Once upon" and df.iloc[0]["reply"] == " echo: Once upon"
    detail = call_detail(Store(cache), int(first["id"]))
    assert detail["messages"] == [{"role": "user", "content": "hello there"}]
    assert detail["params"] == {"api": "chat", "temperature": 0.0, "max_tokens": 20}
    assert detail["usage"]["prompt_tokens"] == 2 and detail["finish_reason"] == "stop"
    assert set(detail) >= {"model", "prompt", "messages", "params", "reply", "finish_reason",
                           "usage", "cost", "latency", "ttft", "compute", "logprobs",
                           "scores", "error", "when"}


def test_a_logged_calls_logprobs_come_back_in_its_detail(shell, cache):
    chat(shell, "-p fake --top-logprobs 2 --no-stream", "user: tell me")
    detail = call_detail(Store(cache), int(gptmagic.log().iloc[0]["id"]))
    tokens = detail["logprobs"]
    assert "".join(t["token"] for t in tokens) == "echo: tell me"
    assert len(tokens[0]["top"]) == 2 and tokens[0]["top"][0]["logprob"] <= 0


def test_no_key_header_or_userinfo_is_ever_stored(shell, cache, fake_server):
    gptmagic.add_profile("fake", base_url=fake_server.url, default_model="fake-model",
                         api_key_env="FAKE_KEY", headers={"X-Custom-Auth": HEADER})
    chat(shell, "-p fake", f"user: my key is {KEY}")  # even one the user typed
    magics(shell).session.log_cache = None
    stored = b"".join(p.read_bytes() for p in cache.parent.glob(cache.name + "*"))
    assert b"my key is" in stored  # the log is there...
    assert KEY.encode() not in stored and HEADER.encode() not in stored  # ...its secrets not
    assert b"Authorization" not in stored and b"Bearer" not in stored
    assert public_url("https://user:pa55@host.example/v1") == "https://host.example/v1"
    assert public_url("http://127.0.0.1:8/v1") == "http://127.0.0.1:8/v1"


def test_logging_off_by_magic_by_setting_and_by_environment(shell, cache, monkeypatch):
    chat(shell, "-p fake", "user: one")
    assert "log: on" in line(shell, "gptmagic", "").stdout
    cap = line(shell, "gptmagic", "log off")
    assert "no longer logged" in cap.stdout
    chat(shell, "-p fake", "user: two")
    assert list(gptmagic.log()["request"]) == ["user: one"]
    line(shell, "gptmagic", "log on")
    chat(shell, "-p fake", "user: three")
    assert len(gptmagic.log()) == 2
    shell.run_line_magic("config", "GptMagics.log_calls = False")
    chat(shell, "-p fake", "user: four")
    assert len(gptmagic.log()) == 2
    shell.run_line_magic("unload_ext", "gptmagic")
    monkeypatch.setenv("GPTMAGIC_LOG", "0")
    shell.run_line_magic("load_ext", "gptmagic")
    chat(shell, "-p fake", "user: five")
    assert len(gptmagic.log()) == 2 and "log: off" in line(shell, "gptmagic", "").stdout


def test_search_model_since_and_limit(shell, cache):
    for text in ("the quick brown fox", "lazy dogs sleep", "quick thinking"):
        chat(shell, "-p fake --no-history", f"user: {text}")
    chat(shell, "-p fake -m other --no-history", "user: quick other")
    assert list(gptmagic.log(search="quick")["request"]) == [
        "user: quick other", "user: quick thinking", "user: the quick brown fox"]
    assert list(gptmagic.log(search="brow")["request"]) == ["user: the quick brown fox"]
    assert list(gptmagic.log(search="echo: lazy")["reply"]) == ["echo: lazy dogs sleep"]
    assert gptmagic.log(search='"; DROP TABLE calllog; --').empty  # only words
    assert list(gptmagic.log(search="quick", model="other")["model"]) == ["other"]
    assert len(gptmagic.log(limit=2)) == 2
    assert len(gptmagic.log(since=timedelta(hours=1))) == 4
    assert gptmagic.log(since=datetime.now() + timedelta(minutes=5)).empty
    assert len(gptmagic.log(since=date.today().isoformat())) == 4
    assert gptmagic.log(since=(date.today() + timedelta(days=1))).empty
    with pytest.raises(RequestError, match="since='yesterday' is not a date"):
        gptmagic.log(since="yesterday")


def test_search_without_fts5_falls_back_to_like(shell, cache):
    chat(shell, "-p fake --no-history", "user: 100% sure_thing")
    chat(shell, "-p fake --no-history", "user: 100 percent")
    db = sqlite3.connect(cache)
    db.executescript("DROP TRIGGER calllog_ai; DROP TRIGGER calllog_ad; "
                     "DROP TABLE calllog_fts;")
    db.close()
    assert list(gptmagic.log(search="100%")["request"]) == ["user: 100% sure_thing"]
    assert list(gptmagic.log(search="0_p")["request"]) == []  # _ is no wildcard
    chat(shell, "-p fake --no-history", "user: 100% again")  # writing works without it
    assert len(gptmagic.log(search="100%")) == 2


def test_chat_log_shows_the_last_calls_as_a_compact_table(shell, cache):
    chat(shell, "-p fake --no-history", "user: first question")
    chat(shell, "-p fake --no-history", "user: <script>alert(1)</script>")
    chat(shell, "-p fake --no-history", "user: <img src=x onerror=alert(2)>")
    out = line(shell, "chat", "log -n 2").stdout.splitlines()
    assert out[0].split() == ["id", "when", "model", "thread", "request", "reply", "tokens",
                              "cost", "seconds"]
    assert len(out) == 3 and "onerror" in out[1] and "first question" not in "".join(out)
    found = line(shell, "chat", "log --search first").stdout
    assert "user: first question" in found and "echo: first question" in found
    shell.kernel = object()  # a notebook's front end: rich output
    cap = line(shell, "chat", "log")
    page = cap.outputs[0].data["text/html"]
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    with pytest.raises(Exception, match="-n must be a whole number"):
        shell.run_line_magic("chat", "log -n x")


def test_a_log_that_cannot_be_written_warns_once_and_never_breaks_a_cell(shell, tmp_path):
    magics(shell).session.log_cache = str(tmp_path)  # a directory: no store opens there
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        r1, _ = chat(shell, "-p fake", "user: one")
        r2, _ = chat(shell, "-p fake", "user: two")
    assert (r1.text, r2.text) == ("echo: one", "echo: two")
    said = [str(w.message) for w in seen if issubclass(w.category, CacheWarning)]
    assert len(said) == 1 and "not logged" in said[0] and "is a directory" in said[0]


def test_call_detail_of_an_unknown_id_is_a_clear_error(shell, cache):
    chat(shell, "-p fake", "user: one")
    with pytest.raises(RequestError, match="no logged call 99"):
        call_detail(Store(cache), 99)


def test_log_of_no_file_is_empty(tmp_path):
    assert gptmagic.log(cache=tmp_path / "none.sqlite").empty
    assert not (tmp_path / "none.sqlite").exists()


def test_show_call_opens_a_logged_call_in_the_explorers_panel(shell, cache):
    from gptmagic.views.explorer import CallPanel

    chat(shell, "-p fake", "user: <img src=x onerror=alert(1)> panel please")
    panel = gptmagic.show_call(int(gptmagic.log().iloc[0]["id"]))
    assert isinstance(panel, CallPanel)
    assert "echo: <img src=x onerror=alert(1)> panel please" in panel.to_text()
    page = panel.to_html()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


#: One process logging N calls to one file (as two kernels on one cache do).
WRITER = r"""
import sys
from gptmagic.core.types import Choice, Result, Timings, Usage
from gptmagic.eval.calllog import LoggedCall, write
from gptmagic.eval.store import Store
store = Store(sys.argv[1])
for i in range(int(sys.argv[3])):
    r = Result(kind="chat", model="m", choices=[Choice(index=0, text=f"reply {i}")],
               usage=Usage(1, 1, 2), timings=Timings(total=0.1))
    assert write(store, LoggedCall("chat", "m", f"{sys.argv[2]} {i}", {}, r))
store.close()
"""


def test_two_processes_log_to_one_file_at_once(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "shared.sqlite"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, "40"],
                              stderr=subprocess.PIPE, text=True) for name in ("left", "right")]
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read() if p.stderr else ""
    assert len(gptmagic.log(cache=path, limit=500)) == 80
    assert len(gptmagic.log(search="left", cache=path, limit=500)) == 40
    store = Store(path)
    try:
        assert store.integrity() == "ok"
    finally:
        store.close()


def test_a_failed_call_is_logged_with_its_error_and_no_reply(shell, cache, fake_server):
    from fakeserver import Behaviour

    said = {"error": {"message": f"no such thing (you sent {KEY})", "type": "invalid"}}
    fake_server.plan(Behaviour(status=400, body=said), Behaviour(status=400, body=said))
    with pytest.raises(Exception, match="no such thing"):
        chat(shell, "-p fake --no-history", "user: doomed chat")
    with pytest.raises(Exception, match="no such thing"):
        with capture_output():
            shell.run_cell_magic("complete", "-p fake", "doomed prompt")
    fake_server.plan(Behaviour(status=400, body=said))  # one of two models fails
    chat(shell, "-p fake -m one,two --no-history", "user: half")
    df = gptmagic.log()
    assert list(df["kind"]) == ["chat", "chat", "completion", "chat"]
    assert list(df["request"]) == ["user: half", "user: half", "doomed prompt",
                                   "user: doomed chat"]
    failed = df[df["error"].notna()]
    assert len(failed) == 3 and failed["reply"].isna().all()
    assert all("no such thing" in e and "[REDACTED]" in e for e in failed["error"])
    assert df["reply"].notna().sum() == 1
    stored = b"".join(p.read_bytes() for p in cache.parent.glob(cache.name + "*"))
    assert KEY.encode() not in stored
    detail = call_detail(Store(cache), int(df.iloc[-1]["id"]))
    assert detail["reply"] is None and "no such thing" in detail["error"]
    assert detail["messages"] == [{"role": "user", "content": "doomed chat"}]


#: What each search finds among the logged requests below, with the FTS5 index and
#: without it: each word literally, in any case (a word that starts with a letter or
#: digit starts a word), never as FTS5 syntax.
TEXTS = ['say "hi" NEAR the *star* - minus', "a OR b", "c++ AND d", "cats and code",
         "x:y col:val", "(paren", "it's fine", "gpt-4o mini", "Éclair café"]
SEARCHES = {"c++": ["c++ AND d"], "c": ["c++ AND d", "cats and code", "x:y col:val",
                                        "Éclair café"],
            "*": ['say "hi" NEAR the *star* - minus'],
            "-": ['say "hi" NEAR the *star* - minus', "gpt-4o mini"],
            "'": ["it's fine"], '"hi"': ['say "hi" NEAR the *star* - minus'],
            '"': ['say "hi" NEAR the *star* - minus'], "OR": ["a OR b"], "near": [
                'say "hi" NEAR the *star* - minus'], "col:val": ["x:y col:val"],
            "(paren": ["(paren"], "gpt-4o": ["gpt-4o mini"], "4o": ["gpt-4o mini"],
            "pt-4": [], "éclair CAFÉ": ["Éclair café"], "ode": [], "*star* minus": [
                'say "hi" NEAR the *star* - minus'], "AND c++": ["c++ AND d"],
            "NEAR(a b)": [], "cats code": ["cats and code"], "code cats x": []}


@pytest.mark.parametrize("fts", [True, False])
def test_search_is_literal_with_fts5_and_without(tmp_path, fts):
    from gptmagic.core.types import Choice, Result, Timings, Usage
    from gptmagic.eval.calllog import LoggedCall, write

    path = tmp_path / "log.sqlite"
    store = Store(path)
    for text in TEXTS:
        r = Result(kind="chat", model="m", choices=[Choice(index=0, text="ok")],
                   usage=Usage(1, 1, 2), timings=Timings(total=0.1))
        assert write(store, LoggedCall("chat", "m", text, {}, r))
    store.close()
    if not fts:
        db = sqlite3.connect(path)
        db.executescript("DROP TRIGGER calllog_ai; DROP TRIGGER calllog_ad; "
                         "DROP TABLE calllog_fts;")
        db.close()
    found = {q: sorted(gptmagic.log(search=q, cache=path)["request"], key=TEXTS.index)
             for q in SEARCHES}
    assert found == SEARCHES


def test_limit_must_be_a_whole_number_and_a_huge_one_means_all(shell, cache):
    chat(shell, "-p fake --no-history", "user: one")
    chat(shell, "-p fake --no-history", "user: two")
    assert len(gptmagic.log(limit=99999999999999999999)) == 2
    assert len(line(shell, "chat", "log -n 99999999999999999999").stdout.splitlines()) == 3
    for bad in ("5", 2.5, True, 0, None):
        with pytest.raises(RequestError, match=r"limit=.*whole number >= 1 \(e.g. limit=50\)"):
            gptmagic.log(limit=bad)


def test_terminal_controls_in_the_log_and_the_call_panel_are_shown_not_sent(shell, cache):
    hostile = "red \x1b[31mtext\x1b]0;pwned\x07 bell\x08 del\x7f csi\x9b end"
    chat(shell, "-p fake --no-history", f"user: {hostile}")
    out = line(shell, "chat", "log -n 1").stdout
    assert "\\x1b[31mtext\\x1b]0;pwned\\x07" in out
    assert not any(ord(c) < 0x20 and c not in "\n\t" or 0x7f <= ord(c) < 0xa0 for c in out)
    panel = gptmagic.show_call(int(gptmagic.log().iloc[0]["id"])).to_text()
    assert f"echo: {hostile}".encode("unicode_escape").decode() in panel
    assert "\\x1b]0;pwned\\x07" in panel and "\x1b" not in panel and "\x07" not in panel
    assert gptmagic.log().iloc[0]["reply"] == f"echo: {hostile}"  # kept as it was


def test_show_call_of_a_missing_file_says_so_and_creates_nothing(tmp_path):
    from gptmagic.errors import ConfigError

    with pytest.raises(ConfigError, match=r"no call log at .*none\.sqlite: the file does not"):
        gptmagic.show_call(1, cache=tmp_path / "none.sqlite")
    assert not (tmp_path / "none.sqlite").exists()


def test_the_log_keeps_the_last_n_calls(shell, cache, monkeypatch):
    from gptmagic.core.types import Choice, Result, Timings, Usage
    from gptmagic.eval.calllog import KEEP, LoggedCall, write

    assert KEEP == 10_000 and f"keeps the last {KEEP:,} calls" in line(shell, "gptmagic", "").stdout
    assert "keeps the last 2 calls" in line(shell, "gptmagic", "log keep 2").stdout
    for word in ("alpha", "bravo", "charlie", "delta"):
        chat(shell, "-p fake --no-history", f"user: {word}")
    assert list(gptmagic.log()["request"]) == ["user: delta", "user: charlie"]
    assert gptmagic.log(search="alpha").empty  # gone from the search index too
    db = sqlite3.connect(cache)
    assert db.execute("SELECT count(*) FROM calllog_fts").fetchone() == (2,)
    db.close()
    with pytest.raises(Exception, match="log keep: expected a whole number >= 1"):
        shell.run_line_magic("gptmagic", "log keep 0")
    store = Store(cache)  # the library's write keeps all unless told
    r = Result(kind="chat", model="m", choices=[Choice(index=0, text="r")], usage=Usage(1, 1, 2),
               timings=Timings(total=0.1))
    write(store, LoggedCall("chat", "m", "echo", {}, r))
    assert len(gptmagic.log(cache=store)) == 3
    write(store, LoggedCall("chat", "m", "foxtrot", {}, r), keep=1)
    assert list(gptmagic.log(cache=store)["request"]) == ["foxtrot"]
    store.close()
    shell.run_line_magic("unload_ext", "gptmagic")
    monkeypatch.setenv("GPTMAGIC_LOG_KEEP", "5_000")
    shell.run_line_magic("load_ext", "gptmagic")
    assert "keeps the last 5,000 calls" in line(shell, "gptmagic", "").stdout


def test_a_profile_with_log_false_is_never_logged(shell, cache, fake_server):
    from gptmagic.errors import ConfigError

    gptmagic.add_profile("quiet", base_url=fake_server.url, default_model="fake-model",
                         log=False)
    r, _ = chat(shell, "-p quiet --no-history", "user: confidential")
    assert r.text == "echo: confidential"
    chat(shell, "-p fake --no-history", "user: ordinary")
    chat(shell, "-p quiet -m a,b --no-history", "user: confidential too")
    with capture_output():
        shell.run_cell_magic("complete", "-p quiet", "confidential prompt")
    assert list(gptmagic.log()["request"]) == ["user: ordinary"]
    stored = b"".join(p.read_bytes() for p in cache.parent.glob(cache.name + "*"))
    assert b"confidential" not in stored
    with pytest.raises(ConfigError, match="log must be true or false, got 'no'"):
        gptmagic.add_profile("bad", base_url=fake_server.url, log="no")
