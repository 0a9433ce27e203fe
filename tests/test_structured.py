"""Structured outputs, pure (gptmagic.core.structured and .strict): a strict schema from a
Pydantic model, a TypedDict, a dataclass or a dict; OpenAI's rules met by transforming
where that changes nothing, refused by name and path where it would; replies validated
with their error paths; the formats sent, as OpenAI's spec has them."""

from __future__ import annotations

import dataclasses
import enum
import json
import pickle
import sys
import typing
from typing import Any, Literal, NotRequired

import jsonschema
import pytest
from fakeschema import strict_problem
from openapi_schema import validate
from pydantic import AnyUrl, BaseModel, Field
from typing_extensions import TypedDict  # typing.TypedDict: pydantic needs 3.12+

from gptmagic.core import strict
from gptmagic.core.structured import (
    CUT_OFF,
    NOT_JSON,
    Parsed,
    Schema,
    chat_response_format,
    parse_reply,
    responses_text_format,
    schema_from,
    with_format,
)
from gptmagic.core.to_responses import response_fields
from gptmagic.core.types import Choice, Result
from gptmagic.errors import RequestError


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    city: str
    zip: str | None = None


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Person(BaseModel):
    """Someone in a story."""

    name: str = Field(description="full name")
    age: int | None = None
    height_m: float = 1.7
    colour: Colour
    home: Address = Field(description="where they live")
    friends: list[str]
    pet: Cat | Dog = Field(discriminator="kind")


class Node(BaseModel):
    value: int
    children: list[Node]


class Movie(TypedDict):
    title: str
    year: NotRequired[int]


@dataclasses.dataclass
class Point:
    x: int
    label: str = "p"


PERSON_JSON = {"name": "Ada", "age": None, "height_m": 1.6, "colour": "red",
               "home": {"city": "London", "zip": None}, "friends": ["Charles"],
               "pet": {"kind": "cat", "lives": 9}}

HAND = {"type": "object", "title": "Answer",
        "properties": {"answer": {"type": "string"}, "score": {"type": ["integer", "null"]}},
        "required": ["answer", "score"]}


def objects(node: Any) -> list[dict[str, Any]]:
    """Every object schema in a schema, $defs included."""
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append(node)
        for value in node.values():
            found += objects(value)
    elif isinstance(node, list):
        for value in node:
            found += objects(value)
    return found


@pytest.mark.parametrize("source", [Person, Node, Movie, Point, HAND])
def test_every_object_is_closed_and_requires_every_property(source: Any) -> None:
    schema = schema_from(source)
    found = objects(schema.json_schema)
    assert found and schema.json_schema["type"] == "object"
    for obj in found:
        assert obj["additionalProperties"] is False
        assert obj["required"] == list(obj["properties"])
    assert "default" not in json.dumps(schema.json_schema)
    # The fake server's own (independent) check of OpenAI's rules finds nothing to refuse.
    assert strict_problem(schema.json_schema) is None


def test_a_models_optional_and_defaulted_fields_become_required_and_stay_nullable() -> None:
    s = schema_from(Person).json_schema
    props = s["properties"]
    assert props["age"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert props["height_m"] == {"title": "Height M", "type": "number"}
    # pydantic's $ref with a description beside it is inlined; the union is anyOf.
    assert props["home"]["description"] == "where they live"
    assert props["home"]["properties"]["city"] == {"title": "City", "type": "string"}
    assert [o["$ref"] for o in props["pet"]["anyOf"]] == ["#/$defs/Cat", "#/$defs/Dog"]
    assert "oneOf" not in json.dumps(s) and "discriminator" not in json.dumps(s)
    assert s["description"] == "Someone in a story."


def test_a_recursive_model_keeps_its_reference() -> None:
    s = schema_from(Node).json_schema
    assert s["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert s["$defs"]["Node"]["additionalProperties"] is False


def test_names_come_from_the_type_the_title_or_the_caller() -> None:
    assert schema_from(Person).name == "Person"
    assert schema_from(HAND).name == "Answer"
    assert schema_from({**HAND, "title": "my answer!"}).name == "my_answer_"
    assert schema_from(Person, name="people-v2").name == "people-v2"
    assert schema_from(schema_from(Point), name="pt").name == "pt"
    with pytest.raises(RequestError, match="1 to 64 letters"):
        schema_from(Person, name="no spaces")


@pytest.mark.parametrize(("source", "where", "fix"), [
    ({**HAND, "required": ["answer"]}, "Answer.score: not in 'required'",
     "add 'score' to 'required'"),
    ({**HAND, "properties": {**HAND["properties"], "note": {"type": "string",
                                                         "maxLength": 5}},
      "required": ["answer", "score", "note"]}, "Answer.note: the keyword 'maxLength'",
     "drop the length limit"),
    ({**HAND, "additionalProperties": True}, "Answer: free-form keys", "use a model"),
    ({"type": "array", "items": {"type": "string"}}, "the root of a strict schema must be "
     "an object, got type 'array'", "wrap it in a model"),
    ({"anyOf": [HAND]}, "must be an object, got a union", "wrap it"),
    ({**HAND, "properties": {"answer": {"oneOf": [{"type": "string"}]}, "score": {
        "type": "integer"}}}, "Answer.answer: the keyword 'oneOf'", "use anyOf"),
    ({**HAND, "properties": {"answer": {"type": "string", "format": "uri"},
                             "score": {"type": "integer"}}},
     "Answer.answer: the string format 'uri'", "use a plain string"),
    ({**HAND, "properties": {"answer": {"type": "string", "x-note": 1},
                             "score": {"type": "integer"}}},
     "Answer.answer: 'x-note' is not a keyword", "remove it"),
    ({**HAND, "properties": {"answer": {"$ref": "#/$defs/Nope"}, "score": {
        "type": "integer"}}}, "Answer.answer: $ref '#/$defs/Nope' points at nothing",
     "define it under $defs"),
    ({**HAND, "properties": {"answer": {"type": "strng"}}}, "not a valid JSON schema at "
     "properties.answer.type", ""),
])
def test_a_dict_schema_that_breaks_the_rules_is_refused_by_path(source: dict[str, Any],
                                                                where: str, fix: str) -> None:
    with pytest.raises(RequestError) as caught:
        schema_from(source)
    assert where in str(caught.value) and fix in str(caught.value)
    assert caught.value.param == "schema"


@pytest.mark.parametrize(("score", "hint"), [
    ({"type": "integer"}, 'allow null as well: "type": ["integer", "null"]'),
    ({"type": ["integer", "string"]}, '"type": ["integer", "string", "null"]'),
    ({"type": ["integer", "null"]}, "its type already allows null, so it stays optional"),
    ({"enum": [1, 2]}, '"anyOf": [<its schema>, {"type": "null"}]'),
])
def test_a_property_missing_from_required_is_told_how_to_stay_optional_in_its_own_type(
        score: dict[str, Any], hint: str) -> None:
    """Found in JupyterLab: an integer property was told to become ["string", "null"]."""
    source = {**HAND, "properties": {**HAND["properties"], "score": score},
              "required": ["answer"]}
    with pytest.raises(RequestError, match="Answer.score: not in 'required'") as caught:
        schema_from(source)
    assert hint in str(caught.value)
    assert '"type": ["string", "null"]' not in str(caught.value)


class _Text(BaseModel):
    code: str = Field(min_length=3)


class _Url(BaseModel):
    link: AnyUrl


class _Anything(BaseModel):
    blob: Any


class _Pair(BaseModel):
    pair: tuple[int, str]


class _Tags(BaseModel):
    tags: set[str]


class _Scores(BaseModel):
    scores: dict[str, int]


@pytest.mark.parametrize(("source", "said"), [
    (_Text, "_Text.code: the keyword 'minLength' is not supported; drop the length limit "
            "(Field(min_length=...))"),
    (_Url, "_Url.link: the string format 'uri' is not supported"),
    (_Anything, "_Anything.blob: no type (a field typed Any"),
    (_Pair, "_Pair.pair: the keyword 'prefixItems' is not supported; use a list"),
    (_Tags, "_Tags.tags: the keyword 'uniqueItems' is not supported; use a list instead "
            "of a set"),
    (_Scores, "_Scores.scores: free-form keys (additionalProperties, e.g. dict[str, int])"),
])
def test_a_type_that_cannot_be_strict_names_the_field_and_the_fix(source: type,
                                                                  said: str) -> None:
    with pytest.raises(RequestError) as caught:
        schema_from(source)
    assert said in str(caught.value)


@pytest.mark.parametrize(("source", "said"), [
    (Person(**PERSON_JSON), "an instance of Person (pass the class itself)"),
    ("Person", "got str 'Person'"),
    (list[int], "a Pydantic model class, a TypedDict, a dataclass or a JSON-schema dict"),
    (42, "got int 42"),
])
def test_what_is_no_schema_at_all_says_what_it_is(source: Any, said: str) -> None:
    with pytest.raises(RequestError) as caught:
        schema_from(source)
    assert said in str(caught.value)


def test_typing_typeddict_works_where_pydantic_takes_it() -> None:
    class Old(typing.TypedDict):
        a: int

    if sys.version_info >= (3, 12):
        assert schema_from(Old).json_schema["required"] == ["a"]
    else:  # pydantic refuses typing.TypedDict before 3.12: the error says which to use
        with pytest.raises(RequestError, match="typing_extensions.TypedDict"):
            schema_from(Old)


def nested(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for _ in range(levels - 1):
        node = {"type": "object", "properties": {"in": node}, "required": ["in"]}
    return node


def test_the_limits_are_openais() -> None:
    schema_from(nested(strict.MAX_DEPTH))
    with pytest.raises(RequestError, match=r"response\.in\.in\.in\.in\.in\.in\.in\.in\.in\.in: "
                                           r"an object nested 11 levels deep"):
        schema_from(nested(strict.MAX_DEPTH + 1))
    many = {f"p{i}": {"type": "integer"} for i in range(strict.MAX_PROPERTIES + 1)}
    with pytest.raises(RequestError, match="5,001 properties in all; strict schemas allow "
                                           "5,000"):
        schema_from({"type": "object", "properties": many, "required": list(many)})
    enum_ = {"type": "object", "properties": {f"e{i}": {"enum": list(range(201))}
                                              for i in range(5)}}
    enum_["required"] = list(enum_["properties"])
    with pytest.raises(RequestError, match="1,005 enum values"):
        schema_from(enum_)
    big = {"type": "object", "properties": {"e": {"type": "string", "enum": [
        f"{i:03d}" + "x" * 60 for i in range(251)]}}, "required": ["e"]}
    with pytest.raises(RequestError, match="response.e: an enum of 251 values"):
        schema_from(big)


def test_a_recursive_schema_is_not_too_deep() -> None:
    schema_from(Node)  # the reference to itself is followed once, not forever


class Described(BaseModel):
    value: int
    kids: list[typing.Annotated[Described, Field(description="a kid")]] = []


def test_a_described_reference_to_itself_is_inlined_once_not_forever() -> None:
    # pydantic writes {"$ref": "#/$defs/Described", "description": ...} inside Described.
    s = schema_from(Described)
    inlined = s.json_schema["properties"]["kids"]["items"]
    assert inlined["description"] == "a kid" and inlined["additionalProperties"] is False
    assert inlined["properties"]["kids"]["items"] == {"$ref": "#/$defs/Described"}
    value = s.validate('{"value": 1, "kids": [{"value": 2, "kids": []}]}').value
    assert isinstance(value.kids[0], Described)
    linked = {"type": "object", "properties": {"v": {"type": "integer"}, "next": {"anyOf": [
        {"$ref": "#", "description": "the next one"}, {"type": "null"}]}},
        "required": ["v", "next"]}
    assert schema_from(linked).validate('{"v": 1, "next": {"v": 2, "next": null}}').valid


# -- validation -------------------------------------------------------------------------------


def test_a_valid_reply_is_the_users_type() -> None:
    got = schema_from(Person).validate(json.dumps(PERSON_JSON))
    assert got.valid and got.errors == () and isinstance(got.value, Person)
    assert got.value.pet == Cat(kind="cat", lives=9) and got.value.colour is Colour.RED
    assert schema_from(Point).validate('{"x": 3, "label": "a"}').value == Point(3, "a")
    movie = schema_from(Movie).validate('{"title": "Up", "year": 2009}')
    assert movie.value == {"title": "Up", "year": 2009} and type(movie.value) is dict
    hand = schema_from(HAND).validate('{"answer": "yes", "score": null}')
    assert hand == Parsed({"answer": "yes", "score": None}, True)


def test_an_invalid_reply_lists_its_errors_by_path() -> None:
    bad = {**PERSON_JSON, "name": 5, "home": {"zip": None}, "friends": ["a", 2]}
    got = schema_from(Person).validate(json.dumps(bad))
    assert not got.valid and got.value is None
    assert got.errors == ("name: Input should be a valid string",
                          "home.city: Field required",
                          "friends[1]: Input should be a valid string")
    hand = schema_from(HAND).validate('{"answer": 1, "score": 2, "extra": true}')
    assert hand.errors == (
        "(root): Additional properties are not allowed ('extra' was unexpected)",
        "answer: 1 is not of type 'string'")


@pytest.mark.parametrize("source", [Person, Node, Movie, Point, HAND])
def test_text_that_is_not_json_is_one_root_error_worded_the_same_for_every_kind(
        source: Any) -> None:
    """Pydantic said ``Invalid JSON: expected `,` or `}` at line 1 column 24``, jsonschema's
    side Python's ``Expecting ',' delimiter (line 1, column 24)``: one wording now."""
    got = schema_from(source).validate('{"name": "Ada", "age": 3 "x": 1}')
    assert not got.valid and got.errors == (
        "(root): not valid JSON: Expecting ',' delimiter (line 1, column 26)",)
    assert got.errors[0].startswith(NOT_JSON)


def test_a_reply_cut_off_by_the_token_limit_says_so_not_what_the_parser_missed() -> None:
    cut = Result("chat", "m", [Choice(0, '{"name": "Ada", ', "length", "assistant")])
    assert parse_reply(cut, schema_from(Person)).validation == Parsed(
        errors=(NOT_JSON + CUT_OFF,))
    # Cut off but whole JSON: the schema's own errors, as for any reply.
    whole = Result("chat", "m", [Choice(0, '{"name": "Ada"}', "length", "assistant")])
    assert parse_reply(whole, schema_from(Person)).validation.errors[0].endswith(
        "Field required")


def test_a_schema_pickles_and_still_validates() -> None:
    for source in (Person, HAND):
        schema = schema_from(source)
        back = pickle.loads(pickle.dumps(schema))
        assert back == schema and back.validate("{}").errors == schema.validate("{}").errors


def result_of(text: str = "", refusal: str | None = None) -> Result:
    return Result("chat", "m", [Choice(0, text, "stop", "assistant", refusal)])


def test_parse_reply_fills_parsed_and_validation() -> None:
    schema = schema_from(Person)
    r = parse_reply(result_of(json.dumps(PERSON_JSON)), schema)
    assert r.valid is True and isinstance(r.parsed, Person) and r.validation is not None
    r = parse_reply(result_of('{"name": 1}'), schema)
    assert r.valid is False and r.parsed is None and r.validation is not None
    assert "name: Input should be" in r.validation.errors[0]
    r = parse_reply(result_of(refusal="I can't help with that."), schema)
    assert r.valid is False and r.parsed is None
    assert r.validation == Parsed(refusal="I can't help with that.")
    assert result_of("x").valid is None  # no schema asked


# -- the formats sent -------------------------------------------------------------------------


@pytest.mark.parametrize("source", [Person, Node, Movie, Point, HAND])
def test_the_formats_are_openais_and_one_translates_to_the_other(source: Any) -> None:
    schema = schema_from(source)
    chat = chat_response_format(schema)
    validate(chat, "ResponseFormatJsonSchema")
    text = responses_text_format(schema)
    validate(text, "TextResponseFormatJsonSchema")
    assert chat["json_schema"]["strict"] is True and text["strict"] is True
    # The one chat -> Responses translation gives the same text.format.
    assert response_fields({"response_format": chat}) == {"text": {"format": text}}
    jsonschema.Draft202012Validator.check_schema(schema.json_schema)


def test_with_format_adds_the_format_and_refuses_another() -> None:
    schema = schema_from(Point)
    assert with_format({"temperature": 0}, schema, "chat") == {
        "temperature": 0, "response_format": chat_response_format(schema)}
    assert with_format({"text": {"verbosity": "low"}}, schema, "responses") == {
        "text": {"verbosity": "low", "format": responses_text_format(schema)}}
    same = {"response_format": chat_response_format(schema)}
    assert with_format(same, schema, "chat") == same
    with pytest.raises(RequestError, match="schema= and response_format both") as caught:
        with_format({"response_format": {"type": "json_object"}}, schema, "chat")
    assert caught.value.param == "response_format"
    with pytest.raises(RequestError, match="schema= and text.format both"):
        with_format({"text": {"format": {"type": "text"}}}, schema, "responses")


def test_schema_is_a_value() -> None:
    a, b = schema_from(Point), schema_from(Point)
    assert a == b and isinstance(a, Schema) and "json_schema" not in repr(a)
    assert schema_from(a) is a


def test_importing_gptmagic_loads_neither_pydantic_nor_jsonschema() -> None:
    """``import gptmagic`` stays cheap: the validators load when a schema is first made."""
    import subprocess

    code = ("import sys, gptmagic; print(sorted(m for m in ('pydantic', 'jsonschema') "
            "if m in sys.modules)); gptmagic.schema_from; print('pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["[]", "False"], out.stderr[-500:]
