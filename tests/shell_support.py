"""An in-process IPython shell with gptmagic loaded, its ``fake`` profile on the fake server.

The magics' tests (tests/test_magics.py, tests/test_magics_responses.py) each make
one per test through :func:`fake_shell`, and run cells with :func:`chat`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output
from traitlets.config import Config

import gptmagic

__all__ = ["chat", "fake_shell", "new_shell"]


def new_shell() -> InteractiveShell:
    """``InteractiveShell.instance()`` with no history database.

    A shell's history is written once more when the interpreter exits; by then the
    test's directory (and the database in it) may be gone, and IPython printed
    "attempt to write a readonly database" after the whole run.
    """
    config = Config()
    config.HistoryManager.enabled = False
    return InteractiveShell.instance(config=config)


@contextmanager
def fake_shell(url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
               key: str) -> Iterator[InteractiveShell]:
    """A fresh shell with ``%load_ext gptmagic`` and a ``fake`` profile at ``url``.

    The profile reads its key from ``FAKE_KEY`` (set to ``key``), so the tests
    can look for it in everything the shell shows; IPython's own files go under
    ``tmp_path``.
    """
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("FAKE_KEY", key)
    gptmagic.add_profile("fake", base_url=url, default_model="fake-model",
                         api_key_env="FAKE_KEY")
    sh = new_shell()
    sh.run_line_magic("load_ext", "gptmagic")
    try:
        yield sh
    finally:
        sh.run_line_magic("unload_ext", "gptmagic")
        InteractiveShell.clear_instance()


def chat(sh: InteractiveShell, line: str, cell: str) -> tuple[Any, CapturedIO]:
    """Run one ``%%chat`` cell; its return value and what it printed."""
    with capture_output() as cap:
        result = sh.run_cell_magic("chat", line, cell)
    return result, cap
