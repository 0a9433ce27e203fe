"""Pure renderers: finish reasons, summaries, escaping, metadata without secrets."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from gptmagic import display
from gptmagic.pricing import Cost
from gptmagic.types import Choice, Result, Timings, Usage

XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "</style><script>x()</script>",
    "[click](javascript:alert(1))",
    "<a href='data:text/html,x'>y</a>",
]


def result(text="Hello", reasons=("stop",), usage="default", ttft=0.105, raw=None):
    usage = Usage(5, 2, 7) if usage == "default" else usage
    return Result(
        "chat",
        "m-1",
        [Choice(i, text + (f" {i}" if len(reasons) > 1 else ""), r) for i, r in enumerate(reasons)],
        usage,
        id="c1",
        timings=Timings(total=0.64, ttft=ttft),
        raw=raw or {"k": "sk-secret-123456"},
        request_id="req_1",
    )


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("stop", "finished"),
        ("length", "raise --max-tokens (now 48)"),
        ("content_filter", "content filter"),
        ("tool_calls", "tool"),
        (None, "without a finish"),
        ("weird", "'weird'"),
    ],
)
def test_explain_finish(reason, words):
    assert words in display.explain_finish(reason, max_tokens=48)


def test_summary_line_variants():
    cost = Cost(Decimal("0.00001"), Decimal("0.000002"), Decimal("0.000012"), source="x")
    line = display.summary_line(result(), cost)
    assert line == (
        "finish: stop · tokens: 5 prompt + 2 completion · cost $0.000012 · "
        "0.64 s, first token 105 ms · m-1"
    )
    line = display.summary_line(
        result(reasons=("length",), usage=None, ttft=None), None, max_tokens=8
    )
    assert "finish: length — cut off at max_tokens=8" in line
    assert "tokens: not reported" in line and "cost unknown" in line and "first token" not in line


def test_reply_bundle_choices_and_metadata_without_secrets():
    data, meta = display.reply_bundle(
        result(reasons=("stop", "length")),
        note="dropped 2",
        request_summary={"model": "m-1", "params": {"n": 2}},
    )
    assert "choice 1 of 2" in data["text/markdown"] and "choice 2 of 2" in data["text/plain"]
    assert "dropped 2" in data["text/plain"]
    text = json.dumps(meta)  # JSON-serialisable
    assert "sk-secret" not in text and "sk-secret" not in json.dumps(data)
    assert meta["gptmagic"]["response"]["finish_reasons"] == ["stop", "length"]
    assert meta["gptmagic"]["response"]["usage"]["prompt_tokens"] == 5


@pytest.mark.parametrize("payload", XSS)
def test_untrusted_output_is_inert(payload):
    md = display.reply_bundle(result(text=payload))[0]["text/markdown"]
    live = display.stream_bundle({0: payload}, model="m")["text/markdown"]
    html = display.side_by_side_bundle(
        [display.SideBySideRow("m", result(text=payload), None, None)]
    )[0]["text/html"]
    for view in (md, live, html):
        assert "<script" not in view and "<img" not in view and "<a " not in view
    for view in (md, live):  # in HTML the link syntax is plain text already
        assert "](javascript:" not in view


def test_code_fences_stay_verbatim():
    text = "Use this:\n```html\n<b>bold</b>\n```\nand `<i>` inline, but <u>not</u> here."
    md = display.safe_markdown(text)
    assert "```html\n<b>bold</b>\n```" in md and "`<i>`" in md and "&lt;u&gt;" in md


def test_history_fill_and_side_by_side_error():
    rows = [
        display.HistoryRow(1, "user", None, "hi <b>", 10, "c1"),
        display.HistoryRow(1, "assistant", None, "x" * 300, 90, "c1"),
    ]
    data, meta = display.history_bundle(rows, thread="t", context_window=1000, total=103)
    assert "103 of 1,000 tokens (10%)" in data["text/html"] and "hi &lt;b&gt;" in data["text/html"]
    assert "…" in data["text/html"] and meta["gptmagic"]["tokens"] == 103
    data, _ = display.side_by_side_bundle(
        [
            display.SideBySideRow("a", result(), None, None),
            display.SideBySideRow("b", None, "HTTP 404: no such model", None),
        ]
    )
    assert "HTTP 404: no such model" in data["text/html"] and "error:" in data["text/plain"]


def test_dry_run_refuses_secrets_and_cleans_urls():
    from gptmagic.pricing import estimate
    from gptmagic.tokens import count_tokens

    c = count_tokens([{"role": "user", "content": "hi"}], "gpt-4o")
    e = estimate(c.total, "gpt-4o", max_tokens=10)
    data, meta = display.dry_run_bundle(
        {"model": "gpt-4o", "messages": []},
        url="https://x/v1/chat?api-version=1&api-key=S&sig=T",
        count=c,
        estimate=e,
    )
    assert (
        "api-version=1" in data["text/plain"] and "S" not in meta["gptmagic"]["url"].split("?")[1]
    )
    assert "sig=" not in data["text/plain"] and "api-key" not in data["text/plain"]
    with pytest.raises(ValueError, match="Authorization"):
        display.dry_run_bundle(
            {"headers": {"Authorization": "Bearer x"}}, url="u", count=c, estimate=e
        )
