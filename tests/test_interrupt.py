"""Kernel ▸ Interrupt while a reply streams, in a real IPython kernel (jupyter_client).

The kernel talks to the fake server, which streams a long reply slowly; the test
interrupts the kernel as the front end's menu does (SIGINT through the kernel
manager) once streamed text has reached the front end, then reads what the user
sees: the partial reply and one line, no traceback.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fakeserver import Behaviour
from lazy import lazy

jupyter_client = lazy("jupyter_client")

pytestmark = pytest.mark.timeout(120)

KEY = "sk-fake-interrupt-0123456789abcdef"
WORDS = " ".join(f"word{i}" for i in range(400))


@pytest.fixture
def kernel(fake_server: Any, tmp_path: Any) -> Iterator[tuple[Any, Any]]:
    env = {**os.environ, "FAKE_KEY": KEY, "IPYTHONDIR": str(tmp_path / "ipython")}
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        run(kc, "%load_ext gptmagic\nimport gptmagic\n"
                f"gptmagic.add_profile('fake', base_url={fake_server.url!r}, "
                "default_model='fake-model', api_key_env='FAKE_KEY')")
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _drain(kc: Any, msg_id: str, seen: list[dict[str, Any]], until: Any,
           timeout: float = 60) -> None:
    """Read iopub messages of ``msg_id`` into ``seen`` until ``until(msg)`` or idle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(msg)
        if until(msg):
            return
    raise AssertionError(f"timed out; last messages: {[m['msg_type'] for m in seen[-5:]]}")


def _idle(msg: dict[str, Any]) -> bool:
    return msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"


def _reply(kc: Any, msg_id: str) -> dict[str, Any]:
    """The execute reply to ``msg_id`` (earlier replies, e.g. to the readiness
    probes' kernel_info requests, are skipped)."""
    for _ in range(20):
        reply: dict[str, Any] = kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply
    raise AssertionError(f"no reply to {msg_id}")


def run(kc: Any, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    msg_id = kc.execute(code)
    seen: list[dict[str, Any]] = []
    _drain(kc, msg_id, seen, _idle)
    return _reply(kc, msg_id), seen


def _text(msgs: list[dict[str, Any]]) -> str:
    parts = []
    for m in msgs:
        c = m["content"]
        parts.append(c.get("text", ""))
        parts.extend(str(v) for v in (c.get("data") or {}).values())
        parts.extend(c.get("traceback") or [])
    return "\n".join(parts)


def _interrupted(km: Any, kc: Any, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``code``; interrupt the kernel once streamed text is on screen."""
    msg_id = kc.execute(code)
    seen: list[dict[str, Any]] = []
    _drain(kc, msg_id, seen, lambda m: "word5 " in _text([m]))
    km.interrupt_kernel()
    _drain(kc, msg_id, seen, _idle)
    return _reply(kc, msg_id), seen


def _value(kc: Any, expr: str) -> str:
    _, msgs = run(kc, f"print(repr({expr}))")
    return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream").strip()


TURNS = ("get_ipython().magics_manager.registry['GptMagics'].session"
         ".threads.get('default').turns")


def test_an_interrupted_chat_keeps_its_partial_reply_and_only_keep_adds_it(
        kernel: tuple[Any, Any], fake_server: Any) -> None:
    km, kc = kernel
    fake_server.set_default(Behaviour(text=WORDS, stream_delay=0.02))
    reply, seen = _interrupted(km, kc, "%%chat -p fake\nuser: talk for a long time")
    shown = _text(seen)
    # No traceback, no error: the cell ends normally with the partial reply as its output.
    assert reply["content"]["status"] == "ok", shown
    assert not [m for m in seen if m["msg_type"] == "error"]
    assert "Traceback" not in shown and "KeyboardInterrupt" not in shown
    result = [m for m in seen if m["msg_type"] == "execute_result"]
    assert len(result) == 1
    md = result[0]["content"]["data"]["text/markdown"]
    assert "word5" in md and "interrupted" in md and "%chat keep" in md
    assert "word399" not in md  # partial: the stream was stopped
    assert _value(kc, "_chat.result.finish_reason") == "'interrupted'"
    text = _value(kc, "_chat.text")
    assert text.startswith("'word0 word1 word2") and len(text) < len(WORDS)
    # The request was cancelled: the server sees the connection go.
    assert fake_server.wait_connections(0, timeout=10)
    # Not in the thread unless asked; %chat keep adds it as it stood.
    assert _value(kc, f"len({TURNS})") == "0"
    _, msgs = run(kc, "%chat keep")
    assert "kept the stopped reply" in _text(msgs) and "turn 1 of thread 'default'" in _text(
        msgs)
    assert _value(kc, f"{TURNS}[0].reply['content'] == _chat.text") == "True"
    # Once kept there is nothing more to keep.
    _, msgs = run(kc, "%chat keep")
    assert "no stopped reply to keep" in _text(msgs)


def test_an_interrupted_responses_reply_is_kept_but_never_chained_from(
        kernel: tuple[Any, Any], fake_server: Any) -> None:
    km, kc = kernel
    fake_server.set_default(Behaviour(text=WORDS, stream_delay=0.02))
    reply, seen = _interrupted(km, kc, "%%chat -p fake --api responses --store\n"
                                       "user: talk for a long time")
    assert reply["content"]["status"] == "ok", _text(seen)
    assert "Traceback" not in _text(seen)
    assert _value(kc, "(_chat.result.kind, _chat.finish_reason)") == "('response', 'interrupted')"
    run(kc, "%chat keep")
    # A stopped reply was never stored whole: nothing may chain from it.
    assert _value(kc, f"[(t.response_id, t.api) for t in {TURNS}]") == "[(None, 'responses')]"
    fake_server.set_default(Behaviour())
    run(kc, "%%chat -p fake --api responses --store\nuser: next")
    body = fake_server.requests[-1].json
    assert "previous_response_id" not in body and len(body["input"]) == 3


def test_keep_refuses_after_the_thread_moved_on(kernel: tuple[Any, Any],
                                                fake_server: Any) -> None:
    km, kc = kernel
    fake_server.set_default(Behaviour(text=WORDS, stream_delay=0.02))
    _interrupted(km, kc, "%%chat -p fake\nuser: first")
    fake_server.set_default(Behaviour(text="short"))
    run(kc, "%%chat -p fake\nuser: second")
    assert _value(kc, f"len({TURNS})") == "1"
    _, msgs = run(kc, "%chat keep")
    assert "changed since that reply was stopped" in _text(msgs)
    assert _value(kc, f"len({TURNS})") == "1"


def _turns(thread: str) -> str:
    return TURNS.replace("'default'", repr(thread))


def _live(seen: list[dict[str, Any]], status: str) -> list[dict[str, Any]]:
    """The live view's bundles whose text holds ``status`` (``reasoning…``, ``streaming…``)."""
    return [m["content"]["data"] for m in seen
            if m["msg_type"] in ("display_data", "update_display_data")
            and status in m["content"]["data"].get("text/plain", "")]


def test_the_live_reasoning_summary_is_open_then_stays_above_the_text(
        kernel: tuple[Any, Any], fake_server: Any) -> None:
    # Before: the summary so far was redrawn collapsed (a click to open it was undone
    # by the next update), and it vanished once the text began, until the reply ended.
    _, kc = kernel
    words = " ".join(f"w{i}" for i in range(60))
    fake_server.set_default(Behaviour(text=f"The answer: {words}", stream_delay=0.02))
    _, seen = run(kc, "%%chat -p fake -m gpt-5-mini --api responses --reasoning-summary "
                      f"auto\nuser: {words}")
    reasoning, streaming = _live(seen, "reasoning…"), _live(seen, "streaming…")
    said = [d for d in reasoning if "Reasoning about: w0" in d["text/markdown"]]
    assert said, _text(seen)
    for data in said:
        assert "<details" not in data["text/markdown"]
        assert data["text/markdown"].index("*reasoning summary so far*") < data[
            "text/markdown"].index("Reasoning about: w0")
    texts = [d for d in streaming if "The answer:" in d["text/markdown"]]
    assert texts, _text(seen)
    for data in texts:
        md = data["text/markdown"]
        assert md.startswith("<details><summary>reasoning summary</summary>"), md[:200]
        assert md.index("Reasoning about: w0") < md.index("The answer:") < md.index("streaming…")
        assert data["text/plain"].startswith("── reasoning summary ──\nReasoning about: w0")


def test_an_interrupt_while_the_model_reasons_keeps_its_summary_and_keep_stays_in_its_thread(
        kernel: tuple[Any, Any], fake_server: Any) -> None:
    km, kc = kernel
    fake_server.set_default(Behaviour(text=WORDS, stream_delay=0.02))
    # A stopped reply with text in thread 'story', not kept...
    _interrupted(km, kc, "%%chat -p fake --thread story\nuser: talk for a long time")
    # ...then, in thread 'fstory', a reasoning model stopped while its summary streams
    # (the fake summarises the user's text: "Reasoning about: word0 word1 ...").
    reply, seen = _interrupted(km, kc, "%%chat -p fake -m gpt-5-mini --api responses "
                                       f"--reasoning-summary auto --thread fstory\nuser: {WORDS}")
    shown = _text(seen)
    assert reply["content"]["status"] == "ok", shown
    assert "Traceback" not in shown and not [m for m in seen if m["msg_type"] == "error"]
    # While it reasoned, the live view said so, with the summary so far, open.
    live = _live(seen, "reasoning…")
    assert live and "reasoning… gpt-5-mini" in live[-1]["text/plain"]
    assert "*reasoning summary so far*" in live[-1]["text/markdown"]
    assert "<details" not in live[-1]["text/markdown"]
    assert "Reasoning about: word0 word1" in live[-1]["text/markdown"]
    # The stop keeps the partial summary and says it stopped while reasoning.
    md = [m for m in seen if m["msg_type"] == "execute_result"][0]["content"]["data"][
        "text/markdown"]
    assert "while the model was reasoning" in md and "_chat.reasoning" in md
    assert "empty reply" not in md and "the text is partial" not in md, md
    assert "finish: interrupted — stopped by you before any reply text" in md
    assert "before any of the reply arrived" not in shown
    summary = _value(kc, "_chat.reasoning")
    assert summary.startswith("'Reasoning about: word0 word1") and "word399" not in summary
    assert _value(kc, "(_chat.text, _chat.finish_reason)") == "('', 'interrupted')"
    # Keep acts on the named thread's own stopped reply, never on another thread's.
    for line in ("%chat keep --thread fstory", "%chat keep"):
        _, msgs = run(kc, line)
        said = _text(msgs)
        assert "nothing to keep in thread 'fstory'" in said and "reasoning" in said, said
    assert _value(kc, f"(len({_turns('story')}), len({_turns('fstory')}))") == "(0, 0)"
    _, msgs = run(kc, "%chat keep --thread story")
    assert "as turn 1 of thread 'story'" in _text(msgs)
    assert _value(kc, f"(len({_turns('story')}), len({_turns('fstory')}))") == "(1, 0)"
    _, msgs = run(kc, "%chat keep --thread story")
    assert "no stopped reply to keep in thread 'story'" in _text(msgs)


def test_keep_with_a_thread_never_keeps_another_threads_reply(kernel: tuple[Any, Any],
                                                               fake_server: Any) -> None:
    km, kc = kernel
    fake_server.set_default(Behaviour(text=WORDS, stream_delay=0.02))
    _interrupted(km, kc, "%%chat -p fake --thread story\nuser: talk for a long time")
    # Later, a cell of thread 'other' stopped before anything came: nothing to keep there.
    fake_server.set_default(Behaviour(delay=30))
    msg_id = kc.execute("%%chat -p fake --thread other\nuser: hi")
    deadline = time.monotonic() + 30
    while len(fake_server.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    km.interrupt_kernel()
    _drain(kc, msg_id, [], _idle)
    _reply(kc, msg_id)
    _, msgs = run(kc, "%chat keep --thread other")
    assert "nothing to keep in thread 'other'" in _text(msgs), _text(msgs)
    _, msgs = run(kc, "%chat keep --thread third")
    said = _text(msgs)
    assert "no stopped reply to keep in thread 'third'" in said
    assert "thread 'story' has one: %chat keep --thread story" in said
    assert _value(kc, f"(len({_turns('story')}), len({_turns('other')}))") == "(0, 0)"
    _, msgs = run(kc, "%chat keep --thread story")
    assert "as turn 1 of thread 'story'" in _text(msgs)


def test_an_interrupted_completion_keeps_its_partial_text(kernel: tuple[Any, Any],
                                                          fake_server: Any) -> None:
    km, kc = kernel
    fake_server.set_default(Behaviour(text=WORDS, stream_delay=0.02))
    reply, seen = _interrupted(km, kc, "%%complete -p fake\nOnce upon a time")
    shown = _text(seen)
    assert reply["content"]["status"] == "ok", shown
    assert "Traceback" not in shown and not [m for m in seen if m["msg_type"] == "error"]
    assert _value(kc, "_chat.result.finish_reason") == "'interrupted'"
    assert "word5" in _value(kc, "_chat.text")
    md = [m for m in seen if m["msg_type"] == "execute_result"][0]["content"]["data"][
        "text/markdown"]
    assert "the completion is partial" in md


def test_an_interrupted_side_by_side_keeps_the_replies_that_came(
        kernel: tuple[Any, Any], fake_server: Any) -> None:
    km, kc = kernel
    fake_server.set_default(Behaviour(delay=30))
    fake_server.plan(Behaviour(text="quick answer"))
    msg_id = kc.execute("%%chat -p fake -m fake-model,fake-model-2\nuser: hi")
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(fake_server.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the quick one has answered; the other waits for 30 s
    km.interrupt_kernel()
    _drain(kc, msg_id, seen, _idle)
    _reply(kc, msg_id)
    shown = _text(seen)
    assert "Traceback" not in shown and not [m for m in seen if m["msg_type"] == "error"]
    kinds = _value(kc, "sorted(type(r).__name__ for r in _chat.results.values())")
    assert kinds == "['Result', 'str']"
    assert "quick answer" in shown and "before this model answered" in shown


def test_an_interrupt_before_any_text_is_one_line_and_nothing_to_keep(
        kernel: tuple[Any, Any], fake_server: Any) -> None:
    km, kc = kernel
    fake_server.set_default(Behaviour(delay=30))
    msg_id = kc.execute("%%chat -p fake\nuser: hi")
    deadline = time.monotonic() + 30
    while not fake_server.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    km.interrupt_kernel()
    seen: list[dict[str, Any]] = []
    _drain(kc, msg_id, seen, _idle)
    _reply(kc, msg_id)
    shown = _text(seen)
    assert "before any of the reply arrived; nothing to keep" in shown
    assert "Traceback" not in shown and "KeyboardInterrupt" not in shown
    assert not [m for m in seen if m["msg_type"] == "execute_result"]
    _, msgs = run(kc, "%chat keep")
    assert "nothing to keep in thread 'default'" in _text(msgs)
    assert _value(kc, f"len({TURNS})") == "0"


@pytest.mark.engine
def test_an_interrupted_reply_of_the_embedded_model_costs_nothing(
        kernel: tuple[Any, Any]) -> None:
    km, kc = kernel
    try:
        msg_id = kc.execute("%%chat -m local --max-tokens 400 -t 0\n"
                            "user: Write a long story about a lighthouse keeper.")
        seen: list[dict[str, Any]] = []
        _drain(kc, msg_id, seen, lambda m: "streaming" in _text([m]), timeout=90)
        km.interrupt_kernel()
        _drain(kc, msg_id, seen, _idle)
        _reply(kc, msg_id)
        assert _value(kc, "_chat.finish_reason") == "'interrupted'"
        assert _value(kc, "str(_chat.cost)") == "'$0.00'"
        assert "cost unknown" not in _text(seen)
    finally:
        run(kc, "gptmagic.shutdown()")
