"""Run notebooks with a real kernel and export them as an HTML report that works offline.

``build()`` executes notebooks headless (nbclient), writes the executed copies,
and exports each one to HTML with nbconvert. Widget state is saved in the
executed notebook; the HTML draws it with the Jupyter widgets HTML manager.
nbconvert's pages load that manager, require.js and MathJax from CDNs, which
fails offline, so the report uses local copies instead: ``require.js``,
``embed-amd.js`` (``@jupyter-widgets/html-manager``) and ``anywidget.js`` (the
anywidget front end, same version as the Python package), installed once with
npm into ``~/.cache/gptmagic/report-js/<versions>/`` and copied into a
``widgets-js/`` folder beside the HTML.
The notebooks use no maths, so MathJax is left out. Markdown outputs (model
replies) are rendered by nbconvert and then sanitised with ``nh3``.

Needs the ``notebooks`` extra (``pip install 'gptmagic[notebooks]'``) and, for
the HTML, ``npm`` the first time (or a filled cache).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from gptmagic.errors import ConfigError
from gptmagic.views.markdown import clean_rendered_markdown

__all__ = ["DEFAULT_NOTEBOOKS", "Report", "build", "execute", "export_html", "main",
           "notebooks_dir", "widget_js"]

#: The notebooks the demo runs: the quickstart and the batch evaluation.
DEFAULT_NOTEBOOKS = ("01-quickstart.ipynb", "06-batch-evaluation.ipynb")

#: The HTML manager built from the same ipywidgets release as ipywidgets 8.1 /
#: jupyterlab_widgets 3.0 (controls 5.0, base 6.0: the same ranges as
#: jupyterlab-manager 5.0.16). Pinned, so the report never drifts from the kernel side.
HTML_MANAGER_VERSION = "1.0.15"
REQUIREJS_VERSION = "2.3.7"
_NPM_TIMEOUT = 300  # seconds; a cold install takes ~20 s here
_INSTALL_HINT = "pip install 'gptmagic[notebooks]'"


@dataclass
class Report:
    """What :func:`build` wrote: executed notebooks, HTML pages, the index, timings."""

    out: Path
    notebooks: list[Path] = field(default_factory=list)
    html: list[Path] = field(default_factory=list)
    index: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def notebooks_dir() -> Path:
    """The project's ``notebooks/`` folder (next to the package in a source checkout)."""
    return Path(__file__).resolve().parent.parent / "notebooks"


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"the report needs {module}: {_INSTALL_HINT}") from None


def execute(src: Path, dst: Path, *, timeout: float = 600, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> Any:
    """Run ``src`` in a fresh ``python3`` kernel (working directory ``cwd``, default the
    notebook's folder) and write the executed copy to ``dst``. Returns the notebook.

    Widget state is stored in the notebook's metadata, so views render later
    without a kernel. A cell error raises ``nbclient.exceptions.CellExecutionError``
    unless the cell is tagged ``raises-exception``.
    """
    nbformat = _need("nbformat")
    nbclient = _need("nbclient")
    nb = nbformat.read(src, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3",
        resources={"metadata": {"path": str(cwd or src.parent)}})
    # The kernel's own stderr (a warning about TCP transport on every start) goes to a
    # temporary file, shown only if the run fails.
    with tempfile.TemporaryFile("w+") as log:
        kwargs: dict[str, Any] = {"stderr": log}
        if env is not None:
            kwargs["env"] = env
        try:
            client.execute(**kwargs)
        except Exception:
            log.seek(0)
            sys.stderr.write(log.read())
            raise
        finally:
            dst.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, dst)
    return nb


def _npm_dir(cache: Path) -> Path:
    anywidget = metadata.version("anywidget")
    key = f"html-manager-{HTML_MANAGER_VERSION}_anywidget-{anywidget}_requirejs-{REQUIREJS_VERSION}"
    return cache / key


def widget_js(cache: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """A folder holding ``require.js``, ``embed-amd.js``, ``anywidget.js`` (and the HTML
    manager's fonts), installed with npm on first use and reused afterwards.

    The cache is keyed by the versions, so upgrading anywidget installs its match.
    """
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") \
        / "gptmagic" / "report-js"
    root = _npm_dir(cache)
    ready = root / "files"
    if (ready / "embed-amd.js").is_file() and (ready / "anywidget.js").is_file():
        return ready
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError("the offline HTML report needs npm once, to fetch the widget "
                          "JavaScript (apt-get install npm); or run with --no-html")
    anywidget = metadata.version("anywidget")
    specs = [f"requirejs@{REQUIREJS_VERSION}",
             f"@jupyter-widgets/html-manager@{HTML_MANAGER_VERSION}",
             f"anywidget@{anywidget}"]
    log(f"gptmagic report: installing {', '.join(specs)} with npm into {root} (once) ...")
    work = root.with_name(root.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "package.json").write_text('{"private": true}\n')
    proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                           *specs], cwd=work, capture_output=True, text=True,
                          timeout=_NPM_TIMEOUT)
    if proc.returncode != 0:
        raise ConfigError(f"npm install {' '.join(specs)} failed:\n{proc.stderr.strip()}")
    modules = work / "node_modules"
    files = work / "files"
    files.mkdir()
    shutil.copy(modules / "requirejs" / "require.js", files / "require.js")
    shutil.copy(modules / "anywidget" / "dist" / "index.js", files / "anywidget.js")
    for f in (modules / "@jupyter-widgets" / "html-manager" / "dist").iterdir():
        # embed-amd.js plus the font files its CSS refers to (relative to the script).
        if f.is_file() and (f.name == "embed-amd.js" or f.suffix in
                            (".woff", ".woff2", ".ttf", ".eot", ".svg")):
            shutil.copy(f, files / f.name)
    shutil.rmtree(modules)
    shutil.rmtree(root, ignore_errors=True)
    work.rename(root)
    return ready


#: Folder beside the HTML pages holding the widget JavaScript (and the manager's fonts).
JS_FOLDER = "widgets-js"

# The lab template, without its MathJax <script> (a CDN URL; the notebooks use no maths),
# and with require.js told where anywidget's front end is (by default it would look for
# ./anywidget.js, then fall back to a CDN).
_TEMPLATE = ("{%- extends 'lab/index.html.j2' -%}\n"
             "{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}\n"
             "{%- block html_head_js_requirejs -%}{{ super() }}\n"
             "<script>require.config({paths: {anywidget: '" + JS_FOLDER + "/anywidget'}});"
             "</script>\n{%- endblock html_head_js_requirejs -%}\n"
             # A Markdown output is a model's text: what nbconvert renders from it goes
             # through nh3 (views.markdown.clean_rendered_markdown) before the page.
             "{% block data_markdown scoped -%}\n"
             "<div class=\"jp-RenderedHTMLCommon jp-RenderedMarkdown jp-OutputArea-output "
             "{{ extra_class }}\" data-mime-type=\"text/markdown\">\n"
             "{{ output.data['text/markdown'] | markdown2html | gm_clean_markdown }}\n"
             "</div>\n{%- endblock data_markdown %}\n")


def export_html(nb: Any, dst: Path, js: Path, title: str | None = None) -> Path:
    """Write ``nb`` as HTML to ``dst``; the widget JavaScript in ``js`` is copied to the
    folder :data:`JS_FOLDER` beside it."""
    _need("nbconvert")
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        extra_loaders=[jinja2.DictLoader({"gptmagic_report.html.j2": _TEMPLATE})],
        template_file="gptmagic_report.html.j2",
        filters={"gm_clean_markdown": clean_rendered_markdown},
        require_js_url=f"{JS_FOLDER}/require.js",
        widget_renderer_url=f"{JS_FOLDER}/embed-amd.js")
    body, _ = exporter.from_notebook_node(
        nb, resources={"metadata": {"name": title or _title(nb, dst.stem)}})
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(body, encoding="utf-8")
    folder = dst.parent / JS_FOLDER
    folder.mkdir(exist_ok=True)
    for f in js.iterdir():
        target = folder / f.name
        if not target.exists() or target.stat().st_size != f.stat().st_size:
            shutil.copy(f, target)
    return dst


def _title(nb: Any, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _index(out: Path, entries: list[tuple[str, str, str, float]]) -> Path:
    rows = "\n".join(
        f'<li><a href="{html.escape(page)}">{html.escape(title)}</a> '
        f'(<a href="{html.escape(ipynb)}">notebook</a>, ran in {secs:.0f} s)</li>'
        for title, page, ipynb, secs in entries)
    page = out / "index.html"
    page.write_text(
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>gptmagic report</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto}"
        "</style></head>\n<body><h1>gptmagic report</h1>\n<p>Notebooks executed on "
        f"{html.escape(time.strftime('%Y-%m-%d %H:%M'))} by a Jupyter kernel; widgets "
        "render from the saved state, with no kernel and no network.</p>\n"
        f"<ul>\n{rows}\n</ul>\n</body></html>\n", encoding="utf-8")
    return page


def build(out: Path | str = "report", notebooks: Sequence[str] = DEFAULT_NOTEBOOKS, *,
          source: Path | None = None, html: bool = True, js_cache: Path | None = None,
          timeout: float = 600, env: dict[str, str] | None = None,
          log: Callable[[str], None] = print) -> Report:
    """Execute ``notebooks`` (names in ``source``, default :func:`notebooks_dir`) into
    ``out``, export each to HTML unless ``html=False``, and write ``out/index.html``.

    The kernels run in the source folder, so notebooks find their ``data/``; it is
    copied to ``out`` as well, so the executed copies can be run again from there.
    """
    source = Path(source) if source is not None else notebooks_dir()
    out = Path(out)
    report = Report(out.resolve())
    js = widget_js(js_cache, log) if html else None
    if (source / "data").is_dir():
        # The executed copies read data/ too when they are run again from `out`.
        shutil.copytree(source / "data", out / "data", dirs_exist_ok=True)
    entries = []
    for name in notebooks:
        src = source / name
        if not src.is_file():
            raise ConfigError(f"no notebook {src}")
        log(f"gptmagic report: running {name} ...")
        t = time.monotonic()
        nb = execute(src, out / name, timeout=timeout, cwd=source, env=env)
        secs = time.monotonic() - t
        report.seconds[name] = secs
        report.notebooks.append((out / name).resolve())
        if js is not None:
            page = export_html(nb, out / (Path(name).stem + ".html"), js)
            report.html.append(page.resolve())
            entries.append((_title(nb, name), page.name, name, secs))
        log(f"gptmagic report: {name} ran in {secs:.1f} s")
    if js is not None:
        report.index = _index(out, entries).resolve()
    return report


def describe(report: Report) -> str:
    """Where everything is and how to open it (printed by ``gptmagic demo --report``)."""
    lines = ["", "Executed notebooks:"]
    lines += [f"  {p}" for p in report.notebooks]
    if report.html:
        lines += ["HTML report (opens offline, widgets included):", f"  {report.index}"]
        lines += [f"  {p}" for p in report.html]
    import importlib.util

    folder = _shell_path(report.out)
    lines += ["", "Open them in JupyterLab:"]
    if importlib.util.find_spec("jupyterlab") is None:
        lines += ["  .venv/bin/pip install jupyterlab      (once; 'bash scripts/test.sh' "
                  "installs it too)"]
    lines += [f"  .venv/bin/jupyter lab {folder}",
              "or open the HTML in any browser (it needs no server and no network):",
              f"  {_shell_path(report.index) if report.index else folder}"]
    return "\n".join(lines)


def _shell_path(p: Path) -> str:
    """``p`` relative to the working directory when it is inside it (shorter to type)."""
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gptmagic.report [--out DIR] [NOTEBOOK ...]``."""
    ap = argparse.ArgumentParser(prog="python -m gptmagic.report", description=__doc__)
    ap.add_argument("notebooks", nargs="*", default=list(DEFAULT_NOTEBOOKS))
    ap.add_argument("--out", default="report")
    ap.add_argument("--no-html", action="store_true")
    args = ap.parse_args(argv)
    report = build(args.out, args.notebooks, html=not args.no_html)
    print(describe(report))
    print(json.dumps({k: round(v, 1) for k, v in report.seconds.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
