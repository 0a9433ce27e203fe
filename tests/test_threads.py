from __future__ import annotations

import pytest

from gptmagic.core.threads import Thread, ThreadStore, Turn
from gptmagic.errors import RequestError


def turn(key, q, a):
    return Turn(key, [{"role": "user", "content": q}], {"role": "assistant", "content": a})


def test_context_and_replacement_on_rerun():
    th = Thread("t", system="Be brief.")
    assert th.context_for("c1") == [{"role": "system", "content": "Be brief."}]
    assert th.record(turn("c1", "q1", "a1")) is False
    assert th.record(turn("c2", "q2", "a2")) is False
    assert th.record(turn("c3", "q3", "a3")) is False
    # A new cell sees everything; a re-run of c2 sees only what came before it.
    assert [m["content"] for m in th.context_for("c4")] == [
        "Be brief.",
        "q1",
        "a1",
        "q2",
        "a2",
        "q3",
        "a3",
    ]
    assert [m["content"] for m in th.context_for("c2")] == ["Be brief.", "q1", "a1"]
    assert th.record(turn("c2", "q2 edited", "a2 new")) is True
    assert [t.key for t in th.turns] == ["c1", "c2", "c3"]  # replaced in place, no duplicate
    assert th.messages()[3:5] == [
        {"role": "user", "content": "q2 edited"},
        {"role": "assistant", "content": "a2 new"},
    ]


def test_store_fork_reset_names():
    store = ThreadStore()
    main = store.get()
    for i in range(3):
        main.record(turn(f"c{i}", f"q{i}", f"a{i}"))
    branch = store.fork("default", "branch", upto=1)
    assert [t.key for t in branch.turns] == ["c0"] and store.names() == ["branch", "default"]
    branch.turns[0].messages[0]["content"] = "changed"
    assert main.turns[0].messages[0]["content"] == "q0"  # a deep copy
    assert len(store.fork("default", "all").turns) == 3
    assert store.reset("default") == 3 and store.get().turns == []
    assert store.reset("nothing") == 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.fork("missing", "x"), "no thread 'missing'"),
        (lambda s: s.fork("default", "x", upto=9), "--turn must be 0..0"),
        (lambda s: s.get("bad name!"), "thread name"),
        (lambda s: s.fork("default", "default2") and s.fork("default", "default2"), "exists"),
    ],
)
def test_errors(call, match):
    store = ThreadStore()
    store.get()
    with pytest.raises(RequestError, match=match):
        call(store)
