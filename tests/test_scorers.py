"""Scorers: table-driven checks of every constructor, their edge cases and errors."""

from __future__ import annotations

import math
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import pytest

import gptmagic.scorers as sc
from gptmagic.core.types import Choice, Result, TokenLogprob, TopLogprob
from gptmagic.errors import ConfigError, GptmagicError
from gptmagic.scorers import Case, Scorer, ScorerError, score_async


def case(output: str, **row: Any) -> Case:
    return Case(output=output, row=row)


def test_all_matches_public_names() -> None:
    public = {n for n, v in vars(sc).items()
              if not n.startswith("_") and getattr(v, "__module__", None) == sc.__name__}
    assert set(sc.__all__) == public
    assert sc.__all__ == sorted(sc.__all__)


def test_scorer_error_is_a_gptmagic_error() -> None:
    assert issubclass(ScorerError, GptmagicError)


@pytest.mark.parametrize(("scorer", "output", "row", "expected"), [
    # exact
    (sc.exact(), " Paris\n", {"expected": "Paris"}, 1.0),
    (sc.exact(strip=False), " Paris", {"expected": "Paris"}, 0.0),
    (sc.exact(), "paris", {"expected": "Paris"}, 0.0),
    (sc.exact(case_sensitive=False), "paris", {"expected": "Paris"}, 1.0),
    (sc.exact("answer"), "4", {"answer": 4}, 1.0),
    # contains / icontains
    (sc.contains("Paris"), "It is Paris.", {}, 1.0),
    (sc.contains("paris"), "It is Paris.", {}, 0.0),
    (sc.icontains("paris"), "It is PARIS.", {}, 1.0),
    (sc.contains(column="city"), "It is Lyon.", {"city": "Lyon"}, 1.0),
    (sc.icontains(column="city"), "it is lyon.", {"city": "Lyon"}, 1.0),
    # positional text is literal even when a column has that name
    pytest.param(sc.contains("city"), "Lyon", {"city": "Lyon"}, 0.0,  # and it says so
                 marks=pytest.mark.filterwarnings("ignore:contains.'city'")),
    # regex
    (sc.regex(r"\bParis\b"), "in Paris today", {}, 1.0),
    (sc.regex(r"^paris$", flags=re.I | re.M), "answer:\nPARIS", {}, 1.0),
    (sc.regex(r"\d{3}"), "12", {}, 0.0),
    # json_valid
    (sc.json_valid(), '{"a": 1}', {}, 1.0),
    (sc.json_valid(), 'Here:\n```json\n{"a": [1, 2]}\n```\nDone.', {}, 1.0),
    (sc.json_valid(), '```\n[1, 2]\n```', {}, 1.0),
    (sc.json_valid(), "{'a': 1}", {}, 0.0),
    (sc.json_valid(), "```json\n{oops}\n```", {}, 0.0),
    # numeric
    (sc.numeric(), "The total is 1,234.5 dollars", {"expected": 1234.5}, 1.0),
    (sc.numeric(), "It dropped to -3 degrees", {"expected": "-3"}, 1.0),
    (sc.numeric(), "about 1e3", {"expected": 1000}, 1.0),
    (sc.numeric(), "1,000,000", {"expected": "1,000,000"}, 1.0),
    (sc.numeric(), "−2 (unicode minus)", {"expected": -2}, 1.0),
    (sc.numeric(), "0.30000000000000004", {"expected": 0.3}, 1.0),
    (sc.numeric(), "42", {"expected": 43}, 0.0),
    (sc.numeric(tolerance=1), "42", {"expected": 43}, 1.0),
    (sc.numeric(tolerance=0.05, relative=True), "104", {"expected": 100}, 1.0),
    (sc.numeric(tolerance=0.05, relative=True), "106", {"expected": 100}, 0.0),
    (sc.numeric(), "no number here", {"expected": 1}, 0.0),
    # choice
    (sc.choice(), " Positive.\n", {"expected": "positive"}, 1.0),
    (sc.choice(), '"negative"', {"expected": "positive"}, 0.0),
    (sc.choice(labels=["positive", "negative"]), "I think it is Negative overall",
     {"expected": "negative"}, 1.0),
    (sc.choice(labels=["positive", "negative"]), "Positive, not negative",
     {"expected": "positive"}, 1.0),
    (sc.choice(labels=["pos", "neg"]), "positive", {"expected": "pos"}, 0.0),  # whole word
    (sc.choice(labels=["positive", "very positive"]), "very positive!",
     {"expected": "very positive"}, 1.0),
    (sc.choice(labels=["A", "B"], case_sensitive=True), "a, B", {"expected": "B"}, 1.0),
    (sc.choice(labels=["yes", "no"]), "maybe", {"expected": "yes"}, 0.0),
    # similarity
    (sc.similarity(), "abcd", {"expected": "abcd"}, 1.0),
    (sc.similarity(), "abcd", {"expected": "wxyz"}, 0.0),
    (sc.similarity(), "abcd", {"expected": "abxy"}, 0.5),
])
def test_sync_scorers(scorer: Scorer, output: str, row: dict[str, Any], expected: float) -> None:
    got = scorer(Case(output=output, row=row))
    assert isinstance(got, float)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("make", [
    sc.exact, sc.similarity, sc.numeric, sc.choice, sc.logprob_confidence,
    lambda: sc.contains(column="expected"),
])
def test_missing_column_names_column_and_available(make: Any) -> None:
    with pytest.raises(ScorerError, match=r"no column 'expected'.*'question', 'answer'"):
        make()(Case("x", {"question": "q", "answer": "a"},
                    result=_result([_tok("x", -0.1)])))


@pytest.mark.parametrize("empty", [None, math.nan])
def test_empty_cell_is_an_error(empty: Any) -> None:
    with pytest.raises(ScorerError, match="'expected' is empty"):
        sc.exact()(case("x", expected=empty))


def test_numeric_expected_not_a_number() -> None:
    with pytest.raises(ScorerError, match="holds no number"):
        sc.numeric()(case("3", expected="three"))


@pytest.mark.parametrize(("build", "match"), [
    (lambda: sc.contains(), "either text"),
    (lambda: sc.contains("a", column="b"), "either text"),
    (lambda: sc.regex("("), "bad pattern"),
    (lambda: sc.numeric(tolerance=-1), "tolerance"),
    (lambda: sc.choice(labels=[]), "labels is empty"),
    (lambda: sc.exact(weight=-1), "weight"),
    (lambda: sc.judge("r", model="m", scale=(5, 1)), "scale"),
    (lambda: sc.combine(), "at least one"),
    (lambda: sc.combine(sc.exact(weight=0)), "sum to 0"),
])
def test_bad_arguments(build: Any, match: str) -> None:
    with pytest.raises(ScorerError, match=match):
        build()


def test_names_and_weights() -> None:
    assert sc.exact().name == "exact"
    assert sc.icontains("x").name == "icontains"
    s = sc.regex("x", name="has_x", weight=2)
    assert (s.name, s.weight) == ("has_x", 2.0)
    assert repr(s) == "<_FnScorer 'has_x' weight=2>"


# -- json_schema --------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


@pytest.mark.parametrize(("output", "expected"), [
    ('{"n": 3}', 1.0),
    ('```json\n{"n": 3}\n```', 1.0),
    ('{"n": "three"}', 0.0),
    ("{}", 0.0),
    ("not json", 0.0),
])
def test_json_schema(output: str, expected: float) -> None:
    import jsonschema  # noqa: F401  (a dev dependency: missing must fail, not skip)
    assert sc.json_schema(SCHEMA)(case(output)) == expected


def test_json_schema_rejects_bad_schema() -> None:
    import jsonschema  # noqa: F401  (a dev dependency: missing must fail, not skip)
    with pytest.raises(ScorerError, match="invalid schema"):
        sc.json_schema({"type": "nonsense"})


def test_json_schema_without_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    with pytest.raises(ConfigError, match="pip install jsonschema"):
        sc.json_schema(SCHEMA)


# -- logprob_confidence ----------------------------------------------------------


def _tok(token: str, logprob: float, top: dict[str, float] | None = None,
         prompt: bool = False) -> TokenLogprob:
    alts = tuple(TopLogprob(t, lp) for t, lp in (top or {}).items())
    return TokenLogprob(token=token, logprob=logprob, top=alts, prompt=prompt)


def _result(logprobs: list[TokenLogprob] | None) -> Result:
    return Result(kind="chat", model="m", choices=[Choice(index=0, text="", logprobs=logprobs)])


LN = math.log


@pytest.mark.parametrize(("tokens", "expected_label", "expected"), [
    ([_tok("Pos", LN(0.7), {"Pos": LN(0.7), "Neg": LN(0.2)}), _tok("itive", LN(0.9))],
     "positive", 0.7),
    ([_tok("Pos", LN(0.7), {"Pos": LN(0.7), "Neg": LN(0.2)})], "Negative", 0.2),
    ([_tok("Pos", LN(0.7), {"Pos": LN(0.7), "Neg": LN(0.2)})], "neutral", 0.0),
    # case and leading-space variants of the same answer add up
    ([_tok("Yes", LN(0.5), {"Yes": LN(0.5), " yes": LN(0.2), "No": LN(0.3)})], "yes", 0.7),
    # echoed prompt tokens and a leading newline are skipped
    ([_tok("Q", LN(0.1), prompt=True), _tok("\n", LN(0.99)),
      _tok("No", LN(0.6), {"No": LN(0.6), "Yes": LN(0.4)})], "yes", 0.4),
    # no top alternatives: the chosen token itself counts
    ([_tok("Paris", LN(0.8))], "Paris", 0.8),
])
def test_logprob_confidence(tokens: list[TokenLogprob], expected_label: str,
                            expected: float) -> None:
    c = Case("ignored", {"expected": expected_label}, result=_result(tokens))
    assert sc.logprob_confidence()(c) == pytest.approx(expected)


@pytest.mark.parametrize("result", [None, _result(None), _result([])])
def test_logprob_confidence_needs_logprobs(result: Result | None) -> None:
    with pytest.raises(ScorerError, match="needs logprobs: run with logprobs=True"):
        sc.logprob_confidence()(Case("x", {"expected": "x"}, result=result))


# -- judge -----------------------------------------------------------------------------


@dataclass
class Reply:
    text: str


class FakeClient:
    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.calls: list[tuple[list[dict[str, str]], dict[str, Any]]] = []

    async def chat(self, messages: list[dict[str, str]], **kwargs: Any) -> Reply:
        self.calls.append((messages, kwargs))
        return Reply(self.reply)


@pytest.mark.parametrize(("reply", "scale", "expected"), [
    ("4", (1, 5), 0.75),
    ("Score: 5/5", (1, 5), 1.0),
    ("1", (1, 5), 0.0),
    ("I'd say 7 out of 10", (0, 10), 0.7),
    ("0 issues, so 3", (1, 5), 0.5),  # the first number *within the scale*
])
async def test_judge(reply: str, scale: tuple[int, int], expected: float) -> None:
    client = FakeClient(reply)
    j = sc.judge("Is it polite?", model="judge-m", provider="p", client=client, scale=scale)
    c = case("Thanks, here you go.", question="Pass the salt", expected="Sure.")
    assert j.is_async
    assert await score_async(j, c) == pytest.approx(expected)
    [(messages, kwargs)] = client.calls
    prompt = messages[-1]["content"]
    for part in ("Is it polite?", "Thanks, here you go.", "question: Pass the salt", "Sure."):
        assert part in prompt
    assert kwargs["model"] == "judge-m" and kwargs["provider"] == "p"
    assert kwargs["temperature"] == 0 and kwargs["max_tokens"] > 0


async def test_judge_without_expected_column() -> None:
    client = FakeClient("3")
    await score_async(sc.judge("rubric", model="m", client=client), case("out", q="in"))
    prompt = client.calls[0][0][-1]["content"]
    assert "Expected answer" not in prompt and "q: in" in prompt


@pytest.mark.parametrize("reply", ["great!", "9", "x" * 1000])
async def test_judge_unparseable_reply(reply: str) -> None:
    j = sc.judge("rubric", model="m", client=FakeClient(reply))
    with pytest.raises(ScorerError, match="no number from 1 to 5") as exc:
        await score_async(j, case("out"))
    assert repr(reply[:50]).rstrip("'") in str(exc.value)
    assert len(str(exc.value)) < 400


def test_async_scorer_called_sync_explains() -> None:
    with pytest.raises(ScorerError, match="score_async"):
        sc.judge("r", model="m", client=FakeClient("1"))(case("x"))


# -- custom -----------------------------------------------------------------------------


def two_args(output: str, row: Any) -> bool:
    return output == row["expected"]


def one_arg(c: Case) -> float:
    return 0.25 if c.output else 0.0


async def async_two(output: str, row: Any) -> float:
    return 0.5


async def async_case(c: Case) -> bool:
    return True


class Callable2:
    def __call__(self, output: str, row: Any) -> int:
        return 1


@pytest.mark.parametrize(("fn", "expected", "is_async"), [
    (two_args, 1.0, False),
    (one_arg, 0.25, False),
    (lambda o, r: 0, 0.0, False),
    (lambda c: c.row["expected"] == "a", 1.0, False),
    (async_two, 0.5, True),
    (async_case, 1.0, True),
    (Callable2(), 1.0, False),
])
async def test_custom(fn: Any, expected: float, is_async: bool) -> None:
    s = sc.custom(fn)
    assert s.is_async is is_async
    assert await score_async(s, case("a", expected="a")) == expected
    if not is_async:
        assert s(case("a", expected="a")) == expected


def test_custom_names() -> None:
    assert sc.custom(two_args).name == "two_args"
    assert sc.custom(lambda o, r: 1).name == "custom"
    assert sc.custom(two_args, name="mine", weight=3).weight == 3.0


@pytest.mark.parametrize("value", [1.5, -0.1, math.nan, "yes", None])
async def test_custom_bad_values(value: Any) -> None:
    with pytest.raises(ScorerError, match="custom"):
        await score_async(sc.custom(lambda o, r: value), case("x"))


def test_custom_sync_returning_awaitable() -> None:
    async def later() -> float:
        return 1.0

    s = sc.custom(lambda o, r: later(), name="lazy")
    with pytest.raises(ScorerError, match="awaitable"):
        s(case("x"))


async def test_custom_sync_returning_awaitable_via_score_async() -> None:
    async def later() -> float:
        return 1.0

    assert await score_async(sc.custom(lambda o, r: later()), case("x")) == 1.0


def test_custom_accepts_numpy_scalars() -> None:
    import numpy as np  # pandas brings numpy
    assert sc.custom(lambda o, r: np.bool_(True))(case("x")) == 1.0
    assert sc.custom(lambda o, r: np.float64(0.5))(case("x")) == 0.5


# -- combine ------------------------------------------------------------------------------


@pytest.mark.parametrize(("parts", "expected"), [
    ([sc.exact(), sc.contains("Par")], 1.0),
    ([sc.exact(weight=3), sc.contains("zzz", weight=1)], 0.75),
    ([sc.exact(weight=1), sc.contains("zzz", weight=3)], 0.25),
    ([sc.exact(weight=0), sc.contains("zzz")], 0.0),
    ([sc.similarity()], 1.0),
])
async def test_combine(parts: list[Scorer], expected: float) -> None:
    s = sc.combine(*parts, name="both")
    c = case("Paris", expected="Paris")
    assert s.name == "both" and not s.is_async
    assert s(c) == pytest.approx(expected)
    assert await score_async(s, c) == pytest.approx(expected)


async def test_combine_with_async_part() -> None:
    s = sc.combine(sc.exact(weight=1), sc.judge("r", model="m", client=FakeClient("1")))
    assert s.is_async
    assert await score_async(s, case("Paris", expected="Paris")) == 0.5
    with pytest.raises(ScorerError, match="score_async"):
        s(case("Paris", expected="Paris"))


def test_combine_propagates_part_error() -> None:
    with pytest.raises(ScorerError, match="no column 'expected'"):
        sc.combine(sc.exact(), sc.regex("x"))(case("x"))


async def test_score_async_checks_range_of_plain_scorer() -> None:
    class Bad(Scorer):
        def __call__(self, case: Case) -> float:
            return 2.0

    with pytest.raises(ScorerError, match="outside"):
        await score_async(Bad("bad"), case("x"))


def test_literal_text_named_like_a_column_is_searched_literally_and_said_once():
    """``icontains("answer")`` looks for the word "answer", not the row's answer: the
    slip a new user made. It keeps its meaning and says so, once per scorer."""
    scorer = sc.icontains("answer")
    row = {"question": "Capital of France?", "answer": "Paris"}
    with pytest.warns(UserWarning, match=r"icontains\(column='answer'\)"):
        assert scorer(Case("Paris.", row)) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scorer(Case("The answer is Paris.", row)) == 1.0  # said once, not again
        assert sc.icontains("answer")(Case("answer", {"q": "x"})) == 1.0  # no such column
