"""Denial records without a broker: one request's denials become one record per
operation, resource type and error (the first names listed, the rest counted), and each
principal's denial records are bound per second, with what the bound held back summarised
in a record and a log line. Allowed accesses of audited topics are never bound."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from contextplane.broker.context import ConnectionInfo, RequestContext
from contextplane.clock import ManualClock
from contextplane.protocol.codec import RequestHeader
from contextplane.protocol.error_codes import ErrorCode
from contextplane.security.acls import Operation, ResourceType
from contextplane.security.audit import DENIED_NAMES_LISTED, SUPPRESSED, AuditLog
from contextplane.security.authorizer import Action
from contextplane.security.principal import Principal
from contextplane.security.standard_authorizer import StandardAuthorizer

METADATA_KEY = 3
BOB = Principal("User", "bob")
ALICE = Principal("User", "alice")
DENIED = ErrorCode.topic_authorization_failed


def context(principal: Principal, api_key: int = METADATA_KEY) -> RequestContext:
    connection = ConnectionInfo("10.0.0.9:4000", principal=principal)
    return RequestContext(None, RequestHeader(api_key, 12, 7, "app"), connection)  # type: ignore[arg-type]


def describe(name: str) -> Action:
    return Action(Operation.DESCRIBE, ResourceType.TOPIC, name)


class Recorded:
    def __init__(self, per_second: int = 10) -> None:
        self.clock = ManualClock()
        self.events: list[dict[str, Any]] = []
        self.audit = AuditLog(
            self.offer,
            "contextplane://c/broker/1",
            self.clock.wall_ms,
            StandardAuthorizer(),
            "orders",
            per_second,
        )

    def offer(self, key: bytes, value: bytes) -> bool:
        self.events.append(json.loads(value))
        return True

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.events if e["type"] == event_type]


AUTHORIZATION = "io.contextplane.audit.authorization"


def test_one_request_naming_20000_denied_topics_is_one_record_and_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorded = Recorded()
    names = [f"denied-{i:06d}" for i in range(20_000)]
    with caplog.at_level(logging.INFO, logger="contextplane.audit"):
        recorded.audit.denials(context(BOB), [(describe(n), DENIED) for n in names])
    [data] = recorded.of_type(AUTHORIZATION)
    assert data["principal"] == "User:bob"
    assert data["decision"] == "DENIED"
    assert data["operation"] == "DESCRIBE"
    assert data["resource_type"] == "TOPIC"
    assert data["resource_name"] == "denied-000000"  # the first, as a single denial has it
    assert data["resource_names"] == names[:DENIED_NAMES_LISTED]
    assert data["resource_count"] == 20_000
    assert data["resource_names_omitted"] == 20_000 - DENIED_NAMES_LISTED
    assert data["result"] == "TOPIC_AUTHORIZATION_FAILED"
    assert data["acl"] == "no ACL found (allow.everyone.if.no.acl.found=false)"
    assert "acl_by_name" not in data  # every listed name was decided the same way
    [line] = [r.getMessage() for r in caplog.records]
    assert 'topic="denied-000000"' in line and "denied=20000" in line


def test_a_denial_record_stays_small_whatever_names_the_client_sends() -> None:
    recorded = Recorded()
    names = [f"{i:03d}" + "n" * 30_000 for i in range(500)]
    recorded.audit.denials(context(BOB), [(describe(n), DENIED) for n in names])
    [event] = recorded.events
    assert len(json.dumps(event)) < 40_000
    assert event["data"]["resource_names"][1].startswith("001n")
    assert event["data"]["resource_names"][1].endswith(f"(+{30_003 - 256} chars)")


def test_denials_of_different_operations_or_errors_are_separate_records() -> None:
    recorded = Recorded()
    create = Action(Operation.CREATE, ResourceType.TOPIC, "new")
    recorded.audit.denials(
        context(BOB),
        [(describe("a"), DENIED), (create, DENIED), (describe("b"), DENIED)],
    )
    records = recorded.of_type(AUTHORIZATION)
    assert [(d["operation"], d["resource_names"]) for d in records] == [
        ("DESCRIBE", ["a", "b"]),
        ("CREATE", ["new"]),
    ]


def test_denial_records_are_bound_per_principal_and_the_rest_summarised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorded = Recorded(per_second=3)
    audit = recorded.audit
    with caplog.at_level(logging.INFO, logger="contextplane.audit"):
        for _ in range(10):
            audit.denials(context(BOB), [(describe("x"), DENIED), (describe("y"), DENIED)])
        audit.denials(context(ALICE), [(describe("x"), DENIED)])  # her own bound
        audit.report_suppressed()  # the window has not ended: nothing yet
        assert recorded.of_type(SUPPRESSED) == []
        recorded.clock.advance(1_000)
        audit.report_suppressed()
    principals = [d["principal"] for d in recorded.of_type(AUTHORIZATION)]
    assert principals == ["User:bob"] * 3 + ["User:alice"]
    assert audit.suppressed_records == 7
    [summary] = recorded.of_type(SUPPRESSED)
    assert summary["principal"] == "User:bob"
    assert summary["suppressed_records"] == 7
    assert summary["suppressed_resources"] == 14
    assert summary["limit_per_second"] == 3
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 + 1  # bob's three, alice's one, the summary
    assert 'suppressed 7 denial records (14 denied resources) of "User:bob"' in lines[-1]
    # A new window: bob's denials are written again.
    audit.denials(context(BOB), [(describe("z"), DENIED)])
    assert recorded.of_type(AUTHORIZATION)[-1]["resource_names"] == ["z"]


def test_a_stop_summarises_the_open_window() -> None:
    recorded = Recorded(per_second=1)
    for _ in range(3):
        recorded.audit.denials(context(BOB), [(describe("x"), DENIED)])
    recorded.audit.report_suppressed(force=True)
    [summary] = recorded.of_type(SUPPRESSED)
    assert summary["suppressed_records"] == 2


def test_allowed_accesses_and_changes_are_never_bound() -> None:
    """Fail-closed holds per record for what is audited: only denials are bound."""
    recorded = Recorded(per_second=1)
    audit = recorded.audit
    audit.denials(context(BOB), [(describe("x"), DENIED)])
    write = Action(Operation.WRITE, ResourceType.TOPIC, "orders")
    for _ in range(50):
        audit.authorization(context(BOB, api_key=0), write, True)
        audit.record(context(BOB, api_key=19), "CreateTopics", "topic", "t")
    assert len([d for d in recorded.of_type(AUTHORIZATION) if d["decision"] == "ALLOWED"]) == 50
    assert len(recorded.of_type("io.contextplane.audit.change")) == 50
    assert audit.suppressed_records == 0
