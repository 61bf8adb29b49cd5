"""The README's settings tables, rendered from the settings table.

    python -m contextplane.settings_doc                          # print the tables
    python -m contextplane.settings_doc --update-readme README.md

The README holds the rendered text between two markers; tests/unit/test_settings.py fails
when it differs from what this renders.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from contextplane import listener_settings
from contextplane.settings import Settings
from contextplane.settings_table import IGNORED, INT_MAX, SETTINGS, UNSUPPORTED, Setting

BEGIN = "<!-- settings table: python -m contextplane.settings_doc --update-readme README.md -->"
END = "<!-- end of settings table -->"

_TYPES = {"int": "int", "int | None": "int", "bool": "boolean", "str": "string"}
_TYPES.update({"str | None": "string", "Path": "path", "float": "double"})
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)}
_FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(Settings)}
_MIB = 1024 * 1024
_DURATIONS = ((24 * 3600 * 1000, "days", "day"), (3600 * 1000, "h", "h"), (60_000, "min", "min"))


def _readable(value: int, unit: str) -> str:
    """A large round default in words: 604800000 ms -> '604800000 (7 days)'."""
    if unit == "bytes" and value >= _MIB:
        for size, name in ((1024 * _MIB, "GiB"), (_MIB, "MiB")):
            if value % size == 0:
                return f"{value} ({value // size} {name})"
    if unit == "ms":
        for size, plural, singular in _DURATIONS:
            if value >= size and value % size == 0:
                count = value // size
                return f"{value} ({count} {plural if count > 1 else singular})"
    return str(value)


def default_text(setting: Setting) -> str:
    if setting.default_text is not None:
        return setting.default_text
    value: Any = _DEFAULTS[setting.attr]
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        if setting.scale != 1:
            assert value % setting.scale == 0, f"{setting.name}: give a default_text"
            return str(value // setting.scale)
        return _readable(value, setting.unit)
    assert value not in (None, ""), f"{setting.name}: give a default_text"
    return f"`{value}`"


def range_text(setting: Setting) -> str:
    if setting.low is None:
        return ""
    if setting.high is None:
        return f"≥ {setting.low}"
    high = "2³¹−1" if setting.high == INT_MAX else str(setting.high)
    return f"{setting.low}–{high}"


def render() -> str:
    lines = [
        BEGIN,
        "",
        "| setting | type | default | range | unit | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for setting in SETTINGS:
        names = f"`{setting.name}`"
        if setting.aliases:
            names += " (also " + ", ".join(f"`{alias}`" for alias in setting.aliases) + ")"
        kind = _TYPES[_FIELD_TYPES[setting.attr]]
        lines.append(
            f"| {names} | {kind} | {default_text(setting)} | {range_text(setting)} "
            f"| {setting.unit} | {setting.meaning} |"
        )
    lines += [
        "",
        "Kafka broker settings this broker does not use are accepted, reported once at start,",
        "and have no effect (`*` stands for any ending); those that would change what a",
        "client may do if they were honoured are refused:",
        "",
        "| Kafka setting | here |",
        "|---|---|",
    ]
    listeners = ", ".join(f"`{name}`" for name in listener_settings.NAMES)
    lines.append(
        f"| {listeners} | Kafka's meaning and checks: several listeners, each served, "
        "custom names through `listener.security.protocol.map`; Metadata, FindCoordinator "
        "and DescribeCluster answer with the advertised endpoint of the listener the client "
        "came in on; the first listener is the one `listener.host`/`listener.port` (`--host`, "
        "`--port`) and `advertised.host`/`advertised.port` describe, and must agree with; an "
        "empty host binds `listener.host`; the inter-broker settings name the listener a "
        "broker calls other brokers on (transaction markers, verification), as itself: its "
        "keystore on TLS, `sasl.mechanism.inter.broker.protocol` on SASL (neither given: the "
        "PLAINTEXT listener); the internal consumer of `_schemas` and the masking policies "
        "picks its listener by `contextplane.internal.client.config` |"
    )
    for ignored in IGNORED:
        accepts = f" (only `{'`, `'.join(ignored.accepts)}`)" if ignored.accepts else ""
        if ignored.unless:  # settings of the table above, which do have an effect
            accepts += f" (except `{'`, `'.join(sorted(ignored.unless))}`)"
        lines.append(f"| `{ignored.pattern}`{accepts} | no effect: {ignored.reason} |")
    for unsupported in UNSUPPORTED:
        lines.append(f"| `{unsupported.pattern}` | refused: {unsupported.reason} |")
    lines += ["", END]
    return "\n".join(lines)


def readme_block(text: str) -> str:
    """The rendered part of a README: from the begin marker to the end marker."""
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no settings block ({BEGIN!r} ... {END!r})")
    return text[start : end + len(END)]


def update_readme(path: Path) -> bool:
    """Rewrite the README's settings block; whether anything changed."""
    text = path.read_text()
    updated = text.replace(readme_block(text), render())
    if updated == text:
        return False
    path.write_text(updated)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contextplane.settings_doc")
    parser.add_argument("--update-readme", type=Path, metavar="README")
    args = parser.parse_args(argv)
    if args.update_readme is None:
        print(render())
    elif update_readme(args.update_readme):
        print(f"updated {args.update_readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
