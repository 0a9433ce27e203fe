"""``%%chat --tools ... --approve`` in real JupyterLab: the Yes/No asked in the input box.

A cell typed key by key asks to run two calls; the test answers Yes to the first and
No to the second in the box JupyterLab shows under the cell (the kernel's ``input()``),
then reads what the notebook shows: the step collapsed, opened by a click, the call
that ran and the one declined, and the final answer. A second cell is stopped from the
Kernel menu while it waits for an answer: the step is kept, and no traceback shows.
The fake server's requests prove what the model was sent.
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

pytestmark = pytest.mark.timeout(240)

NOTEBOOK = "tools.ipynb"
KEY = "sk-fake-tools-browser-0123456789abcdef"


def _write_notebook(root: Path, url: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    setup = textwrap.dedent(f'''\
        import os
        os.environ["FAKE_KEY"] = {KEY!r}
        %load_ext gptmagic
        import gptmagic
        gptmagic.add_profile("fake", base_url={url!r}, default_model="fake-model",
                             api_key_env="FAKE_KEY")
        ran = []

        def get_weather(city: str) -> str:
            """The weather now in a city."""
            ran.append(city)
            return f"18 C and sunny in {{city}}"''')
    nb.cells = [nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell(""),
                nbformat.v4.new_code_cell("ran"), nbformat.v4.new_code_cell("")]
    nbformat.write(nb, root / NOTEBOOK)


def _type_and_run(page: Any, n: int, lines: list[str]) -> None:
    cell_at(page, n).locator(".cm-content").click()
    for i, line in enumerate(lines):
        if i:
            page.keyboard.press("Enter")
        page.keyboard.type(line, delay=10)
    page.keyboard.press("Shift+Enter")


def _answer(page: Any, cell: Any, question: str, answer: str) -> str:
    """Wait for the input box asking ``question``, type ``answer`` and Enter; the
    cell's output text while it was asked."""
    prompt = cell.locator(".jp-Stdin-prompt").filter(has_text=question)
    prompt.wait_for()
    shown = cell.locator(".jp-OutputArea").inner_text()
    box = cell.locator(".jp-Stdin-input").last
    box.fill(answer)
    box.press("Enter")
    return str(shown)


def test_approve_yes_and_no_in_jupyterlab(browser: Any, fake_server: Any,
                                          tmp_path: Path) -> None:
    _write_notebook(tmp_path, fake_server.url)
    shots = artifacts_dir()
    fake_server.plan(Behaviour(tool_calls=[("get_weather", {"city": "Paris"}),
                                           ("get_weather", {"city": "Rome"})]), Behaviour())
    with jupyter_server("lab", tmp_path) as (url, token), notebook_page(
            browser, url, token, NOTEBOOK, failure="jupyter-tools-failure.png") as page:
        cell_at(page, 0).locator(".cm-content").click()
        page.keyboard.press("Shift+Enter")
        cell_at(page, 0).locator(".jp-InputArea-prompt").filter(has_text="[1]").wait_for()

        # 1. Two calls asked for: Yes to Paris, No to Rome, typed into the input box.
        cell = cell_at(page, 1)
        _type_and_run(page, 1, ["%%chat -p fake --tools get_weather --approve",
                                "user: weather in Paris and Rome?"])
        first = _answer(page, cell, 'Run get_weather({"city": "Paris"})? [y/N]', "y")
        page.screenshot(path=str(shots / "jupyter-tools-approve-asked.png"))
        assert 'waiting for your answer: run get_weather({"city": "Paris"})?' in first
        _answer(page, cell, 'Run get_weather({"city": "Rome"})? [y/N]', "n")
        out = cell.locator(".jp-OutputArea")
        out.filter(has_text="summed over 2 steps").wait_for()
        step = out.locator("details").first
        assert step.get_attribute("open") is None  # the step is collapsed
        step.locator("summary").click()  # and opens on a click
        out.filter(has_text="declined by you").wait_for()
        out.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "jupyter-tools-approve-done.png"))
        text = out.inner_text()
        assert "step 1 · 2 calls: get_weather, get_weather (1 failed or declined)" in text
        assert "18 C and sunny in Paris" in text and "approved" in text
        assert "Traceback" not in text
        # The model was told of both: the result, and that the user declined.
        results = [m for m in fake_server.requests[1].json["messages"] if m["role"] == "tool"]
        assert results[0]["content"] == "18 C and sunny in Paris"
        assert "declined" in results[1]["content"]

        # Only the approved call ran, in the kernel.
        cell_at(page, 2).locator(".cm-content").click()
        page.keyboard.press("Shift+Enter")
        cell_at(page, 2).locator(".jp-OutputArea").filter(has_text="['Paris']").wait_for()

        # 2. Kernel ▸ Interrupt while the question waits: the step is kept, one note.
        fake_server.plan(Behaviour(tool_calls=[("get_weather", {"city": "Oslo"})]))
        cell = cell_at(page, 3)
        _type_and_run(page, 3, ["%%chat -p fake --tools get_weather --approve --thread t2",
                                "user: and Oslo?"])
        cell.locator(".jp-Stdin-prompt").filter(has_text="Oslo").wait_for()
        page.locator(".lm-MenuBar-itemLabel:text-is('Kernel')").click()
        page.locator(".lm-Menu-itemLabel:text-is('Interrupt Kernel')").click()
        out = cell.locator(".jp-OutputArea")
        out.filter(has_text="%chat keep").wait_for()
        out.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "jupyter-tools-interrupted.png"))
        text = out.inner_text()
        assert "step 1 · get_weather" in text and "stopped after" in text
        assert "no reply text: stopped during the tool steps above" in text
        assert "Traceback" not in text and "KeyboardInterrupt" not in text
        assert len(fake_server.requests) == 3  # nothing was sent after the stop
