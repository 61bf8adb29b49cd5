"""compiled.py: a compiled copy is used only if it was built from the module's current
source; otherwise the interpreted module runs, and says why once."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from contextplane.compiled import compiled_name, compiled_or_interpreted
from contextplane.protocol import record_validation, record_walk

SOURCE = b"WHICH = 'interpreted'\n"


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Path]:
    """An importable package `cpkg` holding the module `cpkg.hot` (no compiled copy)."""
    root = tmp_path / "cpkg"
    root.mkdir()
    (root / "__init__.py").write_bytes(b"")
    (root / "hot.py").write_bytes(SOURCE)
    sys.path.insert(0, str(tmp_path))
    try:
        yield root
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == "cpkg"]:
            del sys.modules[name]


def _hot() -> ModuleType:
    return importlib.import_module("cpkg.hot")


def _build_copy(package: Path, source: bytes, body: bytes = b"WHICH = 'compiled'\n") -> None:
    """What setup.py leaves: a module under the name derived from `source`. (A stand-in
    in Python: the loader never looks at how the copy was made.)"""
    name = compiled_name("cpkg.hot", source).rpartition(".")[2]
    (package / f"{name}.py").write_bytes(body)


def test_the_copy_built_from_the_current_source_is_used(package: Path) -> None:
    _build_copy(package, SOURCE)
    assert compiled_or_interpreted(_hot()).WHICH == "compiled"


def test_an_edited_source_runs_interpreted_and_says_so(
    package: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _build_copy(package, SOURCE)
    (package / "hot.py").write_bytes(SOURCE + b"# edited after the build\n")
    with caplog.at_level(logging.WARNING, logger="contextplane.compiled"):
        chosen = compiled_or_interpreted(_hot())
    assert chosen.WHICH == "interpreted"
    assert [r.getMessage() for r in caplog.records] == [
        f"{package / 'hot.py'} runs interpreted: it changed since it was compiled "
        "(pip install -e . compiles it again)"
    ]


def test_no_copy_runs_interpreted_and_says_so(
    package: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="contextplane.compiled"):
        chosen = compiled_or_interpreted(_hot())
    assert chosen.WHICH == "interpreted"
    assert "it was not compiled" in caplog.text


def test_a_copy_that_does_not_load_runs_interpreted_and_says_why(
    package: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # As a compiled copy whose shared library (`<name>__mypyc`) is missing fails.
    _build_copy(package, SOURCE, b"import cpkg._missing_shared_library\n")
    with caplog.at_level(logging.WARNING, logger="contextplane.compiled"):
        chosen = compiled_or_interpreted(_hot())
    assert chosen.WHICH == "interpreted"
    assert "failed to load" in caplog.text and "_missing_shared_library" in caplog.text


def test_the_name_changes_with_every_byte_of_the_source() -> None:
    first = compiled_name("a.b.mod", b"x = 1\n")
    assert first.startswith("a.b._mod_mypyc_")
    assert compiled_name("a.b.mod", b"x = 1\n") == first
    assert compiled_name("a.b.mod", b"x = 2\n") != first


def test_record_validation_walks_with_the_module_chosen_for_record_walk() -> None:
    # Whichever it is (test_record_validation_fuzz fails if it is not the compiled one).
    assert record_validation.walker is compiled_or_interpreted(record_walk)
