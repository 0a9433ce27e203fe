"""``%%chat --tools f,g --approve --max-steps N --tool-choice C`` in-process, against the
fake server's scripted tool calls, over Chat Completions and the Responses API."""

from __future__ import annotations

import _thread
import json
import threading
import time

import pytest
from fakeserver import Behaviour
from IPython.core.error import StdinNotImplementedError, UsageError
from openapi_schema import validate
from shell_support import chat, fake_shell

from gptmagic.notebook.session import DryRun, Reply

KEY = "sk-fake-tools-0123456789abcdef"

FUNCTIONS = '''
def get_weather(city: str) -> str:
    """The weather now in a city."""
    calls.append(city)
    return f"18 C and sunny in {city}"

def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b

def broken(x: int) -> int:
    """Always fails."""
    raise ValueError(f"no luck with {x}")

calls = []
not_a_function = 42
'''
#: The request schema of each endpoint in OpenAI's spec.
SCHEMAS = {"chat": "CreateChatCompletionRequest", "responses": "CreateResponse"}


@pytest.fixture
def shell(fake_server, monkeypatch, tmp_path):
    with fake_shell(fake_server.url, monkeypatch, tmp_path, KEY) as sh:
        sh.run_cell(FUNCTIONS)
        yield sh


def _session(sh):
    return sh.magics_manager.registry["GptMagics"].session


def _answers(monkeypatch, *said):
    """``input()`` answers ``said`` in turn (the kernel's input box, typed into); the
    questions asked are returned."""
    asked, queue = [], list(said)

    def read(prompt=""):
        asked.append(prompt)
        return queue.pop(0)

    monkeypatch.setattr("builtins.input", read)
    return asked


# -- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "said"), [
    ("--tools get_wether", "no function 'get_wether' in the notebook (did you mean "
                           "'get_weather'?)"),
    ("--tools calls.apend", "'calls' has no attribute 'apend' ('calls.apend') (did you mean "
                            "'append'?)"),
    ("--tools not_a_function", "'not_a_function' is a int, not a function"),
    ("--tools get_weather,get_weather", "'get_weather' is given twice"),
    ("--tools ,", "--tools needs function names"),
    ("--approve", "--approve goes with --tools"),
    ("--max-steps 3", "--max-steps goes with --tools"),
    ("--tools add --max-steps 0", "--max-steps must be a whole number in 1..50"),
    ("--tools add --max-steps two", "--max-steps must be a whole number"),
    ("--tools add --tool-choice sometimes", "--tool-choice must be 'auto', 'none', 'required' "
                                            "or the name of one of the tools (add)"),
    ("--tools add -n 2", "--tools follows one reply, got -n 2"),
    ("--tools add -m fake-model,fake-model", "--tools runs one model's loop"),
])
def test_bad_tool_options_are_clear_errors_and_send_nothing(shell, fake_server, line, said):
    with pytest.raises(UsageError) as e:
        chat(shell, f"-p fake {line}", "user: hi")
    assert said in str(e.value)
    assert fake_server.requests == []


def test_a_dotted_name_is_looked_up_through_attributes(shell, fake_server):
    shell.run_cell("import types\nns = types.SimpleNamespace(add=add)")
    r, _ = chat(shell, "-p fake --tools ns.add --no-history", "user: hi")
    assert fake_server.requests[0].json["tools"][0]["function"]["name"] == "add"
    with pytest.raises(UsageError, match="'ns' has no attribute 'sub'"):
        chat(shell, "-p fake --tools ns.sub", "user: hi")


# -- the loop -------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_the_loop_runs_shows_its_steps_and_joins_the_thread(shell, fake_server, api):
    fake_server.plan(Behaviour(tool_calls=[("get_weather", {"city": "Paris"}),
                                           ("add", {"a": 2, "b": 3})]), Behaviour())
    r, _ = chat(shell, f"-p fake --api {api} --tools get_weather,add",
                "system: Be brief.\nuser: weather in Paris, and 2+3?")
    assert isinstance(r, Reply) and shell.user_ns["_chat"] is r
    assert shell.user_ns["calls"] == ["Paris"]
    assert r.text == "tool results: 18 C and sunny in Paris | 5"
    assert [len(s.calls) for s in r.steps] == [2, 0]  # every model call, the last included
    assert [c.output for c in r.steps[0].calls] == ["18 C and sunny in Paris", "5"]
    for request in fake_server.requests:  # every call of the loop, as the spec has it
        validate(request.json, SCHEMAS[api])
    data, meta = r._repr_mimebundle_()
    md = data["text/markdown"]
    assert md.count("<details><summary>step ") == 1 and "get\\_weather" in md
    assert '"city": "Paris"' in md and "18 C and sunny in Paris" in md
    assert "summed over 2 steps" in md
    # The usage shown is the whole loop's: both model calls.
    usage = [s.result.usage for s in r.steps]
    assert meta["gptmagic"]["response"]["usage"]["prompt_tokens"] == sum(
        u.prompt_tokens for u in usage)
    assert [c["name"] for c in meta["gptmagic"]["steps"][0]["calls"]] == ["get_weather", "add"]
    assert KEY not in json.dumps(meta) + json.dumps(data)

    # The next cell continues from the whole exchange.
    chat(shell, f"-p fake --api {api}", "user: thanks")
    sent = fake_server.requests[-1].json
    if api == "chat":
        roles = [m["role"] for m in sent["messages"]]
        assert roles == ["system", "user", "assistant", "tool", "tool", "assistant", "user"]
        assert sent["messages"][2]["tool_calls"][0]["function"]["name"] == "get_weather"
    else:
        kinds = [i.get("type") or i["role"] for i in sent["input"]]
        assert kinds == ["user", "function_call", "function_call", "function_call_output",
                         "function_call_output", "assistant", "user"]
    validate(sent, SCHEMAS[api])

    data, _ = _session(shell).history("default", None)
    plain = data["text/plain"]
    assert '→ get_weather({"city": "Paris"})' in plain
    assert "(call_fake_1_0) 18 C and sunny in Paris" in plain


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_tool_cell_after_a_tool_cell_and_with_an_image_sends_what_the_spec_takes(
        shell, fake_server, api, tmp_path, monkeypatch):
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(tmp_path / "red.png")
    monkeypatch.chdir(tmp_path)
    fake_server.plan(Behaviour(tool_calls=[("add", {"a": 1, "b": 2})]), Behaviour(),
                     Behaviour(tool_calls=[("add", {"a": 3, "b": 4})]), Behaviour())
    chat(shell, f"-p fake --api {api} --tools add", "system: Be brief.\nuser: 1+2")
    r, _ = chat(shell, f"-p fake --api {api} --tools add", "user: 3+4? ![a square](red.png)")
    assert isinstance(r, Reply) and r.text == "tool results: 7"
    for request in fake_server.requests:  # the thread's first loop, and the image, as sent
        body = request.json
        if api == "responses":  # a message of parts matches two of the spec's item shapes
            parts = [i for i in body["input"] if isinstance(i.get("content"), list)]
            for item in parts:
                validate(item, "EasyInputMessage")
            body = {**body, "input": [i for i in body["input"] if i not in parts]}
        validate(body, SCHEMAS[api])
    last = fake_server.requests[-1].json
    if api == "chat":
        roles = [m["role"] for m in last["messages"]]
        assert roles == ["system", "user", "assistant", "tool", "assistant", "user",
                         "assistant", "tool"]
        assert last["messages"][5]["content"][1]["type"] == "image_url"


def test_a_function_that_raises_is_a_tool_result_the_model_sees(shell, fake_server):
    fake_server.plan(Behaviour(tool_calls=[("broken", {"x": 7})]), Behaviour())
    r, _ = chat(shell, "-p fake --tools broken", "user: try it")
    call = r.steps[0].calls[0]
    assert call.error == "ValueError: no luck with 7"
    assert "ValueError: no luck with 7" in fake_server.requests[1].json["messages"][-1]["content"]
    md = r._repr_mimebundle_()[0]["text/markdown"]
    assert "**error**: ValueError: no luck with 7" in md and "sent to the model" in md


def test_max_steps_stops_the_loop_and_says_so(shell, fake_server):
    fake_server.set_default(Behaviour(tool_calls=[("add", {"a": 1, "b": 1})]))
    r, _ = chat(shell, "-p fake --tools add --max-steps 2", "user: keep adding")
    assert len(fake_server.requests) == 2 and len(r.steps) == 2
    assert "stopped after 2 tool steps (max_steps)" in r.result.warnings
    md = r._repr_mimebundle_()[0]["text/markdown"]
    assert "stopped after 2 tool steps" in md and md.count("<details><summary>step ") == 2
    # Every call was answered, so the thread holds a conversation a server takes.
    chat(shell, "-p fake", "user: and now?")
    validate(fake_server.requests[-1].json, "CreateChatCompletionRequest")
    msgs = fake_server.requests[-1].json["messages"]
    assert [m["role"] for m in msgs][-3:] == ["assistant", "tool", "user"]


def test_a_stored_loop_stopped_at_max_steps_is_not_chained_from(shell, fake_server):
    # Its last stored response ends in function calls whose outputs it never saw: chained
    # from, OpenAI answers 400 ("No tool output found for function call"). The next cell
    # sends the whole exchange instead.
    fake_server.set_default(Behaviour(tool_calls=[("add", {"a": 1, "b": 1})]))
    chat(shell, "-p fake --api responses --store --tools add --max-steps 1", "user: add")
    fake_server.set_default(Behaviour())
    chat(shell, "-p fake --api responses --store", "user: and now?")
    sent = fake_server.requests[-1].json
    assert "previous_response_id" not in sent
    kinds = [i.get("type") or i["role"] for i in sent["input"]]
    assert kinds == ["user", "function_call", "function_call_output", "user"]
    validate(sent, "CreateResponse")


@pytest.mark.parametrize(("api", "choice", "wire"), [
    ("chat", "required", "required"),
    ("chat", "add", {"type": "function", "function": {"name": "add"}}),
    ("responses", "add", {"type": "function", "name": "add"}),
    ("chat", "NONE", "none"),
])
def test_tool_choice_reaches_the_wire(shell, fake_server, api, choice, wire):
    fake_server.plan(Behaviour(tool_calls=[("add", {"a": 1, "b": 2})]), Behaviour())
    chat(shell, f"-p fake --api {api} --tools add --tool-choice {choice}", "user: 1+2")
    first = fake_server.requests[0].json
    assert first["tool_choice"] == wire
    validate(first, SCHEMAS[api])


# -- approval ----------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_approve_runs_what_you_accept_and_tells_the_model_what_you_declined(
        shell, fake_server, monkeypatch, api):
    asked = _answers(monkeypatch, "maybe", "y", "no")
    fake_server.plan(Behaviour(tool_calls=[("get_weather", {"city": "Paris"}),
                                           ("get_weather", {"city": "Rome"})]), Behaviour())
    r, cap = chat(shell, f"-p fake --api {api} --tools get_weather --approve", "user: weather?")
    assert shell.user_ns["calls"] == ["Paris"]  # Rome was declined: it never ran
    assert asked[0] == 'Run get_weather({"city": "Paris"})? [y/N] '
    # "maybe" is asked again, the call and its arguments kept in the question
    assert asked[1] == 'Please answer y or n. Run get_weather({"city": "Paris"})? [y/N] '
    assert asked[2] == 'Run get_weather({"city": "Rome"})? [y/N] '
    paris, rome = r.steps[0].calls
    assert (paris.approved, rome.approved) == (True, False)
    assert "declined" in r.text  # the fake model echoes the results it was sent
    assert "the model asks to call get_weather" in cap.stdout  # a terminal says what is asked
    md = r._repr_mimebundle_()[0]["text/markdown"]
    assert "declined by you" in md and "approved" in md


def test_approve_where_the_front_end_takes_no_input_is_a_clear_error(
        shell, fake_server, monkeypatch):
    def no_stdin(prompt=""):
        raise StdinNotImplementedError("raw_input was called, but this frontend does not "
                                       "support input requests.")

    monkeypatch.setattr("builtins.input", no_stdin)
    fake_server.plan(Behaviour(tool_calls=[("add", {"a": 1, "b": 2})]), Behaviour())
    with pytest.raises(UsageError, match="--approve asks Yes/No in the front end's input box, "
                                         "and this one takes no input"):
        chat(shell, "-p fake --tools add --approve", "user: 1+2")


def test_a_model_call_failing_after_steps_keeps_them(shell, fake_server):
    """Step 1's function ran (its call was paid); step 2's model call fails with a 400:
    the steps done stay in _chat.steps and the thread keeps none of it."""
    fake_server.plan(Behaviour(tool_calls=[("add", {"a": 1, "b": 2})]), Behaviour(status=400))
    with pytest.raises(UsageError, match="400"):
        chat(shell, "-p fake --tools add", "user: 1+2")
    kept = shell.user_ns["_chat"]
    assert [c.name for s in kept.steps for c in s.calls] == ["add"]
    assert kept.steps[0].calls[0].output == "3"
    assert kept.result.warnings[-1].startswith("model call 2 failed after 1 tool step: ")
    assert "default" not in _session(shell).threads.names()



# -- interrupt ---------------------------------------------------------------------------


def test_interrupt_during_a_function_keeps_the_steps_done(shell, fake_server):
    shell.run_cell('''
def stuck(x: int) -> int:
    """Stops like Kernel > Interrupt does."""
    raise KeyboardInterrupt
''')
    fake_server.plan(Behaviour(tool_calls=[("add", {"a": 1, "b": 2})]),
                     Behaviour(tool_calls=[("stuck", {"x": 1})]))
    r, _ = chat(shell, "-p fake --tools add,stuck", "user: go")
    assert r.finish_reason == "interrupted"
    assert [c.name for s in r.steps for c in s.calls] == ["add", "stuck"]
    assert r.steps[0].calls[0].output == "3"
    assert "interrupted" in (r.steps[1].calls[0].error or "")
    md = r._repr_mimebundle_()[0]["text/markdown"]
    assert "step 1 · add(" in md and "%chat keep" in md
    assert "interrupted while it ran (stopped by you)" in md
    assert "no reply text: stopped during the tool steps above" in md
    th = _session(shell).threads
    assert "default" not in th.names()  # a stopped loop joins the thread only when asked
    said = _session(shell).keep()
    assert "kept the stopped reply" in said
    roles = [m["role"] for m in th.get("default").messages()]
    assert roles == ["user", "assistant", "tool", "assistant", "tool"]


def test_interrupt_during_a_model_call_keeps_the_steps_and_the_text_so_far(shell, fake_server):
    words = " ".join(f"w{i}" for i in range(300))
    fake_server.plan(Behaviour(tool_calls=[("add", {"a": 1, "b": 2})]),
                     Behaviour(text=words, stream_delay=0.02))

    def interrupt_when_streaming() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(fake_server.requests) < 2:
            time.sleep(0.01)
        time.sleep(0.3)  # some of the text has come
        _thread.interrupt_main()  # what Kernel ▸ Interrupt does to the kernel's thread

    threading.Thread(target=interrupt_when_streaming, daemon=True).start()
    r, _ = chat(shell, "-p fake --tools add", "user: go")
    assert r.finish_reason == "interrupted"
    assert r.steps[0].calls[0].output == "3"
    assert r.text.startswith("w0 w1") and "w299" not in r.text


# -- the live view and the dry run ---------------------------------------------------------


def test_a_terminal_prints_each_step_once_then_the_answer_and_its_summary(shell, fake_server):
    fake_server.plan(Behaviour(tool_calls=[("add", {"a": 1, "b": 2})]),
                     Behaviour(tool_calls=[("add", {"a": 3, "b": 4})]), Behaviour())
    r, cap = chat(shell, "-p fake --tools add", "user: go")
    out = cap.stdout
    assert out.count("── step 1 · add(") == 1 and out.count("── step 2 · add(") == 1
    assert out.index("── step 2") < out.index("tool results: 7")  # then the answer streams
    shown = r._repr_mimebundle_()[0]["text/plain"]
    assert shown.startswith("── finish: stop") and "summed over 3 steps" in shown
    assert "── step" not in shown  # on screen already



def test_a_notebook_sees_each_step_live_then_collapsed(shell, fake_server):
    shell.kernel = object()  # rich output, as in a notebook
    fake_server.plan(Behaviour(tool_calls=[("get_weather", {"city": "Oslo"})]),
                     Behaviour(tool_calls=[("add", {"a": 1, "b": 2})]), Behaviour())
    r, cap = chat(shell, "-p fake --tools get_weather,add", "user: go")
    live = [o.data.get("text/markdown", "") for o in cap.outputs]
    running = [md for md in live if "running get\\_weather" in md]
    assert running, live  # the function's step shown open while it runs
    assert "<details open><summary>step 1 · get_weather" in running[0]
    # ... saying it runs (it said "not run yet" above "running get_weather…")
    assert 'step 1 · get_weather({"city": "Oslo"}) · running…</summary>' in running[0]
    assert "not run yet" not in running[0]
    assert running[0].count("· running…") == 2  # the step's summary and the call's line
    second = [md for md in live if "model call 3" in md]
    assert second and "<details><summary>step 1" in second[0]  # done: collapsed
    assert "<details open><summary>step 2 · add" in second[0]
    assert cap.outputs[-1].data == {"text/plain": ""}  # the live view goes; the reply stays
    md = r._repr_mimebundle_()[0]["text/markdown"]
    assert "<details open>" not in md and md.count("<details><summary>step ") == 2


def test_while_you_are_asked_the_step_under_way_shows_open(shell, fake_server, monkeypatch):
    shell.kernel = object()
    _answers(monkeypatch, "y", "n")
    fake_server.plan(Behaviour(tool_calls=[("get_weather", {"city": "Paris"}),
                                           ("get_weather", {"city": "Rome"})]), Behaviour())
    _, cap = chat(shell, "-p fake --tools get_weather --approve", "user: weather?")
    live = [o.data.get("text/markdown", "") for o in cap.outputs]
    def asked(city):
        said = f'waiting for your answer: run get\\_weather({{"city": "{city}"}})'
        return [md for md in live if said in md]

    paris, rome = asked("Paris"), asked("Rome")
    assert paris and rome, live
    assert "<details open><summary>step 1 · 2 calls" in paris[0]
    assert paris[0].count("not run yet") == 2  # asked before anything ran
    assert "ran in" in rome[0] and "not run yet" in rome[0]  # Paris ran, Rome is asked


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_dry_run_shows_the_tool_schemas_and_their_cost(shell, fake_server, api):
    r, _ = chat(shell, f"-p fake --api {api} --tools get_weather,add --tool-choice auto "
                       "--dry-run", "user: weather?")
    assert isinstance(r, DryRun) and fake_server.requests == []
    tools = r.request["tools"]
    names = [t.get("name") or t["function"]["name"] for t in tools]
    assert names == ["get_weather", "add"]
    validate({k: v for k, v in r.request.items() if k not in ("stream", "stream_options")},
             SCHEMAS[api])
    costs = dict(r.tool_costs)
    assert costs["get_weather"] > 0 and costs["add"] > 0
    assert costs["all"] == r.count.tools > costs["get_weather"]
    text = r._repr_mimebundle_()[0]["text/plain"]
    assert '"description": "The weather now in a city."' in text  # the schema, pretty
    assert f"Tool definitions: {costs['all']:,} prompt tokens" in text
    # The count of the whole prompt includes them.
    without, _ = chat(shell, f"-p fake --api {api} --dry-run", "user: weather?")
    assert r.count.total == without.count.total + costs["all"]


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_in_a_kernel_the_counter_under_the_dry_run_counts_the_tools(shell, monkeypatch, api):
    """The counter widget below a dry run counts the prompt sent, tools included (found
    in JupyterLab: the counter's 11 tokens and cost, the messages alone, were all a
    user saw)."""
    monkeypatch.setattr(shell, "kernel", object(), raising=False)
    r, _ = chat(shell, f"-p fake -m gpt-4.1-mini --api {api} --tools get_weather --dry-run",
                "user: weather?")
    assert r.counter is not None and r.count.tools > 0
    assert r.counter.data["total"] == r.count.total
    assert r.counter.data["tools"] == r.count.tools
    assert f"  {'tools':<47} {r.count.tools:>6,}" in r.counter.to_text()
    text = r._repr_mimebundle_()[0]["text/plain"]
    assert "messages only" not in text and "see the counter below" in text
    assert "OpenAI's published rule" in text  # a hosted model's count is an estimate


@pytest.mark.engine
def test_the_embedded_models_dry_run_counts_the_tools_exactly(shell):
    """The engine writes the tools' description into the prompt: its own count, the
    tools' share apart, and the prompt shown is what the model reads, tools included."""
    import gptmagic

    try:
        d, _ = chat(shell, "-m local --tools add --dry-run", "user: 2+3?")
        assert d.request["tools"][0]["function"]["name"] == "add"
        assert d.count.exact and d.count.tools > 0
        assert "add" in d.engine_prompt and "2+3?" in d.engine_prompt
        shown = d._repr_mimebundle_()[0]["text/plain"]
        assert (f"Tool definitions: {d.count.tools:,} prompt tokens in all (exact: the "
                "engine's count") in shown and "OpenAI's published rule" not in shown
        plain, _ = chat(shell, "-m local --dry-run", "user: 2+3?")
        # The description is the system message, in place of the template's default
        # one: leaving the tool out saves less than the description's tokens.
        saved = d.count.total - plain.count.total
        assert d.tool_costs == [("add", saved), ("all", d.count.tools)]
        assert 0 < saved < d.count.tools
        assert "in place of the engine's default system prompt, which leaving every tool " \
               "out brings back" in shown
        assert "NAMED SMOLLM" not in d.engine_prompt.upper()
    finally:
        gptmagic.shutdown()


@pytest.mark.engine
def test_in_a_kernel_the_embedded_models_counter_counts_the_prompt_with_tools(shell,
                                                                              monkeypatch):
    """The counter under an embedded dry run with tools: its rows, the tools' row and its
    note are those of the prompt the engine reads (it counted the messages alone, the
    template's default system prompt in message 0, and said so)."""
    import gptmagic

    monkeypatch.setattr(shell, "kernel", object(), raising=False)
    try:
        d, _ = chat(shell, "-m local --tools add --dry-run", "user: 2+3?")
        data = d.counter.data
        plain, _ = chat(shell, "-m local --dry-run", "user: 2+3?")
        alone = plain.counter.data
    finally:
        gptmagic.shutdown()
    assert data["total"] == d.count.total and data["tools"] == d.count.tools > 0
    [(role, _, content, name, overhead, _)] = data["rows"]
    assert role == "user" and data["total"] == (content + name + overhead + data["tools"]
                                                + data["reply_priming"])
    assert "default system prompt (counted in message 0)" in alone["note"]
    assert alone["rows"][0][4] > overhead  # the default system prompt was in message 0
    assert data["note"] == ("the tools' description is the system message, in place of the "
                            "engine's default system prompt, which leaving every tool out "
                            "brings back")
