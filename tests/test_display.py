"""Pure renderers: finish reasons, summary lines, inert Markdown, metadata without secrets."""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal

import pytest
from hostile_markdown import ENCODED_LINKS, SAFE_SCHEMES, browser_scheme, link_targets

from gptmagic.catalog.pricing import Cost, Estimate, cost_of
from gptmagic.catalog.tokens import MessageCount, TokenCount
from gptmagic.core.types import Choice, Result, Timings, Usage
from gptmagic.notebook.replies import price_parts
from gptmagic.views import reply as display
from gptmagic.views.markdown import clean_rendered_markdown

SECRET = "sk-secret-0123456789"
XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "</style><script>steal()</script>",
    "<svg onload=alert(1)>",
    "<a href='javascript:alert(1)'>x</a>",
    "<!-- hidden --><iframe src=//evil>",
    "<javascript:alert(1)>",
]
BAD_LINKS = [
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( javascript:alert(1))",
    "[x](javascript\\:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "[x](vbscript:msgbox(1))",
    "$\\href{javascript:alert(1)}{x}$",
]
# Tags the renderers emit themselves; any other tag in a view came from the model.
OWN_TAGS = {"code", "small", "pre", "br", "table", "thead", "tbody", "tr", "th", "td", "div",
            "p", "strong", "span"}


def usd(x: str) -> Cost:
    return Cost(Decimal(0), Decimal(x), Decimal(x), source="test")


UNKNOWN = Cost(None, None, None, source="unknown model 'm'")


def result(text: str = "Hello", reasons=("stop",), usage: Usage | None | str = "default",
           total: float | None = 0.64, ttft: float | None = 0.105, **kw) -> Result:
    usage = Usage(25, 48, 73) if usage == "default" else usage
    choices = [Choice(i, f"{text} {i}" if len(reasons) > 1 else text, r)
               for i, r in enumerate(reasons)]
    return Result("chat", "smollm2-135m-instruct", choices, usage, id="chatcmpl-1",
                  timings=Timings(total=total, ttft=ttft), request_id="req_1",
                  raw={"id": "chatcmpl-1", "echo": {"Authorization": f"Bearer {SECRET}"}}, **kw)


def tags(view: str) -> set[str]:
    return {t.lower() for t in re.findall(r"<\s*/?\s*([a-zA-Z][\w:-]*)", view)}


def every_view(text: str) -> list[str]:
    """Every place a model's text reaches: reply, stream, side by side, history."""
    r = result(text)
    sbs = display.side_by_side_bundle([display.SideBySideRow("a<b>", r, None, None)])[0]
    hist = display.history_bundle([display.HistoryRow(1, "assistant", None, text, 3, None)],
                                  thread="t", context_window=100, total=3)[0]
    return [display.reply_bundle(r)[0]["text/markdown"],
            display.stream_bundle({0: text, 1: text}, model="m")["text/markdown"],
            sbs["text/markdown"], sbs["text/html"], hist["text/markdown"], hist["text/html"]]


# -- finish reasons and the summary line ------------------------------------------------------


@pytest.mark.parametrize(("reason", "max_tokens", "words"), [
    ("stop", None, "natural end or a stop sequence"),
    ("length", 48, "raise --max-tokens (now 48) or ask for a shorter answer"),
    ("length", None, "raise --max-tokens (not set)"),
    ("content_filter", None, "content filter withheld"),
    ("tool_calls", None, "asked to call a tool"),
    ("function_call", None, "asked to call a function"),
    (None, None, "stream ended without a finish reason"),
    ("eos_token", None, "'eos_token'"),
])
def test_explain_finish(reason, max_tokens, words):
    text = display.explain_finish(reason, max_tokens=max_tokens)
    assert words in text and text.endswith(".") and "\n" not in text


def test_summary_line_full():
    line = display.summary_line(result(reasons=("length",)), usd("0.000012"), max_tokens=48)
    assert line == ("finish: length — hit max_tokens=48; raise --max-tokens · tokens: 25 prompt "
                    "+ 48 completion · cost $0.000012 · 0.64 s, first token 105 ms · "
                    "smollm2-135m-instruct")


def test_a_completion_cut_by_the_endpoints_default_says_it_is_16_tokens():
    """%%complete without --max-tokens stops at 16 tokens (OpenAI's default there)."""
    cut = result(reasons=("length",), usage=Usage(5, 16, 21))
    cut.kind = "completion"
    assert ("finish: length — hit the completions endpoint's default of 16 tokens; pass "
            "--max-tokens to change it") in display.summary_line(cut)
    assert "hit max_tokens=16; raise" in display.summary_line(cut, max_tokens=16)
    shorter = result(reasons=("length",), usage=Usage(5, 9, 14))  # cut by something else
    shorter.kind = "completion"
    assert "hit the token limit; raise --max-tokens" in display.summary_line(shorter)


def test_a_reply_cut_by_the_engines_default_cap_says_which_cap_and_how_to_change_it():
    """No --max-tokens: the embedded engine's cap ended it, and "the token limit" would
    leave a user who set none guessing (a base model loops until it)."""
    cut = result(reasons=("length",), usage=Usage(20, 256, 276))
    cut.model = "gemma-3-270m"
    line = display.summary_line(cut)
    assert ("finish: length — hit the embedded base model gemma-3-270m's default cap of 256 "
            "tokens; pass --max-tokens to change it ·") in line
    assert "hit max_tokens=256; raise" in display.summary_line(cut, max_tokens=256)
    two = result(reasons=("length", "length"), usage=Usage(20, 512, 532))
    two.model = "gemma-3-270m"
    plain = display.reply_bundle(two)[0]["text/plain"]
    assert "The reply was cut off at the embedded base model gemma-3-270m's default cap" in plain
    short = result(reasons=("length",), usage=Usage(20, 40, 60))  # not the cap: the window
    short.model = "gemma-3-270m"
    assert "hit the token limit; raise --max-tokens" in display.summary_line(short)
    hosted = result(reasons=("length",), usage=Usage(20, 256, 276))
    hosted.model = "gpt-4o-mini"
    assert "hit the token limit" in display.summary_line(hosted)


def test_summary_line_explains_only_what_is_not_stop():
    assert display.summary_line(result(), usd("0.01")).startswith("finish: stop · tokens:")
    line = display.summary_line(result(reasons=("stop", "length", "stop")))
    assert line.startswith("finish: stop, length — hit the token limit; raise --max-tokens ·")
    assert "finish: none — the stream ended without a finish reason" in display.summary_line(
        result(reasons=(None,)))
    assert "finish: content_filter — filtered by the provider" in display.summary_line(
        result(reasons=("content_filter",)))


def test_summary_line_unknowns():
    line = display.summary_line(result(usage=None, ttft=None), UNKNOWN)
    assert "tokens: not reported · cost unknown · 0.64 s · smollm2" in line
    assert "first token" not in line
    assert "cost unknown" in display.summary_line(result())  # no cost given at all
    line = display.summary_line(result(total=None, ttft=None))
    assert line.endswith("cost unknown · smollm2-135m-instruct")
    assert "first token 1.50 s" in display.summary_line(result(ttft=1.5))


def test_summary_line_cached_reasoning_and_retries():
    r = result(usage=Usage(1200, 300, 1500, cached_tokens=1024, reasoning_tokens=256))
    r.timings.attempts = 3
    line = display.summary_line(r)
    assert "tokens: 1,200 prompt (1,024 cached) + 300 completion (256 reasoning)" in line
    assert "0.64 s, first token 105 ms, 3 attempts" in line


# -- replies ------------------------------------------------------------------------------------


def test_reply_single_choice_layout():
    data, _ = display.reply_bundle(result("**Hi** there"), cost=usd("0.000012"),
                                   note="dropped 4 oldest messages to fit the context window")
    md = data["text/markdown"]
    assert md.startswith("**Hi** there\n\n---\n\n<small>finish: stop")
    assert "choice 1" not in md and "natural end" not in md
    assert md.endswith("<small>dropped 4 oldest messages to fit the context window</small>")
    plain = data["text/plain"]
    assert plain.startswith("**Hi** there\n\n── finish: stop · tokens: 25 prompt")
    assert plain.endswith("\ndropped 4 oldest messages to fit the context window")
    footer = display.plain_footer(result(), usd("0.000012"),
                                  note="dropped 4 oldest messages to fit the context window")
    assert plain == "**Hi** there\n\n" + footer


def test_reply_several_choices_each_under_a_heading():
    r = result("Answer", reasons=("stop", "length", "content_filter"))
    data, meta = display.reply_bundle(r, max_tokens=16)
    md, plain = data["text/markdown"], data["text/plain"]
    for i, reason in enumerate(("stop", "length", "content_filter"), 1):
        assert f"#### {display.escape_markdown(f'choice {i} of 3 · finish: {reason}')}" in md
        assert f"── choice {i} of 3 · finish: {reason} ──" in plain
    assert md.index("choice 1 of 3") < md.index("Answer 0") < md.index("choice 2 of 3")
    assert "<small>The reply was cut off: it hit max\\_tokens" in md  # its own explanation
    assert "raise --max-tokens (now 16)" in plain and "content filter withheld" in plain
    assert "natural end" not in plain  # stop needs no explanation
    assert meta["gptmagic"]["response"]["finish_reasons"] == ["stop", "length", "content_filter"]


def test_reply_refusal_tool_calls_and_empty():
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get<weather>", "arguments": '{"city": "</pre><script>"}'}}
    r = Result("chat", "m", [Choice(0, "", "tool_calls", tool_calls=[call])])
    md = display.reply_bundle(r)[0]["text/markdown"]
    assert "**tool calls**" in md and '"name": "get<weather>"' in md  # verbatim, in a fence
    assert re.search(r'\n```json\n\[\n  \{\n    "id": "call_1"', md)
    r = Result("chat", "m", [Choice(0, "", "stop", refusal="I can't <b>help</b>")])
    md = display.reply_bundle(r)[0]["text/markdown"]
    assert "**refusal**\n\nI can't &lt;b&gt;help&lt;/b&gt;" in md
    assert "(empty reply)" in display.reply_bundle(result(""))[0]["text/plain"]
    assert "no choices returned" in display.reply_bundle(result(reasons=()))[0]["text/plain"]


def test_a_reply_stopped_while_the_model_reasoned_says_so():
    # Before: "(empty reply)" above "finish: interrupted — stopped by you; the text is partial".
    r = Result("response", "gpt-5-mini", [Choice(0, "", "interrupted")], reasoning="Weighing")
    for view in display.reply_bundle(r)[0].values():
        assert "empty reply" not in view and "the text is partial" not in view
        assert "(no reply text: stopped while the model was reasoning)" in view
        assert "finish: interrupted — stopped by you before any reply text" in view
    # With text, the stop still says the text is partial.
    plain = display.reply_bundle(result("Hal", reasons=("interrupted",)))[0]["text/plain"]
    assert "Hal\n" in plain and "stopped by you; the text is partial" in plain


def test_metadata_is_json_and_has_no_secret():
    summary = {"model": "m", "params": {"temperature": Decimal("0.5"), "logit_bias": {1: -100}},
               "headers": {"Authorization": f"Bearer {SECRET}"}, "api_key": SECRET,
               "Api-Key": SECRET, "blob": b"\x00\x01", "nan": float("nan")}
    r = result(usage=Usage(25, 48, 73))
    r.timings.ttft = float("inf")
    data, meta = display.reply_bundle(r, cost=usd("0.000012"), request_summary=summary)
    dumped = json.dumps(meta, allow_nan=False)  # plain JSON: no Decimal, bytes or NaN
    assert SECRET not in dumped and "Authorization" not in dumped
    assert all(SECRET not in v for v in data.values())
    assert meta["gptmagic"]["request"] == {"model": "m", "nan": None, "blob": "<2 bytes>",
                                           "params": {"temperature": "0.5",
                                                      "logit_bias": {"1": -100}}}
    assert meta["gptmagic"]["response"] == {
        "id": "chatcmpl-1", "model": "smollm2-135m-instruct", "finish_reasons": ["stop"],
        "status": None, "reasoning": None,
        "usage": {"prompt_tokens": 25, "completion_tokens": 48, "total_tokens": 73,
                  "cached_tokens": None, "reasoning_tokens": None,
                  "cache_write_tokens": None},
        "cost_usd": "0.000012", "ttft_s": None, "total_s": 0.64, "request_id": "req_1",
        "warnings": []}
    _, meta = display.reply_bundle(result(usage=None), cost=UNKNOWN)
    assert meta["gptmagic"] == {"request": {}, "response": {**meta["gptmagic"]["response"],
                                                            "usage": None, "cost_usd": None}}


def test_stream_bundle():
    data = display.stream_bundle({0: "Hel<b>"}, model="gpt-4o", elapsed=1.25)
    assert data["text/markdown"] == (
        'Hel&lt;b&gt;\n\n<small style="opacity: 0.6">streaming… gpt-4o · 6 chars · 1.2 s</small>')
    assert data["text/plain"] == "Hel<b>\n\nstreaming… gpt-4o · 6 chars · 1.2 s"
    data = display.stream_bundle({1: "b", 0: "aa"}, model="m")
    md = data["text/markdown"]
    assert md.index("choice 1 of 2") < md.index("aa") < md.index("choice 2 of 2")
    assert "3 chars" in md and " s<" not in md
    half = display.stream_bundle({0: "Code:\n```python\nx = 1"}, model="m")["text/markdown"]
    assert "```python\nx = 1\n```\n\n<small" in half  # the open fence is closed before the status


def test_stream_bundle_while_the_model_reasons():
    data = display.stream_bundle({}, model="gpt-5", elapsed=2.0, reasoning="")
    assert data["text/plain"] == "reasoning… gpt-5 · 2.0 s"
    assert "<details>" not in data["text/markdown"]
    data = display.stream_bundle({}, model="gpt-5", reasoning="Weighing <b>two</b> options")
    md = data["text/markdown"]
    assert md.startswith('<small style="opacity: 0.6">reasoning… gpt-5</small>')
    # Open, not collapsed: every update redraws it, and would close it again.
    assert "<details" not in md and "*reasoning summary so far*" in md
    assert '<div style="opacity: 0.6">' in md and "&lt;b&gt;two&lt;/b&gt;" in md
    assert data["text/plain"] == "reasoning… gpt-5\n\nWeighing <b>two</b> options"
    # Once the text has begun, the finished summary stays above it, collapsed.
    data = display.stream_bundle({0: "Hi"}, model="gpt-5", reasoning="Weighing")
    assert data["text/markdown"].startswith(
        "<details><summary>reasoning summary</summary>\n\nWeighing\n\n</details>\n\nHi\n\n")
    assert data["text/plain"].startswith("── reasoning summary ──\nWeighing\n── reply ──\n\nHi")
    assert "reasoning" not in display.stream_bundle({0: "Hi"}, model="m", reasoning="")[
        "text/markdown"]


# -- untrusted output stays inert ---------------------------------------------------------------


@pytest.mark.parametrize("payload", XSS)
def test_raw_html_from_the_model_is_inert(payload):
    for view in every_view(f"Hi {payload} there\n\n- item {payload}\n> {payload}"):
        assert tags(view) <= OWN_TAGS, view


@pytest.mark.parametrize("link", BAD_LINKS)
def test_dangerous_links_are_neutralised(link):
    md = display.safe_markdown(f"see {link} now")
    assert "#blocked:" in md
    assert not re.search(r"(\]\(|\{)\s*(&lt;)?(javascript|vbscript|data)", md, re.I)


def test_safe_links_images_and_definitions():
    md = display.safe_markdown("[docs](https://x.org/a_b?q=1&r=2) [m](mailto:a@b.c) [r](#top)")
    assert md == "[docs](https://x.org/a_b?q=1&amp;r=2) [m](mailto:a@b.c) [r](#top)"
    # Images would load their URL unasked (a data leak): they become links.
    assert display.safe_markdown("![i](https://evil/x.png?d=secret)") == (
        "&#33;[i](https://evil/x.png?d=secret)")
    # No reference definition can form (nor smuggle a scheme or a multi-line title).
    assert display.safe_markdown("[r]: javascript:alert(1)") == "[r]&#58; javascript:alert(1)"


def test_markdown_formatting_survives():
    text = "# Title\n\nSome **bold**, *em* and ~~old~~.\n\n- one\n  1. two\n\n> quote\n> > deeper\n"
    assert display.safe_markdown(text) == text.strip("\n")
    table = "| a | b |\n|---|---|\n| 1 | 2 |"
    assert display.safe_markdown(table) == table
    assert display.safe_markdown("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d"


def test_code_fences_keep_their_content_verbatim():
    code = '<script>alert(1)</script>\nif a < b and c > d: print("&amp;")\n</style>'
    md = display.safe_markdown(f"Run:\n```html title=x\n{code}\n```\nafter <b>")
    assert md == f"Run:\n\n```html\n{code}\n```\n\nafter &lt;b&gt;"
    md = display.safe_markdown("~~~\nA ``` inside\n````\n~~~")  # re-fenced: nothing closes it
    assert md == "`````\nA ``` inside\n````\n`````"
    md = display.safe_markdown("```\nnever closed <b>")  # streaming: closed by us
    assert md == "```\nnever closed <b>\n```"


def test_inline_code_shows_verbatim_as_inert_html():
    md = display.safe_markdown("Use `Vec<T>` and ``a ` <b>`` but \\`<i>\\`")
    assert md == ("Use <code>Vec&#60;T&#62;</code> and <code>a &#96; &#60;b&#62;</code> "
                  "but \\`&lt;i&gt;\\`")


def test_indented_fences_become_one_line_pre():
    md = display.safe_markdown("1. Install:\n   ```bash\n   echo '<b>' > x\n   ```\n2. Run")
    assert md == ("1. Install:\n   <pre><code class=\"language-bash\">echo &#39;&#60;b&#62;&#39; "
                  "&#62; x</code></pre>\n2. Run")


def test_a_line_rewritten_into_a_fence_does_not_open_one():
    # "```js`x`" is no fence (backtick in the info string), but "```js<code>" would be one.
    md = display.safe_markdown("```js`x`\n<script>alert(1)</script>\n```\n<img src=x>\n```")
    assert not re.search(r"^ {0,3}(```|~~~)js", md, re.M)
    assert tags(md.split("\n```\n")[0]) <= OWN_TAGS


def test_escape_markdown_shows_text_literally():
    assert display.escape_markdown("a_b *c* [d](e) <f> $1 | # ~x~ \\") == (
        "a\\_b \\*c\\* \\[d\\](e) &lt;f&gt; <span>\\$</span>1 \\| # \\~x\\~ \\\\")
    assert display.escape_markdown("# h\n- l\n1. n\n> q") == "\\# h\n\\- l\n1\\. n\n&gt; q"
    # Our own text is never linkified (marked would keep escapes' backslashes in links).
    assert display.escape_markdown("https://x.org/a_b www.y.org a@b.co") == (
        "https:&#47;/x.org/a\\_b www&#46;y.org a&#64;b.co")



# -- money: "$0.01 · $0.02" stays literal, never MathJax's inline maths ---------------------------

def _text_runs(page: str) -> list[str]:
    """The text between tags: what MathJax (2 and 3) searches for delimiters, one run at a
    time (it never pairs a ``$`` across an element boundary)."""
    return [html.unescape(t) for t in re.split(r"<[^>]*>", page) if t]


def _amounts_bundle() -> tuple[dict, str]:
    usage = Usage(30, 20, 50, cached_tokens=19, reasoning_tokens=8)
    parts = {"reasoning": usd("0.000016"), "cached": usd("0.000001")}
    note = "max_cost $0.50 would be exceeded: $0.49 spent"
    data, _ = display.reply_bundle(result("Hi", usage=usage), cost=usd("0.000052"),
                                   parts=parts, note=note)
    return data, note


def test_dollar_amounts_are_literal_in_every_renderer():
    # Before: "reasoning 8 tok \\$0.000016 · cost \\$0.000052": JupyterLab's marked made both
    # "$", and MathJax set the text between them as italic maths.
    from markdown_it import MarkdownIt

    data, note = _amounts_bundle()
    md = data["text/markdown"]
    amounts = ["$0.000016", "$0.000001", "$0.000052", "$0.50", "$0.49"]
    assert md.count("<span>\\$</span>") == md.count("$") == len(amounts)
    assert all(a in data["text/plain"] for a in amounts) and note in data["text/plain"]
    for page in (_nbconvert_html(md), clean_rendered_markdown(_nbconvert_html(md)),
                 MarkdownIt("commonmark", {"html": True}).render(md)):  # VS Code's parser
        text = "".join(_text_runs(page))
        assert all(a in text for a in amounts), page
        assert max(run.count("$") for run in _text_runs(page)) == 1, page


def test_escape_markdown_keeps_a_literal_backslash_before_a_dollar():
    md = display.escape_markdown("C:\\$x and $y")
    assert md == "C:\\\\<span>\\$</span>x and <span>\\$</span>y"
    assert "".join(_text_runs(_nbconvert_html(md))).strip() == "C:\\$x and $y"


def test_single_dollars_in_a_reply_are_money_not_maths():
    # Before: "The lunch costs $3 or $4" showed "3𝑜𝑟4" in JupyterLab: MathJax paired them.
    from markdown_it import MarkdownIt

    text = "The lunch costs $3 or $4 and the tip is $1, \\$2 escaped, `$x$` in code."
    md = display.reply_bundle(result(text))[0]["text/markdown"]
    assert "costs <span>\\$</span>3 or <span>\\$</span>4" in md
    assert "<span>\\$</span>2 escaped" in md and "<code>&#36;x&#36;</code>" in md
    for page in (_nbconvert_html(md), MarkdownIt("commonmark", {"html": True}).render(md)):
        runs = _text_runs(re.sub(r"<code>.*?</code>", "", page))  # MathJax skips code
        assert "The lunch costs $3 or $4 and the tip is $1, $2 escaped" in "".join(runs), page
        assert max(run.count("$") for run in runs) == 1, page


@pytest.mark.parametrize("maths", ["$$x^2$$", "$$\na + b\n$$", "\\(x^2\\)", "\\[x^2\\]"])
def test_display_maths_in_a_reply_still_typesets(maths):
    assert display.safe_markdown(f"so {maths} and $5") == f"so {maths} and <span>\\$</span>5"


def test_reply_dollars_in_code_and_link_destinations_stay_as_typed():
    fenced = "```\nprice = '$3 or $4'\n```"
    assert display.safe_markdown(fenced) == fenced
    assert display.safe_markdown("[a](https://x.org/$b) $c") == (
        "[a](https://x.org/$b) <span>\\$</span>c")
    # A blank line ends a paragraph: $$ cannot pair across it.
    assert "$" not in display.safe_markdown("$$a\n\nb$$").replace("<span>\\$</span>", "")


def test_html_views_tell_mathjax_to_leave_them_alone():
    rows = [display.SideBySideRow("m", result("costs $1 or $2"), None, usd("0.002"), 64)]
    history = [display.HistoryRow(1, "user", None, "is $5 < $10?", 3, None)]
    pages = [display.side_by_side_bundle(rows)[0]["text/html"],
             display.history_bundle(history, thread="t", context_window=9, total=3)[0][
                 "text/html"],
             display.dry_run_bundle(REQUEST, url="https://x/v1", count=27,
                                    estimate=None)[0]["text/html"]]
    for page in pages:
        root = re.match(r'<(?:div|table) class="([^"]*)"', page)
        assert root and {"mathjax_ignore", "tex2jax_ignore"} <= set(root[1].split()), page[:80]
    assert "costs $1 or $2" in pages[0] and "is $5 &lt; $10?" in pages[1]

# -- side by side, history ----------------------------------------------------------------------


def test_side_by_side_with_an_error_column():
    rows = [display.SideBySideRow("gpt-4o", result("x < y\n  indented"), None, usd("0.002"), 64),
            display.SideBySideRow("bad<model>", None, "HTTP 404: model 'x' <not> found", None)]
    data, meta = display.side_by_side_bundle(rows)
    page = data["text/html"]
    assert "<th" in page and "gpt-4o</th>" in page and "bad&lt;model&gt;</th>" in page
    assert "x &lt; y\n  indented</td>" in page and "white-space: pre-wrap" in page
    assert "error: HTTP 404: model &#x27;x&#x27; &lt;not&gt; found" in page
    for row in ("reply", "finish", "tokens", "cost", "latency"):
        assert f">{row}</td>" in page
    assert ">25 prompt + 48 completion<" in page and ">$0.002<" in page
    assert ">0.64 s, first token 105 ms<" in page and page.count(">—<") == 4
    assert "#### bad&lt;model&gt;\n\n**error**: HTTP 404" in data["text/markdown"]
    assert "== bad<model> ==\nerror: HTTP 404" in data["text/plain"]
    a, b = meta["gptmagic"]["side_by_side"]
    assert a["model"] == "gpt-4o" and a["error"] is None and a["response"]["cost_usd"] == "0.002"
    assert b == {"model": "bad<model>", "error": "HTTP 404: model 'x' <not> found",
                 "response": None}
    json.dumps(meta)


def test_a_results_warnings_are_shown_under_it_everywhere():
    """Issue 18 item 6: what a server under-reported is said under the reply, in every form,
    and kept in the saved metadata; the usage shown stays the server's."""
    w = "usage looks under-reported: the server counts 8 completion tokens, but <3> ..."
    r = result(reasons=("length", "length"), warnings=[w])
    data, meta = display.reply_bundle(r, note="fitted: 2 turns dropped")
    assert f"warning: {w}\nfitted: 2 turns dropped" in data["text/plain"]
    assert data["text/plain"].endswith(display.plain_footer(r, note="fitted: 2 turns dropped"))
    assert "warning: usage looks under-reported" in data["text/markdown"]
    assert "&lt;3&gt;" in data["text/markdown"] and "<3>" not in data["text/markdown"]
    assert "25 prompt + 48 completion" in data["text/markdown"]
    assert meta["gptmagic"]["response"]["warnings"] == [w]
    sbs, sbs_meta = display.side_by_side_bundle([display.SideBySideRow("m", r, None, None)])
    assert f"warning: {w}" in sbs["text/plain"] and "warning: usage looks" in sbs["text/markdown"]
    assert "warning: usage looks under-reported" in sbs["text/html"]
    assert sbs_meta["gptmagic"]["side_by_side"][0]["response"]["warnings"] == [w]
    assert "warning" not in display.reply_bundle(result())[0]["text/plain"]


def test_history_table_and_context_fill():
    rows = [display.HistoryRow(0, "system", None, "Be brief.", 12, None),
            display.HistoryRow(1, "user", "ann", "hi <b>there</b>\n\n" + "x" * 400, 1100, "c-1"),
            display.HistoryRow(1, "assistant", None, "ok", None, "c-1")]
    data, meta = display.history_bundle(rows, thread="main", context_window=8192, total=1234)
    assert "thread 'main': 3 message(s) · 1,234 of 8,192 tokens (15%)" in data["text/plain"]
    page = data["text/html"]
    assert "1,234 of 8,192 tokens (15%)" in page and "hi &lt;b&gt;there&lt;/b&gt; xxx" in page
    preview = re.search(r"hi &lt;b&gt;there&lt;/b&gt; (x+)…<", page)
    assert preview and len("hi <b>there</b> " + preview.group(1)) == display.PREVIEW_CHARS - 1
    assert ">1,100<" in page and ">ann<" in page
    assert "| 1 | user | ann | 1,100 | hi &lt;b&gt;there&lt;/b&gt; xxx" in data["text/markdown"]
    assert meta == {"gptmagic": {"history": {"thread": "main", "messages": 3,
                                             "total_tokens": 1234, "context_window": 8192,
                                             "stale_turns": []}}}
    over = display.history_bundle(rows, thread="t", context_window=1000, total=1234)[0]
    assert "1,234 of 1,000 tokens (123%) — over the context window" in over["text/plain"]
    unknown = display.history_bundle([], thread="t", context_window=None, total=0)[0]
    assert "0 message(s) · 0 tokens (context window unknown)" in unknown["text/plain"]


# -- dry runs and errors ------------------------------------------------------------------------


def count(exact: bool = True) -> TokenCount:
    return TokenCount("gpt-4o", "o200k_base", 27, exact,
                      (MessageCount(0, "system", 5, 0, 4), MessageCount(1, "user", 9, 2, 4)), 3,
                      note="" if exact else "unknown model: estimated with o200k_base")


def estimate() -> Estimate:
    return Estimate(usd("0.0001"), usd("0.0012"), UNKNOWN, 27, 256, None)


REQUEST = {"model": "gpt-4o", "max_tokens": 10,
           "messages": [{"role": "user", "content": "```\n</pre><script>x</script>"}],
           "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}


def test_dry_run_shows_the_exact_body_count_and_estimate():
    url = "https://u:pw@res.openai.azure.com/openai/deployments/d/chat/completions" \
          "?api-version=2024-10-21&api-key=S3CRET&sig=T0KEN#frag"
    data, meta = display.dry_run_bundle(REQUEST, url=url, count=count(), estimate=estimate(),
                                        note="dropped 2 turns")
    clean = "https://res.openai.azure.com/openai/deployments/d/chat/completions" \
            "?api-version=2024-10-21"
    body = json.dumps(REQUEST, indent=2, ensure_ascii=False)
    for view in data.values():
        assert "Dry run — nothing sent" in view and "dropped 2 turns" in view
        assert not any(s in view for s in ("S3CRET", "T0KEN", "pw", "frag"))
        assert "high unknown" in view
    for view in (data["text/plain"], data["text/html"]):
        assert "27 prompt tokens (exact, o200k_base)" in view
        assert "expected $0.0012" in view and "low $0.0001 (prompt only)" in view
    md = data["text/markdown"]
    assert "27 prompt tokens (exact, o200k\\_base)" in md
    assert "expected <span>\\$</span>0.0012" in md
    assert f"POST {clean}" in data["text/plain"] and f"\n{body}\n" in data["text/plain"]
    assert "hidden from the URL: user info, api-key, sig" in data["text/plain"]
    assert f"\n```json\n{body}\n```\n" in md  # verbatim in its fence
    assert "POST https:&#47;/res.openai.azure.com/openai/deployments/d/chat/completions" in md
    assert "<pre>{\n  &quot;model&quot;: &quot;gpt-4o&quot;" in data["text/html"]
    assert tags(data["text/html"]) <= OWN_TAGS
    assert "| 1 | user | 9 | 2 | 4 | 15 |" in md
    assert "reply priming" in data["text/plain"]
    assert meta == {"gptmagic": {"dry_run": {
        "url": clean, "model": "gpt-4o", "prompt_tokens": 27, "exact": True,
        "cost_usd": {"low": "0.0001", "expected": "0.0012", "high": None}}}}
    json.dumps(meta)
    approx = display.dry_run_bundle(REQUEST, url=clean, count=count(False), estimate=None)[0]
    assert "27 prompt tokens (approximate, o200k_base): unknown model" in approx["text/plain"]
    assert "Cost estimate: not available" in approx["text/plain"]


def test_a_dry_runs_tool_costs_are_labelled_as_counted():
    """A hosted model's tool costs are OpenAI's published rule (an estimate); the
    embedded engine's are its own count of the prompt it would read (exact)."""
    costs = [("f", 40), ("all", 40)]
    hosted = display.dry_run_bundle(REQUEST, url="u", count=count(False), estimate=None,
                                    tool_costs=costs)[0]["text/plain"]
    assert ("Tool definitions: 40 prompt tokens in all (an estimate: OpenAI's published rule "
            "for function definitions)") in hosted
    engine = display.dry_run_bundle(REQUEST, url="u", count=count(True), estimate=None,
                                    tool_costs=costs)[0]["text/plain"]
    assert ("Tool definitions: 40 prompt tokens in all (exact: the engine's count of the "
            "tools' description it writes into the prompt)") in engine
    assert "estimate" not in engine.split("Tool definitions")[1].splitlines()[0]


@pytest.mark.parametrize("bad", [
    {"Authorization": "Bearer x"},
    {"headers": {"authorization": "Bearer x"}},
    {"extra": [{"api-key": "x"}]},
    {"X-API-Key": "x"},
    {"openai_api_key": "x"},
    {"Proxy-Authorization": "x"},
])
def test_dry_run_refuses_credentials_anywhere(bad):
    with pytest.raises(ValueError, match="looks like a credential"):
        display.dry_run_bundle({**REQUEST, **bad}, url="https://x/v1", count=27, estimate=None)


def test_all_lists_the_public_names():
    public = {n for n, v in vars(display).items()
              if not n.startswith("_") and getattr(v, "__module__", "") in (
                  display.__name__, "gptmagic.views.markdown")}
    assert public | {"Bundle", "PREVIEW_CHARS"} == set(display.__all__)
    assert display.__all__ == sorted(display.__all__)


# -- encoded schemes, judged after the renderer the report uses ----------------------------------


def _nbconvert_html(markdown: str) -> str:
    """The HTML nbconvert's report makes of a Markdown output (mistune, as HTMLExporter)."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return markdown2html_mistune(markdown)


@pytest.mark.parametrize("link", ENCODED_LINKS)
def test_encoded_schemes_stay_dead_after_nbconvert_renders_them(link):
    # Before: "[x](&#106;avascript:...)" became <a href="javascript:...">.
    text = f"see {link} now\n\n- {link}\n> {link}"
    markdown_views = every_view(text)[0::2] + [
        display.dry_run_bundle({"messages": [{"role": "user", "content": text}]}, url="u",
                               count=3, estimate=None, note=text)[0]["text/markdown"],
        display.reply_bundle(result(text), note=text)[0]["text/markdown"]]
    for md in markdown_views:
        for tag, attr, value in link_targets(_nbconvert_html(md)):
            assert browser_scheme(value) in SAFE_SCHEMES, (link, md, tag, attr, value)
    for page in every_view(text)[1::2]:  # the HTML views hold no links at all
        assert link_targets(page) == []


def test_decoded_schemes_keep_safe_and_relative_links():
    md = display.safe_markdown("[a](HTTPS://x.org/a:b) [b](/docs/x:y) [c](?q=a:b) [d](#s:1) "
                               "[e](./a:b) [f](mailto:a@b.c)")
    assert "#blocked" not in md
    md = display.safe_markdown("[a](a:b) [b](tel:123) [c](&#104;ttps&#58;//x.org)")
    assert md.count("#blocked:") == 2  # a:b is a scheme; an encoded https stays allowed


# -- --json: pretty-printed and checked ----------------------------------------------------------

JSON_REQUEST = {"params": {"response_format": {"type": "json_object"}}}


def test_json_reply_is_pretty_printed_in_a_fence():
    data, meta = display.reply_bundle(result('{"a": [1, "<b>"], "b": {"c": null}}'),
                                      request_summary=JSON_REQUEST)
    pretty = '{\n  "a": [\n    1,\n    "<b>"\n  ],\n  "b": {\n    "c": null\n  }\n}'
    assert f"```json\n{pretty}\n```" in data["text/markdown"]
    assert data["text/plain"].startswith(pretty)
    assert meta["gptmagic"]["response"]["json_valid"] == [True]
    # Without --json the same text is prose, as before.
    assert "```json" not in display.reply_bundle(result('{"a": 1}'))[0]["text/markdown"]


@pytest.mark.parametrize(("finish", "cut"), [("length", True), ("stop", False)])
def test_invalid_json_says_where_and_whether_the_limit_cut_it(finish, cut):
    data, meta = display.reply_bundle(result('{"a": [1, 2', reasons=(finish,)),
                                      request_summary=JSON_REQUEST, max_tokens=5)
    md = data["text/markdown"]
    assert "```json\n{\"a\": [1, 2\n```" in md  # as written, verbatim
    assert "the reply is not valid JSON: Expecting ',' delimiter (line 1, column 12)" in md
    assert ("cut off by the token limit" in md) is cut
    assert ("cut off by the token limit" in data["text/plain"]) is cut
    assert meta["gptmagic"]["response"]["json_valid"] == [False]


# -- reasoning models: the summary collapsed, the parts priced (issue 14) -------------------------


def test_a_reasoning_summary_is_collapsed_above_the_reply_and_inert():
    hostile = ("Thought </details><img src=x onerror=alert(1)> then\n\n"
               "<details open><summary>fake</summary>\n\n" + ENCODED_LINKS[0])
    r = result("The answer.", reasoning=hostile)
    md = display.reply_bundle(r)[0]["text/markdown"]
    page = _nbconvert_html(md)
    assert page.count("<details>") == 1 and page.count("</details>") == 1
    assert "<img" not in page and "<details open" not in page
    assert page.index("Thought") < page.index("</details>") < page.index("The answer.")
    for tag, attr, value in link_targets(page):
        assert browser_scheme(value) in SAFE_SCHEMES, (tag, attr, value)
    plain = display.reply_bundle(r)[0]["text/plain"]
    assert plain.startswith(f"── reasoning summary ──\n{hostile}\n── reply ──\n\nThe answer.")
    assert "<details>" not in display.reply_bundle(result("x"))[0]["text/markdown"]


def test_the_summary_line_prices_reasoning_cached_input_and_cache_writes():
    usage = Usage(2048, 1100, 3148, cached_tokens=512, reasoning_tokens=1024,
                  cache_write_tokens=64)
    parts = {"reasoning": usd("0.0102"), "cached": usd("0.0001"), "cache_write": None}
    line = display.summary_line(result(usage=usage), usd("0.02"), parts=parts)
    assert ("reasoning 1,024 tok $0.0102 · cached input 512 tok $0.0001 · cache writes 64 tok "
            "(price unknown) · cost $0.02") in line
    # Cache writes priced at the input rate (no cache-write price published) say so.
    at_input = cost_of(usage, "gpt-5-mini", provider="openai")
    line = display.summary_line(result(usage=usage), at_input,
                                parts=price_parts(at_input, usage))
    assert ("cache writes 64 tok $0.000016 (at the input rate: no cache-write price "
            "published) · cost $") in line
    # Parts the usage lacks are not shown; without parts the line is as before.
    line = display.summary_line(result(usage=Usage(10, 5, 15)), usd("0.01"), parts={})
    assert "reasoning" not in line and "cached" not in line
    assert "reasoning 1,024 tok" not in display.summary_line(result(usage=usage), usd("0.02"))


def test_history_says_how_the_next_turn_is_sent_and_a_dry_run_the_exact_count():
    rows = [display.HistoryRow(1, "user", None, "hi", 1, None)]
    data, meta = display.history_bundle(rows, thread="t", context_window=100, total=1,
                                        mode="chained: turn 1 is stored")
    assert "sent as: chained: turn 1 is stored" in data["text/plain"]
    assert meta["gptmagic"]["history"]["mode"] == "chained: turn 1 is stored"
    data, meta = display.dry_run_bundle({"model": "m", "input": "hi"}, url="u", count=3,
                                        estimate=None, exact=1234, counts_below=True)
    assert "Exact prompt tokens: 1,234 (counted by the server" in data["text/plain"]
    assert meta["gptmagic"]["dry_run"]["exact_prompt_tokens"] == 1234
    data, _ = display.dry_run_bundle({"model": "m"}, url="u", count=3, estimate=None,
                                     exact_note="an offline estimate")
    assert "an offline estimate" in data["text/plain"] and "Exact" not in data["text/plain"]
