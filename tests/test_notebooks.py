"""Notebooks executed headless by a real kernel, with assertions on their outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lazy import lazy

nbformat = lazy("nbformat")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture
def jupyter_env(tmp_path, monkeypatch):
    for var in (
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_DATA_DIR",
        "JUPYTER_RUNTIME_DIR",
        "IPYTHONDIR",
        "MPLCONFIGDIR",
    ):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    return tmp_path


def run_notebook(name: str, tmp: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    lazy("nbclient").NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp)}}
    ).execute()
    nbformat.write(nb, tmp / name)
    return nb


def widget_state(output: dict, state: dict) -> dict:
    """The ``data`` state of the widget an output shows (from the saved notebook state)."""
    model_id = output["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    return state[model_id]["state"]["data"]


def outputs_of(cell) -> list[dict]:
    return [dict(o) for o in cell.get("outputs", [])]


def test_magics_notebook(jupyter_env):
    nb = run_notebook("magics.ipynb", jupyter_env)
    code = [c for c in nb.cells if c.cell_type == "code"]
    by_src = {c.source.splitlines()[0]: c for c in code}

    first = outputs_of(by_src["%%chat --max-tokens 40"])
    results = [o for o in first if o["output_type"] == "execute_result"]
    assert results, first
    md = results[-1]["data"]["text/markdown"]
    assert "finish" in md and "smollm2-135m-instruct" in md
    meta = results[-1]["metadata"]["gptmagic"]
    assert meta["response"]["usage"]["prompt_tokens"] > 0 and meta["response"]["cost_usd"] == "0"

    history = next(c for c in code if c.source.startswith("%chat history"))
    html = "".join(o["data"].get("text/html", "") for o in outputs_of(history) if "data" in o)
    assert "Name one primary colour." in html and "And another one?" in html

    dry = next(c for c in code if "--dry-run" in c.source)
    text = json.dumps(outputs_of(dry))
    assert "Explain tides to a child." in text and "nothing sent" in text.lower()
    # The reply (or dry run) first, then the widget under it, with its state saved.
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert [o["output_type"] for o in outputs_of(dry)] == ["execute_result", "display_data"]
    counter = widget_state(outputs_of(dry)[1], state)
    assert counter["kind"] == "counter" and counter["rows"][-1][0] == "user"
    assert counter["rows"][-1][5] == "Explain tides to a child."
    assert counter["cost"]["low"] == "0" and counter["total"] > 0

    paris_cell = next(c for c in code if c.source.startswith("%%complete --max-tokens 6"))
    kinds = [o["output_type"] for o in outputs_of(paris_cell)]
    assert kinds[-2:] == ["execute_result", "display_data"], kinds
    heat = widget_state(outputs_of(paris_cell)[-1], state)
    assert heat["kind"] == "heatmap" and heat["choices"][0]["t"][0] == " Paris"
    assert all(len(alts) == 3 for alts in heat["choices"][0]["top"])

    tokens_cell = next(c for c in code if c.source.startswith("%%tokens"))
    views = [widget_state(o, state) for o in outputs_of(tokens_cell)]
    assert [v["kind"] for v in views] == ["counter", "tokens"]
    assert [p["encoding"] for p in views[1]["panes"]] == ["o200k_base", "cl100k_base"]
    typed = "Grüße aus Köln! 👋 How many tokens is this?"
    assert "".join(views[1]["panes"][0]["pieces"]).endswith(typed)

    # nbconvert keeps every widget's view and state in the static HTML page.
    from nbconvert import HTMLExporter

    page, _ = HTMLExporter().from_notebook_node(nb)
    assert page.count("application/vnd.jupyter.widget-view+json") >= 4
    assert '"kind": "heatmap"' in page or '"kind":"heatmap"' in page

    probs = next(c for c in code if c.source.startswith("[(t.token"))
    # The prompt is sent as typed (no trailing newline): the first token is " Paris".
    shown = "".join(outputs_of(probs)[0]["data"]["text/plain"])
    assert shown.startswith("[(' Paris'"), shown

    # The embedded model cannot insert: one clear line, no traceback.
    insert = outputs_of(code[-1])
    assert [o["output_type"] for o in insert] == ["stream"] and insert[0]["name"] == "stderr"
    assert insert[0]["text"].startswith("UsageError: HTTP 400") and "'suffix'" in insert[0]["text"]
    assert "Traceback" not in insert[0]["text"]
