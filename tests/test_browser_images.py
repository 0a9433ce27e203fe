"""An image cell's dry run in real JupyterLab (Debian chromium): the thumbnail shows.

The cell is typed key by key (the editor's auto-indent applies, as for a person)
and run with Shift+Enter. The dry run must show the image as a small thumbnail
with its alt text, drawn by the page (loaded, its pixels red as the file's), and
the request above it with the base64 elided; nothing is sent.
"""

from __future__ import annotations

import base64
import io
import textwrap
from pathlib import Path
from typing import Any

import pytest
from browser_support import artifacts_dir, cell_at, jupyter_server, notebook_page
from lazy import lazy
from PIL import Image

nbformat = lazy("nbformat")

pytestmark = pytest.mark.timeout(180)

NOTEBOOK = "images.ipynb"
ALT = "a red square"


def _write(root: Path) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), (220, 20, 20)).save(buf, "PNG")
    (root / "red.png").write_bytes(buf.getvalue())
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent("""\
        %load_ext gptmagic""")), nbformat.v4.new_code_cell("")]
    nbformat.write(nb, root / NOTEBOOK)
    return buf.getvalue()


def test_the_dry_run_shows_the_image_thumbnail_in_jupyterlab(browser: Any,
                                                             tmp_path: Path) -> None:
    raw = _write(tmp_path)
    shots = artifacts_dir()
    with jupyter_server("lab", tmp_path) as (url, token), notebook_page(
            browser, url, token, NOTEBOOK, failure="jupyter-images-failure.png") as page:
        cell_at(page, 0).locator(".cm-content").click()
        page.keyboard.press("Shift+Enter")
        cell_at(page, 0).locator(".jp-InputArea-prompt").filter(has_text="[1]").wait_for()

        cell_at(page, 1).locator(".cm-content").click()
        for i, line in enumerate(["%%chat -m openai:gpt-4o --dry-run",
                                  f"user: What colour is this? ![{ALT}](red.png){{detail=low}}"]):
            if i:
                page.keyboard.press("Enter")
            page.keyboard.type(line, delay=5)
        page.keyboard.press("Shift+Enter")
        out = cell_at(page, 1).locator(".jp-OutputArea")
        img = out.locator(f'img[alt="{ALT}"]')
        img.wait_for(timeout=60_000)
        img.scroll_into_view_if_needed()
        page.wait_for_function("(el) => el.complete && el.naturalWidth > 0",
                               arg=img.element_handle())
        page.screenshot(path=str(shots / "jupyter-image-dry-run.png"))

        # A thumbnail of at most 96 px, drawn on the page from the file's pixels.
        natural = img.evaluate("el => [el.naturalWidth, el.naturalHeight]")
        assert natural == [96, 64]
        box = img.bounding_box()
        assert box is not None and 0 < box["width"] <= 96 and 0 < box["height"] <= 96
        shot = Image.open(io.BytesIO(img.screenshot())).convert("RGB")
        r, g, b = shot.getpixel((shot.width // 2, shot.height // 2))
        assert r > 180 and g < 80 and b < 80, (r, g, b)

        text = out.inner_text()
        # The cell's line 1 is the first below %%chat, as in every "cell line" message.
        assert "Dry run — nothing sent" in text and ALT in text and "red.png (line 1)" in text
        assert "data:image/png;base64,… (" in text  # the body elides the image
        counter = out.filter(has_text="images estimated with gpt-4o's tile rule")
        counter.wait_for()
        out.screenshot(path=str(shots / "jupyter-image-dry-run-output.png"))
        piece = base64.b64encode(raw).decode()[40:100]
        assert piece not in out.inner_html()  # only the thumbnail's own bytes are on the page
