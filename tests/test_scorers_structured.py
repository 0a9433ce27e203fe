"""Scorers of parsed replies and tool traces: schema_valid, field_equals, field= on the text
scorers, tool_called, tool_sequence; each error path says why on the row."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

import gptmagic.scorers as sc
from gptmagic.core.structured import parse_reply, schema_from
from gptmagic.core.types import Choice, Result, Step, ToolCall
from gptmagic.eval.scorers_structured import parse_path
from gptmagic.scorers import Case, ScorerError


class Item(BaseModel):
    name: str
    price: float


class Order(BaseModel):
    customer: str
    city: str | None
    items: list[Item]
    paid: bool


ORDER = {"customer": "Ada", "city": "Paris", "paid": True,
         "items": [{"name": "tea", "price": 2.5}, {"name": "cake", "price": 4}]}


def parsed(text: str, *, refusal: str | None = None, schema: Any = Order) -> Result:
    """A reply parsed as a run with ``schema`` parses it (the schema's own rule)."""
    r = Result(kind="chat", model="m",
               choices=[Choice(index=0, text=text, refusal=refusal, finish_reason="stop")])
    return parse_reply(r, schema_from(schema))


def case(result: Result | None, output: str | None = None, **row: Any) -> Case:
    text = output if output is not None else (result.text if result is not None else "")
    return Case(output=text, row=row, result=result)


GOOD = parsed(json.dumps(ORDER))
BAD = parsed(json.dumps({**ORDER, "paid": "maybe"}))  # JSON, but not an Order
NOT_JSON = parsed("Sorry, here is your order: Ada")
REFUSED = parsed("", refusal="I can't help with that.")
PLAIN = Result(kind="chat", model="m", choices=[Choice(index=0, text='{"customer": "Ada"}')])


@pytest.mark.parametrize(("result", "want"), [(GOOD, 1.0), (BAD, 0.0), (NOT_JSON, 0.0),
                                              (REFUSED, 0.0)])
def test_schema_valid(result: Result, want: float) -> None:
    assert sc.schema_valid()(case(result)) == want


@pytest.mark.parametrize(("path", "row", "want"), [
    ("customer", {"expected": "Ada"}, 1.0),
    ("customer", {"expected": "Bob"}, 0.0),
    ("items[0].name", {"expected": "tea"}, 1.0),
    ("items[1].price", {"expected": 4}, 1.0),      # 4.0 in the object, 4 in the row
    ("items[1].price", {"expected": "4.0"}, 1.0),  # a CSV cell of text
    ("items[-1].name", {"expected": "cake"}, 1.0),
    ("paid", {"expected": True}, 1.0),
    ("items", {"expected": ORDER["items"]}, 1.0),
    ("city", {"want": "Paris"}, None),
])
def test_field_equals(path: str, row: dict[str, Any], want: float | None) -> None:
    if want is None:  # another column
        assert sc.field_equals(path, "want")(case(GOOD, **row)) == 1.0
        return
    assert sc.field_equals(path)(case(GOOD, **row)) == want


def test_field_equals_scores_a_reply_that_did_not_validate_0_not_unscored() -> None:
    for result in (BAD, NOT_JSON, REFUSED):
        assert sc.field_equals("customer")(case(result, expected="Ada")) == 0.0


@pytest.mark.parametrize(("path", "said"), [
    ("adress", r"the reply has no 'adress' \(its keys: customer, city, items, paid\)"),
    ("items[2].name", r"items has 2 item\(s\), no \[2\]"),
    ("customer.first", r"customer is a str, not an object with a 'first' key"),
    ("paid[0]", r"paid is a bool, not a list"),
])
def test_a_path_that_is_not_in_the_reply_says_where_it_stops(path: str, said: str) -> None:
    with pytest.raises(ScorerError, match=said):
        sc.field_equals(path)(case(GOOD, expected="x"))


def test_a_null_on_the_way_is_named() -> None:
    r = parsed(json.dumps({**ORDER, "city": None}))
    with pytest.raises(ScorerError, match=r"'city\.name': city is null"):
        sc.exact(field="city.name")(case(r, expected="Paris"))


@pytest.mark.parametrize("make", [sc.schema_valid, lambda: sc.field_equals("customer"),
                                  lambda: sc.exact(field="customer"),
                                  lambda: sc.numeric(field="items[0].price")])
def test_a_scorer_of_parsed_replies_on_a_row_without_a_schema_says_so(make: Any) -> None:
    with pytest.raises(ScorerError, match="ran without one: evaluate with schema=Model"):
        make()(case(PLAIN, expected="Ada"))


@pytest.mark.parametrize("path", ["", "a..b", "a[x]", "[0", "a]"])
def test_bad_paths_fail_when_the_scorer_is_made(path: str) -> None:
    with pytest.raises(ScorerError, match="path"):
        sc.exact(field=path)


def test_parse_path() -> None:
    assert parse_path("items[0].name") == ("items", 0, "name")
    assert parse_path("[1][2]") == (1, 2)
    assert parse_path("a-b.c d") == ("a-b", "c d")


@pytest.mark.parametrize(("scorer", "row", "want"), [
    (sc.exact(field="customer"), {"expected": "Ada"}, 1.0),
    (sc.exact(field="customer"), {"expected": "ada"}, 0.0),
    (sc.exact(field="customer", case_sensitive=False), {"expected": "ada"}, 1.0),
    (sc.exact("n", field="items[1].price"), {"n": "4.0"}, 1.0),
    (sc.contains("Par", field="city"), {}, 1.0),
    (sc.contains("Ada", field="city"), {}, 0.0),  # in the output, not in the field
    (sc.icontains(column="c", field="customer"), {"c": "ADA"}, 1.0),
    (sc.regex(r"^\d+\.5$", field="items[0].price"), {}, 1.0),
    (sc.similarity(field="customer"), {"expected": "Ada"}, 1.0),
    (sc.choice(labels=["tea", "cake"], field="items[1].name"), {"expected": "cake"}, 1.0),
    (sc.numeric(field="items[0].price"), {"expected": 2.5}, 1.0),
    (sc.numeric(field="items[0].price", tolerance=0.4), {"expected": 2.2}, 1.0),
    (sc.numeric(field="paid"), {"expected": 1}, 0.0),  # true is no number
    (sc.exact(field="paid"), {"expected": "true"}, 1.0),
])
def test_text_scorers_grade_a_field_of_the_parsed_reply(scorer: Any, row: dict[str, Any],
                                                       want: float) -> None:
    assert scorer(case(GOOD, **row)) == want


def test_a_field_scorer_ignores_the_text_around_an_invalid_reply() -> None:
    # The text says Ada, but the reply is not an Order: no field to grade, 0.
    assert sc.contains("Ada", field="customer")(case(NOT_JSON)) == 0.0
    assert sc.contains("Ada")(case(NOT_JSON)) == 1.0  # the whole text still can be


def test_a_dict_schema_parses_to_a_dict_and_its_fields_are_graded() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}},
              "required": ["answer"], "additionalProperties": False}
    r = parsed('{"answer": 42}', schema=schema)
    assert sc.numeric(field="answer")(case(r, expected="42")) == 1.0
    assert sc.field_equals("answer")(case(r, expected=42)) == 1.0


# -- tools -------------------------------------------------------------------------------


def call(name: str, arguments: Any, *, args: Any = None, error: str | None = None) -> ToolCall:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(id=f"call_{name}", name=name, arguments=raw, args=args, output="ok",
                    error=error)


def looped(*steps: list[ToolCall]) -> Result:
    def one(calls: list[ToolCall]) -> Step:
        return Step(Result(kind="chat", model="m", choices=[Choice(index=0)]), calls)
    return Result(kind="chat", model="m", choices=[Choice(index=0, text="done")],
                  steps=[one(s) for s in steps] + [one([])])


TRACE = looped([call("search", {"q": "weather Paris", "opts": {"lang": "fr", "n": 3}})],
               [call("weather", {"city": "Paris"}, args={"city": "Paris"}),
                call("weather", {"city": "Lyon"}, args={"city": "Lyon"})],
               [call("answer", "{not json", error="arguments are not valid JSON")])


@pytest.mark.parametrize(("scorer", "want"), [
    (sc.tool_called("weather"), 1.0),
    (sc.tool_called("stocks"), 0.0),
    (sc.tool_called("weather", {"city": "Lyon"}), 1.0),
    (sc.tool_called("weather", {"city": "Nice"}), 0.0),
    (sc.tool_called("weather", {}), 1.0),
    (sc.tool_called("search", {"opts": {"lang": "fr"}}), 1.0),  # nested subset
    (sc.tool_called("search", {"opts": {"lang": "en"}}), 0.0),
    (sc.tool_called("search", {"q": "weather Paris", "x": 1}), 0.0),  # more than was sent
    (sc.tool_called("answer"), 1.0),  # called, even with bad arguments
    (sc.tool_called("answer", {"a": 1}), 0.0),  # arguments that are not JSON match nothing
    (sc.tool_sequence(["search", "weather", "weather", "answer"]), 1.0),
    (sc.tool_sequence(["search", "weather", "answer"]), 0.0),
    (sc.tool_sequence(["search", "weather", "answer"], exact=False), 1.0),
    (sc.tool_sequence(["weather", "search"], exact=False), 0.0),  # out of order
    (sc.tool_sequence([]), 0.0),
])
def test_tool_scorers(scorer: Any, want: float) -> None:
    assert scorer(case(TRACE)) == want


def test_a_row_with_no_tool_call_called_nothing() -> None:
    direct = looped()
    assert sc.tool_called("weather")(case(direct)) == 0.0
    assert sc.tool_sequence([])(case(direct)) == 1.0
    assert sc.tool_sequence([])(case(PLAIN)) == 1.0


@pytest.mark.parametrize(("build", "match"), [
    (lambda: sc.tool_called(""), "tool's name"),
    (lambda: sc.tool_called("f", args=["x"]), "args must be a dict"),
    (lambda: sc.tool_sequence("search"), "list of tool names"),
    (lambda: sc.tool_sequence([1]), "list of tool names"),
    (lambda: sc.field_equals("a["), "path"),
])
def test_bad_arguments(build: Any, match: str) -> None:
    with pytest.raises(ScorerError, match=match):
        build()


def test_names() -> None:
    assert sc.schema_valid().name == "schema_valid"
    assert sc.field_equals("a.b").name == "field_equals[a.b]"
    assert sc.tool_called("weather").name == "tool_called[weather]"
    assert sc.tool_sequence(["a"], name="seq").name == "seq"
    assert sc.exact(field="answer").name == "exact"
