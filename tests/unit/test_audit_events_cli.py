"""`contextplane audit events` against hostile audit records: strings a client chose
(principal, resource, client address) that would forge a table row or drive the
terminal, and a long audit topic read without --limit (the memory the table holds)."""

from __future__ import annotations

import argparse
import json
import tracemalloc
from collections.abc import Iterator

import pytest

from contextplane.cli import output
from contextplane.cli.audit_events import COLUMNS, TABLE_ROWS_MAX, collect

# Each would end a row, overwrite the screen, or reorder what the terminal shows.
FORGERS = ("\n", "\r", "\x1b[2J", "\x1b]0;owned\x07", "\u2028", "\u202e", "\x00", "\x9b")


def ask(**given: object) -> argparse.Namespace:
    fields: dict[str, object] = {"type": None, "principal": None, "decision": None,
                                 "resource": None, "limit": None, "output": "table"}  # fmt: skip
    return argparse.Namespace(**(fields | given))


def denial(i: int, principal: str = "User:bob") -> dict[str, object]:
    """A decoded authorization record naming 20 resources (the CLI reads JSON)."""
    record = {
        "specversion": "1.0",
        "id": f"{i:032x}",
        "source": "/contextplane/broker/1",
        "type": "io.contextplane.audit.authorization",
        "time": "2026-11-29T18:00:01.250Z",
        "subject": "topic:orders",
        "data": {
            "principal": principal,
            "api": "Fetch",
            "operation": "READ",
            "resource_name": "orders",
            "resource_names": [f"orders-{n}" for n in range(20)],
            "resource_count": 20,
            "decision": "DENIED",
            "result": "TOPIC_AUTHORIZATION_FAILED",
            "client_address": "127.0.0.1:5000",
        },
    }
    return json.loads(json.dumps(record))


def test_a_record_cannot_forge_a_row_or_drive_the_terminal() -> None:
    hostile = "".join(f"User:x{forger}" for forger in FORGERS)
    event = denial(0, principal=hostile)
    event["subject"] = "topic:a\nTIME  TYPE  forged-row"
    event["data"]["client_address"] = "\x1b[31m10.0.0.1\x1b[0m"  # type: ignore[index]
    last, matched = collect([event], ask(), None)
    lines = output.table(COLUMNS, last)
    assert matched == 1 and len(lines) == 2  # the header and one row
    row = lines[1]
    assert row.isprintable(), repr(row)
    assert "\\n" in row and "\\x1b[2J" in row and "\\u202e" in row and "\\u2028" in row


def test_a_table_keeps_rows_not_events(capsys: pytest.CaptureFixture[str]) -> None:
    count = 20_000

    def events() -> Iterator[dict[str, object]]:
        for i in range(count):
            yield denial(i)

    tracemalloc.start()
    try:
        last, matched = collect(events(), ask(), None)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert matched == count and len(last) == count
    # As decoded events these held 70 MiB; as rows 12 MiB.
    assert held < 24 * 2**20, f"{held / 2**20:.0f} MiB held for {count} rows"
    assert last[0][4] == "topic:orders (+19)"
    assert capsys.readouterr().out == ""
    assert TABLE_ROWS_MAX == 100_000


def test_json_without_a_limit_streams_and_keeps_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    last, matched = collect((denial(i) for i in range(50)), ask(output="json"), None)
    assert matched == 50 and len(last) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["id"] for line in printed] == [f"{i:032x}" for i in range(50)]


def test_json_with_a_limit_keeps_the_last_events_whole() -> None:
    last, matched = collect((denial(i) for i in range(50)), ask(output="json", limit=3), None)
    assert matched == 50
    assert [event["id"] for event in last] == [f"{i:032x}" for i in (47, 48, 49)]
