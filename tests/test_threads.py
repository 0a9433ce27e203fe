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


def test_turns_after_an_edited_turn_are_stale_until_dropped():
    th = Thread("t", system="Be brief.")
    for k in ("c1", "c2", "c3"):
        th.record(turn(k, f"q{k}", f"a{k}"))
    assert th.stale() == []
    # The same content again (a Run All): nothing is stale.
    th.record(turn("c1", "qc1", "ac1"))
    assert th.stale() == []
    # Turn 1 edited: turns 2 and 3 answered the old turn 1.
    th.record(turn("c1", "q1 edited", "a1 new"))
    assert th.stale() == [2, 3]
    # Re-running turn 2 answers the new turn 1; turn 3 still answered the old turns.
    th.record(turn("c2", "qc2", "a2 new"))
    assert th.stale() == [3]
    assert th.drop_stale() == 1
    assert [t.key for t in th.turns] == ["c1", "c2"] and th.stale() == []
    assert th.drop_stale() == 0
    # A new system message: every turn was answered under the old one.
    th.system = "Be verbose."
    assert th.stale() == [1, 2]
    assert th.drop_stale() == 2 and th.turns == []


def test_a_forked_thread_keeps_what_its_turns_answered():
    store = ThreadStore()
    main = store.get()
    for k in ("c1", "c2"):
        main.record(turn(k, f"q{k}", f"a{k}"))
    side = store.fork("default", "side")
    assert side.stale() == []
    side.record(turn("c1", "other", "reply"))
    assert side.stale() == [2] and main.stale() == []


def test_a_stored_turn_is_chained_from_unless_it_or_one_before_it_is_stale():
    th = Thread("t")
    th.record(Turn("a", [{"role": "user", "content": "1"}], {"role": "assistant", "content": "x"},
                   response_id="resp_a", api="responses"))
    assert th.chain_from("b") == "resp_a"  # a new cell continues the last stored turn
    assert th.chain_from("a") is None  # a re-run of the first has nothing before it
    assert "chained: turn 1 is stored on the server (response resp_a, " in th.mode()
    th.record(Turn("b", [{"role": "user", "content": "2"}], {"role": "assistant", "content": "y"},
                   api="responses"))
    assert th.chain_from("c") is None  # the last turn was not stored: send the history
    assert th.chain_from("b") == "resp_a"  # re-running b continues a
    assert th.mode() == "history (responses): each cell sends the whole conversation"
    th.record(Turn("b", [{"role": "user", "content": "2"}], {"role": "assistant", "content": "y"},
                   response_id="resp_b", api="responses"))
    assert th.chain_from("c") == "resp_b"
    th.system = "new"  # every turn is now stale: the server holds an older conversation
    assert th.chain_from("c") is None
    # %chat history says what the next cell does, by the same rule.
    assert th.chain_from(None, None) is None and th.mode().startswith(
        "history (responses): turn 2 is stored on the server (response resp_b, on an "
        "unrecorded provider), but turns 1, 2 answered an older version")
    th.system = None
    assert th.chain_from(None, None) == "resp_b" and th.mode().startswith("chained: turn 2")
    assert Thread("empty").mode() == "history: each cell sends the whole conversation"


def test_a_stored_turn_is_chained_from_only_by_a_cell_sent_where_it_is_stored():
    th = Thread("t")
    th.record(Turn("a", [{"role": "user", "content": "1"}], {"role": "assistant", "content": "x"},
                   response_id="resp_a", api="responses", stored_at="oai at https://a/v1"))
    assert th.chain_from("b", "oai at https://a/v1") == "resp_a"
    # Another provider (or the same name at another address) never saw resp_a.
    assert th.chain_from("b", "local") is None
    assert th.chain_from("b", "oai at https://b/v1") is None
    assert th.stored_before("b") is th.turns[0] and th.stored_before("a") is None
    assert "(response resp_a, on oai at https://a/v1)" in th.mode()
    assert "or one sent to another provider) the whole history" in th.mode()
