"""The security events page's decoding of audit records (console/security_events.py)."""

from __future__ import annotations

import json

from contextplane.console.security_events import FIELD_CHARS_MAX, decode
from tests.support.rawclient import record_batch


def _event(subject: str, **data: str) -> bytes:
    return json.dumps(
        {
            "type": "io.contextplane.audit.authorization",
            "time": "2026-12-01T00:00:00.000Z",
            "subject": subject,
            "data": data,
        }
    ).encode()


def test_only_the_asked_offsets_newest_first_garbage_shown_as_unreadable() -> None:
    batch = record_batch(
        [
            _event("topic:before"),
            _event(
                "topic:orders",
                principal="User:bob",
                api="Fetch",
                operation="READ",
                decision="DENIED",
                acl="no ACL allows it",
            ),  # fmt: skip
            b"\xff not json",
            b"[1, 2]",
            _event("topic:after"),
        ]
    )
    events = decode([batch], start=1, end=4)
    assert [e.offset for e in events] == [3, 2, 1]
    assert [e.kind for e in events[:2]] == ["unreadable", "unreadable"]
    denial = events[2]
    assert (denial.kind, denial.subject, denial.principal) == (
        "authorization",
        "topic:orders",
        "User:bob",
    )
    assert (denial.action, denial.outcome) == ("Fetch READ", "DENIED no ACL allows it")


def test_fields_are_cut() -> None:
    long = "x" * (FIELD_CHARS_MAX * 3)
    [event] = decode([record_batch([_event(long, principal=long)])], start=0, end=1)
    assert len(event.subject) == FIELD_CHARS_MAX and event.subject.endswith("…")
    assert len(event.principal) == FIELD_CHARS_MAX
