"""The ``gptmagic`` command, run as a user would (real processes, real engine)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gptmagic", *args], capture_output=True,
                          text=True, timeout=timeout, env=os.environ.copy())


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
    proc = subprocess.Popen([sys.executable, "-m", "gptmagic", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy())
    try:
        line = proc.stdout.readline()
        url = json.loads(line)["url"]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with httpx.Client(base_url=url, timeout=60) as c:
            assert c.get("/models").json()["data"][0]["id"] == "smollm2-135m-instruct"
            r = c.post("/chat/completions", json={"model": "local", "max_tokens": 3,
                                                  "messages": [{"role": "user", "content": "Hi"}]})
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
