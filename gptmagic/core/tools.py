"""Python functions as tools a model can call (pure: no I/O).

:func:`tool_from` reads a plain function's typed signature and docstring into a
:class:`Tool`: its name, a description (the docstring's first paragraph), and a
JSON schema of its parameters, built by pydantic (a model made from the
signature), with each parameter's description taken from the docstring's
``Args:`` (Google), ``Parameters`` (NumPy) or ``:param x:`` (reST) section
(read by ``docstring_parser``). Parameters may be Pydantic models, dataclasses,
TypedDicts, enums, ``Literal``\\ s, lists and ``X | None``; a default makes a
parameter optional.

OpenAI's strict mode (``"strict": true``: the model's arguments always match
the schema) asks more of a schema (its rules: :mod:`gptmagic.core.strict`, shared
with structured outputs): every object closes its properties
(``additionalProperties: false``) and lists them all as required, so an
optional parameter is sent as ``null`` or its value (a parameter with a default
takes ``null`` for "the default", said in its description). :func:`tool_from` makes
the schema strict when it can and says why not when it cannot (a ``dict``
parameter has open keys); ``strict=True`` makes that an error.

:meth:`Tool.check` turns the model's JSON arguments into the keyword arguments
to call with (Pydantic parameters as model instances), or raises
:class:`~gptmagic.errors.ToolArgumentsError` naming each bad path; the tool
loop (:mod:`gptmagic.client.tools`) tells the model what was wrong.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import docstring_parser
import pydantic
from pydantic import BaseModel, ConfigDict, Field, create_model

from gptmagic.core.strict import strict_schema
from gptmagic.core.text import json_path
from gptmagic.core.types import Step, ToolCall
from gptmagic.errors import RequestError, ToolArgumentsError

__all__ = ["Step", "Tool", "ToolCall", "chat_specs", "has_functions", "tool_choice",
           "tool_from", "tool_name", "tool_output"]

#: What OpenAI accepts as a function name.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")



@dataclass(frozen=True)
class Tool:
    """A function a model may call: its name, description and parameters' JSON schema.

    ``fn`` is the Python function that runs it (None: the caller answers it);
    ``strict`` asks the provider to hold the model's arguments to the schema.
    ``why_not_strict`` says why a schema could not be made strict.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any] | None = field(default=None, repr=False)
    strict: bool = False
    why_not_strict: str | None = field(default=None, repr=False, compare=False)
    #: The model the arguments validate against (made from the signature); without one
    #: they are checked against ``parameters`` by jsonschema.
    model: type[BaseModel] | None = field(default=None, repr=False, compare=False)
    #: Parameters passed by position (a function's positional-only ones), in order.
    positional: tuple[str, ...] = field(default=(), repr=False, compare=False)
    #: Parameters whose ``null`` means "the default" (a strict schema requires every
    #: parameter, so one with a default also takes null; the function gets its default).
    null_default: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def chat_spec(self) -> dict[str, Any]:
        """The tool as Chat Completions takes it (``{"type": "function", "function": ...}``)."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters,
                                    "strict": self.strict}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    def responses_spec(self) -> dict[str, Any]:
        """The tool as the Responses API takes it (the function's fields at the top)."""
        return {"type": "function", **self.chat_spec()["function"]}

    def check(self, arguments: str) -> dict[str, Any]:
        """The keyword arguments the model's JSON ``arguments`` validate to.

        Raises :class:`~gptmagic.errors.ToolArgumentsError` when they are not JSON,
        not an object, or do not match the parameters (one ``"path: message"`` each).
        """
        try:
            value = json.loads(arguments) if arguments.strip() else {}
        except ValueError as e:
            raise self._bad(f"are not valid JSON ({e})", (f"(arguments): {e}",)) from None
        if not isinstance(value, dict):
            raise self._bad(f"are a JSON {type(value).__name__}, not an object",
                            (f"(arguments): expected an object, got {value!r:.60}",))
        for name in self.null_default:
            if value.get(name, 0) is None:
                del value[name]  # the function's own default
        if self.model is None:
            return self._check_schema(value)
        try:
            made = self.model.model_validate(value)
        except pydantic.ValidationError as e:
            errors = tuple(f"{_path(err['loc'])}: {err['msg']}" for err in e.errors())
            raise self._bad("do not validate: " + "; ".join(errors), errors) from None
        return {info.alias or f: getattr(made, f) for f, info in type(made).model_fields.items()}

    def _check_schema(self, value: dict[str, Any]) -> dict[str, Any]:
        import jsonschema  # ~2 s to import: only hand-made tools need it

        validator = jsonschema.Draft202012Validator(self.parameters)
        found = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if found:
            errors = tuple(f"{_path(e.absolute_path)}: {e.message}" for e in found)
            raise self._bad("do not validate: " + "; ".join(errors), errors)
        return value

    def _bad(self, what: str, errors: tuple[str, ...]) -> ToolArgumentsError:
        return ToolArgumentsError(f"arguments for {self.name} {what}", tool=self.name,
                                  errors=errors)

    def call(self, kwargs: Mapping[str, Any]) -> Any:
        """Call ``fn`` with checked arguments (positional-only ones by position)."""
        if self.fn is None:
            raise RequestError(f"tool {self.name} has no Python function to run",
                               param="tools")
        rest = dict(kwargs)
        args = [rest.pop(name) for name in self.positional]
        return self.fn(*args, **rest)


def _path(loc: Sequence[Any]) -> str:
    """``("addr", "zip")`` as ``addr.zip``, list indices as ``[0]``."""
    return json_path(loc, "(arguments)")


def has_functions(tools: Any) -> bool:
    """Whether ``tools`` hold any Python function or :class:`Tool` (so a loop runs them);
    raw OpenAI dicts alone are sent as they are, with no loop."""
    if not tools or isinstance(tools, str | bytes | Mapping):
        return False
    if not isinstance(tools, Sequence):
        return callable(tools)  # one function, not in a list: the loop says how to give it
    return any(not isinstance(t, Mapping) for t in tools)


def tool_from(obj: Any, *, name: str | None = None, description: str | None = None,
              strict: bool | None = None) -> Tool:
    """A :class:`Tool` from a plain function (or a :class:`Tool`, returned as it is).

    ``name`` and ``description`` override the function's; ``strict=None`` makes
    the schema strict when it can be, ``True`` requires it (an error says what
    stops it), ``False`` leaves it as pydantic writes it. A function whose
    signature cannot be a JSON schema (a parameter without a type, ``*args``,
    a type pydantic cannot describe) is a :class:`~gptmagic.errors.RequestError`
    naming the function and the parameter.
    """
    if isinstance(obj, Tool):
        return obj
    if isinstance(obj, Mapping) or not callable(obj):
        raise RequestError(f"a tool must be a Python function (or a gptmagic Tool), not "
                           f"{type(obj).__name__}: give the function itself; raw OpenAI tool "
                           "dicts are sent as they are, with no loop", param="tools")
    fn_name = str(name or getattr(obj, "__name__", "") or "")
    label = f"tool {fn_name or obj!r}"
    if not _NAME.match(fn_name):
        raise RequestError(f"{label}: a tool's name must be 1-64 letters, digits, '_' or '-' "
                           f"(got {fn_name!r}); give name=... or use a def with such a name",
                           param="tools")
    doc = docstring_parser.parse(inspect.getdoc(obj) or "")
    model, positional = _arguments_model(obj, fn_name, label,
                                         {p.arg_name: " ".join((p.description or "").split())
                                          for p in doc.params})
    loose = _schema(model, label)
    chosen, why = loose, None
    nulls: tuple[str, ...] = ()
    if strict is not False:
        try:
            defaulted, nulls = _nullable_defaults(loose, model)
            chosen = strict_schema(defaulted, generated=True, label=fn_name)
        except RequestError as e:
            if strict:
                raise RequestError(f"{label} cannot be strict: {e}", param="tools") from None
            why, nulls = str(e), ()
    return Tool(fn_name, _first_paragraph(doc) if description is None else description,
                chosen, obj, strict is not False and why is None, why, model, positional,
                nulls)


def _nullable_defaults(schema: dict[str, Any], model: type[BaseModel]
                       ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``schema`` with each parameter's default said in its description (strict mode
    takes no ``default``), and those with a default other than None also taking
    ``null``, meaning "the default" (strict mode has no optional properties); and
    the names of those."""
    props = dict(schema.get("properties", {}))
    nulls = []
    for info in model.model_fields.values():
        name = info.alias or ""
        prop = props.get(name)
        if info.is_required() or not isinstance(prop, dict) or "default" not in prop:
            continue
        inner = {k: v for k, v in prop.items() if k not in ("description", "default")}
        said = prop.get("description", "")
        if prop["default"] is not None:
            said = f"{said} Default: {json.dumps(prop['default'], ensure_ascii=False)}."
        out = {"anyOf": [inner, {"type": "null"}]} if not _admits_null(inner) else inner
        props[name] = {**out, **({"description": said.strip()} if said.strip() else {})}
        if out is not inner:
            nulls.append(name)
    return {**schema, "properties": props}, tuple(nulls)


def _admits_null(prop: Mapping[str, Any]) -> bool:
    kinds = prop.get("type")
    if kinds == "null" or (isinstance(kinds, list) and "null" in kinds):
        return True
    return any(isinstance(s, Mapping) and _admits_null(s) for s in prop.get("anyOf", []))


def _first_paragraph(doc: docstring_parser.Docstring) -> str:
    """The docstring's first paragraph, on one line."""
    text = doc.short_description or ""
    if doc.long_description and not doc.blank_after_short_description:
        text += " " + doc.long_description.split("\n\n")[0]
    return " ".join(text.split())


def _arguments_model(fn: Callable[..., Any], fn_name: str, label: str,
                     described: Mapping[str, str]) -> tuple[type[BaseModel], tuple[str, ...]]:
    """A Pydantic model of ``fn``'s parameters (fields keep the parameters' names as
    aliases, so a parameter may be called ``json`` or ``model_x``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise RequestError(f"{label}: its signature cannot be read ({e}); wrap it in a def "
                           "with typed parameters", param="tools") from None
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as e:  # noqa: BLE001 - an annotation that does not resolve
        raise RequestError(f"{label}: its annotations do not resolve ({type(e).__name__}: "
                           f"{e})", param="tools") from None
    fields: dict[str, Any] = {}
    positional = []
    for i, (pname, p) in enumerate(sig.parameters.items()):
        where = f"{label}, parameter {pname!r}"
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise RequestError(f"{where}: *args and **kwargs cannot be described to a model; "
                               "name each parameter", param="tools")
        if pname not in hints:
            raise RequestError(f"{where} has no type annotation; annotate it "
                               f"({pname}: str, {pname}: int, ...)", param="tools")
        if p.kind is p.POSITIONAL_ONLY:
            positional.append(pname)
        default = ... if p.default is p.empty else p.default
        # The docstring's description; without one, an Annotated[..., Field(description=)]'s.
        said = described.get(pname)
        info = (Field(default, alias=pname, description=said) if said
                else Field(default, alias=pname))
        fields[f"p{i}"] = (hints[pname], info)
    try:
        model = create_model(fn_name, __config__=ConfigDict(
            populate_by_name=False, protected_namespaces=(), arbitrary_types_allowed=False,
            extra="forbid"), **fields)
    except (pydantic.PydanticUserError, TypeError, NameError) as e:
        raise RequestError(_unsupported(fn, label, sig, hints, e), param="tools") from None
    return model, tuple(positional)


def _unsupported(fn: Callable[..., Any], label: str, sig: inspect.Signature,
                 hints: Mapping[str, Any], error: Exception) -> str:
    """Which parameter's type pydantic cannot describe (each is tried alone)."""
    for pname in sig.parameters:
        try:
            pydantic.TypeAdapter(hints[pname]).json_schema()
        except Exception as e:  # noqa: BLE001 - the first one that fails is the one to name
            why = str(e).split("\n")[0]
            return (f"{label}, parameter {pname!r}: its type {hints[pname]!r} cannot be a JSON "
                    f"schema ({why}); use str, int, float, bool, a Literal, an Enum, a list, "
                    "a dict, a Pydantic model, a dataclass or a TypedDict")
    return f"{label}: its parameters cannot be a JSON schema ({type(error).__name__}: {error})"


def _schema(model: type[BaseModel], label: str) -> dict[str, Any]:
    try:
        schema = model.model_json_schema(by_alias=True)
    except pydantic.PydanticInvalidForJsonSchema as e:
        raise RequestError(f"{label}: {e}; use types a JSON schema can describe",
                           param="tools") from None
    schema.pop("title", None)
    return _untitled(schema)


def _untitled(node: Any) -> Any:
    """``node`` without pydantic's generated ``title`` keywords (tokens the model does
    not need), keeping properties that are named ``title``."""
    if isinstance(node, list):
        return [_untitled(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs"):
            out[key] = {k: _untitled(v) for k, v in value.items()}
        else:
            out[key] = _untitled(value)
    return out


def chat_specs(tools: Sequence[Any] | None) -> list[dict[str, Any]] | None:
    """``tools`` as Chat Completions' definitions, for counting what they cost: a Python
    function or :class:`Tool` as the definition the loop sends for it, a raw OpenAI
    dict as it is (``None`` or empty: ``None``)."""
    if not tools:
        return None
    return [dict(t) if isinstance(t, Mapping) else tool_from(t).chat_spec() for t in tools]


def tool_choice(choice: Any, tools: Sequence[Tool | Mapping[str, Any]]) -> Any:
    """``choice`` in Chat Completions' shape: ``"auto"``, ``"none"``, ``"required"``, or a
    tool's name (``{"type": "function", "function": {"name": ...}}``); a dict as it is.
    A name that is none of the tools' is an error naming them."""
    if choice is None or isinstance(choice, Mapping) or choice in ("auto", "none", "required"):
        return choice
    names = [tool_name(t) for t in tools]
    if not isinstance(choice, str) or choice not in names:
        raise RequestError(f"tool_choice must be 'auto', 'none', 'required' or the name of one "
                           f"of the tools ({', '.join(n for n in names if n) or 'none given'}); "
                           f"got {choice!r}", param="tool_choice")
    return {"type": "function", "function": {"name": choice}}


def tool_name(tool: Tool | Mapping[str, Any]) -> str:
    """A Tool's name, or a raw OpenAI tool dict's (chat's or the Responses API's shape)."""
    if isinstance(tool, Tool):
        return tool.name
    function = tool.get("function")
    return str((function if isinstance(function, Mapping) else tool).get("name") or "")


def tool_output(value: Any) -> str:
    """What a function's return value is sent to the model as: a string as it is,
    anything else as JSON (Pydantic models, dataclasses, dates and enums included)."""
    if isinstance(value, str):
        return value
    return pydantic.TypeAdapter(Any).dump_json(value, fallback=str).decode()
