"""Audit records and read receipts without a broker: the offsets a Fetch returned, what
decided an authorization, the CloudEvents shape, authentication records, and how reads
are aggregated into receipts (contiguous reads merged, a seek starting a new receipt)."""

from __future__ import annotations

import json
import struct
from typing import Any

from contextplane.broker.context import ConnectionInfo, RequestContext
from contextplane.broker.read_receipts import ReadReceipts, returned_range
from contextplane.clock import ManualClock
from contextplane.protocol.codec import RequestHeader
from contextplane.protocol.offsets_records import encode_batch
from contextplane.security.acls import (
    AclBinding,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)
from contextplane.security.audit import DETAIL_CHARS_MAX, AuditLog
from contextplane.security.audit_events import decided_by
from contextplane.security.authorizer import Action, AllowEverything
from contextplane.security.principal import Principal
from contextplane.security.standard_authorizer import StandardAuthorizer


def batch(base_offset: int, records: int) -> bytes:
    raw = bytearray(encode_batch([(b"k", b"v")] * records, 0))
    struct.pack_into(">q", raw, 0, base_offset)
    return bytes(raw)


def test_returned_range_runs_from_the_fetch_offset_to_the_last_whole_batch() -> None:
    data = batch(10, 5) + batch(15, 3)
    assert returned_range(12, data) == (12, 17)
    assert returned_range(5, data) == (10, 17)  # log start moved past the fetch offset
    assert returned_range(12, data + batch(18, 2)[:30]) == (12, 17)  # a partial batch
    assert returned_range(0, b"") is None
    assert returned_range(20, data) is None  # nothing at or after the fetch offset


ALICE = Principal("User", "alice")
READ_ORDERS = Action(Operation.READ, ResourceType.TOPIC, "orders")


def acl(permission: Permission, operation: Operation, principal: str = "User:alice") -> AclBinding:
    return AclBinding(
        ResourceType.TOPIC, "orders", PatternType.LITERAL, principal, "*", operation, permission
    )


def test_decided_by_names_the_deciding_acl() -> None:
    assert decided_by(AllowEverything(), ALICE, "h", READ_ORDERS).startswith("no authorizer")
    supers = StandardAuthorizer(super_users=frozenset({"User:alice"}))
    assert decided_by(supers, ALICE, "h", READ_ORDERS) == "super.users lists User:alice"
    none = StandardAuthorizer()
    assert decided_by(none, ALICE, "h", READ_ORDERS) == (
        "no ACL found (allow.everyone.if.no.acl.found=false)"
    )
    allow = StandardAuthorizer([acl(Permission.ALLOW, Operation.READ)])
    assert decided_by(allow, ALICE, "h", READ_ORDERS) == (
        "ALLOW User:alice from * READ on TOPIC:LITERAL:orders"
    )
    both = StandardAuthorizer(
        [acl(Permission.ALLOW, Operation.READ), acl(Permission.DENY, Operation.ALL, "User:*")]
    )
    assert decided_by(both, ALICE, "h", READ_ORDERS) == (
        "DENY User:* from * ALL on TOPIC:LITERAL:orders"
    )
    other = StandardAuthorizer([acl(Permission.ALLOW, Operation.WRITE)])
    assert decided_by(other, ALICE, "h", READ_ORDERS) == "no ACL allows it"


def test_authentication_is_one_cloudevent() -> None:
    offered: list[tuple[bytes, bytes]] = []
    audit = AuditLog(lambda k, v: offered.append((k, v)) is None, "contextplane://c/broker/1",
                     lambda: 1_700_000_000_123)  # fmt: skip
    audit.authentication(
        peer="127.0.0.1:5000",
        listener="SASL_SSL",
        mechanism="SCRAM-SHA-512",
        principal=Principal("User", "bob"),
        success=False,
        client_id="app",
        reason="wrong password",
    )
    [(key, value)] = offered
    event = json.loads(value)
    assert key == b"principal:User:bob"
    assert event["specversion"] == "1.0"
    assert event["type"] == "io.contextplane.audit.authentication"
    assert event["time"] == "2023-11-14T22:13:20.123Z"
    assert event["data"]["decision"] == "DENIED"
    assert event["data"]["mechanism"] == "SCRAM-SHA-512"
    assert event["data"]["listener"] == "SASL_SSL"


def context(connection: ConnectionInfo, client_id: str = "app") -> RequestContext:
    return RequestContext(None, RequestHeader(1, 16, 7, client_id), connection)  # type: ignore[arg-type]


def test_reads_are_aggregated_per_connection_and_partition_while_contiguous() -> None:
    clock = ManualClock()
    offered: list[dict[str, Any]] = []
    receipts = ReadReceipts(
        lambda topic, key, value: offered.append(json.loads(value)["data"]) is None,
        "contextplane://c/broker/1",
        1000,
        clock,
    )
    ctx = context(ConnectionInfo("10.0.0.1:4000", principal=ALICE))
    group_ctx = context(ConnectionInfo("10.0.0.1:4001", principal=ALICE))
    receipts.saw_group(group_ctx, "billing")  # the coordinator connection's JoinGroup
    receipts.fetched(ctx, "orders", 0, 0, batch(0, 5))
    receipts.fetched(ctx, "orders", 0, 5, batch(5, 5))
    receipts.close_windows()
    assert offered == []  # the window is still open
    receipts.fetched(ctx, "orders", 0, 2, batch(0, 5))  # a seek back overlaps: merged
    receipts.fetched(ctx, "orders", 0, 100, batch(100, 1))  # a seek ahead: a new range
    receipts.fetched(ctx, "orders", 1, 0, batch(0, 1))  # another partition: another receipt
    clock.advance(1000)
    receipts.close_windows()
    assert [(r["partition"], r["ranges"], r["fetches"], r["coarse"]) for r in offered] == [
        (0, [[0, 9], [100, 100]], 4, False),
        (1, [[0, 0]], 1, False),
    ]
    assert [(r["first_offset"], r["last_offset"]) for r in offered] == [(0, 100), (0, 0)]
    assert {r["group"] for r in offered} == {"billing"}
    assert {r["principal"] for r in offered} == {"User:alice"}
    assert offered[0]["client_address"] == "10.0.0.1:4000"


def test_reads_of_the_receipts_topic_leave_no_receipt() -> None:
    offered: list[bytes] = []
    receipts = ReadReceipts(
        lambda topic, key, value: offered.append(value) is None, "s", 1000, ManualClock()
    )
    ctx = context(ConnectionInfo("10.0.0.1:4000"))
    receipts.fetched(ctx, "__contextplane_read_receipts", 0, 0, batch(0, 5))
    receipts.fetched(ctx, "__contextplane_audit", 0, 0, batch(0, 5))
    receipts.close_windows(force=True)
    assert [json.loads(v)["data"]["topic"] for v in offered] == ["__contextplane_audit"]


def test_a_huge_client_string_is_bounded_in_the_log_line_and_the_record(
    caplog: Any,
) -> None:
    """An 8.9 MB config value once became an 8.9 MB audit log line: client-given strings
    keep DETAIL_CHARS_MAX characters and the length of the rest."""
    offered: list[tuple[bytes, bytes]] = []
    audit = AuditLog(lambda k, v: offered.append((k, v)) is None, "contextplane://c/broker/1",
                     lambda: 1_700_000_000_123)  # fmt: skip
    huge = "SET leader.replication.throttled.replicas=" + "0:1," * 500_000
    with caplog.at_level("INFO", logger="contextplane.audit"):
        audit.record(
            context(ConnectionInfo("10.0.0.1:4000")),
            "IncrementalAlterConfigs",
            "topic",
            "g" * 40_000,
            details={"changes": huge},
        )
    [line] = [r.getMessage() for r in caplog.records]
    assert len(line) < 4 * DETAIL_CHARS_MAX
    assert f"(+{len(huge) - DETAIL_CHARS_MAX} chars)" in line
    [(key, value)] = offered
    assert len(key) + len(value) < 8 * DETAIL_CHARS_MAX
    assert json.loads(value)["data"]["resource_name"].endswith(
        f"(+{40_000 - DETAIL_CHARS_MAX} chars)"
    )
