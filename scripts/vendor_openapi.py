"""Vendor the part of OpenAI's OpenAPI spec that gptmagic's tests validate against.

Usage: python scripts/vendor_openapi.py PATH/TO/openai-openapi.yaml

Writes ``tests/data/openai-openapi-schemas.json``: the named component schemas
below and every schema they reference, unchanged, and the operations the
embedded server implements (``PATHS``, their 200 answers only, without
OpenAI's ``x-`` documentation fields), with the spec's title, version and MIT
licence. Re-run it when OpenAI publishes a new spec.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

# What the tests validate today, and what the Responses / Batch work will need.
ROOTS = [
    "CreateChatCompletionRequest", "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse", "CreateCompletionRequest", "CreateCompletionResponse",
    "ListModelsResponse", "Model",
    "CreateResponse", "Response", "ResponseStreamEvent", "ResponseUsage",
    "TokenCountsBody", "TokenCountsResource",
    "Batch", "CreateBatchRequest", "OpenAIFile", "ListBatchesResponse", "DeleteFileResponse",
]
# The operations the embedded server implements: schemathesis tests them from the spec.
PATHS = {"/chat/completions": "post", "/completions": "post", "/models": "get",
         "/responses": "post", "/responses/input_tokens": "post"}
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "openai-openapi-schemas.json"


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def main(spec_path: str) -> None:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(Path(spec_path).read_text(encoding="utf-8"), Loader=loader)
    schemas = spec["components"]["schemas"]
    paths: dict[str, Any] = {}
    for path, method in PATHS.items():
        operation = {k: v for k, v in spec["paths"][path][method].items()
                     if not k.startswith("x-")}
        # Only the 200 answer: the adapter's errors are checked against OpenAI's
        # error shape by the tests themselves.
        operation["responses"] = {"200": operation["responses"]["200"]}
        paths[path] = {method: operation}
    keep: set[str] = set()
    roots: set[str] = set()
    _refs(paths, roots)
    todo = sorted(set(ROOTS) | roots | {"ErrorResponse"})
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        found: set[str] = set()
        _refs(schemas[name], found)
        todo += sorted(found - keep)
    out = {
        "openapi": spec["openapi"],
        "info": {**spec["info"], "x-gptmagic-note": (
            "A subset of OpenAI's published OpenAPI description (MIT licence, "
            "https://github.com/openai/openai-openapi): the component schemas gptmagic's "
            "tests use and the operations its embedded server implements, unchanged. Made by scripts/vendor_openapi.py.")},
        "servers": spec["servers"],
        "paths": paths,
        "components": {"schemas": {name: schemas[name] for name in sorted(keep)}},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=None, separators=(",", ":"), sort_keys=True) + "\n",
                   encoding="utf-8")
    print(f"{OUT}: {len(keep)} schemas, {OUT.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(sys.argv[1])
