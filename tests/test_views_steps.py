"""The views of a tool loop's steps (pure): collapsed, truncated, inert, readable history."""

from __future__ import annotations

import json

from hostile_markdown import ENCODED_LINKS, browser_scheme, link_targets

from gptmagic.core.types import Choice, Result, Step, ToolCall, Usage
from gptmagic.views.steps import RESULT_CHARS, live_bundle, message_text, steps_meta, steps_views


def _step(*calls: ToolCall, text: str = "") -> Step:
    result = Result("chat", "m", [Choice(0, text, "tool_calls", role="assistant")],
                    usage=Usage(12, 3, 15))
    result.timings.total = 0.25
    return Step(result, list(calls))


def _html(markdown: str) -> str:
    """The HTML nbconvert makes of a Markdown output (mistune, as the report does)."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return markdown2html_mistune(markdown)


def test_a_step_is_collapsed_with_the_call_its_arguments_result_and_times():
    call = ToolCall("call_1", "get_weather", '{"city":"Paris"}', {"city": "Paris"},
                    "18 C", seconds=0.0123)
    md, plain = steps_views([_step(call)])
    assert md.startswith("<details><summary>step 1 · get_weather(")
    assert '"city": "Paris"' in md  # pretty JSON, fenced
    assert "model call: 12 prompt + 3 completion tokens · 250 ms" in md
    assert "ran in 12 ms" in md and "18 C" in md
    assert plain.splitlines()[0] == '── step 1 · get_weather({"city": "Paris"}) · ran in 12 ms ──'


def test_a_long_result_is_cut_and_whole_one_click_further():
    out = "x" * (RESULT_CHARS + 50) + "END"
    md, plain = steps_views([_step(ToolCall("c", "f", "{}", {}, out, seconds=0.1))])
    assert md.count("END") == 1 and f"whole result ({len(out):,} characters)" in md
    assert "END" not in plain  # a terminal shows the start only
    html = _html(md)
    assert html.count("<details>") == 2  # the step, and the whole result inside it


def test_errors_and_declined_calls_say_so():
    declined = ToolCall("a", "f", "{}", None, "Error: the user declined this call",
                        "declined by the user", approved=False)
    failed = ToolCall("b", "g", "{not json", None, "Error: bad", "bad arguments")
    md, _ = steps_views([_step(declined, failed)])
    assert "step 1 · 2 calls: f, g (2 failed or declined)" in md
    assert "declined by you" in md and "**error**: bad arguments" in md
    assert "{not json" in md  # arguments that do not parse are shown as written


def test_what_the_model_and_the_functions_wrote_stays_inert():
    name = "<img src=x onerror=alert(1)>"
    out = "```\n</details><script>window.__pwned=1</script>\n" + "\n".join(ENCODED_LINKS)
    call = ToolCall("id<b>", name, json.dumps({"q": "</summary><b>x</b>"}), None, out,
                    seconds=0.1)
    md, _ = steps_views([_step(call, text="[x](javascript:alert(1))")])
    html = _html(md)
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    # The model's own words keep their links, made inert as a reply's are.
    assert [browser_scheme(v) for _, _, v in link_targets(html)] == [""]
    assert html.count("<details>") == html.count("</details>") == 2  # step, whole result


def test_the_live_view_keeps_the_step_under_way_open():
    done = _step(ToolCall("a", "f", "{}", {}, "1", seconds=0.1))
    pending = _step(ToolCall("b", "g", "{}", {}, "", seconds=0.0))
    data = live_bundle([done, pending], "running g…", {0: "partial text"})
    md = data["text/markdown"]
    assert "<details><summary>step 1" in md and "<details open><summary>step 2" in md
    assert "not run yet" in md and "partial text" in md and "running g…" in data["text/plain"]


def test_the_live_view_says_which_call_is_running():
    """The open step said "not run yet" above "running slow_weather…" while it ran."""
    ran = ToolCall("a", "f", "{}", {}, "1", seconds=0.1)
    now = ToolCall("b", "g", '{"x": 1}', {"x": 1}, "", seconds=0.0)
    later = ToolCall("c", "g", '{"x": 2}', {"x": 2}, "", seconds=0.0)
    alone = _step(ToolCall("d", "slow", "{}", {}, "", seconds=0.0))
    data = live_bundle([alone], "running slow…", running=alone.calls[0])
    assert "step 1 · slow({}) · running…</summary>" in data["text/markdown"]
    assert "not run yet" not in data["text/markdown"] + data["text/plain"]
    assert "── step 1 · slow({}) · running… ──" in data["text/plain"]
    step = Step(Result("chat", "m", [Choice(0, "", "tool_calls", "assistant")]),
                [ran, now, later])
    data = live_bundle([step], "running g…", running=now)
    for shown in (data["text/markdown"], data["text/plain"]):
        assert "(b) · running…" in shown and "(c) · not run yet" in shown
        assert "(a) · ran in 100 ms" in shown
    # Without a running call (a model call, a question) nothing says running.
    assert "running…" not in live_bundle([step], "model call 2…")["text/markdown"]


def test_steps_meta_is_json_and_cuts_results():
    call = ToolCall("a", "f", "{}", {}, "y" * 1000, seconds=0.5)
    meta = steps_meta([_step(call)])
    assert json.loads(json.dumps(meta)) == meta
    assert len(meta[0]["calls"][0]["output"]) == RESULT_CHARS


def test_history_shows_tool_calls_and_results_readably():
    calls = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}]}
    assert message_text(calls) == '→ add({"a": 1, "b": 2})'
    assert message_text({"role": "tool", "tool_call_id": "call_1", "content": "3"}) == \
        "(call_1) 3"
    assert message_text({"role": "user", "content": "hi"}) == "hi"


def test_dollars_in_a_summary_are_never_paired_into_maths():
    call = ToolCall("a", "price", '{"low": "$5", "high": "$6"}', {}, "ok", seconds=0.1)
    md, _ = steps_views([_step(call)])
    summary = md.split("</summary>")[0]
    assert "$" not in summary.replace("<span>$</span>", "")
    assert summary.count("<span>$</span>") == 2
