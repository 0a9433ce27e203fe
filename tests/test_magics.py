"""%%chat, %chat and %gptmagic in-process (InteractiveShell), against the fake server
and the embedded model."""

from __future__ import annotations

import json

import pytest
from fakeserver import Behaviour
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from shell_support import chat, fake_shell, new_shell

import gptmagic
from gptmagic.notebook.session import DryRun, Reply

KEY = "sk-fake-magic-0123456789abcdef"


@pytest.fixture
def shell(fake_server, monkeypatch, tmp_path):
    with fake_shell(fake_server.url, monkeypatch, tmp_path, KEY) as sh:
        yield sh


def test_chat_returns_a_reply_with_metadata(shell, fake_server):
    r, cap = chat(shell, "-p fake --temperature 0.5 --max-tokens 20 --seed 3", "user: hello there")
    assert isinstance(r, Reply) and r.text == "echo: hello there"
    body = fake_server.requests[-1].json
    assert body["temperature"] == 0.5 and body["max_tokens"] == 20 and body["seed"] == 3
    assert body["stream"] is True and body["messages"] == [
        {"role": "user", "content": "hello there"}
    ]
    data, meta = r._repr_mimebundle_()
    assert "echo: hello there" in data["text/markdown"] and "finish" in data["text/markdown"]
    resp = meta["gptmagic"]["response"]
    assert resp["usage"]["prompt_tokens"] == 2 and resp["model"] == "fake-model"
    assert KEY not in json.dumps(meta) and KEY not in json.dumps(data)
    assert shell.user_ns["_chat"] is r


def test_every_option_reaches_the_wire(shell, fake_server):
    line = (
        "-p fake -m fake-model -t 0 --top-p 0.5 --max-tokens 9 -n 2 --stop END --stop STOP "
        "--seed 1 --presence-penalty 0.5 --frequency-penalty -0.5 --json --top-logprobs 2 "
        "--no-stream --no-history"
    )
    r, _ = chat(shell, line, "hi")
    body = fake_server.requests[-1].json
    assert body == {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.0,
        "top_p": 0.5,
        "max_tokens": 9,
        "n": 2,
        "stop": ["END", "STOP"],
        "seed": 1,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "response_format": {"type": "json_object"},
        "top_logprobs": 2,
        "logprobs": True,
    }
    assert len(r.result.choices) == 2
    md = r._repr_mimebundle_()[0]["text/markdown"]
    assert "choice 1 of 2" in md and "choice 2 of 2" in md


def test_threads_rerun_replaces_and_history(shell, fake_server):
    chat(shell, "-p fake", "system: Be brief.\nuser: one")
    chat(shell, "-p fake", "user: two")
    sent = fake_server.requests[-1].json["messages"]
    assert [m["content"] for m in sent] == ["Be brief.", "one", "echo: one", "two"]
    # Re-running the first cell replaces its turn: its context is empty again.
    chat(shell, "-p fake", "system: Be brief.\nuser: one")
    assert [m["content"] for m in fake_server.requests[-1].json["messages"]] == ["Be brief.", "one"]
    th = shell.magics_manager.registry["GptMagics"].session.threads.get()
    assert len(th.turns) == 2
    with capture_output() as cap:
        shell.run_line_magic("chat", "history --model gpt-4o")
    html = cap.outputs[0].data["text/html"]
    assert "echo: two" in html and "Be brief." in html
    with capture_output() as cap:
        shell.run_line_magic("chat", "fork side --turn 1")
    assert "forked with 1 turn" in cap.stdout
    chat(shell, "-p fake --thread side", "user: three")
    assert [m["content"] for m in fake_server.requests[-1].json["messages"]] == [
        "Be brief.",
        "one",
        "echo: one",
        "three",
    ]
    with capture_output() as cap:
        shell.run_line_magic("chat", "reset")
    assert "2 turn(s) forgotten" in cap.stdout
    # A typo'd thread is an error naming the threads, not a new empty one (issue 13, item 16).
    session = shell.magics_manager.registry["GptMagics"].session
    with pytest.raises(UsageError, match="no thread 'sied'; threads: .*side"):
        shell.run_line_magic("chat", "history --thread sied")
    assert "sied" not in session.threads.names()
    chat(shell, "-p fake", "user: fresh")
    assert fake_server.requests[-1].json["messages"] == [{"role": "user", "content": "fresh"}]


def test_rerunning_an_edited_turn_says_which_later_turns_are_stale(shell, fake_server):
    magics = shell.magics_manager.registry["GptMagics"]
    for cell_id, text in (("a", "one"), ("b", "two"), ("c", "three")):
        magics.cell_id = cell_id  # Jupyter's cell ids: a re-run replaces the turn
        chat(shell, "-p fake", f"user: {text}")
    magics.cell_id = "a"
    r, _ = chat(shell, "-p fake", "user: one, edited")
    said = "turns 2, 3 after this one in thread 'default' answered its earlier version"
    assert said in r.note
    assert said in r._repr_mimebundle_()[0]["text/markdown"] and said in r.footer
    magics.cell_id = "d"
    r, _ = chat(shell, "-p fake", "user: four")
    assert "the history sent holds turns 2, 3 of thread 'default'" in r.note
    assert "%chat drop-stale" in r._repr_mimebundle_()[0]["text/markdown"]
    with capture_output() as cap:
        shell.run_line_magic("chat", "history --model gpt-4o")
    html = cap.outputs[0].data["text/html"]
    assert "2 (stale)" in html and "3 (stale)" in html and "4 (stale)" not in html
    assert cap.outputs[0].metadata["gptmagic"]["history"]["stale_turns"] == [2, 3]
    with capture_output() as cap:
        shell.run_line_magic("chat", "drop-stale")
    assert "3 turn(s) dropped, from turn 2 on" in cap.stdout
    magics.cell_id = "e"
    r, _ = chat(shell, "-p fake", "user: five")
    assert [m["content"] for m in fake_server.requests[-1].json["messages"]] == [
        "one, edited", "echo: one, edited", "five"]
    assert r.note is None


def test_an_indented_marker_is_said_with_its_line(shell, fake_server):
    """Indented markers split the cell (JupyterLab's auto-indent must not merge
    messages), so a transcript quoted with indentation is split too: the reply says so."""
    cell = "user: Classify this:\n    user: my order is late"
    dry, _ = chat(shell, "-p fake --dry-run --no-history", cell)
    assert "cell line(s) 2 (user:): an indented role marker starts a new message" in (
        dry._repr_mimebundle_()[0]["text/markdown"])
    r, _ = chat(shell, "-p fake --no-history", cell)
    assert "cell line(s) 2 (user:)" in r.note
    assert len(fake_server.requests[-1].json["messages"]) == 2
    r, _ = chat(shell, "-p fake --no-history", "user: Classify this:\n\\    user: late")
    assert r.note is None and len(fake_server.requests[-1].json["messages"]) == 1


def test_history_counts_for_the_model_the_thread_talked_to(shell, fake_server):
    """%chat history counted every thread with the embedded model (starting it)."""
    chat(shell, "-p fake -m gpt-4o", "user: are you there?")
    with capture_output() as cap:
        shell.run_line_magic("chat", "history")
    meta = cap.outputs[0].metadata["gptmagic"]["history"]
    msgs = shell.magics_manager.registry["GptMagics"].session.threads.get().messages()
    assert meta["total_tokens"] == gptmagic.count_tokens(msgs, "gpt-4o").total
    assert meta["context_window"] == 128_000
    assert gptmagic.local.get_engine().running is False
    assert shell.user_ns["_chat"].finish_reason == "stop"


def test_system_option_and_variables(shell, fake_server):
    shell.user_ns["topic"] = "owls"
    chat(shell, "-p fake --system 'You are terse.' --thread t2", "Tell me about {topic}.")
    assert fake_server.requests[-1].json["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Tell me about owls."},
    ]


def test_dry_run_sends_nothing(shell, fake_server):
    r, _ = chat(shell, "-p fake -m gpt-4o --dry-run --max-tokens 100", "user: count me")
    assert isinstance(r, DryRun) and fake_server.requests == []
    data, _ = r._repr_mimebundle_()
    assert "nothing sent" in data["text/plain"].lower()
    assert '"count me"' in data["text/plain"] and KEY not in json.dumps(data)
    assert (
        r.count.total
        == gptmagic.count_tokens([{"role": "user", "content": "count me"}], "gpt-4o").total
    )


def test_multi_model_side_by_side(shell, fake_server):
    r, _ = chat(shell, "-p fake -m fake-a,fake-b", "user: compare")
    assert set(r.results) == {"fake-a", "fake-b"}
    html = r._repr_mimebundle_()[0]["text/html"]
    assert "fake-a" in html and "fake-b" in html and "echo: compare" in html
    assert sorted(q.json["model"] for q in fake_server.requests) == ["fake-a", "fake-b"]


def test_out_variable(shell, fake_server):
    r, _ = chat(shell, "-p fake --out answer", "hi")
    assert shell.user_ns["answer"] is r


@pytest.mark.parametrize(
    ("line", "cell", "match"),
    [
        ("-p fake --temperature hot", "hi", "--temperature must be a number, got 'hot'"),
        ("-p fake -n two", "hi", "-n must be a whole number, got 'two'"),
        ("-p fake --temperature 3", "hi", r"--temperature must be in 0.0..2.0"),
        ("-p fake -n 0", "hi", "-n must be in"),
        ("-p fake --bogus", "hi", "unrecognized arguments"),
        ("-p nope", "hi", "unknown profile 'nope'"),
        ("-p fake", "user: {missing}", "cell line 1: name 'missing'"),
        ("-p fake", "hello\nuser: x", "cell line 1"),
        ("-p fake --out 'not a name'", "hi", "--out needs a Python variable name"),
        ("-m gpt-4o -p openai", "hi", "OPENAI_API_KEY"),
    ],
)
def test_errors_are_usage_errors(shell, fake_server, line, cell, match):
    with pytest.raises(UsageError, match=match):
        shell.run_cell_magic("chat", line, cell)


def test_server_errors_are_usage_errors(shell, fake_server):
    fake_server.set_default(Behaviour(status=401))
    with pytest.raises(UsageError, match="HTTP 401") as e:
        shell.run_cell_magic("chat", "-p fake", "hi")
    assert KEY not in str(e.value)


def test_gptmagic_settings(shell, fake_server):
    shell.run_line_magic("gptmagic", "profile fake")
    shell.run_line_magic("gptmagic", "set temperature=0.2 max_tokens=7")
    chat(shell, "", "hi")
    body = fake_server.requests[-1].json
    assert body["temperature"] == 0.2 and body["max_tokens"] == 7 and body["model"] == "fake-model"
    shell.run_line_magic("gptmagic", "unset temperature")
    chat(shell, "--max-tokens 3", "again")
    assert "temperature" not in fake_server.requests[-1].json
    assert fake_server.requests[-1].json["max_tokens"] == 3  # the cell wins
    with pytest.raises(UsageError, match="expected name=value"):
        shell.run_line_magic("gptmagic", "set colour=blue")
    shell.run_line_magic("config", "GptMagics.default_model = 'fake-z'")
    chat(shell, "", "x")
    assert fake_server.requests[-1].json["model"] == "fake-z"


def test_unload_removes_magics(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipy"))
    sh = new_shell()
    try:
        before = {k: set(v) for k, v in sh.magics_manager.magics.items()}
        sh.run_line_magic("load_ext", "gptmagic")
        added = {k: set(v) - before[k] for k, v in sh.magics_manager.magics.items()}
        assert {"chat", "complete", "tokens"} <= added["cell"]
        assert {"chat", "gptmagic", "tokens"} <= added["line"]
        sh.run_line_magic("unload_ext", "gptmagic")
        # Issue 9 bug 4: %tokens / %%tokens stayed registered. Every magic goes.
        after = {k: set(v) for k, v in sh.magics_manager.magics.items()}
        assert after == before
        assert "GptMagics" not in sh.magics_manager.registry
        sh.run_line_magic("load_ext", "gptmagic")  # and it loads again cleanly
        assert "tokens" in sh.magics_manager.magics["line"]
    finally:
        InteractiveShell.clear_instance()


@pytest.mark.engine
def test_local_model_streams_and_prices_at_zero(shell):
    try:
        r, cap = chat(
            shell, "-m local --max-tokens 8 --temperature 0 --top-logprobs 3", "user: Say hello."
        )
        assert r.text and r.result.usage.completion_tokens <= 8
        assert r.cost.total == 0 and len(r.logprobs[0].top) == 3
        assert "smollm2-135m-instruct" in r._repr_mimebundle_()[0]["text/markdown"]
        assert r.text.split()[0] in cap.stdout  # streamed to the terminal as it came
    finally:
        gptmagic.shutdown()


FEW_SHOT = """system: Translate the user's text to French.
user (example_user): Hello
assistant (example_assistant): Bonjour
user (example_user): Thank you
assistant (example_assistant): Merci
user: Good night"""


@pytest.mark.engine
def test_few_shot_names_do_not_come_back_in_the_embedded_models_reply(shell):
    """The name emulation once prefixed assistant turns too: the model then opened
    every reply with 'example_assistant:' (8 of 8 seeds)."""
    try:
        for seed in range(4):
            r, _ = chat(shell, f"-m local --no-history --max-tokens 12 -t 0.8 --seed {seed}",
                        FEW_SHOT)
            assert not r.text.lstrip().lower().startswith("example_"), (seed, r.text)
        # The dry run shows the text the engine reads: names written in where they are.
        d, _ = chat(shell, "-m local --no-history --dry-run", FEW_SHOT)
        assert "example_user: Hello" in d.engine_prompt and "Bonjour" in d.engine_prompt
        assert "example_assistant" not in d.engine_prompt
        md = d._repr_mimebundle_()[0]["text/markdown"]
        assert "The engine receives this text" in md and "example_user: Thank you" in md
        # The body has no max_tokens; the engine adds its default cap, and the dry run says so.
        assert "max_tokens" not in d.request
        assert "the embedded engine caps this reply at 1024 tokens" in md
        capped, _ = chat(shell, "-m local --no-history --max-tokens 9 --dry-run", FEW_SHOT)
        assert "caps this reply" not in capped._repr_mimebundle_()[0]["text/markdown"]
        gemma, _ = chat(shell, "-m local:gemma-3-270m --no-history --dry-run", "user: Hi")
        assert gemma.engine_prompt.startswith("<start_of_turn>user\nHi")  # its own template
        assert "caps this reply at 256 tokens" in gemma.note
        assert gemma.estimate.max_completion_tokens == 256  # not the 32K window
    finally:
        gptmagic.shutdown()


def complete(sh, line, cell):
    with capture_output() as cap:
        result = sh.run_cell_magic("complete", line, cell)
    return result, cap


def test_complete_options_reach_the_wire(shell, fake_server):
    r, _ = complete(
        shell,
        "-p fake --max-tokens 5 -t 0 --top-p 1 -n 2 --best-of 3 --stop X "
        "--echo --logprobs 2 --seed 4 --presence-penalty 0 --frequency-penalty 0 "
        "--no-stream",
        "Once upon a time",
    )
    body = fake_server.requests[-1].json
    assert body == {
        "model": "fake-model",
        "prompt": "Once upon a time",
        "max_tokens": 5,
        "temperature": 0.0,
        "top_p": 1.0,
        "n": 2,
        "best_of": 3,
        "stop": ["X"],
        "echo": True,
        "logprobs": 2,
        "seed": 4,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
    }
    assert len(r.result.choices) == 2 and r.result.choices[0].prompt_logprobs


def test_complete_best_of_is_sent_unstreamed_and_says_so(shell, fake_server):
    """The API refuses best_of with stream (issue 13, item 13): streaming is switched off."""
    r, _ = complete(shell, "-p fake --max-tokens 5 --best-of 3", "Once upon a time")
    body = fake_server.requests[-1].json
    assert body["best_of"] == 3 and not body.get("stream")
    shown = r._repr_mimebundle_()[0]["text/markdown"]
    assert "not streamed: best\\_of=3" in shown  # Markdown escapes the underscore
    r, _ = complete(shell, "-p fake --max-tokens 5 -n 2 --best-of 2", "Once upon a time")
    assert fake_server.requests[-1].json.get("stream") is True  # best_of = n: nothing to pick


def test_complete_insertion_and_resample(shell, fake_server):
    r, _ = complete(shell, "-p fake --max-tokens 50", "def f():\n    [insert]\nprint(f())")
    body = fake_server.requests[-1].json
    assert body["prompt"] == "def f():\n    " and body["suffix"] == "\nprint(f())"
    fake_server.reset()
    # Every sample hits max_tokens: resampling says so and suggests a fix.
    r, _ = complete(shell, "-p fake --max-tokens 1 --resample 3 --seed 7", "a [insert] b c d")
    assert len(fake_server.requests) == 3
    assert [q.json["seed"] for q in fake_server.requests] == [7, 8, 9]
    assert "raise --max-tokens" in r._repr_mimebundle_()[0]["text/markdown"]
    fake_server.reset()
    r, _ = complete(shell, "-p fake --max-tokens 50 --resample 3", "x [insert] y")
    assert len(fake_server.requests) == 1 and r.result.choices[0].finish_reason == "stop"
    with pytest.raises(UsageError, match="cell line 1 and cell line 2"):
        shell.run_cell_magic("complete", "-p fake", "[insert]\n[insert]")
    with pytest.raises(UsageError, match="--resample must be"):
        shell.run_cell_magic("complete", "-p fake --resample 0", "x")


def test_complete_dry_run(shell, fake_server):
    r, _ = complete(
        shell, "-p fake -m gpt-3.5-turbo-instruct --dry-run --max-tokens 9", "Hello [insert] world"
    )
    assert isinstance(r, DryRun) and fake_server.requests == []
    assert r.request["prompt"] == "Hello " and r.request["suffix"] == " world"


def test_moderation(shell, fake_server):
    r, _ = chat(shell, "-p fake --moderate --no-history", "user: we attack at dawn")
    assert "input flagged for violence (0.91)" in r.moderation
    assert "reply flagged for violence" in r.moderation  # the fake echoes the input
    assert "moderation:" in r._repr_mimebundle_()[0]["text/markdown"]
    assert [q.path for q in fake_server.requests] == [
        "/v1/moderations",
        "/v1/chat/completions",
        "/v1/moderations",
    ]
    r, _ = chat(shell, "-p fake --moderate --no-history", "user: hello")
    assert r.moderation == "moderation: input not flagged; reply not flagged"
    with pytest.raises(UsageError, match="no moderation endpoint"):
        shell.run_cell_magic("chat", "-m local --moderate", "hi")


def test_reply_html_payload_is_inert(shell, fake_server):
    fake_server.plan(Behaviour(text="<script>alert(1)</script> <img src=x onerror=alert(2)>"))
    r, _ = chat(shell, "-p fake --no-stream", "hi")
    md = r._repr_mimebundle_()[0]["text/markdown"]
    assert "<script>" not in md and "<img" not in md and "&lt;script&gt;" in md


def test_terminal_shows_footer_with_notes_after_streaming(shell, fake_server):
    r, cap = chat(shell, "-p fake --moderate --no-history", "user: hello world")
    assert "echo: hello world" in cap.stdout  # streamed as it came
    plain = r._repr_mimebundle_()[0]["text/plain"]
    assert "echo: hello world" not in plain  # not printed twice
    assert "finish: stop" in plain and plain.rstrip().endswith("reply not flagged")
    md = r._repr_mimebundle_()[0]["text/markdown"]
    assert "echo: hello world" in md and "moderation" in md


def test_complete_prompt_has_no_trailing_newline_from_ipython(shell, fake_server):
    # Run as a real cell: IPython appends a newline to the body the user typed.
    with capture_output():
        shell.run_cell("%%complete -p fake --no-stream\nThe capital of France is")
    assert fake_server.requests[-1].json["prompt"] == "The capital of France is"


# -- widgets under the cell ------------------------------------------------------------------


def _widget_outputs(cap):
    return [o.data for o in cap.outputs if "application/vnd.jupyter.widget-view+json" in o.data]


def _state(widget):
    from ipywidgets import Widget

    return Widget.get_manager_state(drop_defaults=True)["state"][widget.model_id]["state"]


def test_logprobs_add_a_heatmap_under_the_reply(shell, fake_server):
    with capture_output() as cap:
        out = shell.run_cell("%%chat -p fake --top-logprobs 3 --no-stream\nuser: colour me")
    reply = out.result
    assert isinstance(reply, Reply) and reply.heatmap is not None
    widgets = _widget_outputs(cap)
    assert len(widgets) == 1
    assert widgets[0]["application/vnd.jupyter.widget-view+json"]["model_id"] == \
        reply.heatmap.model_id
    state = _state(reply.heatmap)["data"]
    assert state["kind"] == "heatmap"
    assert "".join(state["choices"][0]["t"]) == reply.text
    assert all(len(alts) == 3 for alts in state["choices"][0]["top"])
    assert "gm-" in widgets[0]["text/html"] and KEY not in json.dumps(state)


def test_no_heatmap_without_logprobs(shell, fake_server):
    with capture_output() as cap:
        out = shell.run_cell("%%chat -p fake --no-stream\nuser: plain")
    assert out.result.heatmap is None and _widget_outputs(cap) == []


def test_magic_outside_a_cell_does_not_leak_widgets_into_the_next(shell, fake_server):
    r, _ = chat(shell, "-p fake --logprobs --no-stream", "user: direct call")
    assert r.heatmap is not None  # built, but there is no cell to show it under
    with capture_output() as cap:
        shell.run_cell("1 + 1")
    assert _widget_outputs(cap) == []
    for event in ("pre_run_cell", "post_run_cell"):
        assert not [cb for cb in shell.events.callbacks[event]
                    if getattr(cb, "__module__", "") == "gptmagic.cellviews"]


def test_dry_run_in_a_kernel_shows_a_token_counter(shell, fake_server, monkeypatch):
    monkeypatch.setattr(shell, "kernel", object(), raising=False)
    with capture_output() as cap:
        out = shell.run_cell("%%chat -p fake -m gpt-4o --dry-run --max-tokens 100\n"
                             "system: be brief\nuser: count me")
    dry = out.result
    assert isinstance(dry, DryRun) and dry.counter is not None and fake_server.requests == []
    state = _state(dry.counter)["data"]
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "count me"}]
    assert state["total"] == gptmagic.count_tokens(messages, "gpt-4o").total == dry.count.total
    assert [r[0] for r in state["rows"]] == ["system", "user"]
    assert state["cost"]["expected_completion_tokens"] <= 100
    assert "see the counter below" in dry._repr_mimebundle_()[0]["text/plain"]
    assert len(_widget_outputs(cap)) == 1


def test_tokens_magic_counts_and_cuts(shell):
    with capture_output() as cap:
        out = shell.run_cell("%%tokens -m gpt-4o --compare gpt-4\nsystem: hi\nuser: Grüße 👋")
    counter = out.result
    messages = [{"role": "system", "content": "hi"}, {"role": "user", "content": "Grüße 👋"}]
    assert _state(counter)["data"]["total"] == gptmagic.count_tokens(messages, "gpt-4o").total
    (view,) = _widget_outputs(cap)
    text = view["text/plain"]
    assert "o200k_base" in text and "cl100k_base" in text


def test_tokens_magic_live_and_errors(shell):
    live = shell.run_line_magic("tokens", "-m gpt-4o")
    live.text = "user: hello there"
    assert _state(live)["data"]["total"] == gptmagic.count_tokens(
        [{"role": "user", "content": "hello there"}], "gpt-4o").total
    with pytest.raises(UsageError, match="line 2"):
        shell.run_cell_magic("tokens", "", "user: hi\nuser(bad name!): x")


def test_stop_option_understands_newline_escapes(shell, fake_server):
    chat(shell, r'-p fake --no-stream --stop "\n3." --stop "a\\n"', "user: x")
    assert fake_server.requests[-1].json["stop"] == ["\n3.", "a\\n"]
    complete(shell, r'-p fake --no-stream --stop "\n\t"', "x")
    assert fake_server.requests[-1].json["stop"] == ["\n\t"]


def test_heatmap_of_a_reply(shell, fake_server):
    from gptmagic.widgets import logprob_heatmap

    r, _ = chat(shell, "-p fake --logprobs --no-stream", "user: from a reply")
    state = logprob_heatmap(r).data
    assert "".join(state["choices"][0]["t"]) == r.text


def test_side_by_side_models_each_get_a_labelled_heatmap(shell, fake_server):
    with capture_output() as cap:
        out = shell.run_cell("%%chat -p fake -m fake-a,fake-b --top-logprobs 2\nuser: both")
    reply = out.result
    assert set(reply.heatmaps) == {"fake-a", "fake-b"}
    assert reply.heatmap is reply.heatmaps["fake-a"]
    shown = [o.data for o in cap.outputs]
    labels = [d["text/markdown"] for d in shown if "text/markdown" in d]
    assert labels == ["**fake-a**", "**fake-b**"]
    assert len(_widget_outputs(cap)) == 2


def test_a_cut_stream_keeps_its_text_on_screen_and_says_why(shell, fake_server, monkeypatch):
    """The live view goes when the cell ends; the text that had arrived must not go with it."""
    monkeypatch.setattr(shell, "kernel", object(), raising=False)  # a notebook, not a terminal
    fake_server.plan(Behaviour(stream_cut_after=3))
    with capture_output() as cap, pytest.raises(UsageError, match="stream interrupted"):
        shell.run_cell_magic("chat", "-p fake", "user: a long story please")
    kept = [o.data for o in cap.outputs if "cut short" in o.data.get("text/markdown", "")]
    assert len(kept) == 1 and kept[0]["text/plain"] == "echo: a"  # what had streamed


# -- "profile:model" in -m, and what a server under-reports (issue 18, item 6) -----------------


def test_model_option_reads_profile_model(shell, fake_server):
    """-m fake:llama3:8b went to the embedded engine as model 'fake:llama3:8b'."""
    r, _ = chat(shell, "-m fake:llama3:8b --no-history", "hi")
    assert r.text == "echo: hi" and r.request["provider"] == "fake"
    r, _ = complete(shell, "-m fake:ft:base:org::id --max-tokens 3", "Once")
    assert r.request["provider"] == "fake"
    r, _ = chat(shell, "-m fake:a,fake:b:c --no-history", "hi")
    assert list(r.results) == ["fake:a", "fake:b:c"]  # as typed, one column each
    assert [q.json["model"] for q in fake_server.requests][:2] == ["llama3:8b", "ft:base:org::id"]
    assert sorted(q.json["model"] for q in fake_server.requests[2:]) == ["a", "b:c"]
    assert all(q.headers["authorization"] == f"Bearer {KEY}" for q in fake_server.requests)


def test_a_set_profile_gives_way_to_a_named_one_and_p_takes_the_name_whole(shell, fake_server):
    from fakeserver import FakeServer

    with FakeServer() as other:
        gptmagic.add_profile("other", base_url=other.url)
        shell.run_line_magic("gptmagic", "profile fake")
        chat(shell, "-m other:m2 --no-history", "hi")
        chat(shell, "-m m1:tag --no-history", "hi")
        chat(shell, "-p fake -m other:m3 --no-history", "hi")
        complete(shell, "-m other:m4", "Once")
        assert [q.json["model"] for q in other.requests] == ["m2", "m4"]
    assert [q.json["model"] for q in fake_server.requests] == ["m1:tag", "other:m3"]


@pytest.mark.parametrize("magic", ["chat", "complete"])
def test_an_unknown_profile_in_model_is_a_usage_error(shell, fake_server, magic):
    with pytest.raises(UsageError, match="unknown profile 'fak'; known profiles: .*fake"):
        shell.run_cell_magic(magic, "-m fak:fake-model", "hi")
    if magic == "chat":  # side by side: refused before anything is sent
        with pytest.raises(UsageError, match="unknown profile 'fak'"):
            shell.run_cell_magic(magic, "-m fake:a,fak:b", "hi")
    assert fake_server.requests == []


def test_the_reply_note_says_usage_is_under_reported(shell, fake_server):
    """llama.cpp's server counts one of n choices; the note says so, the figure stays."""
    words = "".join(f" w{j}" for j in range(4))
    body = {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": i, "finish_reason": "length", "logprobs": None,
                         "message": {"role": "assistant", "content": words}} for i in range(3)],
            "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}
    fake_server.plan(Behaviour(body=body))
    r, _ = chat(shell, "-p fake -n 3 --max-tokens 4 --no-stream --no-history", "hi")
    data, _ = r._repr_mimebundle_()
    for shown in (data["text/markdown"], data["text/plain"], r.footer):
        assert "n=3" in shown and "at least 12" in shown and "4 completion" in shown
    assert r.usage.completion_tokens == 4 and r.result.warnings
    fake_server.plan(Behaviour(body={
        "id": "cmpl-x", "object": "text_completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "text": " a canvas", "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}))
    r, _ = complete(shell, "-p fake --echo --no-stream", "The sky is")
    assert "echo" in r._repr_mimebundle_()[0]["text/markdown"]
    assert "does not start with the prompt" in r._repr_mimebundle_()[0]["text/plain"]


def test_a_hosted_model_without_a_key_says_so_and_sends_nothing(shell, fake_server, monkeypatch):
    """Issue 13, item 12: not a 404 from the embedded model, the reason and the way out."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("GPTMAGIC_PROFILE", raising=False)
    before = len(fake_server.requests)
    for magic in ("chat", "complete"):
        with pytest.raises(UsageError,
                           match="no hosted provider is configured.*openai:gpt-4o-mini"):
            shell.run_cell_magic(magic, "-m gpt-4o-mini --max-tokens 3", "user: hi")
    assert len(fake_server.requests) == before
    assert gptmagic.local.get_engine().running is False  # the engine was not even started


def test_a_mistyped_local_model_suggests_the_closest_served_one(shell, fake_server):
    """``-m local:gemma-270m`` is a typo of a served model, not a hosted one: no advice to
    name another provider or set a key, the model meant, and nothing sent."""
    before = len(fake_server.requests)
    for spec, meant in (("local:gemma-270m", "local:gemma-3-270m"), ("local:smolm2", "local")):
        with pytest.raises(UsageError) as info:
            shell.run_cell_magic("chat", f"-m {spec}", "user: hi")
        message = str(info.value)
        assert f"did you mean '{meant}'?" in message and "'local:gemma-3-270m'" in message
        assert "OPENAI_API_KEY" not in message
    with pytest.raises(UsageError, match="Name the provider.*OPENAI_API_KEY") as info:
        shell.run_cell_magic("chat", "-m local:gpt-4o", "user: hi")  # close to nothing served
    assert "did you mean" not in str(info.value)
    assert len(fake_server.requests) == before
    assert gptmagic.local.get_engine().running is False


def test_key_env_selects_the_hosted_provider(shell, fake_server, monkeypatch):
    """``--key-env MY_KEY -m gpt-4o-mini`` means OpenAI with that key, not the embedded model."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("GPTMAGIC_PROFILE", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.url)
    monkeypatch.setenv("MY_KEY", KEY)
    r, _ = chat(shell, "--key-env MY_KEY -m gpt-4o-mini --max-tokens 3", "user: hi")
    # The chat's POST: OpenAI's GET /models (shutdown dates) runs beside it, in any order.
    sent = next(q for q in fake_server.requests if q.method == "POST")
    assert sent.json["model"] == "gpt-4o-mini" and r.text == "echo: hi"
    assert sent.headers["authorization"] == f"Bearer {KEY}"


def test_json_replies_are_pretty_printed_and_checked(shell, fake_server, monkeypatch):
    # issue 13, item 19: --json showed the JSON as one line of prose, and a reply cut by
    # max_tokens looked like any other. In a kernel (not a terminal) the full view shows.
    monkeypatch.setattr(shell, "kernel", object(), raising=False)
    fake_server.plan(Behaviour(text='{"city": "Paris", "tags": ["a", "b"]}'))
    r, _ = chat(shell, "-p fake --json --no-history", "user: JSON please")
    data, meta = r._repr_mimebundle_()
    assert '```json\n{\n  "city": "Paris",\n  "tags": [\n    "a",' in data["text/markdown"]
    assert "not valid JSON" not in data["text/markdown"]
    assert meta["gptmagic"]["response"]["json_valid"] == [True]
    fake_server.plan(Behaviour(text='{"city": "Paris", "tags": ["a", "b"]}'))
    r, _ = chat(shell, "-p fake --json --max-tokens 4 --no-history", "user: JSON please")
    data, meta = r._repr_mimebundle_()
    assert "finish: length" in data["text/markdown"]
    assert ("the reply is not valid JSON: Expecting" in data["text/markdown"]
            and "cut off by the token limit before the JSON was complete; raise "
            "--max-tokens" in data["text/markdown"])
    assert "the reply is not valid JSON" in data["text/plain"]
    assert meta["gptmagic"]["response"]["json_valid"] == [False]
    # In a terminal the reply streamed already and only the footer shows: it says so too.
    monkeypatch.delattr(shell, "kernel")
    fake_server.plan(Behaviour(text='{"city": "Paris", "tags": ["a", "b"]}'))
    r, cap = chat(shell, "-p fake --json --max-tokens 4 --no-history", "user: JSON please")
    footer = r._repr_mimebundle_()[0]["text/plain"]
    assert '{"city":' in cap.stdout and footer.startswith("── finish: length")
    assert "the reply is not valid JSON" in footer and "raise --max-tokens" in footer


# -- --timeout: the deadline of the whole call (issue 13, item 18) -------------------------------


@pytest.mark.parametrize(("magic", "cell"), [("chat", "user: go on"), ("complete", "go on")])
def test_timeout_stops_an_endless_stream_and_keeps_its_text(shell, fake_server, monkeypatch,
                                                            magic, cell):
    monkeypatch.setattr(shell, "kernel", object(), raising=False)  # a notebook, not a terminal
    fake_server.plan(Behaviour(endless=True, stream_delay=0.02))
    with capture_output() as cap, pytest.raises(UsageError, match="0.5 s deadline"):
        shell.run_cell_magic(magic, "-p fake --timeout 0.5", cell)
    kept = [o.data for o in cap.outputs if "cut short" in o.data.get("text/markdown", "")]
    assert len(kept) == 1 and kept[0]["text/plain"].count("echo:") > 3
    assert len(fake_server.requests) == 1
    # The text kept is _chat's, as an interrupted reply's is; a chat one can be kept.
    assert shell.user_ns["_chat"].text == kept[0]["text/plain"]
    if magic == "chat":
        with capture_output() as cap:
            shell.run_line_magic("chat", "keep")
        assert "kept the stopped reply" in cap.stdout


def test_timeout_covers_every_attempt_of_a_slow_server(shell, fake_server):
    fake_server.set_default(Behaviour(delay=5))
    with pytest.raises(UsageError, match=r"1 attempt\b"):
        shell.run_cell_magic("chat", "-p fake --no-stream --timeout 0.5", "user: hi")
    assert len(fake_server.requests) == 1


def test_timeout_is_documented_checked_and_never_sent(shell, fake_server):
    from gptmagic.notebook.magics import GptMagics

    for magic in (GptMagics.chat, GptMagics.complete):
        assert "--timeout" in magic.__doc__ and "retries" in magic.__doc__
    with pytest.raises(UsageError, match="--timeout must be"):
        shell.run_cell_magic("chat", "-p fake --timeout 0", "user: hi")
    dry, _ = chat(shell, "-p fake --timeout 30 --dry-run", "user: hi")
    assert "timeout" not in dry.request
    reply, _ = chat(shell, "-p fake --timeout 30", "user: hi")
    assert reply.text == "echo: hi" and "timeout" not in fake_server.requests[-1].json
