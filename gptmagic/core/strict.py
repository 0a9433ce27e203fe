"""OpenAI's rules for a strict JSON schema (Structured Outputs), applied before sending (pure).

A ``json_schema`` response format with ``strict: true`` takes a subset of JSON
Schema (OpenAI's guide, "Structured Outputs", *Supported schemas*):

- the root is an object, not an ``anyOf``;
- every object has ``additionalProperties: false`` and lists every property in
  ``required`` (an optional field is a required one that may be ``null``);
- types ``string``, ``number``, ``integer``, ``boolean``, ``object``, ``array``,
  ``null``, and ``enum``, ``const``, ``anyOf``, ``$defs`` / ``$ref`` (recursion too);
- keywords: ``pattern`` and ``format`` (:data:`FORMATS`) on strings; ``multipleOf``,
  ``minimum``, ``maximum`` and their exclusive forms on numbers; ``items``,
  ``minItems``, ``maxItems`` on arrays; ``title`` and ``description`` anywhere;
- limits (:data:`MAX_PROPERTIES` and the others below): properties in all, levels
  of object nesting, enum values, characters of names and enum/const values.

:func:`strict_schema` makes a schema strict where that changes nothing a valid
reply could hold, and refuses the rest with a
:class:`~gptmagic.errors.RequestError` naming the field and the fix:

- ``additionalProperties: false`` is added where it is missing;
- ``default`` is dropped (every field is required, so a default never applies);
- a ``$ref`` with keywords beside it (pydantic's description of a nested model) is
  inlined, and an ``allOf`` of one schema merged;
- for a schema generated from a Python type (``generated=True``), fields with a
  default (``Optional[X] = None``: pydantic already writes it nullable) are
  added to ``required``, and pydantic's discriminated unions (``oneOf`` with a
  ``discriminator``, branches told apart by their tag) become ``anyOf``. A
  hand-written dict schema is the user's contract: a property missing from its
  ``required`` is an error, not a silent change of meaning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gptmagic.errors import RequestError

__all__ = ["FORMATS", "MAX_CHARS", "MAX_DEPTH", "MAX_ENUM_VALUES", "MAX_LARGE_ENUM_CHARS",
           "MAX_PROPERTIES", "strict_schema"]

#: OpenAI's limits on one strict schema (the guide's *Objects have limitations*).
MAX_PROPERTIES = 5000
MAX_DEPTH = 10
MAX_ENUM_VALUES = 1000
MAX_CHARS = 120_000
#: An enum of more than 250 values may hold at most this many characters in all.
MAX_LARGE_ENUM_CHARS = 15_000
_LARGE_ENUM = 250

#: The string formats strict mode supports.
FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4",
                     "ipv6", "uuid"})
_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
_ANYWHERE = frozenset({"type", "title", "description", "enum", "const", "anyOf", "$ref"})
_BY_TYPE = {
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "array": frozenset({"items", "minItems", "maxItems"}),
    "string": frozenset({"pattern", "format"}),
    "number": frozenset({"multipleOf", "minimum", "maximum", "exclusiveMinimum",
                         "exclusiveMaximum"}),
}
_BY_TYPE["integer"] = _BY_TYPE["number"]
#: How to do without a keyword strict mode refuses.
_AFTER = "check it after parsing (or say it in the field's description)"
_CHECK_AFTER = "drop it and " + _AFTER
_FIX = {
    "minLength": "drop the length limit (Field(min_length=...)) and " + _AFTER,
    "maxLength": "drop the length limit (Field(max_length=...)) and " + _AFTER,
    "uniqueItems": "use a list instead of a set, and remove duplicates after parsing",
    "prefixItems": "use a list (list[X]) or a model with named fields instead of a tuple",
    "patternProperties": "use a model with named fields instead of free-form keys",
    "oneOf": "use anyOf (strict mode's only union)",
    "allOf": "merge the schemas into one object",
    "not": _CHECK_AFTER, "if": _CHECK_AFTER, "then": _CHECK_AFTER, "else": _CHECK_AFTER,
    "dependentRequired": _CHECK_AFTER, "dependentSchemas": _CHECK_AFTER,
    "minProperties": _CHECK_AFTER, "maxProperties": _CHECK_AFTER,
    "propertyNames": _CHECK_AFTER, "unevaluatedProperties": _CHECK_AFTER,
    "contains": _CHECK_AFTER, "minContains": _CHECK_AFTER, "maxContains": _CHECK_AFTER,
    "unevaluatedItems": _CHECK_AFTER,
}
_NOT_AN_OBJECT = ("wrap it in a model with one field (class Answer(BaseModel): items: "
                  "list[int]) or an object schema with one property")


def _optional_hint(prop: Any) -> str:
    """How to keep ``prop`` optional once required: let it be null, in its own type
    (``"type": ["integer", "null"]``); nothing when its type already allows null."""
    kind = prop.get("type") if isinstance(prop, Mapping) else None
    kinds = [kind] if isinstance(kind, str) else kind if isinstance(kind, list) else None
    if kinds is None:
        return ('; to make it optional, allow null as well: "anyOf": [<its schema>, '
                '{"type": "null"}]')
    if "null" in kinds:
        return " (its type already allows null, so it stays optional)"
    nullable = json.dumps({"type": [*kinds, "null"]})[1:-1]  # "type": ["integer", "null"]
    return f"; to make it optional, allow null as well: {nullable}"


def _bad(where: str, what: str, fix: str) -> RequestError:
    return RequestError(f"schema {where}: {what}; {fix}", param="schema")


@dataclass
class _Tally:
    """What the limits count, over the whole schema."""

    properties: int = 0
    enum_values: int = 0
    chars: int = 0


class _Strict:
    """One walk over a schema: each node checked, made strict, and counted."""

    def __init__(self, root: dict[str, Any], *, generated: bool) -> None:
        self.root, self.generated = root, generated
        self.tally = _Tally()
        self.inlining: list[str] = []  # the $refs being inlined, outermost first

    def resolve(self, ref: Any, where: str) -> dict[str, Any]:
        """What a local ``$ref`` (``#``, ``#/$defs/X``, any ``#/...`` pointer) points at."""
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise _bad(where, f"$ref {ref!r} is not a reference inside the schema",
                       "strict schemas take only local references (#/$defs/Name)")
        node: Any = self.root
        for part in filter(None, ref[1:].split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                raise _bad(where, f"$ref {ref!r} points at nothing",
                           "define it under $defs, or fix the reference")
            node = node[part]
        if not isinstance(node, Mapping):
            raise _bad(where, f"$ref {ref!r} is not a schema", "point it at a schema")
        return dict(node)

    def node(self, given: Any, where: str) -> dict[str, Any]:
        """``given`` made strict (a new dict), or the error that says why it cannot be."""
        if not isinstance(given, Mapping):
            raise _bad(where, f"a schema must be an object, got {json.dumps(given)[:40]}",
                       "give a type ({\"type\": \"string\"}), or name a model")
        s = dict(given)
        s.pop("default", None)
        if "allOf" in s:
            parts = s.pop("allOf")
            if not isinstance(parts, list) or len(parts) != 1:
                raise _bad(where, "allOf combines schemas", _FIX["allOf"])
            s = {**dict(parts[0]), **s}
        if "$ref" in s and len(s) > 1:
            return self._inlined(s, where)
        if "oneOf" in s and self.generated:
            s["anyOf"] = s.pop("oneOf")
            s.pop("discriminator", None)
        fmt = s.get("format")
        if fmt is not None and fmt not in FORMATS:  # before its minLength (a URL's)
            raise _bad(where, f"the string format {fmt!r} is not supported (strict mode "
                       f"takes {', '.join(sorted(FORMATS))})",
                       "use a plain string (str) and check the format after parsing")
        refused = next((k for k in s if k in _FIX), None)
        if refused is not None:
            raise _bad(where, f"the keyword {refused!r} is not supported", _FIX[refused])
        types = self._types(s, where)
        for key in s:
            if key not in _ANYWHERE and not any(key in _BY_TYPE.get(t, ()) for t in types):
                on = f" on type {'/'.join(types)}" if types else ""
                raise _bad(where, f"{key!r} is not a keyword strict schemas support{on}",
                           "remove it")
        if "$ref" in s:
            self.resolve(s["$ref"], where)
            return s
        self._count(s, where)
        if "object" in types:
            self._object(s, where)
        if "array" in types:
            if not isinstance(s.get("items"), Mapping):
                raise _bad(where, "an array needs 'items'", "give the type of its items "
                           "(list[str], or {\"items\": {\"type\": \"string\"}})")
            s["items"] = self.node(s["items"], f"{where}[]")
        if "anyOf" in s:
            options = s["anyOf"]
            if not isinstance(options, list) or not options:
                raise _bad(where, "anyOf must be a non-empty list", "list the options")
            s["anyOf"] = [self.node(o, f"{where}.anyOf[{i}]") for i, o in enumerate(options)]
        return s

    def _inlined(self, s: dict[str, Any], where: str) -> dict[str, Any]:
        """A ``$ref`` with keywords beside it, inlined; within its own definition (a
        recursive model's described self-reference) a bare ``$ref``: inlining it again
        would never end, so its notes (a description) are dropped."""
        ref = s.pop("$ref")
        if ref in self.inlining:
            return self.node({"$ref": ref}, where)
        self.inlining.append(ref)
        try:
            return self.node({**self.resolve(ref, where), **s}, where)
        finally:
            self.inlining.pop()

    def _types(self, s: dict[str, Any], where: str) -> list[str]:
        """The node's types; an error when it has none of type, enum, const, anyOf, $ref."""
        kind = s.get("type")
        types = [kind] if isinstance(kind, str) else kind if isinstance(kind, list) else None
        if kind is None:
            if not any(k in s for k in ("enum", "const", "anyOf", "$ref")):
                raise _bad(where, "no type (a field typed Any, or a schema without 'type')",
                           "give it a type (str, int, a model...)")
            return []
        if not types or not all(t in _TYPES for t in types):
            raise _bad(where, f"type {kind!r} is not one of {', '.join(_TYPES)}",
                       "use one of those (or a list of them, with 'null' for optional)")
        return list(types)

    def _object(self, s: dict[str, Any], where: str) -> None:
        extra = s.setdefault("additionalProperties", False)
        if extra is not False:
            raise _bad(where, "free-form keys (additionalProperties, e.g. dict[str, int])",
                       "strict schemas need named fields: use a model, or a list of "
                       "{key, value} objects; or set additionalProperties to false")
        props = s.setdefault("properties", {})
        if not isinstance(props, Mapping):
            raise _bad(where, "'properties' must be an object", "map each name to a schema")
        required = s.get("required", [])
        if not isinstance(required, list):
            raise _bad(where, "'required' must be a list of names", "list every property")
        unknown = [r for r in required if r not in props]
        if unknown:
            raise _bad(where, f"'required' names {unknown[0]!r}, which is not a property",
                       "add it to 'properties' or drop it from 'required'")
        missing = [p for p in props if p not in required]
        if missing and not self.generated:
            raise _bad(f"{where}.{missing[0]}", "not in 'required' (strict mode requires "
                       "every property)", f"add {missing[0]!r} to 'required'"
                       + _optional_hint(props[missing[0]]))
        s["required"] = list(props) if missing else required  # in the properties' order
        s["properties"] = {k: self.node(v, f"{where}.{k}") for k, v in props.items()}
        self.tally.properties += len(props)
        self.tally.chars += sum(len(k) for k in props)

    def _count(self, s: dict[str, Any], where: str) -> None:
        values = s.get("enum")
        if values is not None:
            if not isinstance(values, list) or not values:
                raise _bad(where, "enum must be a non-empty list", "list the values")
            chars = sum(len(v) for v in values if isinstance(v, str))
            self.tally.enum_values += len(values)
            self.tally.chars += chars
            if len(values) > _LARGE_ENUM and chars > MAX_LARGE_ENUM_CHARS:
                raise _bad(where, f"an enum of {len(values)} values with {chars:,} "
                           f"characters in all (above {_LARGE_ENUM} values, strict mode "
                           f"allows {MAX_LARGE_ENUM_CHARS:,})", "shorten or split the enum")
        if isinstance(s.get("const"), str):
            self.tally.chars += len(s["const"])

    def depth(self, s: dict[str, Any], where: str, level: int = 0,
              stack: tuple[str, ...] = ()) -> None:
        """Refuse an object nested more than :data:`MAX_DEPTH` levels deep (the root is
        level 1; a recursive $ref is followed once)."""
        if "$ref" in s:
            if s["$ref"] not in stack:
                self.depth(self.resolve(s["$ref"], where), where, level, (*stack, s["$ref"]))
            return
        kind = s.get("type")
        level += "object" in ([kind] if isinstance(kind, str) else kind or [])
        if level > MAX_DEPTH:
            raise _bad(where, f"an object nested {level} levels deep; strict schemas allow "
                       f"{MAX_DEPTH}", "flatten the structure")
        for k, v in (s.get("properties") or {}).items():
            self.depth(v, f"{where}.{k}", level, stack)
        if "items" in s:
            self.depth(s["items"], f"{where}[]", level, stack)
        for i, option in enumerate(s.get("anyOf") or []):
            self.depth(option, f"{where}.anyOf[{i}]", level, stack)


def strict_schema(schema: Mapping[str, Any], *, generated: bool, label: str) -> dict[str, Any]:
    """``schema`` made strict (a new dict; see the module docstring), or a
    :class:`~gptmagic.errors.RequestError` naming the field (``label`` is the root's
    name in paths: ``Person.address.city``) and how to fix it. ``generated``: the
    schema was written by pydantic from a Python type, not by hand."""
    root = dict(schema)
    walk = _Strict(root, generated=generated)
    if set(root) == {"$ref", "$defs"} or set(root) == {"$ref", "definitions"}:
        root = {**walk.resolve(root["$ref"], label), **root}  # a recursive model's root
        root.pop("$ref")
        walk.root = root
    if "anyOf" in root or "oneOf" in root or root.get("type") != "object":
        got = "a union (anyOf)" if "anyOf" in root or "oneOf" in root else (
            f"type {root.get('type')!r}" if "type" in root else "no type")
        raise _bad(label, f"the root of a strict schema must be an object, got {got}",
                   _NOT_AN_OBJECT)
    defs_key = "$defs" if "$defs" in root else "definitions"
    defs = root.get(defs_key)
    out = walk.node({k: v for k, v in root.items() if k != defs_key}, label)
    if defs is not None:
        if not isinstance(defs, Mapping):
            raise _bad(label, f"'{defs_key}' must be an object", "map each name to a schema")
        prefix = "" if generated else f"{defs_key}."
        out[defs_key] = {k: walk.node(v, f"{prefix}{k}") for k, v in defs.items()}
        walk.tally.chars += sum(len(k) for k in defs)
    walk.root = out
    walk.depth(out, label)
    _limits(walk.tally, label)
    return out


def _limits(t: _Tally, label: str) -> None:
    for n, limit, what, fix in (
            (t.properties, MAX_PROPERTIES, "properties", "split it into several requests"),
            (t.enum_values, MAX_ENUM_VALUES, "enum values", "shorten the enums"),
            (t.chars, MAX_CHARS, "characters of property names, definition names and "
             "enum/const values", "shorten them")):
        if n > limit:
            raise _bad(label, f"{n:,} {what} in all; strict schemas allow {limit:,}", fix)
