"""The structure's rules, checked on the source: import boundaries, one clock, module size.

- protocol/ imports no asyncio and nothing of storage/ or broker/: it is bytes in, values
  out, usable from any I/O (and from tests) without a loop;
- only metadata/ imports sqlite3: every other part talks to the MetadataStore interface
  (besides the context service's own local store, services/context/store.py: a Kafka
  client's cache of its changelog topic, never the broker's metadata);
- only clock.py reads time.time() or time.monotonic(): everything else is given a Clock,
  so tests and simulation can drive time;
- no module under src/ is over 600 lines;
- no asyncio.wait_for under src/: on Python 3.11 it drops a cancellation that arrives as
  the awaited thing completes, and the cancelled task runs on (`asyncio.timeout` does not;
  tests/unit/test_cancellation_races.py).

A module that still breaks a rule while another part of the restructure is under way is
listed in PENDING with the reason; a test fails the moment the module complies (or is
gone), so the entry cannot outlive its reason. Nothing is pending today.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "contextplane"
LINES_MAX = 600
CLOCK_READS = frozenset({"time", "monotonic", "time_ns", "monotonic_ns"})

# rule -> module (relative to src/contextplane) -> why it does not comply yet.
PENDING: dict[str, dict[str, str]] = {
    "protocol_is_sans_io": {},
    "sqlite3_only_in_metadata": {},
    "clock_only_in_clock_py": {},
    "modules_are_small": {},
    "no_asyncio_wait_for": {},
}


def modules() -> Iterator[tuple[str, Path]]:
    """(name relative to src/contextplane, path) of every module."""
    for path in sorted(SRC.rglob("*.py")):
        yield path.relative_to(SRC).as_posix(), path


def imported(name: str, path: Path) -> set[str]:
    """Every module a file imports, anywhere in it, as absolute dotted names."""
    tree = ast.parse(path.read_text(), str(path))
    package = ["contextplane", *Path(name).parent.parts]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def protocol_breaks(name: str, path: Path) -> list[str]:
    if not name.startswith("protocol/"):
        return []
    banned = ("asyncio", "contextplane.storage", "contextplane.broker")
    return sorted(found for found in imported(name, path) if _within(found, banned))


SQLITE3_OUTSIDE_METADATA = frozenset({"services/context/store.py"})


def sqlite3_breaks(name: str, path: Path) -> list[str]:
    if name.startswith("metadata/") or name in SQLITE3_OUTSIDE_METADATA:
        return []
    return sorted(found for found in imported(name, path) if _within(found, ("sqlite3",)))


def clock_breaks(name: str, path: Path) -> list[str]:
    """time.time / time.monotonic (called or passed on as a clock) outside clock.py."""
    if name == "clock.py":
        return []
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "time"
            and node.attr in CLOCK_READS
        ):
            found.append(f"line {node.lineno}: time.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            found += [
                f"line {node.lineno}: from time import {alias.name}"
                for alias in node.names
                if alias.name in CLOCK_READS
            ]
    return found


def wait_for_breaks(name: str, path: Path) -> list[str]:
    """asyncio.wait_for, called or imported."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "asyncio"
            and node.attr == "wait_for"
        ):
            found.append(f"line {node.lineno}: asyncio.wait_for")
        elif isinstance(node, ast.ImportFrom) and node.module == "asyncio":
            found += [
                f"line {node.lineno}: from asyncio import wait_for"
                for alias in node.names
                if alias.name == "wait_for"
            ]
    return found


def size_breaks(name: str, path: Path) -> list[str]:
    lines = len(path.read_text().splitlines())
    return [f"{lines} lines"] if lines > LINES_MAX else []


RULES: dict[str, Callable[[str, Path], list[str]]] = {
    "protocol_is_sans_io": protocol_breaks,
    "sqlite3_only_in_metadata": sqlite3_breaks,
    "clock_only_in_clock_py": clock_breaks,
    "modules_are_small": size_breaks,
    "no_asyncio_wait_for": wait_for_breaks,
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_module_keeps_the_rule(rule: str) -> None:
    breaks = {
        name: found
        for name, path in modules()
        if name not in PENDING[rule] and (found := RULES[rule](name, path))
    }
    assert not breaks, f"{rule}: {breaks}"


def test_pending_modules_still_break_their_rule() -> None:
    """A module listed in PENDING is excused only while it breaks the rule: once it
    complies (or is gone), this fails until it is removed from PENDING."""
    complying = [
        f"{module} ({rule})"
        for rule, pending in sorted(PENDING.items())
        for module in sorted(pending)
        if not (SRC / module).exists() or not RULES[rule](module, SRC / module)
    ]
    assert not complying, f"remove from PENDING, they comply now: {complying}"


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """Each check finds a break in a small example, so an empty result means something."""
    example = tmp_path / "example.py"
    example.write_text(
        "import asyncio\nimport sqlite3\nimport time\nfrom time import monotonic, sleep\n"
        "from ..storage import engine\nfrom contextplane.broker.app import Broker\n"
        "started = time.monotonic()\nfrom asyncio import wait_for\n"
        "async def f() -> None:\n    await asyncio.wait_for(g(), 1)\n" + "x = 1\n" * LINES_MAX
    )
    name = "protocol/example.py"
    assert protocol_breaks(name, example) == [
        "asyncio",
        "asyncio.wait_for",
        "contextplane.broker.app",
        "contextplane.broker.app.Broker",
        "contextplane.storage",
        "contextplane.storage.engine",
    ]
    assert sqlite3_breaks(name, example) == ["sqlite3"]
    assert sqlite3_breaks("metadata/example.py", example) == []
    assert clock_breaks(name, example) == [
        "line 4: from time import monotonic",
        "line 7: time.monotonic",
    ]
    assert clock_breaks("clock.py", example) == []
    assert wait_for_breaks(name, example) == [
        "line 8: from asyncio import wait_for",
        "line 10: asyncio.wait_for",
    ]
    assert size_breaks(name, example) == [f"{LINES_MAX + 10} lines"]
