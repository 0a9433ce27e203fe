"""A fake key goes through the magics, the runner, the cache, debug logs and a saved
notebook, and appears in none of them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fakeserver import Behaviour
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from lazy import lazy
from shell_support import new_shell

import gptmagic

nbformat = lazy("nbformat")

KEY = "sk-proj-SECRETabcdefghijklmnopqrstuvwxyz0123456789"


def assert_clean(*texts: object) -> None:
    for t in texts:
        blob = t if isinstance(t, str | bytes) else json.dumps(t, default=str)
        if isinstance(blob, bytes):
            assert KEY.encode() not in blob
        else:
            assert KEY not in blob and KEY[:20] not in blob


@pytest.fixture
def keyed(fake_server, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_KEY", KEY)
    monkeypatch.setenv("GPTMAGIC_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    gptmagic.add_profile("fake", base_url=fake_server.url, default_model="fake-model",
                         api_key_env="FAKE_KEY")
    return fake_server


def test_key_never_leaves_through_magics_runner_cache_or_logs(keyed, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    sh = new_shell()
    outputs = []
    try:
        sh.run_line_magic("load_ext", "gptmagic")
        for magic, line, cell in [
            ("chat", "-p fake", "user: hello"),
            ("chat", "-p fake --no-stream -n 2 --top-logprobs 2", "user: again"),
            ("chat", "-p fake --dry-run", "user: show me the request"),
            ("chat", "-p fake -m a,b", "user: compare"),
            ("complete", "-p fake --echo --logprobs 1", "Once upon"),
        ]:
            with capture_output() as cap:
                r = sh.run_cell_magic(magic, line, cell)
            outputs += [cap.stdout, cap.stderr, [o.data for o in cap.outputs],
                        [o.metadata for o in cap.outputs], repr(r), r._repr_mimebundle_()]
        with capture_output() as cap:
            sh.run_line_magic("chat", "history --model gpt-4o")
        outputs += [cap.stdout, [o.data for o in cap.outputs], [o.metadata for o in cap.outputs]]
        # An authentication failure: the server's message quotes the key, as OpenAI's can.
        keyed.plan(Behaviour(status=401, body={"error": {
            "message": f"Incorrect API key provided: {KEY}.", "type": "invalid_request_error",
            "param": None, "code": "invalid_api_key"}}))
        with pytest.raises(UsageError) as e:
            sh.run_cell_magic("chat", "-p fake", "user: fail")
        outputs.append(str(e.value))
        assert "Incorrect API key provided: [REDACTED]" in str(e.value)  # the path ran
        keyed.plan(Behaviour(status=401, body={"error": {"message": f"bad key {KEY}"}}))
        res = gptmagic.evaluate([{"q": "x"}, {"q": "y"}], "user: {q}", ["fake:m"],
                                progress=False, concurrency=1)
        outputs += [res.df.to_csv(), repr(res), res.summary().to_csv()]
        assert "[REDACTED]" in res.df["error"].iloc[0]
        outputs += [repr(gptmagic.get_profile("fake")), repr(gptmagic.get_client())]
    finally:
        sh.run_line_magic("unload_ext", "gptmagic")
        InteractiveShell.clear_instance()
    # The key was really used (sent to the server), and appears nowhere we keep.
    assert keyed.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert_clean(*outputs)
    assert_clean(caplog.text, [r.getMessage() for r in caplog.records])
    for f in tmp_path.glob("cache.sqlite*"):
        assert_clean(f.read_bytes())


@pytest.mark.slow
@pytest.mark.notebook
def test_saved_notebook_holds_no_key(keyed, tmp_path, monkeypatch):
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import gptmagic, os\n%load_ext gptmagic\n"
            f"gptmagic.add_profile('fake', base_url={keyed.url!r}, default_model='m', "
            "api_key_env='FAKE_KEY')"),
        nbformat.v4.new_code_cell("%%chat -p fake\nuser: hello"),
        nbformat.v4.new_code_cell("%%chat -p fake --dry-run\nuser: hi"),
        nbformat.v4.new_code_cell("gptmagic.evaluate([{'q': 'a'}], 'user: {q}', ['fake:m'], "
                                  "progress=False).summary()"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    lazy("nbclient").NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    text = Path(path).read_text()
    assert "echo: hello" in text and "nothing sent" in text.lower()
    assert_clean(text)
