"""gptmagic.state: one object for the process-wide settings, and no other module-level state."""

from __future__ import annotations

import ast
from pathlib import Path

import gptmagic
from gptmagic import state
from gptmagic.errors import redact, register_secret

PACKAGE = Path(gptmagic.__file__).parent

#: Module-level mutable objects that are caches of immutable things, not settings.
ALLOWED = {
    ("catalog/tokens.py", "_cache"),  # built tiktoken encodings
    ("catalog/genai.py", "_LOOKUPS"),  # price-table lookups, keyed by the table's identity
    ("state.py", "_current"),  # the one state object itself
}


def test_reset_forgets_every_setting_made_in_code():
    gptmagic.add_profile("temp", base_url="http://127.0.0.1:9/v1", default_model="m")
    gptmagic.register_model("temp-model", context_window=1000, max_output_tokens=100)
    gptmagic.set_price("temp-model", input_per_mtok="1", output_per_mtok="2")
    register_secret("sk-temporary-secret")
    s = state.current()
    s.prompted_keys["temp"] = "typed"
    assert "temp" in gptmagic.profiles() and redact("sk-temporary-secret") == "[REDACTED]"
    assert gptmagic.model_info("temp-model").context_window == 1000
    fresh = state.reset()
    assert fresh is state.current() and fresh is not s
    assert "temp" not in gptmagic.profiles() and not fresh.prompted_keys
    assert gptmagic.model_info("temp-model").context_window is None
    assert redact("sk-temporary-secret") == "sk-temporary-secret"
    assert not gptmagic.cost_of({"prompt_tokens": 1, "completion_tokens": 1}, "temp-model").known


def test_reset_keeps_the_live_resources_unless_asked():
    s = state.current()
    s.client, s.portal, s.engine = "c", "p", "e"
    try:
        kept = state.reset()
        assert (kept.client, kept.portal, kept.engine) == ("c", "p", "e")
        gone = state.reset(keep_resources=False)
        assert (gone.client, gone.portal, gone.engine) == (None, None, None)
    finally:
        state.reset(keep_resources=False)


def test_the_state_repr_shows_no_key():
    s = state.current()
    s.prompted_keys["p"] = "sk-typed-in-key-42"
    s.secrets.add("sk-typed-in-key-42")
    assert "sk-typed-in-key-42" not in repr(s)


def _module_state(path: Path) -> list[str]:
    """Names a module binds at top level to a mutable container, or rebinds with ``global``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        mutable = isinstance(value, ast.Dict | ast.List | ast.Set) or (
            isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
            and value.func.id in {"dict", "list", "set", "defaultdict", "OrderedDict"})
        if mutable:
            found += [t.id for t in targets if isinstance(t, ast.Name) and t.id != "__all__"]
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            found += node.names
    return found


def test_no_module_level_state_outside_the_state_object():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for name in _module_state(path):
            if (rel, name) not in ALLOWED and not name.isupper():
                offenders.append(f"{rel}: {name}")
    assert offenders == [], "module-level mutable state; put it on gptmagic.state"
