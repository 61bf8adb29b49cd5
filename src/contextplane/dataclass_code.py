"""The code `dataclasses` generates, compiled once and kept between starts like bytecode.

`@dataclass` writes each class's `__init__`, `__repr__`, `__eq__`, `__hash__` and, when
frozen, `__setattr__`/`__delattr__` as source text and compiles it at every import: at a
broker's start 131 classes, 601 compilations, 130–150 ms of ~450 ms of imports on the
bench machine, and kio's request and response schemas pay the same at each API's first
request (RFC 0003 slice 8, restart). That text depends only on the class's fields and
options, and compiling the same text gives the same code, so the code can be kept as a
module's bytecode is: `install()` shadows `exec` inside the `dataclasses` module only
(the one call it makes, on Python 3.11 to 3.13) with one that takes the code of a text
seen before from a table and compiles only what is new; `save()` writes the table next
to the package's bytecode. Executing the kept code is what `exec` of the text does.

The table is read once at `install()`, checked against this interpreter's bytecode
magic (code objects differ between versions); a table that does not load is ignored.
`save()` writes only when something new was compiled, never under
PYTHONDONTWRITEBYTECODE (`python -m contextplane.dataclass_code` writes it
explicitly, as compileall does bytecode), atomically, and keeps at most
`ENTRIES_MAX` texts, the ones this process used first: texts of code that changed
are dropped once the table is full.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import importlib.util
import marshal
import os
import sys
from pathlib import Path
from types import CodeType
from typing import Any

# The broker's start uses ~560 texts and each API version's schemas a few dozen more; a
# text and its code are ~1.2 KiB marshalled, so the file stays under ~5 MiB.
ENTRIES_MAX = 4096
TABLE = Path(__file__).parent / "__pycache__" / f"dataclass_code.{sys.implementation.cache_tag}"


class CodeTable:
    """Source text → code object, as compiled by `exec` of that text. Kept code is
    stored marshalled and unmarshalled when its text is first used: reading the table
    costs little whatever it holds (~1 ms for 600 texts; all of them unmarshalled at
    once took 14 ms)."""

    def __init__(self, kept: dict[str, bytes]) -> None:
        self.kept = kept
        self.used: dict[str, CodeType] = {}
        self.compiled = 0

    def exec(self, source: Any, scope: Any = None, names: Any = None, /) -> None:
        if isinstance(source, str):
            code = self.used.get(source) or self._kept_code(source)
            if code is None:
                code = compile(source, "<string>", "exec", dont_inherit=True)
                self.compiled += 1
            self.used[source] = code
            source = code
        builtins.exec(source, scope, names)

    def _kept_code(self, text: str) -> CodeType | None:
        data = self.kept.get(text)
        if data is None:
            return None
        try:
            code = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            return None
        return code if isinstance(code, CodeType) else None

    def entries(self) -> dict[str, bytes]:
        """What to keep: the texts used here first, then those kept before, bounded."""
        merged = {text: marshal.dumps(code) for text, code in self.used.items()}
        for text, data in self.kept.items():
            if len(merged) >= ENTRIES_MAX:
                break
            merged.setdefault(text, data)
        return dict(list(merged.items())[:ENTRIES_MAX])


_table: CodeTable | None = None


def install(path: Path = TABLE) -> CodeTable:
    """Serve `dataclasses`' compilations from the table at `path` from now on."""
    global _table
    if _table is None:
        _table = CodeTable(load(path))
        dataclasses.exec = _table.exec  # type: ignore[attr-defined]  # shadows the builtin there only
    return _table


def uninstall() -> None:
    global _table
    with contextlib.suppress(AttributeError):
        del dataclasses.exec  # type: ignore[attr-defined]
    _table = None


def load(path: Path) -> dict[str, bytes]:
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    magic = importlib.util.MAGIC_NUMBER
    if not data.startswith(magic):
        return {}
    try:
        table = marshal.loads(data[len(magic) :])
    except (EOFError, ValueError, TypeError):
        return {}
    if not isinstance(table, dict):
        return {}
    return {t: c for t, c in table.items() if isinstance(t, str) and isinstance(c, bytes)}


def save(path: Path = TABLE, *, force: bool = False) -> bool:
    """Write the table if this process compiled anything new (with `force`, even under
    PYTHONDONTWRITEBYTECODE); a directory that cannot be written is left as it is."""
    table = _table
    if table is None or table.compiled == 0 or (sys.dont_write_bytecode and not force):
        return False
    data = importlib.util.MAGIC_NUMBER + marshal.dumps(table.entries())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            scratch.write_bytes(data)
            os.replace(scratch, path)
        except BaseException:
            scratch.unlink(missing_ok=True)
            raise
    except OSError:
        return False
    table.kept, table.compiled = table.entries(), 0
    return True


# What producers and consumers send first (ApiVersions, Metadata, Produce, Fetch,
# ListOffsets, FindCoordinator, InitProducerId, the group APIs): their schemas load on
# a version's first request, 5–25 ms each, while a client waits on a restarted broker.
FIRST_REQUESTS = frozenset({18, 3, 0, 1, 2, 10, 22, 8, 9, 11, 12, 14})


def main(argv: list[str] | None = None) -> int:
    """Write the table (at the path given, else `TABLE`) of what the broker's start
    imports and of every version it answers of `FIRST_REQUESTS` (~1,300 texts, ~1.6 MB),
    for an install whose bytecode is compiled ahead, e.g. under PYTHONDONTWRITEBYTECODE."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else TABLE
    install(path)
    sys.modules.setdefault("hypothesis", None)  # type: ignore[arg-type]  # as cli/launch.py
    import contextplane.broker.app  # noqa: F401  # the broker's start, beyond its request table
    import contextplane.cli.main  # noqa: F401
    from contextplane.broker.routes import ROUTES
    from contextplane.protocol.codec import request_schema, response_schema

    for api_key, lowest, highest, *_ in ROUTES:
        if api_key in FIRST_REQUESTS:
            for version in range(lowest, highest + 1):
                request_schema(api_key, version)
                response_schema(api_key, version)
    save(path, force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
