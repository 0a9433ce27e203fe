"""``%%chat --schema NAME`` in-process (InteractiveShell) against the fake server: the strict
format sent (checked against OpenAI's spec) on chat and Responses, the reply pretty-printed
with its validity badge, ``_chat.parsed``, refusals, dry runs, and the errors a wrong NAME
gets."""

from __future__ import annotations

import json

import pytest
from fakeserver import Behaviour
from IPython.core.error import UsageError
from openapi_schema import validate
from shell_support import chat, fake_shell

from gptmagic.notebook.session import DryRun, Reply

KEY = "sk-fake-schema-0123456789abcdef"

DEFINE = '''
import dataclasses
from pydantic import BaseModel
from typing_extensions import TypedDict

class Address(BaseModel):
    city: str

class Person(BaseModel):
    name: str
    age: int | None = None
    home: Address

class Movie(TypedDict):
    title: str

@dataclasses.dataclass
class Point:
    x: int

verdict = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
loose = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
class models:
    P = Person
'''


@pytest.fixture
def shell(fake_server, monkeypatch, tmp_path):
    with fake_shell(fake_server.url, monkeypatch, tmp_path, KEY) as sh:
        assert sh.run_cell(DEFINE).success
        monkeypatch.setattr(sh, "kernel", object(), raising=False)  # a notebook's views
        yield sh


def view(r: Reply) -> tuple[str, str, dict]:
    data, meta = r._repr_mimebundle_()
    return data["text/markdown"], data["text/plain"], meta["gptmagic"]


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_schema_cell_sends_the_strict_format_and_parses_into_the_type(shell, fake_server,
                                                                         api):
    r, _ = chat(shell, f"-p fake --schema Person --api {api}", "user: Invent a person.")
    body = fake_server.requests[-1].json
    if api == "chat":
        validate(body, "CreateChatCompletionRequest")
        fmt = body["response_format"]["json_schema"]
    else:
        validate(body, "CreateResponse")
        fmt = body["text"]["format"]
    assert fmt["name"] == "Person" and fmt["strict"] is True
    assert fmt["schema"]["$defs"]["Address"]["additionalProperties"] is False
    assert fmt["schema"]["required"] == ["name", "age", "home"]
    person = shell.user_ns["Person"]
    assert isinstance(r.parsed, person) and r.parsed.home.city == "text"
    assert shell.user_ns["_chat"].parsed is r.parsed and r.validation.valid
    md, plain, meta = view(r)
    assert '```json\n{\n  "name": "text",' in md  # pretty-printed
    assert "**✓ valid** — matches Person; the value is in \\_chat.parsed" in md
    assert "✓ valid: matches Person" in plain
    assert meta["response"]["schema"] == {"name": "Person", "valid": True, "refused": False,
                                          "errors": []}
    assert KEY not in json.dumps(meta) and KEY not in md


@pytest.mark.parametrize(("name", "parsed"), [
    ("Movie", {"title": "text"}), ("verdict", {"ok": True}), ("models.P", None),
])
def test_every_kind_of_schema_and_a_dotted_name(shell, fake_server, name, parsed):
    r, _ = chat(shell, f"-p fake --no-history --schema {name}", "user: x")
    if parsed is not None:
        assert r.parsed == parsed
    else:
        assert type(r.parsed).__name__ == "Person"
    sent = fake_server.requests[-1].json["response_format"]["json_schema"]
    assert sent["name"] == {"Movie": "Movie", "verdict": "verdict", "models.P": "Person"}[name]


def test_a_dataclass_parses_into_an_instance(shell):
    r, _ = chat(shell, "-p fake --no-history --schema Point", "user: x")
    assert r.parsed == shell.user_ns["Point"](x=1)


def test_an_invalid_reply_shows_its_errors_by_path(shell, fake_server):
    fake_server.plan(Behaviour(text='{"name": 7, "home": {"town": "x"}}'))
    r, _ = chat(shell, "-p fake --schema Person", "user: Invent a person.")
    assert r.parsed is None and r.validation.valid is False
    assert r.validation.errors == ("name: Input should be a valid string",
                                   "home.city: Field required")
    md, plain, meta = view(r)
    assert "**✗ invalid** — 2 errors against Person" in md
    assert "- name: Input should be a valid string" in md and "- home.city: Field required" in md
    assert "  home.city: Field required" in plain
    assert meta["response"]["schema"]["errors"] == list(r.validation.errors)


def test_a_cut_off_reply_says_so_once_and_to_raise_max_tokens(shell, monkeypatch):
    """The reply that is not JSON was said three times: the --json complaint, the badge's
    "cut off ... raise --max-tokens" and pydantic's "(root): Invalid JSON: EOF ..."."""
    r, _ = chat(shell, "-p fake --schema Person --max-tokens 2", "user: x")
    assert r.finish_reason == "length" and r.validation.valid is False
    md, plain, _ = view(r)
    for shown in (md, plain):
        assert ("invalid** — " if shown is md else "invalid: ") + (
            "the reply is not valid JSON, so it cannot match Person: cut off by the token "
            "limit before it was complete") in shown
        assert shown.count("raise --max-tokens") == 1  # the summary line's
        assert shown.count("cut off") == 1 and "JSON:" not in shown and "EOF" not in shown
    monkeypatch.delattr(shell, "kernel")  # a terminal: the footer alone says it, once
    r, _ = chat(shell, "-p fake --schema Person --max-tokens 2", "user: x")
    footer = view(r)[1]
    assert footer.count("not valid JSON") == 1 and footer.count("raise --max-tokens") == 1


def test_a_malformed_reply_says_so_once(shell, fake_server, monkeypatch):
    fake_server.plan(Behaviour(text='{"name": "Ann", "age": 3 "home": {"city": "x"}}'))
    r, _ = chat(shell, "-p fake --schema Person", "user: x")
    md, plain, meta = view(r)
    said = ("the reply is not valid JSON, so it cannot match Person: Expecting ',' delimiter "
            "(line 1, column 26)")
    for shown in (md, plain):
        assert said in shown and shown.count("not valid JSON") == 1
        assert "Invalid JSON" not in shown and "column 26" in shown
    assert meta["response"]["schema"]["errors"] == [
        "(root): not valid JSON: Expecting ',' delimiter (line 1, column 26)"]
    monkeypatch.delattr(shell, "kernel")
    fake_server.plan(Behaviour(text='{"name": "Ann", "age": 3 "home": {"city": "x"}}'))
    r, _ = chat(shell, "-p fake --schema Person", "user: x")
    assert view(r)[1].count("not valid JSON") == 1


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_refusal_shows_as_such(shell, fake_server, api):
    fake_server.plan(Behaviour(refusal="I can't help with that."))
    r, _ = chat(shell, f"-p fake --schema Person --api {api}", "user: Something bad.")
    assert r.parsed is None and r.validation.refusal == "I can't help with that."
    md, plain, meta = view(r)
    assert "**refusal**\n\nI can" in md and "**⊘ refused**" in md
    assert "the model refused, so nothing was added to thread 'default'" in plain
    assert meta["response"]["schema"]["refused"] is True


def test_model_output_in_error_paths_is_inert(shell, fake_server):
    """An extra key the model made up is quoted in the error: escaped like any model text."""
    fake_server.plan(Behaviour(text='{"ok": true, "<img src=x onerror=alert(1)>": 1}'))
    r, _ = chat(shell, "-p fake --schema verdict", "user: x")
    md = view(r)[0]
    assert r.validation.valid is False
    badge = md[md.index("**✗ invalid**"):md.index("---")]
    assert "<img" not in badge and "('&lt;img src=x onerror=alert(1)&gt;' was unexpected)" in badge


def test_in_a_terminal_the_badge_is_under_the_streamed_reply(shell, fake_server, monkeypatch):
    monkeypatch.delattr(shell, "kernel")
    r, cap = chat(shell, "-p fake --schema Person", "user: x")
    assert '{"name": "text"' in cap.stdout  # streamed as it came
    plain = r._repr_mimebundle_()[0]["text/plain"]
    assert plain.startswith("── finish") and "\n✓ valid: matches Person" in plain


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_the_dry_run_shows_the_format_sent(shell, fake_server, api):
    d, _ = chat(shell, f"-p fake --schema Person --dry-run --api {api}", "user: x")
    assert isinstance(d, DryRun) and fake_server.requests == []
    fmt = d.request["response_format"]["json_schema"] if api == "chat" else \
        d.request["text"]["format"]
    assert fmt["strict"] is True and '"additionalProperties": false' in \
        d._repr_mimebundle_()[0]["text/plain"]
    validate(d.request, "CreateChatCompletionRequest" if api == "chat" else "CreateResponse")


def test_several_models_each_get_a_badge(shell, fake_server):
    fake_server.plan(Behaviour(), Behaviour(text='{"name": 1}'))
    r, _ = chat(shell, "-p fake -m a,b --schema Person", "user: x")
    results = [r.results["a"], r.results["b"]]
    assert sorted(x.valid for x in results) == [False, True]
    md = view(r)[0]
    assert "**✓ valid**" in md and "**✗ invalid**" in md


def test_json_mode_still_works_alone(shell, fake_server):
    r, _ = chat(shell, "-p fake --json --no-history", "user: give JSON")
    assert fake_server.requests[-1].json["response_format"] == {"type": "json_object"}
    assert r.validation is None and r.parsed is None
    assert "✓ valid" not in view(r)[0]


@pytest.mark.parametrize(("line", "said"), [
    ("--schema Nobody", "--schema Nobody: no variable named 'Nobody' in the notebook; "
                        "define it first"),
    ("--schema Persn", "--schema Persn: no variable named 'Persn' in the notebook (did you "
                       "mean 'Person'?); define it first"),
    ("--schema verdit", "no variable named 'verdit' in the notebook (did you mean 'verdict'?)"),
    ("--schema KEY_TXT", "no variable named 'KEY_TXT' in the notebook; define"),  # not a schema
    ("--schema models.Q", "--schema models.Q: models has no attribute 'Q'"),
    ("--schema models.PP", "--schema models.PP: models has no attribute 'PP' (did you mean "
                           "'P'?)"),
    ("--schema KEY_TEXT", "--schema KEY_TEXT: a schema must be a Pydantic model class, a "
                          "TypedDict, a dataclass or a JSON-schema dict; got str"),
    ("--schema loose", "--schema loose: schema loose.ok: not in 'required'"),
    ("--schema 'a b'", "--schema needs the name of a variable"),
    ("--schema Person --json", "--json and --schema both set the reply's format"),
])
def test_a_wrong_schema_is_one_clear_error_and_nothing_is_sent(shell, fake_server, line,
                                                                said):
    shell.user_ns["KEY_TEXT"] = "not a schema"
    with pytest.raises(UsageError) as caught:
        chat(shell, f"-p fake {line}", "user: x")
    assert said in str(caught.value)
    assert fake_server.requests == []
