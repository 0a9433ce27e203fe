"""Browser test support: Debian chromium, a static file server, a Jupyter server.

Everything here binds to loopback only, is bounded in time, and stops what it
started by PID. A missing chromium or playwright is an error, not a skip: the
browser tests are part of the normal suite and CI must fail when a dependency
is missing (see the project notes on browser tests for the recipe these follow).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CHROMIUM_ARGS",
    "JUPYTER_SETTINGS",
    "api_get",
    "artifacts_dir",
    "chromium",
    "chromium_path",
    "free_port",
    "harness_site",
    "jupyter_server",
    "serve_dir",
]

REPO = Path(__file__).resolve().parent.parent

#: Flags for headless Debian chromium on a machine without GPU or network.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: JupyterLab settings that avoid the cold-server race and the news popup.
JUPYTER_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

_INSTALL_HINT = (
    "The browser tests need Debian's chromium and the playwright package: "
    "'apt-get install -y chromium' and 'pip install -e .[dev]' (never "
    "'playwright install'); see the project notes on browser tests."
)


def artifacts_dir() -> Path:
    """Where screenshots go: ``$GPTMAGIC_ARTIFACTS`` or ``<repo>/test-artifacts/``."""
    path = Path(os.environ.get("GPTMAGIC_ARTIFACTS") or REPO / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def chromium_path() -> str:
    """The chromium executable, or an AssertionError saying how to install it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise AssertionError(f"chromium not found on PATH. {_INSTALL_HINT}")
    return path


@contextlib.contextmanager
def chromium(*, timeout_ms: float = 30_000) -> Iterator[Any]:
    """Launch headless Debian chromium through playwright; yield the Browser.

    Playwright gives each launch a fresh temporary ``--user-data-dir`` of its
    own (it refuses one passed in ``args``); ``HOME`` and the XDG directories
    point at a temporary directory too, so chromium writes nothing to the real
    home. The browser is always closed on exit.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AssertionError(f"playwright is not installed ({exc}). {_INSTALL_HINT}") from exc
    executable = chromium_path()
    with tempfile.TemporaryDirectory(prefix="gm-chromium-") as profile:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=executable,
                headless=True,
                args=list(CHROMIUM_ARGS),
                timeout=timeout_ms,
                env={
                    **os.environ,
                    "HOME": profile,
                    "XDG_CONFIG_HOME": os.path.join(profile, "config"),
                    "XDG_CACHE_HOME": os.path.join(profile, "cache"),
                },
            )
            try:
                yield browser
            finally:
                browser.close()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".css": "text/css",
        ".json": "application/json",
    }

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def end_headers(self) -> None:
        # Modules are edited between runs; never let the browser cache them.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


@contextlib.contextmanager
def serve_dir(path: str | os.PathLike[str]) -> Iterator[str]:
    """Serve ``path`` over HTTP on 127.0.0.1 (free port, own thread); yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def harness_site() -> Iterator[str]:
    """Serve the widget harness (tests/browser/harness.*) with the front ends; yield its URL.

    The page at ``<url>harness.html`` exposes ``window.gm`` (``mount``, ``time``,
    ``clear``): it imports ``<view>.js`` and renders it with a fake anywidget model.
    Each ``<view>.js`` served is the module Jupyter gets, built by
    :func:`gptmagic.widgets.views.esm_source` (``common.js`` then the view), not
    the raw file; ``common.js`` itself is not served.
    """
    from gptmagic.views.widgets.views import esm_source

    js_dir = REPO / "gptmagic" / "views" / "widgets" / "js"
    harness = REPO / "tests" / "browser"
    with tempfile.TemporaryDirectory(prefix="gm-harness-") as tmp:
        for src in [*js_dir.glob("*.css"), harness / "harness.html", harness / "harness.js"]:
            shutil.copy(src, Path(tmp) / src.name)
        for view in js_dir.glob("*.js"):
            if view.stem != "common":
                (Path(tmp) / view.name).write_text(esm_source(view.stem), encoding="utf-8")
        with serve_dir(tmp) as url:
            yield url


def _write_settings(config_dir: Path, extra: Mapping[str, dict[str, Any]] | None) -> None:
    """User settings read by both JupyterLab and Notebook 7 (``lab/user-settings``)."""
    for key, value in {**JUPYTER_SETTINGS, **(extra or {})}.items():
        package, plugin = key.rsplit("/", 1)
        target = config_dir / "lab" / "user-settings" / package / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value), encoding="utf-8")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


@contextlib.contextmanager
def jupyter_server(
    kind: str,
    root_dir: str | os.PathLike[str],
    *,
    timeout: float = 60,
    settings: Mapping[str, dict[str, Any]] | None = None,
) -> Iterator[tuple[str, str]]:
    """Run ``jupyter lab`` or ``jupyter notebook`` on loopback; yield ``(url, token)``.

    ``kind`` is ``"lab"`` or ``"notebook"``. Config, data, runtime, IPython and
    matplotlib directories live in a temporary directory (nothing touches
    ``$HOME``); the settings in :data:`JUPYTER_SETTINGS` and ``settings`` (keyed
    ``"@jupyterlab/<package>/<plugin>"``, e.g. the theme:
    ``{"@jupyterlab/apputils-extension/themes": {"theme": "JupyterLab Dark"}}``)
    are written there. Waits for ``/api/status`` at most ``timeout`` seconds;
    stops the server by PID.
    """
    modules = {"lab": "jupyterlab", "notebook": "notebook"}
    if kind not in modules:
        raise ValueError(f"kind must be 'lab' or 'notebook', not {kind!r}")
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="gm-jupyter-") as tmp:
        tmp_path = Path(tmp)
        dirs = {name: tmp_path / name for name in ("config", "data", "runtime", "ipython", "mpl")}
        for d in dirs.values():
            d.mkdir()
        _write_settings(dirs["config"], settings)
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "IPYTHONDIR": str(dirs["ipython"]),
            "MPLCONFIGDIR": str(dirs["mpl"]),
            "JUPYTER_PLATFORM_DIRS": "1",
            "NO_PROXY": "127.0.0.1,localhost,::1",
        }
        env.pop("JUPYTERLAB_SETTINGS_DIR", None)
        env.pop("JUPYTERLAB_WORKSPACES_DIR", None)
        port = free_port()
        cmd = [
            sys.executable, "-m", modules[kind],
            "--no-browser", "--allow-root",
            f"--IdentityProvider.token={token}",
            f"--port={port}", "--port-retries=0", "--ip=127.0.0.1",
            f"--ServerApp.root_dir={os.fspath(root_dir)}",
            "--LabApp.news_url=None",
            "--ServerApp.open_browser=False",
        ]
        log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=os.fspath(root_dir))
        url = f"http://127.0.0.1:{port}/"
        try:
            _wait_ready(proc, url, token, timeout, tmp_path / "server.log")
            yield url, token
        finally:
            _stop(proc)
            log.close()


def _wait_ready(proc: subprocess.Popen[bytes], url: str, token: str, timeout: float,
                log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"{url}api/status",
                                     headers={"Authorization": f"token {token}"})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"jupyter server exited with {proc.returncode}:\n"
                + log_path.read_text(errors="replace")[-4000:]
            )
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(
        f"jupyter server not ready within {timeout} s:\n"
        + log_path.read_text(errors="replace")[-4000:]
    )


def api_get(url: str, token: str, path: str) -> Any:
    """GET ``url + path`` from a server started by :func:`jupyter_server`; the JSON body."""
    request = urllib.request.Request(f"{url}{path}", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read())


def wait_kernel_settled(url: str, token: str, notebook: str, timeout: float = 60) -> str:
    """Poll ``/api/sessions`` until ``notebook``'s kernel is idle and the same for 3
    polls (a cold server may restart the kernel it auto-started); its id."""
    deadline = time.monotonic() + timeout
    seen: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        sessions = [s for s in api_get(url, token, "api/sessions")
                    if s.get("path", "").endswith(notebook) and s.get("kernel")]
        if sessions:
            k = sessions[0]["kernel"]
            seen.append((k["id"], k.get("execution_state", "")))
            last = seen[-3:]
            if len(last) == 3 and all(s == (last[0][0], "idle") for s in last):
                return last[0][0]
        time.sleep(0.5)
    raise AssertionError(f"the notebook's kernel did not settle in {timeout} s: {seen[-5:]}")


@contextlib.contextmanager
def notebook_page(browser: Any, url: str, token: str, notebook: str, *,
                  path: str = "lab/tree", height: int = 900,
                  failure: str = "jupyter-failure.png") -> Iterator[Any]:
    """A page with ``notebook`` open and its kernel settled; a screenshot named
    ``failure`` in the artifacts when the block fails; the context closed after."""
    ctx = browser.new_context(viewport={"width": 1280, "height": height})
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{url}{path}/{notebook}?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=45_000)
        wait_kernel_settled(url, token, notebook)
        yield page
    except Exception:
        page.screenshot(path=str(artifacts_dir() / failure))
        raise
    finally:
        ctx.close()


def cell_at(page: Any, n: int) -> Any:
    """The ``n``-th cell of the notebook open in JupyterLab's ``page``."""
    return page.locator(".jp-Notebook .jp-Cell").nth(n)
