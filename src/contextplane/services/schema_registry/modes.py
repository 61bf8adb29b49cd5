"""Compatibility levels: which earlier versions a new schema is checked against, and in
which direction. BACKWARD: the new schema reads data written with the latest version;
FORWARD: the latest version reads data written with the new schema; FULL: both. The
_TRANSITIVE forms check every live version instead of the latest; NONE checks nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from contextplane.services.schema_registry.formats import Parsed, reader_problems

LEVELS = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)
DEFAULT_LEVEL = "BACKWARD"  # Confluent's default


def problems(level: str, new: Parsed, earlier: Sequence[tuple[int, Parsed]]) -> list[str]:
    """Why `new` may not follow `earlier` ((version, schema), oldest first) under `level`;
    empty when it may."""
    if level == "NONE" or not earlier:
        return []
    against = earlier if level.endswith("_TRANSITIVE") else earlier[-1:]
    backward = level.startswith(("BACKWARD", "FULL"))
    forward = level.startswith(("FORWARD", "FULL"))
    found: list[str] = []
    # Newest first, as Confluent reports them.
    for version, old in reversed(against):
        issues = []
        if backward:
            issues += reader_problems(reader=new, writer=old)
        if forward:
            issues += reader_problems(reader=old, writer=new)
        if issues:
            found += issues
            found += [f"{{oldSchemaVersion: {version}}}", f"{{compatibility: '{level}'}}"]
    return found
