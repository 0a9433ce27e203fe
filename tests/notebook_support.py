"""The teaching notebooks, each executed once per test session by a real kernel.

``test_teaching_notebooks.py`` asserts on their outputs and ``test_report.py``
opens the HTML report in a browser; both use the same runs. The quickstart and
the batch evaluation run through :func:`gptmagic.report.build` (as the demo
does), the others through :func:`gptmagic.report.execute`.

Kernels run with HOME, the gptmagic cache, Jupyter, IPython and matplotlib
directories under a temporary directory, and without API keys, so hosted
models are never called.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import shutil
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from lazy import lazy

from gptmagic import report as rp

nbformat = lazy("nbformat")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
ROOT = Path(tempfile.mkdtemp(prefix="gptmagic-notebooks-"))
atexit.register(shutil.rmtree, ROOT, True)

_KEYS = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "OPENAI_BASE_URL", "GPTMAGIC_PROFILE")


@contextlib.contextmanager
def isolated() -> Iterator[None]:
    """Environment for a kernel: temporary home and tool directories, no keys."""
    with pytest.MonkeyPatch.context() as mp:
        home = ROOT / "home"
        home.mkdir(exist_ok=True)
        mp.setenv("HOME", str(home))
        mp.setenv("GPTMAGIC_CACHE", str(ROOT / "calls.sqlite"))
        mp.setenv("GPTMAGIC_CONFIG", str(home / "gptmagic.toml"))
        for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
                    "IPYTHONDIR", "MPLCONFIGDIR"):
            mp.setenv(var, str(ROOT / var.lower()))
        for var in _KEYS:
            mp.delenv(var, raising=False)
        yield


@functools.cache
def report(js_cache: Path) -> rp.Report:
    """The demo's report (quickstart + batch evaluation, with HTML), built once."""
    with isolated():
        return rp.build(ROOT / "report", rp.DEFAULT_NOTEBOOKS, source=NOTEBOOKS,
                        js_cache=js_cache, log=lambda _: None)


@functools.cache
def executed(name: str, js_cache: Path | None = None) -> Any:
    """Notebook ``name`` after a headless run (from the report build for its notebooks)."""
    if name in rp.DEFAULT_NOTEBOOKS:
        assert js_cache is not None, "pass js_cache for the report's notebooks"
        return nbformat.read(report(js_cache).out / name, as_version=4)
    with isolated():
        return rp.execute(NOTEBOOKS / name, ROOT / "executed" / name, cwd=NOTEBOOKS)


def js_cache(request: pytest.FixtureRequest) -> Path:
    """Where the report's npm files are kept between test runs: pytest's cache folder,
    or a temporary one when the cache plugin is off (then npm runs once per session)."""
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return ROOT / "report-js"
    return Path(cache.mkdir("gptmagic-report-js"))


# -- reading outputs ------------------------------------------------------------------


def code_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def cell(nb: Any, start: str) -> Any:
    """The one code cell whose source starts with ``start``."""
    found = [c for c in code_cells(nb) if c.source.startswith(start)]
    assert len(found) == 1, f"{len(found)} cells start with {start!r}"
    return found[0]


def cell_with(nb: Any, text: str) -> Any:
    """The one code cell whose source contains ``text``."""
    found = [c for c in code_cells(nb) if text in c.source]
    assert len(found) == 1, f"{len(found)} cells contain {text!r}"
    return found[0]


def outputs(c: Any, kind: str | None = None) -> list[dict[str, Any]]:
    return [dict(o) for o in c.get("outputs", []) if kind is None or o["output_type"] == kind]


def stdout(c: Any) -> str:
    return "".join(o["text"] for o in outputs(c, "stream") if o["name"] == "stdout")


def data(c: Any, mime: str) -> list[Any]:
    """Every value of ``mime`` in the cell's rich outputs, in order."""
    return [o["data"][mime] for o in outputs(c) if mime in o.get("data", {})]


def plain(c: Any) -> str:
    """The text/plain of the cell's execute_result."""
    res = outputs(c, "execute_result")
    assert res, f"no result in {c.source[:60]!r}: {json.dumps(outputs(c))[:400]}"
    return res[-1]["data"]["text/plain"]


def widget_state(nb: Any) -> dict[str, Any]:
    """model id -> saved state of every widget the run created."""
    return nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]


def widget_views(c: Any) -> list[str]:
    """Model ids of the widget views a cell displayed."""
    return [v["model_id"] for v in data(c, "application/vnd.jupyter.widget-view+json")]


class _Table(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, text: str) -> None:
        if self._cell is not None:
            self._cell.append(text)


def frame(c: Any) -> list[dict[str, str]]:
    """The DataFrame a cell returned, from its text/html, as one dict per row.

    The index becomes the column ``""`` (or its name, for a named index).
    """
    html = data(c, "text/html")
    assert html, f"no HTML table in {c.source[:60]!r}"
    parser = _Table()
    parser.feed(html[-1])
    rows = [r for r in parser.rows if r]
    header = rows[0]
    body = rows[1:]
    if body and len(body[0]) == len(header) and all(r == [r[0]] + [""] * (len(r) - 1)
                                                     for r in body[:1]):
        body = body[1:]  # pandas' second header row holding a named index
    if header and body and len(body[0]) == len(header) + 1:
        header = ["", *header]
    return [dict(zip(header, r, strict=False)) for r in body]
