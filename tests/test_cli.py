"""The ``gptmagic`` command, run as a user would (real processes, real engine)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gptmagic", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def test_demo_prints_a_streamed_chat_and_a_logprob_table():
    p = run_cli("demo")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "== chat (local), streamed ==" in out
    assert out.count("finish_reason=") == 2 and "time to first token" in out
    assert "top alternatives" in out and "perplexity" in out
    # Every row of the table has a token, its probability and 3 alternatives.
    rows = [ln for ln in out.splitlines() if ln.count("' 0.") + ln.count("' 1.") >= 3]
    assert len(rows) >= 4


def test_serve_is_an_openai_compatible_server():
    proc = subprocess.Popen(
        [sys.executable, "-m", "gptmagic", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        line = proc.stdout.readline()
        url = json.loads(line)["url"]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with httpx.Client(base_url=url, timeout=60) as c:
            assert c.get("/models").json()["data"][0]["id"] == "smollm2-135m-instruct"
            r = c.post(
                "/chat/completions",
                json={
                    "model": "local",
                    "max_tokens": 3,
                    "messages": [{"role": "user", "content": "Hi"}],
                },
            )
            assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 3
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_cli_errors_are_one_clear_line(monkeypatch, isolated_env):
    (isolated_env / "gptmagic.toml").write_text("[profiles.x]\nkind = 'weird'\n")
    p = run_cli("demo", "--profile", "x")
    assert p.returncode == 1
    assert p.stderr.startswith("gptmagic: error: ") and "kind 'weird'" in p.stderr
    assert "Traceback" not in p.stderr


def run_stdin(args: list[str], text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gptmagic", *args],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


def test_tokens_for_text_and_messages(tmp_path):
    p = run_stdin(["tokens", "--model", "gpt-4"], "tiktoken is great!")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("6 tokens (exact; cl100k_base; model gpt-4)")
    assert "cost: $" in p.stdout and "genai-prices" in p.stdout
    f = tmp_path / "msgs.json"
    f.write_text(
        json.dumps(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi", "name": "bob"},
            ]
        )
    )
    p = run_cli("tokens", "--model", "gpt-4o-mini", "--max-tokens", "50", str(f))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("17 tokens (exact; o200k_base")
    assert "[0] system" in lines[1] and "[1] user" in lines[2] and "name=2" in lines[2]
    assert lines[3].strip() == "reply priming 3"


def test_tokens_local_is_free_and_counted_by_the_engine():
    p = run_stdin(["tokens", "--model", "local"], '[{"role": "user", "content": "Hi"}]')
    assert p.returncode == 0, p.stderr
    assert "smollm2 (engine)" in p.stdout and "$0.00 at most (local model (free))" in p.stdout


def test_tokens_bad_input_is_one_clear_line(tmp_path):
    for args, text, match in [
        (["tokens", "--model", "gpt-4o"], "[1,", "not a JSON message list"),
        (["tokens", "--model", "gpt-4o"], "[1]", "messages[0]"),
        (["tokens", str(tmp_path / "missing.txt")], "", "cannot read"),
    ]:
        p = run_stdin(args, text)
        assert p.returncode == 1 and match in p.stderr and "Traceback" not in p.stderr


def test_eval_from_a_toml_config(tmp_path, fake_server, isolated_env):
    (tmp_path / "cases.csv").write_text("q,expected\nhello,echo: hello\nbye,nope\n")
    cfg = tmp_path / "run.toml"
    cfg.write_text("""
data = "cases.csv"
prompt = "user: {q}"
models = ["fake-model"]
params = { max_tokens = 20 }
scorers = [{ type = "exact", column = "expected" }]
""")
    (isolated_env / "gptmagic.toml").write_text(
        f'default_profile = "fake"\n[profiles.fake]\nbase_url = "{fake_server.url}"\n')
    env = {**os.environ, "GPTMAGIC_CACHE": str(tmp_path / "c.sqlite")}
    p = subprocess.run([sys.executable, "-m", "gptmagic", "eval", str(cfg)], capture_output=True,
                       text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    assert "2 calls, 0 from cache, 0 errors; results written to" in p.stdout
    import pandas as pd

    df = pd.read_csv(tmp_path / "run.results.csv")
    assert list(df["score.exact"]) == [1.0, 0.0] and len(fake_server.requests) == 2
    # Run again: every row is the cached one, and the run says so (issue 13, item 20).
    p = subprocess.run([sys.executable, "-m", "gptmagic", "eval", str(cfg)], capture_output=True,
                       text=True, timeout=120, env=env)
    assert "2 calls, 2 from cache, 0 errors" in p.stdout and len(fake_server.requests) == 2
    cfg.write_text('data = "cases.csv"\nmodels = ["m"]\nbogus = 1\n')
    p = subprocess.run([sys.executable, "-m", "gptmagic", "eval", str(cfg)], capture_output=True,
                       text=True, timeout=60, env=env)
    assert p.returncode == 1 and "unknown setting(s) bogus" in p.stderr


def test_eval_interrupted_says_what_is_stored(tmp_path, fake_server, isolated_env):
    """Ctrl-C in `gptmagic eval`: one line saying what is stored, exit 130, no traceback."""
    from fakeserver import Behaviour

    fake_server.set_default(Behaviour(delay=0.1))
    (tmp_path / "cases.csv").write_text("q\n" + "".join(f"row {i}\n" for i in range(40)))
    cfg = tmp_path / "run.toml"
    cfg.write_text('data = "cases.csv"\nprompt = "user: {q}"\nmodels = ["fake-model"]\n'
                   'concurrency = 2\n')
    (isolated_env / "gptmagic.toml").write_text(
        f'default_profile = "fake"\n[profiles.fake]\nbase_url = "{fake_server.url}"\n')
    cache = tmp_path / "c.sqlite"
    env = {**os.environ, "GPTMAGIC_CACHE": str(cache)}
    p = subprocess.Popen([sys.executable, "-m", "gptmagic", "eval", str(cfg)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(fake_server.requests) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    db = sqlite3.connect(cache)
    kept = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    db.close()
    assert p.returncode == 130, err
    assert err.strip() == f"gptmagic: interrupted: {kept}/40 stored; run again to resume"


@pytest.mark.parametrize("kind", ["judge", "score_async", "ScorerError", "dataclass", "nope"])
def test_eval_config_names_only_config_scorers(tmp_path, isolated_env, kind):
    (tmp_path / "cases.csv").write_text("q\nhello\n")
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'data = "cases.csv"\nprompt = "user: {{q}}"\nmodels = ["local"]\n'
                   f'scorers = [{{ type = "{kind}" }}]\n')
    p = subprocess.run([sys.executable, "-m", "gptmagic", "eval", str(cfg)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1 and f"unknown scorer '{kind}'; use exact," in p.stderr
    assert "Traceback" not in p.stderr


def test_eval_says_what_changed_since_the_previous_run(tmp_path, fake_server, isolated_env):
    """The fake server echoes the question: ``{q}`` then ``{q} yes`` with ``contains yes``
    turns both cases that lacked it from fail to pass, and "yes" stays a pass."""
    (tmp_path / "cases.csv").write_text("q,expected\nyes,yes\nno,yes\nmaybe,yes\n")
    cfg = tmp_path / "run.toml"
    body = """
data = "cases.csv"
prompts = {{ p = "user: {prompt}" }}
models = ["fake-model"]
scorers = [{{ type = "contains", column = "expected" }}]
"""
    (isolated_env / "gptmagic.toml").write_text(
        f'default_profile = "fake"\n[profiles.fake]\nbase_url = "{fake_server.url}"\n')
    env = {**os.environ, "GPTMAGIC_CACHE": str(tmp_path / "c.sqlite")}

    def run(prompt: str, name: str) -> str:
        cfg.write_text(body.format(prompt=prompt))
        p = subprocess.run([sys.executable, "-m", "gptmagic", "eval", str(cfg), "--run", name],
                           capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode == 0, p.stderr
        return p.stdout

    first = run("{q}", "before")
    assert "run before (" in first and "the first of these prompts and models" in first
    second = run("{q} yes", "after")
    said = [ln for ln in second.splitlines() if ln.startswith("run after (")]
    assert len(said) == 1
    assert said[0].split(") ", 1)[1].startswith("vs before (")
    assert said[0].endswith("score 0.33 → 1.00 (+0.67), 2 cases fail→pass, 0 pass→fail")
    third = run("{q}", "again")  # back: the previous run is "after"
    assert "vs after (" in third and "2 pass→fail" in third
