"""Every evaluate() is a run in its cache (issue 17, item 2): listed, rebuilt from the file
in a fresh process without a call or a score, compared run to run with known flips,
and older cache files migrated to schema version 3. Real SQLite, the real fake server."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import gptmagic
from gptmagic.errors import RequestError
from gptmagic.eval.schema import MIGRATIONS, SCHEMA_VERSION
from gptmagic.eval.store import Store
from gptmagic.scorers import custom

#: The fake server answers "echo: " + the last user message. A case passes when the
#: output ends with its ``end``: run A asks "{q}", run B "{q} yes", so row 0 passes then
#: fails, rows 1 and 2 fail then pass, row 3 fails both times.
ROWS = [{"q": "a", "end": "a"}, {"q": "b", "end": "yes"}, {"q": "c", "end": "yes"},
        {"q": "d", "end": "zzz"}]


def ends(output: str, row: dict) -> bool:
    return output.endswith(row["end"])


def run(prompt, name=None, rows=ROWS, **kw):
    kw.setdefault("progress", False)
    return gptmagic.evaluate(rows, prompt, ["fake:fake-model"], scorers=[custom(ends)],
                             run=name, **kw)


def test_every_evaluate_is_a_run_with_its_settings_prompts_data_and_totals(fake, tmp_path):
    a = run({"p": "user: {q}"}, "first", params={"max_tokens": 20}, repeats=2)
    b = run({"p": "user: {q} yes"})
    assert a.run.name == "first" and b.run.name.startswith("run-") and a.run.id != b.run.id
    table = gptmagic.runs()
    assert list(table["id"]) == [b.run.id, a.run.id]  # newest first
    first = table.iloc[1]
    assert (first["name"], first["calls"], first["rows"], first["errors"]) == ("first", 8, 4, 0)
    assert first["score"] == pytest.approx(0.25) and table.iloc[0]["score"] == 0.5
    assert first["models"] == "fake:fake-model" and first["prompts"] == "p"
    assert first["data"] == b.run.data_hash[:12]  # the same data, the same identity
    assert first["started"].microsecond == 0 and first["started"].tzname() == "UTC"
    cfg = a.run.config
    assert cfg["params"] == {"max_tokens": 20} and cfg["repeats"] == 2
    assert cfg["scorers"] == ["ends"] and cfg["models"] == ["fake:fake-model"]
    assert a.run.prompts == {"p": "user: {q}"} and a.run.totals["score_by_variant"] == {
        "p · fake-model": 0.25}


def test_a_run_is_rebuilt_in_a_fresh_process_without_a_call_or_a_score(fake, tmp_path):
    a = run({"p": "user: {q}", "q": [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "{q}"}]}, "kept")
    before = len(fake.requests)
    script = ("import json, gptmagic\n"
              "res = gptmagic.run('kept')\n"
              "print(json.dumps({'df': res.df.to_json(orient='records'),"
              " 'summary': res.summary().to_json(orient='records'),"
              " 'id': res.run.id, 'group': res.group_cols}))\n")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert len(fake.requests) == before  # nothing asked again
    assert out["id"] == a.run.id and out["group"] == a.group_cols
    back = json.loads(out["df"])
    cols = ["row", "prompt", "model", "repeat", "output", "score", "score.ends", "cached",
            "prompt_tokens", "latency"]
    # The data's columns in its own order ("q" before "end"), as the run had them.
    assert [c for c in back[0] if c.startswith("input.")] == ["input.q", "input.end"]
    assert [{c: r[c] for c in cols} for r in back] == json.loads(
        a.df[cols].to_json(orient="records"))
    assert json.loads(out["summary"]) == json.loads(a.summary().to_json(orient="records"))
    # The prompts' text, messages written as cell text.
    assert a.run.prompts["q"] == "system:\nBe brief.\n\nuser:\n{q}"


def test_a_rebuilt_run_keeps_its_stored_scores_not_new_ones(fake, tmp_path):
    calls = []

    def counted(output: str, row: dict) -> float:
        calls.append(output)
        return 0.75

    gptmagic.evaluate(ROWS[:2], "user: {q}", ["fake:fake-model"], scorers=[custom(counted)],
                      run="scored", progress=False)
    assert len(calls) == 2
    res = gptmagic.run("scored")
    assert len(calls) == 2 and list(res.df["score"]) == [0.75, 0.75]
    again = res.rescore([custom(ends)])  # its outputs are there to score again
    assert list(again.df["score"]) == [1.0, 0.0]


def test_a_name_used_again_gives_the_latest_and_ids_stay_apart(fake, tmp_path):
    old = run("user: {q}", "same")
    new = run("user: {q} yes", "same")
    assert gptmagic.run("same").run.id == new.run.id
    assert gptmagic.run(old.run.id).run.id == old.run.id
    with pytest.raises(RequestError, match="no run named 'other'.*same"):
        gptmagic.run("other")


def test_cache_false_records_no_run(fake, tmp_path):
    res = run("user: {q}", "nowhere", cache=False)
    assert res.run is None
    assert gptmagic.runs().empty


def test_a_missing_result_is_a_row_error_not_a_guess(fake, tmp_path):
    """A call with no copy of its own (a batch's, pending when the run ended) is looked up
    in the cache; gone from there too, it is an error, not a guess."""
    res = run("user: {q}", "gone")
    db = sqlite3.connect(tmp_path / "cache.sqlite")
    db.execute("UPDATE run_cells SET cell = json_remove(cell, '$.result')")
    db.execute("DELETE FROM calls WHERE key = ?", (res._jobs[0].key,))
    db.commit()
    db.close()
    back = gptmagic.run("gone")
    assert back.df["error_type"][0] == "MissingResult" and "no longer" in back.df["error"][0]
    assert back.df["output"][1] == "echo: b"



def test_a_run_keeps_the_outputs_it_scored_when_the_cache_is_refreshed(fake, tmp_path):
    """refresh=True replaces the cached result of a call; the earlier run still shows the
    output it saw and scored (its own copy), and compare() reports no flip it never had."""
    from fakeserver import Behaviour

    rows = [{"q": "a", "end": "a"}]
    run("user: {q}", "old", rows=rows)
    fake.set_default(Behaviour(text="something else"))
    new = run("user: {q}", "new", rows=rows, refresh=True)
    assert list(new.df["output"]) == ["something else"] and list(new.df["score"]) == [0.0]
    old = gptmagic.run("old")
    assert list(old.df["output"]) == ["echo: a"] and list(old.df["score"]) == [1.0]
    assert list(old.rescore([custom(ends)]).df["score"]) == [1.0]
    c = gptmagic.compare("old", "new")
    assert (c.fail_to_pass, c.pass_to_fail) == (0, 1)
    assert list(c.flips.df["output"]) == ["something else"]
    # Its own copy stands when the cache row is gone too.
    db = sqlite3.connect(tmp_path / "cache.sqlite")
    db.execute("DELETE FROM calls")
    db.commit()
    db.close()
    assert list(gptmagic.run("old").df["output"]) == ["echo: a"]

# -- compare -----------------------------------------------------------------------------------


def test_compare_two_stored_runs_with_known_flips(fake, tmp_path):
    run({"p": "user: {q}"}, "before")
    run({"p": "user: {q} yes", "extra": "user: {q}"}, "after")
    c = gptmagic.compare("before", "after")
    assert (c.fail_to_pass, c.pass_to_fail) == (2, 1)
    assert c.line() == "vs before ({}): score 0.25 → 0.50 (+0.25), 2 cases fail→pass, " \
        "1 pass→fail".format(gptmagic.run("before").run.id)
    assert c.only_in_b == ["extra · fake-model"] and c.only_in_a == []
    v = c.variants.iloc[0]
    assert (v["prompt"], v["score_a"], v["score_b"], v["pass_rate_a"], v["pass_rate_b"]) == (
        "p", 0.25, 0.5, 0.25, 0.5)
    assert c.prompt_diffs["p"] == ("--- a/p\n+++ b/p\n@@ -1 +1 @@\n-user: {q}\n"
                                   "+user: {q} yes")
    assert c.prompt_diffs["extra"].endswith("+user: {q}")
    flips = c.flips.df
    assert list(zip(flips["row"], flips["flip"], flips["score_before"], flips["score"],
                    strict=True)) == [(0, "pass→fail", 1.0, 0.0), (1, "fail→pass", 0.0, 1.0),
                                      (2, "fail→pass", 0.0, 1.0)]
    text = repr(c)
    assert "prompt 'p' changed:" in text and "-user: {q}" in text
    assert "only in after" in text and "2 cases fail→pass, 1 pass→fail" in text


def test_compare_takes_results_and_matches_cases_by_their_inputs(fake, tmp_path):
    a = run("user: {q}")
    moved = [{"q": "z", "end": "z"}, *ROWS[1:]]  # row 0 is another case now
    b = run("user: {q} yes", rows=moved)
    c = gptmagic.compare(a, b)
    assert c.changed_cases == 1 and (c.fail_to_pass, c.pass_to_fail) == (2, 0)
    assert c.prompt_diffs["prompt"].endswith("+user: {q} yes")
    unrecorded = run("user: {q} yes", cache=False)
    assert gptmagic.compare(a, unrecorded).prompt_diffs == {"prompt": None}


def test_a_cell_that_failed_counts_as_failing(fake, tmp_path):
    from fakeserver import Behaviour

    run("user: {q} yes", "good")
    fake.plan(*[Behaviour(status=400)] * 4)
    run("user: {q} yes", "bad", refresh=True)
    c = gptmagic.compare("good", "bad")
    assert (c.fail_to_pass, c.pass_to_fail) == (0, 2)


PAYLOADS = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>"]


def test_the_html_of_a_comparison_is_inert(fake, tmp_path):
    rows = [{"q": PAYLOADS[1], "end": "x"}]
    run({PAYLOADS[0]: "user: {q}"}, PAYLOADS[0], rows=rows)
    run({PAYLOADS[0]: "user: {q} <b>" + PAYLOADS[1], PAYLOADS[1]: "user: {q}"},
        PAYLOADS[1], rows=rows)
    c = gptmagic.compare(PAYLOADS[0], PAYLOADS[1])
    page = c._repr_html_()
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page


# -- migrations ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2])
def test_a_cache_of_an_older_version_is_migrated_and_records_runs(fake, tmp_path, version):
    cache = tmp_path / "cache.sqlite"
    db = sqlite3.connect(cache)
    for v in range(1, version + 1):
        db.executescript(MIGRATIONS[v])
    if version == 0:  # the unversioned file: calls only
        db.executescript(MIGRATIONS[1].split("CREATE TABLE IF NOT EXISTS claims")[0])
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()
    res = run("user: {q}", f"from-{version}")
    store = Store(cache)
    try:
        assert store.version() == SCHEMA_VERSION == 3 and store.runs
        assert store.integrity() == "ok"
    finally:
        store.close()
    assert gptmagic.run(f"from-{version}").run.id == res.run.id


def test_two_processes_migrating_one_file_at_once_agree(tmp_path):
    cache = tmp_path / "old.sqlite"
    db = sqlite3.connect(cache)
    db.executescript(MIGRATIONS[1] + MIGRATIONS[2] + "PRAGMA user_version = 2;")
    db.close()
    script = "import sys; from gptmagic.eval.store import Store; Store(sys.argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(cache)],
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        assert p.wait(60) == 0, p.stderr.read() if p.stderr else ""
    db = sqlite3.connect(cache)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert {"runs", "run_cells", "calllog", "calllog_fts"} <= names
    db.close()


def test_runs_of_a_file_that_does_not_exist_is_empty_and_run_says_so(tmp_path):
    missing = tmp_path / "none.sqlite"
    assert gptmagic.runs(missing).empty and not missing.exists()
    with pytest.raises(gptmagic.ConfigError, match="no cache file"):
        gptmagic.run("x", missing)


def test_path_of_each_run_is_its_cache(fake, tmp_path):
    other = tmp_path / "other.sqlite"
    run("user: {q}", "elsewhere", cache=str(other))
    assert list(gptmagic.runs(Path(other))["name"]) == ["elsewhere"]
    assert gptmagic.runs().empty


def test_a_recorded_run_and_a_comparisons_flips_open_in_the_explorer(fake, tmp_path):
    from gptmagic.views.explorer import Explorer

    run({"p": "user: {q}"}, "before")
    run({"p": "user: {q} yes"}, "after")
    shown = gptmagic.run("before").explore()
    assert isinstance(shown, Explorer) and "echo: a" in shown.to_html()
    assert "#3" in shown.to_text()
    c = gptmagic.compare("before", "after")
    flips = c.explore()
    assert isinstance(flips, Explorer)
    state = flips.data  # each flipped case: its cell before and after, and which way
    assert [v["keys"]["run"] for v in state["variants"]] == ["before", "after"]
    cells = {(state["cases"][case][0], state["variants"][v]["keys"]["run"]): text
             for case, v, _, text, *_ in state["cells"]}
    assert cells == {("0", "before"): "echo: a", ("0", "after"): "echo: a yes",
                     ("1", "before"): "echo: b", ("1", "after"): "echo: b yes",
                     ("2", "before"): "echo: c", ("2", "after"): "echo: c yes"}
    flip = state["inputs"].index("flip")
    assert [case[1][flip] for case in state["cases"]] == ["pass→fail", "fail→pass",
                                                         "fail→pass"]
    page = flips.to_html()
    assert "echo: a yes" in page and "echo: d yes" not in page
    assert "3 cases" in flips.to_text() and "the cases that flipped" in page


def test_no_key_is_stored_with_a_run(fake, tmp_path, monkeypatch):
    key = "sk-runs-secret-0123456789abcdef"
    monkeypatch.setenv("RUNS_KEY", key)
    gptmagic.add_profile("keyed", base_url=fake.url, default_model="fake-model",
                         api_key_env="RUNS_KEY", headers={"X-Team": "hdr-runs-secret-42"})
    res = gptmagic.evaluate(ROWS, "user: {q}", ["keyed:fake-model"], run="keyed",
                            scorers=[custom(ends)], progress=False)
    assert fake.requests[-1].headers["authorization"] == f"Bearer {key}"  # it was sent
    assert res.run is not None and gptmagic.run("keyed").run.id == res.run.id
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("cache.sqlite*"))
    assert b"keyed" in stored  # the run is there...
    assert key.encode() not in stored and b"hdr-runs-secret-42" not in stored  # ...no secret


def test_no_header_in_params_or_password_in_a_base_url_is_stored(fake, tmp_path):
    """extra_headers given as params (or gridded) are refused, never sent or kept (not in
    the run's config or cells); a base URL's user:password@ is sent, never kept (not in
    the calls table's request or base_url)."""
    url = fake.url.replace("http://", "http://user:Pa55w0rdXYZ@")
    gptmagic.add_profile("pw", base_url=url, default_model="fake-model")
    refused = gptmagic.evaluate(ROWS[:1], "user: {q}", ["pw:fake-model"], run="hdr",
                                params={"extra_headers": {"X-Api-Key": "hdrsecretVALUE123"},
                                        "max_tokens": 9},
                                grid={"extra_headers": [{"X-Api-Key": "gridsecretVALUE456"}]},
                                progress=False)
    assert refused.df["error_type"].tolist() == ["RequestError"] and not fake.requests
    assert "option of OpenAI's Python SDK" in refused.df["error"][0]
    assert refused.run.config["params"] == {"max_tokens": 9}
    res = gptmagic.evaluate(ROWS[:1], "user: {q}", ["pw:fake-model"], run="pw",
                            params={"max_tokens": 9}, progress=False)
    assert res.df["error"].isna().all() and len(fake.requests) == 1
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("cache.sqlite*"))
    assert b"max_tokens" in stored and fake.url.split("//")[1].encode() in stored
    for secret in (b"hdrsecretVALUE123", b"gridsecretVALUE456", b"Pa55w0rdXYZ"):
        assert secret not in stored
    assert gptmagic.run("pw").df["output"].tolist() == ["echo: a"]
    again = gptmagic.evaluate(ROWS[:1], "user: {q}", ["pw:fake-model"], progress=False,
                              params={"max_tokens": 9})
    assert again.df["cached"].all()  # the stored URL is not how a result is found
