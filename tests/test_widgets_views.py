"""The widgets: synced state, MIME bundles with static fallbacks, the live counter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import ipywidgets
import pytest
from IPython.core.interactiveshell import InteractiveShell
from shell_support import new_shell
from test_widgets_static import tok

import gptmagic
from gptmagic.core.defaults import DEFAULT_OPENAI_MODEL
from gptmagic.core.types import Result
from gptmagic.views.widgets.static import counter_html, heatmap_text, tokenview_html
from gptmagic.views.widgets.views import esm_source
from gptmagic.widgets import (
    LogprobHeatmap,
    NoLogprobsError,
    TokenCounter,
    TokenView,
    logprob_heatmap,
    token_counter,
    token_view,
)

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
JS = Path(gptmagic.__file__).parent / "views" / "widgets" / "js"
KEY = "sk-proj-WIDGETSECRETabcdefghijklmnopqrstuvwxyz0123"


def manager_state(w: ipywidgets.Widget) -> dict:
    return ipywidgets.Widget.get_manager_state(drop_defaults=True)["state"][w.model_id]["state"]


def _result_of_two_choices() -> Result:
    from gptmagic.core.types import Choice

    return Result("chat", "m", [Choice(0, logprobs=[tok("a", -0.1)]),
                                Choice(1, logprobs=[tok("b", -2.0)])])


def heatmap_widget() -> LogprobHeatmap:
    return logprob_heatmap([tok(" Paris", -3.0, [(" Lyon", -0.5)]), tok("!", -0.01)])


def test_import_gptmagic_leaves_widgets_unloaded() -> None:
    code = textwrap.dedent("""
        import sys, gptmagic
        heavy = ("anywidget", "ipywidgets", "gptmagic.widgets", "tiktoken")
        assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]
        assert callable(gptmagic.token_counter) and "anywidget" not in sys.modules
        import gptmagic.views.widgets.state, gptmagic.views.widgets.static
        assert "anywidget" not in sys.modules
        assert gptmagic.TokenView.__name__ == "TokenView" and "anywidget" in sys.modules
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr


def test_public_names() -> None:
    import gptmagic.widgets as w

    assert w.__all__ == sorted(w.__all__)
    assert {"LogprobHeatmap", "TokenCounter", "TokenView", "logprob_heatmap", "token_counter",
            "token_view"} <= set(gptmagic.__all__)
    assert gptmagic.token_view is token_view and gptmagic.TokenCounter is TokenCounter
    with pytest.raises(AttributeError):
        _ = w.Nope


@pytest.mark.parametrize("make, kind, esm", [
    (lambda: token_counter("Hello", model="gpt-4o"), "counter", "counter.js"),
    (lambda: token_view("Hello 🎉", model="gpt-4o", compare="cl100k_base"), "tokens",
     "tokenview.js"),
    (heatmap_widget, "heatmap", "heatmap.js"),
])
def test_state_bundle_and_manager_state(make, kind, esm) -> None:
    w = make()
    assert w.data["v"] == 1 and w.data["kind"] == kind
    assert w._esm == esm_source(esm.removesuffix(".js"))
    assert w._esm.startswith((JS / "common.js").read_text()) and w._esm.endswith(
        (JS / esm).read_text())
    assert w._css == (JS / "gptmagic.css").read_text()
    data, meta = w._repr_mimebundle_()
    assert data[WIDGET_MIME]["model_id"] == w.model_id and data[WIDGET_MIME]["version_major"] == 2
    assert data["text/html"] == w.to_html() and data["text/plain"] == w.to_text()
    assert data["text/html"].startswith("<style>") and isinstance(meta, dict)
    assert manager_state(w)["data"] == w.data
    json.dumps(manager_state(w), allow_nan=False)
    assert len(repr(w)) < 120 and "{" not in repr(w)
    w.close()


def test_ipython_displays_widget_view_and_static_forms() -> None:
    shell = new_shell()
    try:
        w = token_counter([{"role": "user", "content": "hi"}], model="gpt-4o")
        data, _ = shell.display_formatter.format(w)
        assert {WIDGET_MIME, "text/html", "text/plain"} <= set(data)
        assert data["text/html"] == counter_html(w.data)
        assert data["text/plain"].startswith(f"{w.data['total']} tokens · gpt-4o")
    finally:
        InteractiveShell.clear_instance()


def test_static_forms_match_the_renderers() -> None:
    v = TokenView("a b", model="gpt-4o")
    assert v.to_html() == tokenview_html(v.data)
    h = LogprobHeatmap([tok("x", -0.1)], threshold=0.2)
    assert h.data["threshold"] == 0.2 and h.to_text() == heatmap_text(h.data)
    many = LogprobHeatmap(_result_of_two_choices())
    assert [c["index"] for c in many.data["choices"]] == [0, 1]


def test_live_counter_recounts_and_never_raises() -> None:
    w = token_counter(model="gpt-4o")
    assert w.live and w.text == "" and w.data["total"] == 0 and w.data["mode"] == "chat"
    w.text = "system: be brief\nuser (bob): hello there"
    rows = w.data["rows"]
    assert [r[:2] for r in rows] == [["system", None], ["user", "bob"]]
    first = w.data["total"]
    assert first == gptmagic.count_tokens([{"role": "system", "content": "be brief"},
                                           {"role": "user", "name": "bob",
                                            "content": "hello there"}], "gpt-4o").total
    assert manager_state(w)["data"]["total"] == first and manager_state(w)["text"] == w.text
    w.text = "stray line\nuser: hi"  # a cell syntax error: shown, not raised
    assert "line 1" in w.data["error"] and "role marker" in w.data["error"]
    assert "line 1" in w.to_text() and "line 1" in w.to_html()
    w.text = "plain words, no markers"
    assert w.data["error"] is None and len(w.data["rows"]) == 1
    w.max_tokens = 10
    assert w.data["cost"]["max_completion_tokens"] == 10
    w.max_tokens = -5
    assert "max_tokens" in w.data["error"]
    w.max_tokens = None
    w.model = "gpt-3.5-turbo"
    assert w.data["encoding"] == "cl100k_base" and w.data["error"] is None
    w.close()


def test_fixed_counter_recounts_on_model_change() -> None:
    w = TokenCounter("Hello there", model="gpt-4o")
    assert not w.live and w.data["mode"] == "text"
    w.model = "mystery-model"
    assert w.data["total"] == 2 and w.data["cost"] is None and not w.data["exact"]


def test_errors_of_given_inputs_are_raised() -> None:
    with pytest.raises(gptmagic.CellSyntaxError):
        TokenCounter("stray\nuser: x", model="gpt-4o", mode="chat")
    with pytest.raises(NoLogprobsError, match="--logprobs"):
        logprob_heatmap(Result("chat", "m", []))
    with pytest.raises(gptmagic.RequestError, match="shows a string"):
        TokenView(5, model="gpt-4o")


def test_default_model_follows_the_active_profile_and_no_secret_leaks(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("WIDGET_KEY", KEY)
    counter = token_counter("hi")
    assert counter.model == DEFAULT_OPENAI_MODEL  # OPENAI_API_KEY set: the openai profile
    gptmagic.add_profile("corp", base_url=f"https://user:{KEY}@llm.example/v1",
                         api_key_env="WIDGET_KEY", default_model="gpt-4.1-nano")
    monkeypatch.setenv("GPTMAGIC_PROFILE", "corp")
    widgets = [counter, token_counter("hi"), token_counter(), token_view("hi"), heatmap_widget()]
    assert widgets[1].model == "gpt-4.1-nano" and widgets[2].model == "gpt-4.1-nano"
    assert widgets[3].data["panes"][0]["model"] == "gpt-4.1-nano"
    widgets[2].text = "user: hello"
    for w in widgets:
        blob = json.dumps([manager_state(w), w._repr_mimebundle_()[0], repr(w)])
        assert KEY not in blob and "llm.example" not in blob
        w.close()


@pytest.mark.engine
def test_the_public_classes_count_the_embedded_model_on_its_engine() -> None:
    """gptmagic.TokenCounter / TokenView made directly work for the local model, as before."""
    try:
        counter = gptmagic.TokenCounter("user: hello there", model="local")
        view = gptmagic.TokenView("hello there", model="local")
        default = gptmagic.TokenView("hi")  # no key configured: the embedded model
        via_function = gptmagic.token_counter("user: hello there", model="local")
    finally:
        gptmagic.shutdown()
    assert counter.data["encoding"] == "smollm2 (engine)" and counter.data["error"] is None
    assert counter.data["total"] == via_function.data["total"] > 0
    assert view.data["panes"][0]["encoding"] == "smollm2 (engine)"
    assert default.data["panes"][0]["model"] == "smollm2-135m-instruct"
    assert isinstance(counter, gptmagic.widgets.TokenCounter)
