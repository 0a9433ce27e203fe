"""The results explorer's state, static HTML and text, on runs against the fake server."""

from __future__ import annotations

import json
import math
import re

import pytest

import gptmagic
from gptmagic.errors import ConfigError, RequestError
from gptmagic.eval.results import EvalResults
from gptmagic.views.explorer import explore, explorer_state
from gptmagic.views.explorer import static as xs
from gptmagic.views.explorer.state import SEARCH_CHARS, cell_detail, detail_state, matrix_only

WIDGET = "application/vnd.jupyter.widget-view+json"
XSS = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=1>"
CASES = [{"q": f"question {i}", "expected": f"echo: question {i}", "kind": "ab"[i % 2]}
         for i in range(4)]
CASES[3]["q"] = f"hostile {XSS} </script> [x](javascript:window.__pwned=1) &amp;"
PROMPTS = {"plain": "user: {q}", f"p{XSS}": "system: Be brief.\nuser: {q}"}


class Exact:
    name, weight, is_async = "exact", 1.0, False

    def __call__(self, case):
        return float(case.output == case.row["expected"])


class Short:
    name, weight, is_async = f"short{XSS}", 1.0, False

    def __call__(self, case):
        return float(len(case.output) < 18)


def run(**kw):
    return gptmagic.evaluate(CASES, PROMPTS, ["fake:fake-model", "fake:other"],
                             scorers=[Exact(), Short()], progress=False, **kw)


def test_state_is_cases_by_variants_with_scores_and_details(fake):
    res = run()
    state = explorer_state(res)
    assert state["kind"] == "explorer" and state["v"] == 1
    assert len(state["cases"]) == 4 and len(state["variants"]) == 4  # 2 prompts × 2 models
    assert state["scorers"] == ["exact", f"short{XSS}"] and state["inputs"] == ["q", "expected",
                                                                                "kind"]
    assert [v["label"] for v in state["variants"]][:2] == ["plain · fake-model", "plain · other"]
    assert len(state["cells"]) == 16
    first = state["cells"][0]
    assert first[:5] == [0, 0, 0, "echo: question 0", 0]
    assert first[5] == 1.0 and first[6] == [1.0, 1.0] and first[7] is None and first[8] == 1
    assert state["mode"] == "inline" and len(state["details"]) == 16
    d = state["details"]["0"]
    assert d["reply"] == "echo: question 0" and d["model"] == "fake-model"
    assert d["request"] == "user:\nquestion 0"  # the cell grammar, as the user writes it
    assert d["usage"]["prompt_tokens"] > 0 and d["latency"] > 0
    assert d["scores"]["exact"] == {"score": 1.0, "passed": True, "explanation": None}
    json.dumps(state)  # JSON-able whole


def test_long_outputs_are_cut_in_the_matrix_and_whole_in_the_detail(fake):
    res = run()
    res.df.loc[0, "output"] = "word " * 100
    state = explorer_state(res, cell_chars=20)
    cell = state["cells"][0]
    assert cell[3] == ("word " * 100)[:20] and cell[4] == 1
    assert state["details"]["0"]["reply"] == "word " * 100


def test_repeats_show_the_first_and_their_count(fake):
    res = gptmagic.evaluate(CASES[:2], "user: {q}", ["fake:fake-model"], repeats=3,
                            scorers=[Exact()], progress=False)
    state = explorer_state(res)
    assert len(state["cells"]) == 2 and {c[8] for c in state["cells"]} == {3}
    reps = state["details"]["3"]["repeats"]
    assert [r["repeat"] for r in reps] == [0, 1, 2]
    assert [r["reply"] for r in reps] == ["echo: question 1"] * 3
    # Asked of the kernel, the panel gets the same list.
    widget = explore(res, inline_limit=0)
    assert widget.detail(3)["repeats"] == reps


def test_details_past_the_limit_are_asked_for(fake):
    res = run()
    state = explorer_state(res, inline_limit=100)
    assert state["mode"] == "ask" and state["details"] == {}
    widget = explore(res, inline_limit=100)
    sent = []
    widget.send = sent.append
    widget._on_custom(widget, {"type": "detail", "id": 5}, [])
    widget._on_custom(widget, {"type": "detail", "id": 999}, [])
    assert sent[0]["detail"]["reply"] == res.df["output"][5]
    assert sent[1]["id"] == 999 and "IndexError" in sent[1]["error"]


def test_errors_and_missing_scores_show_in_cells(fake):
    res = run()
    res.df.loc[1, "error"] = "boom <b>"
    res.df.loc[1, "score"] = math.nan
    state = explorer_state(res)
    assert state["cells"][1][7] == "boom <b>" and state["cells"][1][5] is None
    assert "!" in xs.explorer_text(state).splitlines()[-4]


def test_explanations_reach_the_detail_when_present(fake):
    res = run()
    res.df["explain.exact"] = ["because " + str(i) for i in range(len(res.df))]
    state = explorer_state(res)
    assert state["explained"] == ["exact"]
    assert state["details"]["3"]["scores"]["exact"]["explanation"] == "because 3"
    assert state["details"]["3"]["scores"][f"short{XSS}"]["explanation"] is None


def test_logprobs_become_a_heatmap_state(fake):
    res = gptmagic.evaluate(CASES[:1], "user: {q}", ["fake:fake-model"],
                            params={"logprobs": True, "top_logprobs": 2}, progress=False)
    d = explorer_state(res)["details"]["0"]
    assert d["heatmap"]["kind"] == "heatmap" and d["heatmap"]["choices"][0]["t"]
    detail = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
              "logprobs": [{"token": "Hi", "logprob": -0.1,
                            "top": [{"token": "Hi", "logprob": -0.1}]}]}
    assert detail_state(detail)["heatmap"]["choices"][0]["t"] == ["Hi"]


def test_bad_options_say_what_to_give(fake):
    res = run()
    with pytest.raises(RequestError, match="threshold"):
        explorer_state(res, threshold=2)
    with pytest.raises(RequestError, match="cell_chars"):
        explorer_state(res, cell_chars="x")


def test_explore_needs_the_public_face(fake):
    from gptmagic.eval.runner import evaluate as raw

    res = raw(CASES[:1], "user: {q}", ["fake:fake-model"], progress=False)
    assert isinstance(res, EvalResults) and res.viewer is None
    with pytest.raises(ConfigError, match="gptmagic.evaluate"):
        res.explore()
    data = res._repr_mimebundle_()
    assert "text/html" in data and "<table" in data["text/html"]  # the summary, as before


def test_public_evaluate_gives_the_explorer_and_rescore_keeps_it(fake):
    res = run()
    w = res.explore(title="mine")
    assert type(w).__name__ == "Explorer" and w.data["title"] == "mine"
    again = res.rescore([Exact()])
    assert again.explore().data["scorers"] == ["exact"]
    data, _ = res._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "gm-x-host" in data["text/html"]
    assert data["text/plain"].startswith("<EvalResults 16 calls, 0 from cache, 0 errors")
    assert "\nevaluation: 4 cases" in data["text/plain"]


def test_text_form_is_a_matrix_of_marks(fake):
    text = xs.explorer_text(explorer_state(run()))
    lines = text.splitlines()
    assert lines[0].startswith("evaluation: 4 cases × 4 variants")
    assert "  A  plain · fake-model  pass 75%" in lines  # case 3 fails: q is not "question 3"
    assert lines[-1].startswith("#3") and "✗✗" in lines[-1]
    assert lines[-4].startswith("#0") and "✓✓" in lines[-4]


# -- static HTML: everything written by a user or a model is inert ------------------------


def _scripts(page):
    return re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S)


def test_static_html_escapes_every_name_and_output(fake):
    res = run()
    res.df["output"] = res.df["output"] + " </script><script>window.__pwned=1</script>"
    page = xs.explorer_html(explorer_state(res))
    outside = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)
    assert "<img" not in outside and not re.search(r"<[a-z][^>]*\son\w+=", outside)
    assert "&lt;script&gt;" in outside  # shown as text in the table
    scripts = _scripts(page)
    assert len(scripts) == 2  # the data and the module, nothing a payload opened
    assert "<" not in scripts[0] and ">" not in scripts[0]
    data = json.loads(scripts[0])
    assert data["scorers"][1] == f"short{XSS}"
    assert "window.__pwned" not in scripts[1]


def test_the_module_holds_no_closing_script_tag():
    assert "</script" not in xs._module().lower()


def test_call_panel_shows_one_call(fake):
    from gptmagic.views.explorer import CallPanel

    res = run()
    panel = CallPanel(cell_detail(res, 2))
    assert panel.data["kind"] == "call" and panel.data["detail"]["reply"] == res.df["output"][2]
    assert "echo: question 0" in panel.to_text() and "gm-x-host" in panel.to_html()


def test_the_search_text_is_the_whole_output_not_the_cut(fake):
    res = run()
    res.df.loc[0, "output"] = "word " * 100 + "needle"
    res.df.loc[1, "output"] = "x" * 5_000 + "lost"
    cells = explorer_state(res, cell_chars=20, inline_limit=0)["cells"]
    assert cells[0][3] + cells[0][9] == "word " * 100 + "needle"  # the JS searches both
    assert cells[1][3] + cells[1][9] == "x" * SEARCH_CHARS  # capped: the docs say so
    assert cells[2][9] == ""  # not cut: nothing more
    # Details inline: the search reads their replies, the cells carry no second copy ...
    inline = explorer_state(res, cell_chars=20)
    assert [c[9] for c in inline["cells"]] == [""] * 16
    assert inline["details"]["0"]["reply"].endswith("needle")
    # ... and dropping them (the HTML beside a widget) puts the rest back.
    assert matrix_only(inline)["cells"] == cells and matrix_only(inline)["mode"] == "ask"


def test_no_credential_in_params_reaches_the_state_or_the_bundle(fake):
    secret = "sk-hush-4f9a27c1d3"
    res = gptmagic.evaluate(CASES[:2], "user: {q}", ["fake:fake-model"], scorers=[Exact()],
                            progress=False, params={"extra_headers": {"X-Api-Key": secret},
                                                    "temperature": 0})
    state = explorer_state(res)
    assert state["details"]["0"]["params"] == {"temperature": 0}
    data, meta = res._repr_mimebundle_()
    widget = res.explore()
    dumped = json.dumps([data, meta, widget.data, widget.get_state()], default=str)
    assert secret not in dumped and "X-Api-Key" not in dumped
    assert secret not in json.dumps(detail_state({"params": {"headers": {"a": secret}}}))


def test_terminal_forms_show_escape_codes_instead_of_sending_them(fake):
    from gptmagic.views.explorer import CallPanel
    from gptmagic.views.text import printable

    hostile = "ok \x1b]0;pwned\x07 \x1b[31mred\x1b[0m \x9b2J \r\x08\x7f end\n\tnext"
    assert printable(hostile) == ("ok \\x1b]0;pwned\\x07 \\x1b[31mred\\x1b[0m \\x9b2J "
                                  "\\x0d\\x08\\x7f end\n\tnext")
    res = run()
    res.df.loc[0, "error"] = hostile
    res.df["row"] = res.df["row"].astype(str) + "\x1b[2J"
    state = explorer_state(res, title="t\x1b]0;x\x07")
    text = xs.explorer_text(state)
    panel = CallPanel({"model": "m\x1b[1m", "reply": hostile, "error": hostile,
                       "messages": [{"role": "user", "content": hostile}]}).to_text()
    for out in (text, panel):
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", out)
    assert "\\x1b]0;pwned\\x07" in panel and "t\\x1b]0;x\\x07" in text


def _count_builds(monkeypatch):
    """Counters of what a rich display builds: call details, static HTML, widgets."""
    from gptmagic.views.explorer import state as xstate
    from gptmagic.views.explorer import widget as xwidget

    built = {"detail": 0, "html": 0, "widget": 0}

    def counted(name, fn):
        def wrapper(*a, **k):
            built[name] += 1
            return fn(*a, **k)
        return wrapper

    monkeypatch.setattr(xstate, "cell_detail", counted("detail", xstate.cell_detail))
    monkeypatch.setattr(xs, "explorer_html", counted("html", xs.explorer_html))
    monkeypatch.setattr(xwidget.Explorer, "__init__",
                        counted("widget", xwidget.Explorer.__init__))
    return built


def test_text_only_display_builds_no_widget_html_or_details(fake, monkeypatch):
    res = run()
    built = _count_builds(monkeypatch)
    data, _ = res._repr_mimebundle_(include={"text/plain"})
    assert list(data) == ["text/plain"] and "\nevaluation: 4 cases" in data["text/plain"]
    data, _ = res._repr_mimebundle_(exclude={"text/html", WIDGET})
    assert list(data) == ["text/plain"]
    assert built == {"detail": 0, "html": 0, "widget": 0}
    data, _ = res._repr_mimebundle_(include={"text/html"})  # HTML alone: no widget view
    assert list(data) == ["text/html"] and built["html"] == 1
    data, _ = res._repr_mimebundle_()
    assert {WIDGET, "text/html", "text/plain"} <= set(data) and built["detail"] > 0


def test_a_text_only_shell_gets_the_text_form_alone(fake, monkeypatch):
    from shell_support import new_shell

    res = run()
    shell = new_shell()
    try:
        shell.display_formatter.active_types = ["text/plain"]  # what a terminal sets
        shell.run_line_magic("load_ext", "gptmagic")
        built = _count_builds(monkeypatch)
        data, _ = shell.display_formatter.format(res)
        assert list(data) == ["text/plain"] and "evaluation: 4 cases" in data["text/plain"]
        assert built == {"detail": 0, "html": 0, "widget": 0}
        shell.run_line_magic("unload_ext", "gptmagic")  # unloading removes the printer
        assert WIDGET in shell.display_formatter.mimebundle_formatter(res)[0]
    finally:
        type(shell).clear_instance()


def test_html_beside_the_widget_drops_what_the_widget_state_already_holds(fake):
    res = run()
    res.df["output"] = "word " * 20_000  # 100 kB a reply: details past FALLBACK_LIMIT
    data, _ = res._repr_mimebundle_()
    widget = res.explore()
    assert widget.data["mode"] == "inline"  # the saved widget state has every detail
    html_state = json.loads(_scripts(data["text/html"])[0])
    assert html_state["mode"] == "ask" and html_state["details"] == {}
    assert html_state["cells"] == matrix_only(widget.data)["cells"]  # the whole matrix
    assert html_state["cells"][0][9] == ("word " * 20_000)[160:SEARCH_CHARS]  # searchable
    assert len(data["text/html"]) < xs.FALLBACK_LIMIT < len(widget.to_html())
    # Past the limit without details too: the plain table alone, no script.
    table = xs.fallback_html(widget.data, limit=1_000)
    assert "<script" not in table and "<table>" in table and "needs" not in table
    assert "widget state" in table
    # HTML asked for alone (no widget view) is the whole static explorer.
    alone, _ = res._repr_mimebundle_(include={"text/html"})
    assert json.loads(_scripts(alone["text/html"])[0])["mode"] == "inline"
