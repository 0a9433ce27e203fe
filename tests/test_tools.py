"""gptmagic.core.tools: Python functions as tool schemas, strict when they can be, and the
model's arguments checked into keyword arguments (pure: no server)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import re
from typing import Annotated, Literal

import jsonschema
import pytest
from openapi_schema import validate
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from gptmagic.core.to_responses import input_items, responses_body
from gptmagic.core.tools import (
    Tool,
    has_functions,
    tool_choice,
    tool_from,
    tool_output,
)
from gptmagic.errors import RequestError, ToolArgumentsError


class Units(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


class Address(BaseModel):
    street: str
    zip: int | None = None


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Span(TypedDict):
    start: int
    end: int


def get_weather(city: str, units: Units = Units.C, days: int = 1,
                hours: list[int] | None = None) -> str:
    """Get the weather
    for a city.

    Asks the weather service; the second paragraph is not sent.

    Args:
        city: The city's name, e.g. Paris.
        units: Celsius or Fahrenheit.
        days: How many days ahead,
            from 1 to 7.
    """
    return f"{city}: sunny"


def numpy_style(x: int, mode: Literal["fast", "slow"]) -> int:
    """Scale x.

    Parameters
    ----------
    x : int
        The number to scale.
    mode : str
        How to scale it.
    """
    return x


def rest_style(address: Address, where: Point, span: Span, when: datetime.date,
               note: Annotated[str, Field(description="Free text.")] = "") -> str:
    """Send a parcel.

    :param address: Where it goes.
    :param where: The map point.
    """
    return "sent"


def schema_of(fn: object) -> dict:
    return tool_from(fn).parameters


def test_the_docstring_gives_the_description_and_each_parameters() -> None:
    tool = tool_from(get_weather)
    assert tool.name == "get_weather" and tool.fn is get_weather
    assert tool.description == "Get the weather for a city."
    props = tool.parameters["properties"]
    assert props["city"] == {"type": "string", "description": "The city's name, e.g. Paris."}
    assert props["days"]["description"] == "How many days ahead, from 1 to 7. Default: 1."
    assert props["units"]["anyOf"] == [{"$ref": "#/$defs/Units"}, {"type": "null"}]
    assert tool.parameters["$defs"]["Units"]["enum"] == ["celsius", "fahrenheit"]
    assert "description" not in props["hours"]
    assert tool_from(numpy_style).parameters["properties"]["x"]["description"] == (
        "The number to scale.")
    assert tool_from(numpy_style).parameters["properties"]["mode"] == {
        "type": "string", "enum": ["fast", "slow"], "description": "How to scale it."}
    rest = tool_from(rest_style).parameters
    assert rest["properties"]["address"]["description"] == "Where it goes."
    assert rest["properties"]["note"]["description"].startswith("Free text.")


def test_schemas_are_strict_as_openai_requires() -> None:
    """Every object closed and fully required, no defaults, no titles; optional values
    nullable; nested models, dataclasses and TypedDicts included."""
    for fn in (get_weather, numpy_style, rest_style):
        tool = tool_from(fn)
        assert tool.strict and tool.why_not_strict is None
        jsonschema.Draft202012Validator.check_schema(tool.parameters)

        def walk(node: object) -> None:
            if isinstance(node, dict):
                assert "default" not in node and not isinstance(node.get("title"), str)
                if node.get("type") == "object":
                    assert node["additionalProperties"] is False
                    assert node["required"] == list(node["properties"]), node
                for key, value in node.items():
                    if key in ("properties", "$defs"):
                        for sub in value.values():
                            walk(sub)
                    else:
                        walk(value)
            elif isinstance(node, list):
                for sub in node:
                    walk(sub)

        walk(tool.parameters)
    hours = tool_from(get_weather).parameters["properties"]["hours"]
    assert {"type": "null"} in hours["anyOf"]
    defs = tool_from(rest_style).parameters["$defs"]
    assert set(defs) == {"Address", "Point", "Span"}
    assert defs["Address"]["required"] == ["street", "zip"]
    assert tool_from(rest_style).parameters["properties"]["when"] == {
        "type": "string", "format": "date"}


def test_a_dict_parameter_is_not_strict_and_says_why() -> None:
    def tally(counts: dict[str, int]) -> int:
        """Add up."""
        return sum(counts.values())

    tool = tool_from(tally)
    assert not tool.strict and "counts" in (tool.why_not_strict or "")
    assert tool.chat_spec()["function"]["strict"] is False
    assert tool.parameters["properties"]["counts"]["additionalProperties"] == {
        "type": "integer"}
    with pytest.raises(RequestError, match=r"tool 'tally' cannot be strict: schema tally\.counts: "
                                           r"free-form keys"):
        tool_from(tally, strict=True)
    assert tool_from(tally).check('{"counts": {"a": 2}}') == {"counts": {"a": 2}}


def test_in_strict_mode_null_means_the_default() -> None:
    """Strict mode requires every parameter: one with a default also takes null, and the
    function gets its default; where None is a value of its own, null stays None."""

    def plan(city: str, days: int = 3, limit: int | None = 5) -> str:
        """Plan a trip."""
        return ""

    tool = tool_from(plan)
    props = tool.parameters["properties"]
    assert props["days"] == {"anyOf": [{"type": "integer"}, {"type": "null"}],
                             "description": "Default: 3."}
    assert props["limit"] == {"anyOf": [{"type": "integer"}, {"type": "null"}],
                              "description": "Default: 5."}
    assert tool.null_default == ("days",)
    assert tool.check('{"city": "Oslo", "days": null, "limit": null}') == {
        "city": "Oslo", "days": 3, "limit": None}
    assert tool.check('{"city": "Oslo", "days": 1, "limit": 2}')["days"] == 1
    with pytest.raises(ToolArgumentsError, match="days: Input should be a valid integer"):
        tool_from(plan, strict=False).check('{"city": "x", "days": null}')  # no such rule


def test_strict_false_keeps_pydantics_schema() -> None:
    tool = tool_from(get_weather, strict=False)
    assert not tool.strict and tool.parameters["required"] == ["city"]
    assert tool.parameters["properties"]["days"]["default"] == 1


def test_specs_for_both_apis_validate_against_the_spec() -> None:
    tool = tool_from(get_weather, name="weather", description="Weather now.")
    assert tool.chat_spec() == {"type": "function", "function": {
        "name": "weather", "description": "Weather now.", "parameters": tool.parameters,
        "strict": True}}
    assert tool.responses_spec() == {"type": "function", "name": "weather",
                                     "description": "Weather now.",
                                     "parameters": tool.parameters, "strict": True}
    validate({"model": "m", "messages": [{"role": "user", "content": "x"}],
              "tools": [tool.chat_spec()], "tool_choice": tool_choice("weather", [tool])},
             "CreateChatCompletionRequest")
    validate({"model": "m", "input": "x", "tools": [tool.responses_spec()]}, "CreateResponse")


def test_names_must_be_what_openai_accepts() -> None:
    with pytest.raises(RequestError, match=r"tool '<lambda>': a tool's name must be 1-64"):
        tool_from(lambda city: city)
    with pytest.raises(RequestError, match=r"got 'get weather'\); give name="):
        tool_from(get_weather, name="get weather")
    assert tool_from(get_weather, name="w-2").name == "w-2"


def untyped(city, days: int) -> str:  # type: ignore[no-untyped-def]
    """No type on city."""
    return ""


def star(*cities: str) -> str:
    """Many cities."""
    return ""


def keywords(**options: str) -> str:
    """Options."""
    return ""


class Engine:
    """A plain class: pydantic cannot describe it."""


def lock(guard: Engine) -> str:
    """An instance of a plain class is no JSON."""
    return ""


def unresolved(x: NoSuchType) -> str:  # type: ignore[name-defined]  # noqa: F821
    """A name that does not exist."""
    return ""


def callback(fn: object) -> str:
    """Fine: object is any JSON."""
    return ""


@pytest.mark.parametrize("fn, message", [
    (untyped, r"tool 'untyped', parameter 'city' has no type annotation; annotate it"),
    (star, r"tool 'star', parameter 'cities': \*args and \*\*kwargs"),
    (keywords, r"tool 'keywords', parameter 'options': \*args and \*\*kwargs"),
    (lock, r"tool 'lock', parameter 'guard': its type .* cannot be a JSON schema"),
    (unresolved, r"tool 'unresolved': its annotations do not resolve \(NameError"),
    (42, r"a tool must be a Python function .* not int"),
    ({"type": "function"}, r"raw OpenAI tool dicts are sent as they are"),
])
def test_a_function_that_cannot_be_a_schema_is_a_clear_error(fn: object, message: str) -> None:
    with pytest.raises(RequestError, match=message) as e:
        tool_from(fn)
    assert e.value.param == "tools"


def test_check_builds_the_arguments_pydantic_parameters_as_models() -> None:
    tool = tool_from(rest_style)
    args = tool.check(json.dumps({"address": {"street": "Rue X", "zip": None},
                                  "where": {"x": 1, "y": 2.5}, "span": {"start": 1, "end": 3},
                                  "when": "2026-12-01", "note": "fragile"}))
    assert args == {"address": Address(street="Rue X"), "where": Point(1, 2.5),
                    "span": {"start": 1, "end": 3}, "when": datetime.date(2026, 12, 1),
                    "note": "fragile"}
    assert isinstance(args["address"], Address) and isinstance(args["where"], Point)
    assert tool.call(args) == "sent"
    weather = tool_from(get_weather).check('{"city": "Oslo", "units": "fahrenheit"}')
    assert weather == {"city": "Oslo", "units": Units.F, "days": 1, "hours": None}


@pytest.mark.parametrize("arguments, errors", [
    ('{"city": "Par', [r"\(arguments\): Unterminated string"]),
    ("[1, 2]", [r"\(arguments\): expected an object"]),
    ('{"units": "kelvin", "hours": [1, "x"]}',
     ["city: Field required", "units: Input should be 'celsius' or 'fahrenheit'",
      r"hours\[1\]: Input should be a valid integer"]),
    ('{"city": "Oslo", "country": "NO"}', ["country: Extra inputs are not permitted"]),
])
def test_bad_arguments_name_every_path(arguments: str, errors: list[str]) -> None:
    with pytest.raises(ToolArgumentsError, match="get_weather") as e:
        tool_from(get_weather).check(arguments)
    assert len(e.value.errors) == len(errors) and e.value.tool == "get_weather"
    for got, want in zip(e.value.errors, errors, strict=True):
        assert re.match(want, got), (got, want)


def test_nested_model_errors_have_dotted_paths() -> None:
    with pytest.raises(ToolArgumentsError) as e:
        tool_from(rest_style).check(json.dumps({
            "address": {"zip": "abc"}, "where": {"x": 1, "y": 2}, "span": {"start": 1},
            "when": "2026-12-01", "note": ""}))
    assert e.value.errors == (
        "address.street: Field required",
        "address.zip: Input should be a valid integer, unable to parse string as an integer",
        "span.end: Field required")


def test_a_hand_made_tool_is_checked_by_its_json_schema() -> None:
    tool = Tool("lookup", "Look it up.", {"type": "object", "properties": {
        "q": {"type": "string"}, "n": {"type": "integer"}}, "required": ["q"]},
        fn=lambda q, n=1: q * n)
    assert tool.check('{"q": "ab", "n": 2}') == {"q": "ab", "n": 2}
    with pytest.raises(ToolArgumentsError) as e:
        tool.check('{"n": "x"}')
    assert e.value.errors == ("(arguments): 'q' is a required property",
                              "n: 'x' is not of type 'integer'")
    assert tool_from(tool) is tool


def test_positional_only_parameters_are_passed_by_position() -> None:
    def power(base: float, exp: int = 2, /) -> float:
        """Raise base to exp."""
        return float(base**exp)

    tool = tool_from(power)
    assert tool.call(tool.check('{"base": 3, "exp": 3}')) == 27.0
    assert tool.parameters["required"] == ["base", "exp"]


def test_parameter_names_that_pydantic_reserves_still_work() -> None:
    def odd(json: str, model_config: int, schema: bool) -> str:
        """Names a BaseModel has."""
        return f"{json}{model_config}{schema}"

    tool = tool_from(odd)
    assert list(tool.parameters["properties"]) == ["json", "model_config", "schema"]
    assert tool.call(tool.check('{"json": "a", "model_config": 1, "schema": true}')) == "a1True"


def test_tool_choice_shapes_and_a_name_that_is_no_tool() -> None:
    tools = [tool_from(get_weather)]
    for plain in ("auto", "none", "required", None):
        assert tool_choice(plain, tools) == plain
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert tool_choice("get_weather", tools) == named
    assert tool_choice(named, tools) == named
    with pytest.raises(RequestError, match=r"tool_choice .* \(get_weather\); got 'weather'"):
        tool_choice("weather", tools)
    raw = [{"type": "function", "function": {"name": "lookup"}}]
    assert tool_choice("lookup", raw) == {"type": "function", "function": {"name": "lookup"}}


def test_has_functions_tells_a_loop_from_raw_dicts() -> None:
    assert not has_functions(None) and not has_functions([])
    assert not has_functions([{"type": "function", "function": {"name": "x"}}])
    assert has_functions([get_weather]) and has_functions([{"type": "x"}, get_weather])


def test_outputs_are_text_or_json() -> None:
    assert tool_output("as is") == "as is"
    assert tool_output({"a": [1, None]}) == '{"a":[1,null]}'
    assert json.loads(tool_output(Address(street="x"))) == {"street": "x", "zip": None}
    assert json.loads(tool_output(Point(1, 2))) == {"x": 1.0, "y": 2.0}
    assert tool_output(datetime.date(2026, 1, 2)) == '"2026-01-02"'
    assert tool_output(None) == "null" and tool_output(Units.F) == '"fahrenheit"'
    assert tool_output(object()).startswith('"<object object')


def test_a_keyword_strict_mode_refuses_leaves_the_tool_loose() -> None:
    """The rules are structured outputs' (core.strict): a length limit is refused there,
    so the tool is sent loose and says why."""

    def tag(label: Annotated[str, Field(max_length=8)]) -> str:
        """Tag it."""
        return label

    tool = tool_from(tag)
    assert not tool.strict and "maxLength" in (tool.why_not_strict or "")
    assert tool.parameters["properties"]["label"]["maxLength"] == 8
    with pytest.raises(ToolArgumentsError, match="at most 8 characters"):
        tool.check('{"label": "much too long"}')


def test_tool_messages_become_responses_items() -> None:
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"type": "item_reference", "id": "msg_1"}]
    assert input_items(messages)[2:] == [
        {"role": "assistant", "content": "Let me look."},
        {"type": "function_call", "call_id": "c1", "name": "get_weather",
         "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "item_reference", "id": "msg_1"}]
    body = {"model": "m", **responses_body(messages, {}, model="m")}
    assert body["instructions"] == "Be brief." and len(body["input"]) == 5
    validate(body, "CreateResponse")
    # Chat's text parts beside the calls become the assistant's text, as without calls.
    messages[2]["content"] = [{"type": "text", "text": "Let me "}, {"type": "text",
                                                                      "text": "look."}]
    assert input_items(messages)[2] == {"role": "assistant", "content": "Let me look."}
    validate({"model": "m", **responses_body(messages, {}, model="m")}, "CreateResponse")


def test_the_client_does_not_import_jsonschema() -> None:
    """jsonschema takes seconds to import on a small machine: only a hand-made Tool's check
    loads it, never the import of the client (in a new process)."""
    import subprocess
    import sys

    code = ("import sys, gptmagic.client.facade, gptmagic.core.tools; "
            "print('jsonschema' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "False"
