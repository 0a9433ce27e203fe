"""The API key never shows in a verbose traceback, a debugger's repr or a saved notebook.

Frame locals are what ``%xmode Verbose`` and ``capture_locals=True`` print, so
every failure path of a real request (HTTP errors of each endpoint, a dropped
connection, a timeout, a cut stream, over both transports) is formatted with
its locals and searched for the key.
"""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
import traceback
from pathlib import Path

import pytest
from fakeserver import Behaviour
from lazy import lazy

import gptmagic
from gptmagic.client.client import Client
from gptmagic.client.http import Timeouts
from gptmagic.core.retry import RetryPolicy

nbformat = lazy("nbformat")

KEY = "sk-proj-SECRETabcdefghijklmnopqrstuvwxyz0123456789"


@pytest.fixture
def keyed(fake_server, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", KEY)
    gptmagic.add_profile("fake", base_url=fake_server.url, default_model="m",
                         api_key_env="FAKE_KEY")
    return fake_server


def test_headers_hide_credentials_in_every_text_form():
    from gptmagic.core.headers import Headers

    h = Headers({"Authorization": f"Bearer {KEY}", "api-key": KEY, "X-Custom-Token": KEY,
                 "Accept": "text/plain", "Idempotency-Key": "gptmagic-retry-1"})
    assert h["Authorization"] == f"Bearer {KEY}" and dict(h)["api-key"] == KEY
    for text in (repr(h), str(h), f"{h}", repr([h]), repr(copy.deepcopy(h))):
        assert KEY not in text and "[REDACTED]" in text
    assert "text/plain" in repr(h) and "gptmagic-retry-1" in repr(h)
    with pytest.raises(TypeError):
        json.dumps(h)
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps(h)
    merged = h | {"Accept": "application/json"}
    assert isinstance(merged, Headers) and merged["Accept"] == "application/json"


def test_ipython_pretty_printer_hides_credentials():
    from IPython.lib.pretty import pretty

    from gptmagic.core.headers import Headers

    assert KEY not in pretty(Headers({"Authorization": f"Bearer {KEY}"}))


_FAILURES = {
    "chat 404": (Behaviour(status=404), lambda c: c.chat("hi", model="fake:m")),
    "models 404": (Behaviour(status=404), lambda c: c.models(provider="fake")),
    "moderation 404": (Behaviour(status=404), lambda c: c.moderate("hi", provider="fake")),
    "dropped": (Behaviour(drop=True), lambda c: c.chat("hi", model="fake:m")),
    "read timeout": (Behaviour(delay=2), lambda c: c.chat("hi", model="fake:m")),
    "stream cut": (Behaviour(stream_cut_after=2),
                   lambda c: c.chat("hi", model="fake:m", stream=True)),
}


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("case", list(_FAILURES))
def test_traceback_locals_hold_no_key(keyed, case, transport):
    behaviour, call = _FAILURES[case]
    keyed.plan(behaviour)

    async def run() -> None:
        async with Client(retry=RetryPolicy(max_attempts=1), transport=transport,
                          timeouts=Timeouts(read=0.3)) as client:
            await call(client)

    with pytest.raises(gptmagic.GptmagicError) as info:
        asyncio.run(run())
    text = "".join(traceback.TracebackException.from_exception(
        info.value, capture_locals=True).format())
    assert "Client" in text and "headers" in text.lower()  # frames with locals were formatted
    assert keyed.requests[-1].headers["authorization"] == f"Bearer {KEY}"  # the key was sent
    assert KEY not in text and KEY[8:30] not in text


@pytest.mark.slow
@pytest.mark.notebook
def test_verbose_tracebacks_in_a_real_kernel_and_saved_notebook_hold_no_key(
        keyed, tmp_path, monkeypatch):
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    cells = [
        "import gptmagic\n%xmode Verbose\n"
        f"gptmagic.add_profile('fake', base_url={keyed.url!r}, default_model='m', "
        "api_key_env='FAKE_KEY')",
        # A 404 of the models list, and a connection dropped on a chat (no retries).
        "c = gptmagic.Client(retry=gptmagic.RetryPolicy(max_attempts=1))\n"
        "await c.models(provider='fake')",
        "await c.chat('hi', model='fake:m')",
        "gptmagic.chat('hi', model='fake:m', stream=True)",
    ]
    keyed.plan(Behaviour(status=404), Behaviour(drop=True), Behaviour(status=404))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    lazy("nbclient").NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                                    resources={"metadata": {"path": str(tmp_path)}}).execute()
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert [o["ename"] for o in errors] == ["NotFoundError", "APIConnectionError",
                                            "NotFoundError"]
    verbose = "\n".join("\n".join(o["traceback"]) for o in errors)
    assert "headers" in verbose  # Verbose mode printed the frames' locals
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in keyed.requests)
    text = Path(path).read_text()
    assert KEY not in text and KEY[8:30] not in text
