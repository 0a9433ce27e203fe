"""Typing a ``%%chat`` cell into real JupyterLab, and stopping it from the Kernel menu.

What the issue reports happens only in the editor: JupyterLab edits a magic cell as
Python, so Enter after a line ending in ``:`` indents the next line. The cells are
typed key by key, run with Shift+Enter, and the request the fake server received
is the proof of what was sent. The interrupt is the menu's Kernel ▸ Interrupt.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from browser_support import artifacts_dir, cell_at, jupyter_server, notebook_page
from fakeserver import Behaviour
from lazy import lazy

nbformat = lazy("nbformat")

pytestmark = pytest.mark.timeout(180)

NOTEBOOK = "typed.ipynb"
KEY = "sk-fake-typed-0123456789abcdef"


def _write_notebook(root: Path, url: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    setup = textwrap.dedent(f"""\
        import os
        os.environ["FAKE_KEY"] = {KEY!r}
        %load_ext gptmagic
        import gptmagic
        gptmagic.add_profile("fake", base_url={url!r}, default_model="fake-model",
                             api_key_env="FAKE_KEY")""")
    dry_run = ("%%chat -m local --no-history --dry-run\n"
               "user (example_user): Hello\nassistant (example_assistant): Bonjour\n"
               "user: Good night")
    nb.cells = [nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell(""),
                nbformat.v4.new_code_cell(""), nbformat.v4.new_code_cell(dry_run)]
    nbformat.write(nb, root / NOTEBOOK)


def _type_lines(page: Any, lines: list[str]) -> None:
    """Type as a person does: each line, then Enter (the editor's auto-indent applies)."""
    for i, line in enumerate(lines):
        if i:
            page.keyboard.press("Enter")
        page.keyboard.type(line, delay=10)


def _run_cell(page: Any, n: int) -> None:
    cell_at(page, n).locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")


def test_typed_cells_keep_their_structure_and_interrupt_keeps_the_reply(
        browser: Any, fake_server: Any, tmp_path: Path) -> None:
    _write_notebook(tmp_path, fake_server.url)
    shots = artifacts_dir()
    with jupyter_server("lab", tmp_path) as (url, token), notebook_page(
            browser, url, token, NOTEBOOK, failure="jupyter-typed-failure.png") as page:
        _run_cell(page, 0)
        cell_at(page, 0).locator(".jp-InputArea-prompt").filter(has_text="[1]").wait_for()

        # 1. system:, Enter, text, Enter, user: hi, typed into the cell.
        cell_at(page, 1).locator(".cm-content").click()
        _type_lines(page, ["%%chat -p fake", "system:", "You are a pirate.", "user: hi"])
        typed = cell_at(page, 1).locator(".cm-content").inner_text()
        page.keyboard.press("Shift+Enter")
        cell_at(page, 1).locator(".jp-OutputArea").filter(has_text="echo: hi").wait_for()
        page.screenshot(path=str(shots / "jupyter-typed-markers.png"))
        sent = fake_server.requests[-1].json["messages"]
        # Whatever the editor's indentation, two messages were sent: a system, a user.
        assert [m["role"] for m in sent] == ["system", "user"], (typed, sent)
        assert sent[0]["content"].strip() == "You are a pirate."
        assert sent[1]["content"] == "hi", (typed, sent)

        # 4. A long reply streams; Kernel ▸ Interrupt stops it and keeps the text.
        fake_server.set_default(Behaviour(text=" ".join(f"w{i}" for i in range(600)),
                                          stream_delay=0.02))
        cell_at(page, 2).locator(".cm-content").click()
        _type_lines(page, ["%%chat -p fake --thread long", "user: talk at length"])
        page.keyboard.press("Shift+Enter")
        out = cell_at(page, 2).locator(".jp-OutputArea")
        out.filter(has_text="w20 ").wait_for()
        page.locator(".lm-MenuBar-itemLabel:text-is('Kernel')").click()
        page.locator(".lm-Menu-itemLabel:text-is('Interrupt Kernel')").click()
        out.filter(has_text="interrupted").wait_for()
        page.screenshot(path=str(shots / "jupyter-interrupted.png"))
        text = out.inner_text()
        assert "w20" in text and "w599" not in text
        assert "stopped after" in text and "%chat keep" in text
        assert "Traceback" not in text and "KeyboardInterrupt" not in text
        assert out.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0

        # 3. The dry run on the embedded model shows the text its engine reads.
        _run_cell(page, 3)
        out = cell_at(page, 3).locator(".jp-OutputArea")
        out.filter(has_text="The engine receives this text").wait_for(timeout=90_000)
        out.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "jupyter-dry-run-engine-prompt.png"))
        text = out.inner_text()
        assert "example_user: Hello" in text and "<|im_start|>assistant" in text
        assert "example_assistant:" not in text

