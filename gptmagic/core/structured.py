"""Structured outputs: a schema from a Python type or a dict, sent strict, replies validated (pure).

``schema_from(Person)`` takes a Pydantic model class, a ``TypedDict``, a
dataclass or a JSON-schema dict and returns a :class:`Schema`: its strict JSON
schema (pydantic's ``TypeAdapter`` writes it for a type; OpenAI's strict rules
are applied by :func:`gptmagic.core.strict.strict_schema`) and a validator:
``schema.validate(reply_text)`` gives a :class:`Parsed` holding the value as the
user's type (a model instance, a dict, a dataclass instance) or the errors with
their paths (``address.city: Field required``). Pydantic validates a type,
``jsonschema`` a dict schema; nothing here writes its own.

The format sent is :func:`chat_response_format` (Chat Completions'
``response_format``) or :func:`responses_text_format` (the Responses API's
``text.format``, which :mod:`gptmagic.core.to_responses` would also translate
the former into); :func:`with_format` adds it to a call's parameters, and
:func:`parse_reply` fills a :class:`~gptmagic.core.types.Result`'s ``parsed`` and
``validation`` from its first choice once the reply is whole (a stream is
parsed at its end). A refusal (chat's ``message.refusal``, a Responses
``refusal`` part) is no reply to parse: ``validation.refusal`` holds it and
``parsed`` is None.

pydantic and jsonschema are imported when a schema is first made, not with gptmagic.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from gptmagic.core.strict import strict_schema
from gptmagic.core.text import json_path
from gptmagic.core.types import Parsed, Result
from gptmagic.errors import RequestError

__all__ = ["CUT_OFF", "NOT_JSON", "Parsed", "Schema", "chat_response_format", "parse_reply",
           "responses_text_format", "schema_from", "with_format"]

#: How the one error of a reply that is not JSON begins (``Parsed.errors[0]``); what
#: follows is the parser's complaint and where, or :data:`CUT_OFF`.
NOT_JSON = "(root): not valid JSON: "
#: Why a reply cut off by the token limit is not JSON (its parser's complaint is an
#: artefact of the cut).
CUT_OFF = "cut off by the token limit before it was complete"

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KINDS = "a Pydantic model class, a TypedDict, a dataclass or a JSON-schema dict"


@dataclasses.dataclass(frozen=True)
class Schema:
    """A strict response schema: its ``name`` (sent as the format's name), the strict
    ``json_schema``, the ``source`` it was made from, and :meth:`validate`."""

    name: str
    json_schema: dict[str, Any] = dataclasses.field(repr=False)
    source: Any = dataclasses.field(repr=False)
    #: pydantic's TypeAdapter (a type) or a jsonschema validator (a dict).
    _validator: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # The validator does not pickle; it is made again from the source.
        return _rebuild, (self.name, self.json_schema, self.source)

    def validate(self, text: str) -> Parsed:
        """``text`` (a reply) parsed and validated: the value, or the errors with paths.

        A reply that is not JSON has one error, :data:`NOT_JSON` and the parser's
        complaint, whichever validator checks it (pydantic and jsonschema word it
        differently)."""
        try:
            value = json.loads(text)
        except ValueError as e:
            where = (f" (line {e.lineno}, column {e.colno})"
                     if isinstance(e, json.JSONDecodeError) else "")
            return Parsed(errors=(f"{NOT_JSON}{getattr(e, 'msg', e)}{where}",))
        if isinstance(self.source, Mapping):
            return _validate_dict(self._validator, value)
        from pydantic import ValidationError

        try:
            value = self._validator.validate_json(text)
        except ValidationError as e:
            return Parsed(errors=tuple(f"{_path(err['loc'])}: {err['msg']}"
                                       for err in e.errors(include_url=False)))
        return Parsed(value=value, valid=True)


def _rebuild(name: str, json_schema: dict[str, Any], source: Any) -> Schema:
    return Schema(name, json_schema, source, _validator_for(source, json_schema))


def _path(loc: Any) -> str:
    """``("friends", 0, "name")`` as ``friends[0].name``; ``(root)`` for none."""
    return json_path(loc, "(root)")


def _validate_dict(validator: Any, value: Any) -> Parsed:
    found = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
    if found:
        return Parsed(errors=tuple(f"{_path(e.absolute_path)}: {_short(e.message)}"
                                   for e in found))
    return Parsed(value=value, valid=True)


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _validator_for(source: Any, json_schema: dict[str, Any]) -> Any:
    if isinstance(source, Mapping):
        from jsonschema import Draft202012Validator

        return Draft202012Validator(json_schema)
    from pydantic import TypeAdapter

    return TypeAdapter(source)


def _is_type(obj: Any) -> bool:
    if not isinstance(obj, type):
        return False
    from pydantic import BaseModel
    from typing_extensions import is_typeddict

    return issubclass(obj, BaseModel) or is_typeddict(obj) or dataclasses.is_dataclass(obj)


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise RequestError(f"schema name {name!r} must be 1 to 64 letters, digits, '_' or '-' "
                           "(OpenAI's rule for a response format's name)", param="schema")
    return name


def _derived_name(text: str) -> str:
    """A type's or a title's name made a valid format name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)[:64] or "response"


def schema_from(obj: Any, *, name: str | None = None) -> Schema:
    """A strict :class:`Schema` from ``obj``: a Pydantic model class, a ``TypedDict``, a
    dataclass, a JSON-schema dict, or a :class:`Schema` (``name`` renames it).

    The name sent is ``name``, else the type's name, else a dict's ``title``, else
    ``response``. Raises :class:`~gptmagic.errors.RequestError` (``param="schema"``)
    naming the field that breaks OpenAI's strict rules and how to fix it, or saying
    what ``obj`` is when it is none of those.
    """
    if isinstance(obj, Schema):
        return obj if name is None else dataclasses.replace(obj, name=_check_name(name))
    if isinstance(obj, Mapping):
        return _from_dict(obj, name)
    if not _is_type(obj):
        what = (f"an instance of {type(obj).__name__} (pass the class itself)"
                if _is_type(type(obj)) else f"{type(obj).__name__} {_short(repr(obj), 60)}")
        raise RequestError(f"a schema must be {_KINDS}; got {what}", param="schema")
    label = _check_name(name) if name else _derived_name(obj.__name__)
    from pydantic import PydanticUserError, TypeAdapter
    from pydantic.errors import PydanticSchemaGenerationError

    try:
        adapter = TypeAdapter(obj)
        generated = adapter.json_schema()
    except (PydanticUserError, PydanticSchemaGenerationError) as e:
        said = str(e).split("\n\n")[0]
        raise RequestError(f"schema {obj.__name__}: pydantic cannot write its JSON schema: "
                           f"{said}", param="schema") from None
    strict = strict_schema(generated, generated=True, label=obj.__name__)
    return Schema(label, strict, obj, adapter)


def _from_dict(obj: Mapping[str, Any], name: str | None) -> Schema:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    title = obj.get("title")
    label = _check_name(name) if name else _derived_name(
        title if isinstance(title, str) else "response")
    try:
        Draft202012Validator.check_schema(obj)
    except SchemaError as e:
        at = _path(e.absolute_path)
        raise RequestError(f"schema {label}: not a valid JSON schema at {at}: "
                           f"{_short(e.message)}", param="schema") from None
    strict = strict_schema(obj, generated=False, label=label)
    return Schema(label, strict, dict(obj), _validator_for(obj, strict))


def chat_response_format(schema: Schema) -> dict[str, Any]:
    """Chat Completions' ``response_format`` for ``schema`` (strict)."""
    return {"type": "json_schema",
            "json_schema": {"name": schema.name, "schema": schema.json_schema, "strict": True}}


def responses_text_format(schema: Schema) -> dict[str, Any]:
    """The Responses API's ``text.format`` for ``schema`` (strict)."""
    return {"type": "json_schema", "name": schema.name, "schema": schema.json_schema,
            "strict": True}


def with_format(params: Mapping[str, Any], schema: Schema, api: str) -> dict[str, Any]:
    """``params`` with ``schema``'s format: ``response_format`` on chat, ``text.format``
    on Responses (``api="responses"``, beside a ``text.verbosity``). The same format
    given already is fine; another one is an error: the reply can have one shape."""
    out = dict(params)
    if api == "chat":
        fmt, given = chat_response_format(schema), out.get("response_format")
        out["response_format"] = fmt
        said = "response_format"
    else:
        text = dict(out.get("text") or {})
        fmt, given = responses_text_format(schema), text.get("format")
        out["text"] = {**text, "format": fmt}
        said = "text.format"
    if given is not None and given != fmt:
        raise RequestError(f"schema= and {said} both say what the reply is: give one (schema= "
                           f"sends {said} itself, strict)", param=said)
    return out


def parse_reply(result: Result, schema: Schema) -> Result:
    """Fill ``result.parsed`` and ``result.validation`` from its first choice.

    A reply cut off by the token limit that is not JSON says so (:data:`CUT_OFF`)
    instead of its parser's complaint about the end it lacks."""
    choice = result.choices[0] if result.choices else None
    if choice is not None and choice.refusal:
        parsed = Parsed(refusal=choice.refusal)
    else:
        parsed = schema.validate(choice.text if choice is not None else "")
        if (choice is not None and choice.finish_reason == "length" and parsed.errors
                and parsed.errors[0].startswith(NOT_JSON)):
            parsed = Parsed(errors=(NOT_JSON + CUT_OFF,))
    result.validation = parsed
    result.parsed = parsed.value
    return result
