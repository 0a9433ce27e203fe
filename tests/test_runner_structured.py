"""evaluate(schema=...) against the fake server (issue 15, item 4): the strict format sent on
both APIs, the reply parsed into ``parsed`` / ``valid`` / ``schema_errors``, a refusal, the
schema in the cache key, a resumed run with the same columns, the scorers by name in a
config file."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
from fakeserver import Behaviour
from openapi_schema import validate
from pydantic import BaseModel

import gptmagic
from gptmagic import scorers as sc
from gptmagic.cli import main as cli_main
from gptmagic.errors import RequestError
from gptmagic.eval.rows import ROW_FORMAT, row_result
from gptmagic.eval.runner import evaluate

CASES = [{"q": "Ada in Paris", "city": "Paris"}, {"q": "Bob in Lyon", "city": "Lyon"},
         {"q": "Eve in Nice", "city": "Nice"}]


class Person(BaseModel):
    name: str
    city: str


class Person2(BaseModel):  # Person with one more field: another schema
    name: str
    city: str
    age: int | None


def reply(**person: object) -> Behaviour:
    return Behaviour(text=json.dumps(person))


def refusal(text: str = "I can't help with that.") -> Behaviour:
    return Behaviour(refusal=text)


#: Row 0 valid, row 1 JSON of another shape, row 2 refused (sent one at a time, in order).
MIXED = (reply(name="Ada", city="Paris"), reply(name="Bob"), refusal())


def run(**kw):
    kw.setdefault("progress", False)
    kw.setdefault("concurrency", 1)
    return evaluate(CASES, kw.pop("prompt", "user: {q}"), kw.pop("models", ["fake:m1"]), **kw)


SCORERS = [sc.schema_valid(), sc.field_equals("city", "city"), sc.exact("city", field="city")]


def test_a_schema_run_parses_valid_invalid_and_refused_replies(fake):
    fake.plan(*MIXED)
    res = run(schema=Person, scorers=SCORERS)
    df = res.df
    sent = fake.requests[0].json
    validate(sent, "CreateChatCompletionRequest")
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "Person"
    assert fmt["json_schema"]["schema"]["required"] == ["name", "city"]
    assert df.loc[0, "parsed"] == Person(name="Ada", city="Paris")
    assert isinstance(df.loc[0, "parsed"], Person)
    assert df["parsed"][1:].isna().all()
    assert list(df["valid"]) == [True, False, False] and df["valid"].dtype == "boolean"
    assert pd.isna(df.loc[0, "schema_errors"])
    assert df.loc[1, "schema_errors"] == "city: Field required"
    assert df.loc[2, "schema_errors"] == "refused: I can't help with that."
    # An invalid reply is a wrong answer (0), not an unscored row.
    assert list(df["score.schema_valid"]) == [1.0, 0.0, 0.0]
    assert list(df["score.field_equals[city]"]) == [1.0, 0.0, 0.0]
    assert list(df["score.exact"]) == [1.0, 0.0, 0.0]
    assert df["score_error"].isna().all() and df["error"].isna().all()
    assert res.summary().loc[0, "score"] == 0.333  # rounded to 3 decimals


def test_the_responses_api_sends_a_strict_text_format_and_parses_alike(fake):
    fake.plan(*MIXED)
    res = run(schema=Person, api="responses")
    body = fake.requests[0].json
    assert fake.requests[0].path.endswith("/responses")
    validate(body, "CreateResponse")
    fmt = body["text"]["format"]
    assert (fmt["type"], fmt["name"], fmt["strict"]) == ("json_schema", "Person", True)
    assert list(res.df["valid"]) == [True, False, False]
    assert res.df.loc[0, "parsed"] == Person(name="Ada", city="Paris")
    assert res.df.loc[2, "schema_errors"] == "refused: I can't help with that."


def test_the_schema_is_in_the_cache_key(fake):
    fake.plan(*MIXED)
    first = run(schema=Person)
    assert len(fake.requests) == 3
    again = run(schema=Person)
    assert len(fake.requests) == 3 and again.df["cached"].all()  # the same schema: hits
    # Read back from the store, each reply is parsed again into the schema's own type.
    assert isinstance(again.df.loc[0, "parsed"], Person)
    for col in ("parsed", "valid", "schema_errors", "output"):
        pd.testing.assert_series_equal(first.df[col], again.df[col])
    fake.plan(reply(name="Ada", city="Paris", age=36), reply(name="Bob", city="Lyon", age=None),
              refusal())
    other = run(schema=Person2)
    assert len(fake.requests) == 6 and not other.df["cached"].any()  # changed: asked again
    assert other.df.loc[0, "parsed"] == Person2(name="Ada", city="Paris", age=36)
    run()  # no schema: another call again
    assert len(fake.requests) == 9


def test_a_resumed_run_has_the_same_columns(fake, tmp_path):
    fake.plan(MIXED[0], Behaviour(status=400), MIXED[2])
    first = run(schema=Person, scorers=SCORERS)
    assert list(first.df["error"].notna()) == [False, True, False]
    assert pd.isna(first.df.loc[1, "valid"])  # no reply: not known, not False
    fake.plan(MIXED[1])
    n = len(fake.requests)
    resumed = run(schema=Person, scorers=SCORERS)
    assert len(fake.requests) == n + 1  # only the failed row is asked
    assert list(resumed.df["cached"]) == [True, False, True]
    assert list(resumed.df["valid"]) == [True, False, False]
    assert list(resumed.df["schema_errors"][1:]) == ["city: Field required",
                                                    "refused: I can't help with that."]
    assert list(resumed.df["score.field_equals[city]"]) == [1.0, 0.0, 0.0]
    # The store keeps the parsed value as JSON in a format-3 row, beside the refusal.
    db = sqlite3.connect(tmp_path / "cache.sqlite")
    rows = [json.loads(blob) for (blob,) in db.execute("SELECT result FROM calls")]
    db.close()
    assert {r["format"] for r in rows} == {ROW_FORMAT} == {3}
    kept = {r["choices"][0]["text"]: r["validation"] for r in rows}
    assert kept['{"name": "Ada", "city": "Paris"}'] == {
        "parsed": {"name": "Ada", "city": "Paris"}, "valid": True, "errors": [],
        "refusal": None}
    assert kept[""]["refusal"] == "I can't help with that."


def test_a_row_of_the_format_before_keeps_reading(fake):
    old = {"format": 2, "kind": "chat", "model": "m", "id": "x", "created": 1,
           "request_id": None, "usage": [3, 2, 5, None, None, None], "timings": [0.1, None, 1],
           "choices": [{"i": 0, "text": '{"name": "Ada", "city": "Paris"}', "finish": "stop",
                        "role": "assistant", "refusal": None, "tools": None, "lp": None,
                        "plp": None}]}
    was = row_result(json.dumps(old))
    assert was is not None and was.validation is None and was.steps == []
    assert row_result(json.dumps({**old, "format": 3, "validation": {"valid": "yes"}})) is None


def test_a_schema_per_prompt(fake):
    res = evaluate(CASES[:1], {"free": "user: {q}", "json": "user: {q} as JSON"}, ["fake:m1"],
                   schema={"json": Person}, progress=False, concurrency=1)
    formats = [r.json.get("response_format") for r in fake.requests]
    assert formats[0] is None and formats[1]["json_schema"]["name"] == "Person"
    # The fake answers a json_schema format with an instance of it, as a model would.
    assert pd.isna(res.df.loc[0, "valid"]) and res.df.loc[1, "valid"]
    assert pd.isna(res.df.loc[0, "parsed"]) and isinstance(res.df.loc[1, "parsed"], Person)
    scored = res.rescore([sc.schema_valid()]).df
    assert "ran without one" in scored.loc[0, "score_error"]  # says why, per row
    assert scored.loc[1, "score.schema_valid"] == 1.0


def test_a_json_schema_dict_is_a_schema_for_every_prompt(fake):
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"], "additionalProperties": False}
    fake.plan(Behaviour(text='{"city": "Paris"}'))
    res = evaluate(CASES[:1], "user: {q}", ["fake:m1"], schema=schema, progress=False,
                   scorers=[sc.field_equals("city", "city")])
    assert res.df.loc[0, "parsed"] == {"city": "Paris"}
    assert res.df.loc[0, "score"] == 1.0


@pytest.mark.parametrize(("kw", "match"), [
    ({"schema": {"nope": Person}}, r"schema names prompt\(s\) 'nope'.*its prompts: 'prompt'"),
    ({"schema": int}, "a schema must be a Pydantic model class"),
    ({"schema": Person, "params": {"response_format": {"type": "json_object"}}},
     "response_format is given twice"),
    ({"schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
     "schema of prompt 'prompt'"),
])
def test_a_bad_schema_is_a_clear_error_before_any_call(fake, kw, match):
    with pytest.raises(RequestError, match=match):
        run(**kw)
    assert fake.requests == []


def test_csv_has_the_parsed_reply_as_json(fake, tmp_path):
    fake.plan(*MIXED)
    res = run(schema=Person)
    res.to_csv(str(tmp_path / "out.csv"))
    back = pd.read_csv(tmp_path / "out.csv")
    assert json.loads(back.loc[0, "parsed"]) == {"name": "Ada", "city": "Paris"}
    assert list(back["valid"]) == [True, False, False]


def test_a_config_names_a_schema_and_structured_scorers(fake, tmp_path, capsys):
    (tmp_path / "cases.csv").write_text("q,city\nAda in Paris,Paris\n")
    (tmp_path / "shapes.py").write_text(
        "from pydantic import BaseModel\n\n"
        "class Visit(BaseModel):\n    name: str\n    city: str\n")
    cfg = tmp_path / "run.toml"
    scorers = ('scorers = ["schema_valid", {type = "field_equals", path = "city", '
               'column = "city"}, {type = "exact", column = "city", field = "city"}]\n')
    cfg.write_text('data = "cases.csv"\nprompt = "user: {q}"\nmodels = ["fake:m1"]\n'
                   'schema = "shapes:Visit"\n' + scorers)
    fake.plan(reply(name="Ada", city="Paris"))
    assert cli_main(["eval", str(cfg)]) == 0, capsys.readouterr().err
    assert fake.requests[-1].json["response_format"]["json_schema"]["name"] == "Visit"
    out = pd.read_csv(tmp_path / "run.results.csv")
    assert out.loc[0, "score"] == 1.0 and bool(out.loc[0, "valid"])
    # A JSON schema written in the config itself.
    cfg.write_text('data = "cases.csv"\nprompt = "user: {q}"\nmodels = ["fake:m2"]\n' + scorers
                   + '[schema]\ntype = "object"\nrequired = ["city"]\n'
                   'additionalProperties = false\n[schema.properties.city]\ntype = "string"\n')
    fake.plan(Behaviour(text='{"city": "Lyon"}'))
    assert cli_main(["eval", str(cfg)]) == 0, capsys.readouterr().err
    out = pd.read_csv(tmp_path / "run.results.csv")
    assert out.loc[0, "score.field_equals[city]"] == 0.0 and bool(out.loc[0, "valid"])
    cfg.write_text('data = "cases.csv"\nprompt = "user: {q}"\nmodels = ["fake:m1"]\n'
                   'schema = "shapes:Nothing"\n')
    assert cli_main(["eval", str(cfg)]) == 1
    assert "schema = 'shapes:Nothing' cannot be imported" in capsys.readouterr().err


def test_a_schema_run_on_the_embedded_model_is_valid_every_time(tmp_path, monkeypatch):
    """The engine constrains its decoding to the schema: every reply parses."""
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "c.sqlite"))
    try:
        res = evaluate([{"who": "Ada", "where": "Paris"}, {"who": "Bob", "where": "Lyon"},
                        {"who": "Eve", "where": "Nice"}],
                       "user: {who} lives in {where}. Give their name and city as JSON.",
                       ["local"], schema=Person, scorers=[sc.schema_valid()],
                       params={"max_tokens": 60, "temperature": 0, "seed": 1}, progress=False)
        assert res.df["error"].isna().all(), res.df["error"].tolist()
        assert res.df["valid"].all(), res.df["schema_errors"].tolist()
        assert all(isinstance(p, Person) for p in res.df["parsed"])
        assert (res.df["score"] == 1.0).all()
    finally:
        gptmagic.shutdown()
