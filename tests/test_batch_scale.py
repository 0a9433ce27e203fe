"""Batch mode at size: 20,000 calls (10,000 rows × two models) through the fake server's
Batch API, every call answered exactly once (a slow test: see conftest's marks)."""

from __future__ import annotations

import collections

import pytest
from fakebatches import Clock

import gptmagic
from gptmagic.eval.runner import evaluate

pytestmark = pytest.mark.timeout(600)


def test_twenty_thousand_calls_each_exactly_once(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.setenv("FAKE_KEY", "sk-scale-0123456789")
    gptmagic.add_profile("f", kind="openai", base_url=fake_server.url, api_key_env="FAKE_KEY")
    fake_server.batches.clock = Clock(scale=1e6)
    rows = [{"q": f"case {i}"} for i in range(10_000)]
    res = evaluate(rows, "user: {q}", ["f:gpt-4o-mini", "f:gpt-4.1-nano"],
                   batch={"poll": 0.05, "max_requests": 4_000}, progress=False)
    df = res.df
    assert len(df) == 20_000 and df["error"].isna().all() and "pending" not in df
    assert (df["output"] == "echo: " + df["input.q"]).all()
    sent = collections.Counter(x["custom_id"] for b in fake_server.batches.batches.values()
                               for x in b.lines)
    assert len(sent) == 20_000 and set(sent.values()) == {1}
    assert len(fake_server.batches.batches) == 6  # 10,000 a model, 4,000 a file
    assert df["cost"].notna().all() and df["batch"].nunique() == 6
    again = evaluate(rows, "user: {q}", ["f:gpt-4o-mini", "f:gpt-4.1-nano"], batch=True,
                     progress=False)
    assert again.df["cached"].all() and len(fake_server.batches.batches) == 6
