"""Session fixtures for tests against the real embedded engine.

Not a ``conftest.py`` (that file belongs to everyone): test modules import the
fixtures they need, e.g. ``from conftest_local import local_url  # noqa: F401``.
One :class:`LocalEngine` serves the whole session, started on first use and
stopped at the end, even when several modules import the fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gptmagic.local.engine import LocalEngine

_ENGINE = LocalEngine()


@pytest.fixture(scope="session")
def local_engine() -> Iterator[LocalEngine]:
    """The running adapter + engine child process (started once per session)."""
    _ENGINE.start(timeout=60)
    yield _ENGINE
    _ENGINE.stop()


@pytest.fixture(scope="session")
def local_url(local_engine: LocalEngine) -> str:
    """Base URL of the local engine, ending in ``/v1``."""
    assert local_engine.url is not None
    return local_engine.url


@pytest.fixture
def local_client(local_url: str) -> Iterator[httpx.Client]:
    """A sync httpx client for the local engine (loopback only, bounded timeouts)."""
    with httpx.Client(base_url=local_url, timeout=httpx.Timeout(120, connect=5)) as client:
        yield client
