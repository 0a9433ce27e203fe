"""``gptmagic eval --batch`` and ``gptmagic batches`` (in-process, against the fake server's
Batch API; its clock is the test's)."""

from __future__ import annotations

import pandas as pd
import pytest
from fakebatches import Clock

from gptmagic.cli import main

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def config(tmp_path, fake_server, isolated_env, monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "c.sqlite"))
    monkeypatch.setenv("FAKE_KEY", "sk-cli-batch-0123456789")
    (isolated_env / "gptmagic.toml").write_text(
        f'[profiles.fake]\nkind = "openai"\nbase_url = "{fake_server.url}"\n'
        'api_key_env = "FAKE_KEY"\n')
    (tmp_path / "cases.csv").write_text("q\nhello\nbye\nagain\n")
    cfg = tmp_path / "run.toml"
    cfg.write_text('data = "cases.csv"\nprompt = "user: {q}"\nmodels = ["fake:gpt-4o-mini"]\n'
                   "batch = { poll = 0.005 }\n")
    fake_server.batches.clock = Clock(scale=0)
    return cfg


def test_submit_list_cancel_collect_and_resubmit(config, fake_server, capsys):
    assert main(["eval", str(config), "--no-wait"]) == 0
    out = capsys.readouterr().out
    assert "3 pending in batches" in out and "Run the same command again to collect" in out
    (batch_id,) = fake_server.batches.batches
    assert main(["batches"]) == 0
    listed = capsys.readouterr().out
    assert batch_id in listed and "validating" in listed and "fake" in listed
    assert main(["batches", "cancel", batch_id]) == 0
    assert f"{batch_id}: cancelling (0 of 3 done" in capsys.readouterr().out
    fake_server.batches.clock.advance(3600)
    assert main(["eval", str(config)]) == 0  # collects: cancelled before any line ran
    out = capsys.readouterr().out
    assert "3 pending in batches" in out and "resubmit=True" in out
    fake_server.batches.clock = Clock(scale=1e6)
    assert main(["eval", str(config), "--resubmit"]) == 0
    assert "3 calls, 0 from cache, 0 errors; results" in capsys.readouterr().out
    df = pd.read_csv(config.with_suffix(".results.csv"))
    assert list(df["output"]) == ["echo: hello", "echo: bye", "echo: again"]
    assert df["batch"].nunique() == 1 and df["batch"][0] != batch_id
    assert main(["batches", "--no-refresh"]) == 0
    listed = capsys.readouterr().out
    assert "cancelled" in listed and "completed" in listed


def test_batches_errors_are_one_line(config, capsys):
    assert main(["batches"]) == 0
    assert "no batches in the cache" in capsys.readouterr().out
    assert main(["batches", "cancel"]) == 1
    assert "needs the batch's id" in capsys.readouterr().err
    assert main(["batches", "cancel", "batch_nope"]) == 1
    assert "no batch 'batch_nope' in the cache" in capsys.readouterr().err


def test_a_run_without_batch_leaves_the_calls_of_a_batch_to_it(config, fake_server, capsys):
    assert main(["eval", str(config), "--no-wait"]) == 0
    capsys.readouterr()
    live = config.with_name("live.toml")
    live.write_text(config.read_text().replace("batch = { poll = 0.005 }\n", ""))
    assert main(["eval", str(live)]) == 0
    out = capsys.readouterr().out
    assert "3 pending in batches" in out and "Run it with --batch to collect them" in out
    assert not [r for r in fake_server.requests if r.path.endswith("/chat/completions")]
