"""The shape the services' TOML files share (a views file, a tools file): one top-level
table of named tables, `[views.account]` or `[tools.refund]`, each error naming the file
and what is wrong in one line. What a named table holds is each service's to read."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def read_file(path: Path, error: type[ValueError]) -> str:
    """The file's text; `error` naming the path and why it cannot be read."""
    try:
        return path.read_text()
    except OSError as exc:
        raise error(f"{path}: {exc.strerror}") from None


def named_tables(
    text: str, where: str, key: str, placeholder: str, limit: int, error: type[ValueError]
) -> dict[str, Any]:
    """The tables under `[key.NAME]`: at least one, at most `limit`, and no other
    top-level key (TOML's own errors name the line and column)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where}: {exc}") from None
    unknown = set(document) - {key}
    if unknown:
        raise error(f"{where}: unknown top-level key {sorted(unknown)[0]!r}")
    tables = document.get(key)
    if not isinstance(tables, dict) or not tables:
        raise error(f"{where}: no [{key}.{placeholder}] table")
    if len(tables) > limit:
        raise error(f"{where}: {len(tables)} {key}, at most {limit}")
    return tables
