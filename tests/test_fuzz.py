"""Property-based fuzzing: bad input is always a clear error, never a crash."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from shell_support import new_shell

import gptmagic
from gptmagic.client import config
from gptmagic.errors import GptmagicError

OPTIONS = [
    "-m",
    "--model",
    "-p",
    "-t",
    "--temperature",
    "--top-p",
    "--max-tokens",
    "-n",
    "--stop",
    "--seed",
    "--presence-penalty",
    "--frequency-penalty",
    "--json",
    "--logprobs",
    "--top-logprobs",
    "--system",
    "--thread",
    "--no-history",
    "--out",
    "--key-env",
    "--moderate",
    "--no-fit",
    "--resample",
    "--marker",
    "--best-of",
    "--echo",
    "--bogus",
    "-x",
]
VALUES = st.one_of(
    st.sampled_from(
        [
            "0",
            "1",
            "-1",
            "2.5",
            "1e9",
            "nan",
            "inf",
            "abc",
            "''",
            '"',
            "'a b'",
            "gpt-4o",
            "local",
            "x,y",
            "a b",
            "{}",
            "--",
            "-",
            "\\",
            "ünï",
        ]
    ),
    st.text(alphabet=string.printable, max_size=8),
)
LINE = st.lists(st.tuples(st.sampled_from(OPTIONS), VALUES), max_size=5).map(
    lambda pairs: " ".join(f"{o} {v}" for o, v in pairs)
)


@pytest.fixture(autouse=True)
def nowhere_profile():
    # Every test starts from fresh settings (conftest's fresh_state): add it each time.
    gptmagic.add_profile("nowhere", base_url="http://127.0.0.1:9/v1", default_model="m")


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    import os

    os.environ["IPYTHONDIR"] = str(tmp_path_factory.mktemp("ipy"))
    sh = new_shell()
    sh.run_line_magic("load_ext", "gptmagic")
    yield sh
    sh.run_line_magic("unload_ext", "gptmagic")
    InteractiveShell.clear_instance()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(line=LINE, cell=st.text(max_size=40))
def test_magic_options_never_crash(shell, line, cell):
    # --dry-run keeps it offline: the fuzz is about parsing, not the network.
    for magic in ("chat", "complete"):
        try:
            with capture_output():
                shell.run_cell_magic(magic, f"-p nowhere -m gpt-4o {line} --dry-run", cell)
        except UsageError as e:
            assert str(e) and "Traceback" not in str(e)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_config_files_never_crash(text):
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            data = config.load_config(__import__("pathlib").Path(path))
            for name, spec in data.get("profiles", {}).items():
                config._from_spec(name, spec, path)
        except GptmagicError as e:
            assert path in str(e) or "profile" in str(e)


TOML_BITS = st.sampled_from(
    [
        "[profiles.a]\n",
        "kind = 'azure'\n",
        "kind = 3\n",
        "base_url = 'http://x'\n",
        "headers = {A = 'b'}\n",
        "headers = 5\n",
        "api_key_env = 'K'\n",
        "prompt_key = 'yes'\n",
        "default_profile = 'a'\n",
        "profiles = []\n",
        "[profiles]\nb = 1\n",
        "api_key = 'sk'\n",
        "headers = {Authorization = 'x'}\n",
        "[profiles.b]\nkind = 'local'\n",
        "x = \n",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(TOML_BITS, max_size=6).map("".join))
def test_structured_config_files_give_config_errors(text):
    import os
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d, "c.toml")
        path.write_text(text)
        try:
            data = config.load_config(path)
            for name, spec in data.get("profiles", {}).items():
                config._from_spec(name, spec, str(path))
        except GptmagicError as e:
            assert str(path) in str(e)
        assert os.path.exists(path)


COMMANDS = st.sampled_from(["history", "reset", "threads", "fork", "nope", "set", "unset",
                            "model", "profile", "stream", "--thread", "--from", "--turn", ""])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.one_of(COMMANDS, VALUES), max_size=4))
def test_line_magics_never_crash(shell, words):
    line = " ".join(words)
    for magic in ("chat", "gptmagic"):
        try:
            with capture_output():
                shell.run_line_magic(magic, line)
        except UsageError as e:
            assert str(e)
    shell.run_line_magic("gptmagic", "profile nowhere")  # undo what the fuzz set
    shell.magics_manager.registry["GptMagics"].defaults = {}
