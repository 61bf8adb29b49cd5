"""dataclass_code.py: the code `dataclasses` generates, served from a table kept between
processes, behaves as compiled from its text; the table's file is bounded and a file that
does not load is ignored."""

from __future__ import annotations

import dataclasses
import importlib.util
import marshal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from contextplane import dataclass_code


@pytest.fixture(name="table_path")
def table_path_fixture(tmp_path: Path) -> Iterator[Path]:
    dataclass_code.uninstall()
    yield tmp_path / "table"
    dataclass_code.uninstall()


def _define() -> type:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Point:
        x: int
        y: int = 2
        tags: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    return Point


def _check(point_class: type) -> None:
    point = point_class(1)
    assert point == point_class(1, 2, ("other",))
    assert point != point_class(1, 3)
    assert hash(point) == hash(point_class(1))
    assert repr(point).endswith("Point(x=1, y=2, tags=())")
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 5  # type: ignore[misc]


def test_a_class_made_from_kept_code_behaves_as_one_compiled(table_path: Path) -> None:
    table = dataclass_code.install(table_path)
    _check(_define())
    assert table.compiled > 0
    assert dataclass_code.save(table_path, force=True)
    dataclass_code.uninstall()

    table = dataclass_code.install(table_path)  # a later process: the table from the file
    _check(_define())
    assert table.compiled == 0, "every method's code came from the table"


def test_nothing_is_written_under_dont_write_bytecode_unless_forced(
    table_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.dont_write_bytecode", True)
    dataclass_code.install(table_path)
    _define()
    assert not dataclass_code.save(table_path)
    assert not table_path.exists()
    assert dataclass_code.save(table_path, force=True)
    assert table_path.exists()
    assert not dataclass_code.save(table_path, force=True), "nothing new since"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00\x00\x00\x00"
        + marshal.dumps({"x = 1": marshal.dumps(compile("x = 1", "<s>", "exec"))}),
        importlib.util.MAGIC_NUMBER + b"\xff not marshal",
        importlib.util.MAGIC_NUMBER + marshal.dumps(["not", "a", "table"]),
        importlib.util.MAGIC_NUMBER + marshal.dumps({"text": "not code"}),
    ],
    ids=["empty", "another-interpreter", "corrupt", "not-a-dict", "not-bytes"],
)
def test_a_table_that_does_not_load_is_ignored(table_path: Path, content: bytes) -> None:
    table_path.write_bytes(content)
    table = dataclass_code.install(table_path)
    assert table.kept == {}
    _check(_define())
    assert table.compiled > 0


def test_the_table_keeps_at_most_its_bound_used_texts_first(
    table_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataclass_code, "ENTRIES_MAX", 5)
    old = {f"x = {n}": marshal.dumps(compile(f"x = {n}", "<string>", "exec")) for n in range(10)}
    table_path.write_bytes(importlib.util.MAGIC_NUMBER + marshal.dumps(old))
    table = dataclass_code.install(table_path)
    scope: dict[str, int] = {}
    table.exec("x = 3", scope)  # kept from before: used, not compiled
    table.exec("x = 42", scope)  # new
    assert scope["x"] == 42 and table.compiled == 1
    assert dataclass_code.save(table_path, force=True)
    kept = dataclass_code.load(table_path)
    assert list(kept)[:2] == ["x = 3", "x = 42"]
    assert len(kept) == 5


def test_a_kept_entry_that_is_not_code_is_compiled_again(table_path: Path) -> None:
    kept = {"x = 7": b"\xff not marshal", "x = 8": marshal.dumps("a string")}
    table_path.write_bytes(importlib.util.MAGIC_NUMBER + marshal.dumps(kept))
    table = dataclass_code.install(table_path)
    scope: dict[str, int] = {}
    table.exec("x = 7", scope)
    table.exec("x = 8", scope)
    assert scope["x"] == 8 and table.compiled == 2


def test_the_ahead_of_time_table_holds_the_start_and_the_first_requests(tmp_path: Path) -> None:
    path = tmp_path / "table"
    command = [sys.executable, "-m", "contextplane.dataclass_code", str(path)]
    subprocess.run(command, check=True, timeout=120)
    kept = dataclass_code.load(path)
    assert len(kept) > 1000
    # ProduceRequest's __init__, as dataclasses writes it (from kio's schema).
    assert any("def __init__(self" in text and "topic_data:" in text for text in kept)
    program = (
        "import sys; from pathlib import Path; from contextplane import dataclass_code as d;"
        f"t = d.install(Path({str(path)!r})); sys.modules['hypothesis'] = None;"
        "import contextplane.broker.app, contextplane.cli.main;"
        "from contextplane.protocol.codec import request_schema; request_schema(0, 10);"
        "print(t.compiled, len(t.used))"
    )
    out = subprocess.run(
        [sys.executable, "-c", program], check=True, capture_output=True, text=True, timeout=120
    )
    compiled, used = map(int, out.stdout.split())
    assert compiled == 0 and used > 500, "the start and a Produce v10 compile nothing"
