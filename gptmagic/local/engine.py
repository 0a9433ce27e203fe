"""Run the embedded model in a child process and hand out its URL.

The engine (llama.cpp via xllamacpp) runs in ``python -m gptmagic.local.server``
rather than in the notebook kernel: its C code logs to the process's stderr,
holds a few hundred MB and is not interruptible, none of which belongs in a
kernel. The child announces its URL on stdout as one JSON line and watches
its stdin, so it exits on its own if this process dies without calling
:meth:`LocalEngine.stop`. Its stderr goes to a log file in a temp directory,
never to the notebook.

Typical use::

    url = ensure_started()          # "http://127.0.0.1:PORT/v1", started once per process
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from gptmagic.catalog.embedded import SMOLLM2, EmbeddedModel
from gptmagic.errors import ConfigError
from gptmagic.local.gemma import GEMMA_PACKAGE
from gptmagic.local.model import INSTALL_HINT, require_installed
from gptmagic.state import current

__all__ = ["DEFAULT_START_TIMEOUT", "LocalEngine", "ensure_started", "get_engine", "stop_engine"]

#: Seconds to wait for the child's first line; loading takes ~1 s, more on a busy machine.
DEFAULT_START_TIMEOUT = 60.0

#: Seconds :meth:`LocalEngine.stop` waits after SIGTERM before it kills.
_STOP_GRACE = 5.0

_LOG_TAIL_LINES = 20


def _check_installed(model: EmbeddedModel, gemma_package: str) -> None:
    """Fail fast, in this process, with an install hint (no child needed to find out)."""
    if importlib.util.find_spec("xllamacpp") is None:
        raise ConfigError(f"The local engine needs the xllamacpp package. {INSTALL_HINT}")
    require_installed(model, gemma_package)


#: Variable names that hold credentials by convention (OPENAI_API_KEY, HF_TOKEN, ...).
_CREDENTIAL_NAME = re.compile(
    r"(API_?KEY|(^|_)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?))$", re.IGNORECASE)


def _key_env_names() -> set[str]:
    """The variables profiles name as holding a key (added ones and the config file read)."""
    state = current()
    with state.lock:
        names = {getattr(p, "api_key_env", None) for p in state.user_profiles.values()}
        parsed = state.config_file[1] if state.config_file else {}
    profiles = parsed.get("profiles") if isinstance(parsed, dict) else None
    for spec in (profiles or {}).values():
        if isinstance(spec, dict):
            names.add(spec.get("api_key_env"))
    return {n for n in names if isinstance(n, str)}


def _without_keys(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` minus every provider key.

    The engine needs no key, and a child's environment is readable by the
    user's other processes (``/proc/<pid>/environ``) and copied into crash
    reports: a variable goes if its name says it holds a credential, if a
    profile names it as its key, or if its value holds a key gptmagic has used.
    """
    named = _key_env_names()
    state = current()
    with state.lock:
        secrets = list(state.secrets)
    return {k: v for k, v in environ.items()
            if not (_CREDENTIAL_NAME.search(k) or k in named
                    or any(s in v for s in secrets))}


def _child_env() -> dict[str, str]:
    """The parent's environment without keys, plus what the child needs to run well."""
    env = _without_keys(dict(os.environ))
    # The child must import this very gptmagic, even when it is not installed
    # (e.g. a checkout put on sys.path by hand).
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see llama.prepare_environment
    return env


class LocalEngine:
    """One child process serving the embedded models as an OpenAI-compatible API.

    The child loads the model it is first started for, and each other model
    on its first request (:mod:`gptmagic.local.served`): one URL, one process,
    one engine per model inside it. ``gemma_package`` is where Gemma's weights
    are looked for (a test names a missing one to see the install hint).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 extra_args: list[str] | None = None,
                 gemma_package: str = GEMMA_PACKAGE) -> None:
        self.host = host
        self.port = port
        self.extra_args = list(extra_args or [])
        self.gemma_package = gemma_package
        self._preload: EmbeddedModel = SMOLLM2
        self._proc: subprocess.Popen[bytes] | None = None
        self._url: str | None = None
        self._log_dir: tempfile.TemporaryDirectory[str] | None = None
        self._lock = threading.RLock()
        #: Seconds the last :meth:`start` took, for diagnostics and benchmarks.
        self.startup_seconds: float | None = None
        #: Exit status of the last child stopped (0 after a clean SIGTERM shutdown).
        self.last_returncode: int | None = None

    def __repr__(self) -> str:
        state = f"running at {self._url}" if self.running else "stopped"
        return f"<LocalEngine {state}>"

    @property
    def url(self) -> str | None:
        """Base URL ending in ``/v1`` while running, else ``None``."""
        return self._url if self.running else None

    @property
    def pid(self) -> int | None:
        """The child's process id while running."""
        return self._proc.pid if self.running and self._proc else None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        """The child's stderr log (kept until :meth:`stop`)."""
        return Path(self._log_dir.name) / "engine.log" if self._log_dir else None

    def command(self) -> list[str]:
        """The child's command line."""
        return [sys.executable, "-m", "gptmagic.local.server", "--host", self.host,
                "--port", str(self.port), "--watch-stdin", "--preload", self._preload.id,
                "--gemma-package", self.gemma_package, *self.extra_args]

    def require(self, model: EmbeddedModel) -> None:
        """Raise :class:`ConfigError` with the install hint unless ``model`` is installed."""
        require_installed(model, self.gemma_package)

    def start(self, timeout: float = DEFAULT_START_TIMEOUT,
              model: EmbeddedModel | None = None) -> str:
        """Start the child (if not running) and return its base URL (``.../v1``).

        ``model`` (default ``local``) is checked installed, and loaded by a child
        started now before it answers; a running child loads it on first use.
        """
        with self._lock:
            model = model or SMOLLM2
            if self.running and self._url:
                self.require(model)
                return self._url
            self._kill()  # a child that died since the last start
            self._cleanup()
            _check_installed(model, self.gemma_package)
            self._preload = model
            began = time.monotonic()
            self._log_dir = tempfile.TemporaryDirectory(prefix="gptmagic-engine-")
            log_path = Path(self._log_dir.name) / "engine.log"
            with open(log_path, "wb") as log:
                # A new session: a Ctrl-C meant for the parent's work (say, a long
                # evaluation) must not kill the engine; stdin EOF and atexit stop it.
                self._proc = subprocess.Popen(
                    self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                    env=_child_env(), close_fds=True, start_new_session=True)
            try:
                info = self._read_announcement(timeout)
            except BaseException:
                self._kill()
                raise
            self._url = str(info["url"])
            self.startup_seconds = time.monotonic() - began
            return self._url

    def ensure(self, timeout: float = DEFAULT_START_TIMEOUT,
               model: EmbeddedModel | None = None) -> tuple[str, str | None]:
        """Start the child if it is not running; ``(url, note)``.

        ``note`` is one line when a child that had been running died (killed,
        crashed) and was restarted: ``local engine exited (signal 9); restarted``.
        A child stopped on purpose (:meth:`stop`) starts again without a note.
        """
        with self._lock:
            exited = self.exit_description()
            if exited and exited.startswith("exit code"):
                # A crash says why in its log, which the restart removes: keep the last line.
                last = [ln for ln in self._log_tail().splitlines() if ln.strip()][-1:]
                if last:
                    exited += f": {last[0].strip()[:200]}"
            url = self.start(timeout, model)
        return url, (f"local engine exited ({exited}); restarted" if exited else None)

    def exit_description(self, wait: float = 0.0) -> str | None:
        """How the child ended, if it died on its own (``"signal 9, SIGKILL"``, ``"exit code 1"``).

        ``wait`` seconds are given to a child that is dying right now (a broken
        connection can arrive before the kernel has reaped the process).
        """
        proc = self._proc
        code = proc.poll() if proc is not None else None
        if code is None and proc is not None and wait > 0:
            try:
                code = proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                code = None
        if code is None:
            return None
        if code < 0:
            try:
                return f"signal {-code}, {signal.Signals(-code).name}"
            except ValueError:
                return f"signal {-code}"
        return f"exit code {code}"

    def _read_announcement(self, timeout: float) -> dict[str, object]:
        """Read the child's JSON line, bounded by ``timeout`` and by the child's death."""
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self._proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConfigError(f"The local engine did not start within {timeout:g} s."
                                      f"{self._log_tail()}")
                if not selector.select(min(left, 0.5)):
                    if self._proc.poll() is not None:
                        break
                    continue
                data = os.read(self._proc.stdout.fileno(), 4096)
                if not data:
                    break
                buffer += data
        line = buffer.split(b"\n", 1)[0].strip()
        try:
            info = json.loads(line) if line else None
        except ValueError:
            info = None
        if not isinstance(info, dict) or "url" not in info:
            try:  # let a dying child finish writing its log and report its exit code
                code: int | None = self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
            raise ConfigError(f"The local engine exited during start-up (exit code {code})."
                              f"{self._log_tail()}")
        return info

    def _log_tail(self) -> str:
        path = self.log_path
        try:
            lines = path.read_text(errors="replace").splitlines() if path else []
        except OSError:
            lines = []
        if not lines:
            return ""
        tail = "\n".join(lines[-_LOG_TAIL_LINES:])
        return f" Last lines of its log ({path}):\n{tail}"

    def stop(self) -> None:
        """Stop the child: SIGTERM, wait 5 s, then SIGKILL; remove its log. Idempotent."""
        with self._lock:
            self._kill()
            self._cleanup()

    def _kill(self) -> None:
        proc, self._proc, self._url = self._proc, None, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()  # by PID; the child stops its engine on SIGTERM
            try:
                proc.wait(timeout=_STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=_STOP_GRACE)
        self.last_returncode = proc.returncode
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def _cleanup(self) -> None:
        if self._proc is None and self._log_dir is not None:
            self._log_dir.cleanup()
            self._log_dir = None


def get_engine() -> LocalEngine:
    """The process-wide engine (created on first use, not started)."""
    state = current()
    with state.lock:
        if state.engine is None:
            state.engine = LocalEngine()
        engine: LocalEngine = state.engine
        return engine


def ensure_started(timeout: float = DEFAULT_START_TIMEOUT) -> str:
    """Start the process-wide engine once and return its base URL; thread-safe."""
    return get_engine().start(timeout=timeout)


def stop_engine() -> None:
    """Stop the process-wide engine if it runs (also registered with :mod:`atexit`)."""
    engine = current().engine
    if engine is not None:
        engine.stop()


atexit.register(stop_engine)
