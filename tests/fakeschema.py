"""The fake server's structured outputs: what OpenAI refuses in a strict schema, and a reply
that is an instance of a schema.

Written apart from gptmagic's own rules (gptmagic/core/strict.py) on purpose: the
tests check the client against this, so a rule the client got wrong is not
also wrong here. It checks the rules OpenAI's 400 names most often, in its
words (``Invalid schema for response_format 'NAME': In context=('properties',
'x'), 'additionalProperties' is required to be supplied and to be false.``):

- every object has ``additionalProperties: false``;
- every object's ``required`` lists every key of its ``properties``;
- none of the keywords strict mode does not permit (``oneOf``, ``allOf``,
  ``minLength``, ``uniqueItems``, ...);
- the root is an object, not an ``anyOf``.

:func:`instance` writes a value the schema accepts, deterministically: the
first enum value, ``const``, the first non-null ``anyOf`` option, one item per
array (``minItems`` if more), the minimum number, a string of the format asked.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["instance", "refused_format", "reply_text", "strict_problem"]

_NOT_PERMITTED = ("oneOf", "allOf", "not", "if", "then", "else", "dependentRequired",
                  "dependentSchemas", "patternProperties", "unevaluatedProperties",
                  "propertyNames", "minProperties", "maxProperties", "minLength", "maxLength",
                  "uniqueItems", "contains", "minContains", "maxContains", "prefixItems",
                  "unevaluatedItems")
_FORMATS = {"date-time": "2026-01-02T03:04:05Z", "time": "03:04:05", "date": "2026-01-02",
            "duration": "P1D", "email": "ada@example.com", "hostname": "example.com",
            "ipv4": "192.0.2.1", "ipv6": "2001:db8::1",
            "uuid": "123e4567-e89b-42d3-a456-426614174000"}


def strict_problem(schema: Any, context: tuple[str, ...] = ()) -> str | None:
    """What OpenAI's 400 says of a strict schema (after ``In context=...,``), or None."""
    if not isinstance(schema, dict):
        return None
    here = f"In context={context!r}, "
    if not context and (schema.get("type") != "object" or "anyOf" in schema):
        return here + "schema must be a JSON Schema of 'type: \"object\"', got " \
            f"'type: \"{schema.get('type')}\"'."
    for key in _NOT_PERMITTED:
        if key in schema:
            return here + f"'{key}' is not permitted."
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return here + "'additionalProperties' is required to be supplied and to be false."
        missing = [k for k in schema.get("properties") or {} if k not in
                   (schema.get("required") or [])]
        if missing:
            return here + ("'required' is required to be supplied and to be an array "
                           f"including every key in properties. Missing '{missing[0]}'.")
    children: list[tuple[tuple[str, ...], Any]] = []
    for key in ("properties", "$defs", "definitions"):
        children += [((*context, key, k), v) for k, v in (schema.get(key) or {}).items()]
    if isinstance(schema.get("items"), dict):
        children.append(((*context, "items"), schema["items"]))
    children += [((*context, "anyOf", str(i)), v)
                 for i, v in enumerate(schema.get("anyOf") or [])]
    for where, child in children:
        problem = strict_problem(child, where)
        if problem:
            return problem
    return None


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = root
    for part in filter(None, ref.lstrip("#").split("/")):
        node = node[part]
    return node


def instance(schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A value ``schema`` accepts (see the module docstring); recursion stops at depth 6."""
    root = root if root is not None else schema
    if "$ref" in schema:
        return instance(_resolve(root, schema["$ref"]), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"] or schema["anyOf"]
        return instance(options[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {k: instance(v, root, depth + 1) for k, v in (schema.get("properties") or
                                                             {}).items()}
    if kind == "array":
        count = max(schema.get("minItems", 0), 0 if depth > 6 else 1)
        return [instance(schema.get("items") or {}, root, depth + 1) for _ in range(count)]
    if kind == "string":
        return _FORMATS.get(schema.get("format", ""), "text")
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1
                         if "exclusiveMinimum" in schema else 1)
        return int(low) if kind == "integer" else float(low) + 0.5
    if kind == "boolean":
        return True
    return None


def _spec(fmt: Any) -> dict[str, Any] | None:
    """A json_schema format's ``{name, schema, strict}``: chat's ``response_format`` holds
    it under ``json_schema``, the Responses API's ``text.format`` at its top."""
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema", fmt)
    return spec if isinstance(spec, dict) and isinstance(spec.get("schema"), dict) else None


def refused_format(fmt: Any, param: str) -> tuple[str, str] | None:
    """OpenAI's 400 (message, param) for a strict json_schema format that breaks the rules;
    ``param`` is where the format is (``response_format``, or ``text.format`` whose
    errors name ``text.format.schema``)."""
    spec = _spec(fmt)
    if spec is None or spec.get("strict") is not True:
        return None
    problem = strict_problem(spec["schema"])
    if problem is None:
        return None
    where = "response_format" if param == "response_format" else f"{param}.schema"
    return f"Invalid schema for response_format '{spec.get('name')}': {problem}", where


def reply_text(fmt: Any) -> str | None:
    """The reply to a json_schema format: an instance of its schema, as JSON; else None."""
    spec = _spec(fmt)
    return None if spec is None else json.dumps(instance(spec["schema"]))
