"""Validate JSON against OpenAI's published OpenAPI spec (its schemas, vendored).

Usage in tests::

    from openapi_schema import validate
    validate(response_json, "CreateChatCompletionResponse")

The spec is OpenAPI 3.1 but still marks some fields ``nullable: true`` (an
OpenAPI 3.0 keyword JSON Schema ignores), so each such schema is rewritten as
``anyOf: [schema, {"type": "null"}]`` before validating; otherwise valid stream
chunks (``finish_reason: null``) would fail. The schemas are vendored in
``tests/data/openai-openapi-schemas.json`` (MIT; ``scripts/vendor_openapi.py``
makes it from the full spec); ``$GPTMAGIC_OPENAPI_SPEC`` points at a full
spec (YAML or JSON) instead.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from lazy import lazy

# ~2 s to import: loaded when a test first validates, not when tests are collected.
jsonschema = lazy("jsonschema")
yaml = lazy("yaml")

__all__ = ["SPEC_PATH", "load_spec", "schema_names", "validate"]

SPEC_PATH = Path(os.environ.get(
    "GPTMAGIC_OPENAPI_SPEC",
    Path(__file__).resolve().parent / "data" / "openai-openapi-schemas.json"))

_URI = "urn:openai-openapi"


def _denullable(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 ``nullable: true`` as a JSON Schema ``anyOf`` with null."""
    if isinstance(node, list):
        return [_denullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _denullable(value) for key, value in node.items()}
    if out.get("nullable") is True:  # not a *property* named "nullable" (a dict)
        del out["nullable"]
        return {"anyOf": [out, {"type": "null"}]}
    return out


@functools.lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    """The spec with ``nullable`` rewritten (parsed once per process)."""
    with open(SPEC_PATH, encoding="utf-8") as f:
        if SPEC_PATH.suffix == ".json":
            return _denullable(json.load(f))
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return _denullable(yaml.load(f, Loader=loader))


@functools.lru_cache(maxsize=1)
def _registry() -> Any:
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resource = Resource.from_contents(load_spec(), default_specification=DRAFT202012)
    return Registry().with_resource(_URI, resource)


@functools.cache
def _validator(schema_name: str) -> Any:
    if schema_name not in load_spec()["components"]["schemas"]:
        raise KeyError(f"{schema_name} is not a schema in {SPEC_PATH}")
    schema = {"$ref": f"{_URI}#/components/schemas/{schema_name}"}
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def schema_names() -> list[str]:
    """Names under ``components/schemas``."""
    return sorted(load_spec()["components"]["schemas"])


def validate(instance: Any, schema_name: str) -> None:
    """Raise :class:`jsonschema.ValidationError` (the most relevant one) if invalid."""
    validator = _validator(schema_name)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise error
