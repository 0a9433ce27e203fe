"""The public names: every module's ``__all__`` is sorted and true; old import paths work."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys

import pytest

import gptmagic
import gptmagic.errors


def _modules() -> list[str]:
    names = ["gptmagic"]
    for info in pkgutil.walk_packages(gptmagic.__path__, "gptmagic."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_all_is_sorted_and_every_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        return
    assert list(exported) == sorted(exported), f"{name}.__all__ is not sorted"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names what it lacks: {missing}"


@pytest.mark.parametrize(("module", "names"), [
    ("gptmagic.messages", ["parse_cell", "render_cell", "CellSyntaxError", "interpolate"]),
    ("gptmagic.tokens", ["count_tokens", "acount_tokens", "encoding_for", "get_encoding",
                         "TokenCount", "MessageCount"]),
    ("gptmagic.logprobs", ["from_wire", "mean_logprob", "perplexity", "token_bytes"]),
    ("gptmagic.scorers", ["exact", "contains", "judge", "combine", "Case", "ScorerError"]),
    ("gptmagic.widgets", ["token_counter", "token_view", "logprob_heatmap", "TokenCounter",
                          "TokenView", "LogprobHeatmap", "NoLogprobsError"]),
    ("gptmagic.local", ["ensure_started", "stop_engine", "get_engine", "LocalEngine",
                        "MODEL_ID", "model_path"]),
    ("gptmagic.client", ["Client"]),
])
def test_the_module_paths_users_import_still_work(module: str, names: list[str]) -> None:
    m = importlib.import_module(module)
    assert [n for n in names if not hasattr(m, n)] == []


def test_every_error_class_is_drawn_in_the_tree() -> None:
    """The errors module's docstring draws the whole tree, wherever a class is defined."""
    doc = gptmagic.errors.__doc__ or ""
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (inspect.isclass(obj) and issubclass(obj, gptmagic.errors.GptmagicError)
                    and obj.__module__.startswith("gptmagic")):
                found.append(obj)
    assert len(set(found)) >= 22
    missing = sorted({c.__name__ for c in found
                      if not re.search(rf"^\s*(?:[│├└─ ]+)?{c.__name__}\b", doc, re.M)})
    assert missing == [], f"not in the tree in gptmagic/errors.py: {missing}"


def test_one_class_per_name() -> None:
    """No two unrelated classes share a name across the package (there were two Replys).

    A class that specialises the one it is named after (the public widget classes
    wiring the views to the client) is the same thing, not a second one.
    """
    seen: dict[str, set[type]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        tree = ast.parse(inspect.getsource(module))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                seen.setdefault(node.name, set()).add(getattr(module, node.name))
    clashes = {}
    for n, classes in seen.items():
        roots = {c for c in classes if not any(c is not o and issubclass(c, o) for o in classes)}
        if len(roots) > 1:
            clashes[n] = sorted(f"{c.__module__}.{c.__qualname__}" for c in roots)
    assert clashes == {}


@pytest.mark.parametrize("module, name", [("scorers", "exact"), ("tokens", "count_tokens"),
                                          ("messages", "parse_cell"), ("logprobs", "perplexity")])
def test_public_submodules_after_a_bare_import(module: str, name: str) -> None:
    """``import gptmagic`` then ``gptmagic.scorers.exact`` (issue 13, item 16), in a new process."""
    code = f"import gptmagic; print(callable(gptmagic.{module}.{name}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr[-500:]
