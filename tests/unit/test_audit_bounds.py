"""What one client can make the audit write: its identifiers are cut in every record and
read receipt (a 32 KB client id of control characters once made each ~197 KB), and its
failed SASL logins are bound per client address and second, the rest counted in one
suppressed record."""

from __future__ import annotations

import asyncio
import json
import random
import struct
from typing import Any

from contextplane.broker.context import ConnectionInfo, RequestContext
from contextplane.broker.read_receipts import ReadReceipts
from contextplane.broker.receipt_ranges import add_range, coarsen, covers
from contextplane.clock import ManualClock
from contextplane.protocol.codec import RequestHeader
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import encode_batch
from contextplane.security.acls import Operation, ResourceType
from contextplane.security.audit import AuditLog
from contextplane.security.authorizer import Action
from contextplane.security.principal import Principal
from contextplane.security.standard_authorizer import StandardAuthorizer

HUGE_CLIENT_ID = "\x01" * 32_767
CLIENT_CHARS_MAX = 256  # what a record keeps of a client identifier
RECORD_BYTES_MAX = 4_096
SUPPRESSED = "io.contextplane.audit.suppressed"
AUTHENTICATION = "io.contextplane.audit.authentication"


def context(client_id: str) -> RequestContext:
    connection = ConnectionInfo("10.0.0.9:4000", principal=Principal("User", "bob"))
    return RequestContext(None, RequestHeader(3, 12, 7, client_id), connection)  # type: ignore[arg-type]


class Recorded:
    def __init__(self, per_second: int = 10) -> None:
        self.clock = ManualClock()
        self.values: list[bytes] = []
        self.audit = AuditLog(
            lambda key, value: self.values.append(value) is None,
            "contextplane://c/broker/1",
            self.clock.wall_ms,
            StandardAuthorizer(),
            "",
            per_second,
        )

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        events = [json.loads(v) for v in self.values]
        return [e["data"] for e in events if e["type"] == event_type]


def test_a_32_kb_client_id_makes_records_of_a_few_kb() -> None:
    recorded = Recorded()
    ctx = context(HUGE_CLIENT_ID)
    recorded.audit.denials(ctx, [(Action(Operation.DESCRIBE, ResourceType.TOPIC, "t"), 29)])
    recorded.audit.record(ctx, "CreateTopics", "topic", "t")
    recorded.audit.authentication(
        peer="10.0.0.9:4000",
        listener="SASL_PLAINTEXT",
        mechanism="PLAIN",
        principal=Principal("User", "u" * 40_000),
        success=True,
        client_id=HUGE_CLIENT_ID,
    )
    assert len(recorded.values) == 3
    for value in recorded.values:
        assert len(value) < RECORD_BYTES_MAX
        data = json.loads(value)["data"]
        assert data["client_id"].startswith("\x01" * CLIENT_CHARS_MAX)
        assert data["client_id"].endswith(f"(+{32_767 - CLIENT_CHARS_MAX} chars)")


def test_a_32_kb_client_id_and_group_make_a_receipt_of_a_few_kb() -> None:
    values: list[bytes] = []
    receipts = ReadReceipts(
        lambda topic, key, value: values.append(value) is None, "s", 1000, ManualClock()
    )
    ctx = context(HUGE_CLIENT_ID)
    receipts.saw_group(ctx, "g" * 32_767)
    raw = bytearray(encode_batch([(b"k", b"v")] * 5, 0))
    struct.pack_into(">q", raw, 0, 0)
    receipts.fetched(ctx, "orders", 0, 0, bytes(raw))
    receipts.close_windows(force=True)
    [value] = values
    assert len(value) < RECORD_BYTES_MAX
    data = json.loads(value)["data"]
    assert data["client_id"].endswith(f"(+{32_767 - CLIENT_CHARS_MAX} chars)")
    assert data["group"].endswith(f"(+{32_767 - CLIENT_CHARS_MAX} chars)")


def test_a_failed_receipt_round_is_retried_and_later_receipts_still_emit() -> None:
    """The window-closing loop outlives a round that raised (e.g. the audit sink refusing
    a record): the receipts of every later read depend on it."""
    values: list[bytes] = []
    failures = [RuntimeError("sink refused")]

    def offer(topic: str, key: bytes, value: bytes) -> bool:
        if failures:
            raise failures.pop()
        values.append(value)
        return True

    clock = ManualClock()
    receipts = ReadReceipts(offer, "s", 20, clock)
    raw = bytearray(encode_batch([(b"k", b"v")], 0))

    async def main() -> None:
        await receipts.start()
        try:
            receipts.fetched(context("first"), "orders", 0, 0, bytes(raw))
            clock.advance(20)
            for _ in range(500):  # the failing round
                if not failures:
                    break
                await asyncio.sleep(0.01)
            receipts.fetched(context("second"), "orders", 1, 0, bytes(raw))
            clock.advance(20)
            for _ in range(500):
                if values:
                    break
                await asyncio.sleep(0.01)
        finally:
            await receipts.stop()

    asyncio.run(main())
    assert not failures
    assert values, "no receipt after the failed round: the loop died"
    assert json.loads(values[0])["data"]["client_id"] == "second"


def fail_login(audit: AuditLog, host: str) -> None:
    audit.sasl_failure(
        peer=f"{host}:4000",
        host=host,
        listener="SASL_PLAINTEXT",
        mechanism="PLAIN",
        client_id="flood",
        error=ErrorCode.sasl_authentication_failed,
        reason="bad password",
    )


def test_failed_logins_from_one_address_are_bound_per_second_and_the_rest_counted() -> None:
    recorded = Recorded(per_second=10)
    for _ in range(500):
        fail_login(recorded.audit, "10.0.0.9")
    fail_login(recorded.audit, "10.0.0.8")  # another address has its own bound
    assert len(recorded.of_type(AUTHENTICATION)) == 11
    assert recorded.of_type(SUPPRESSED) == []  # the window still runs
    recorded.clock.advance(1000)
    recorded.audit.report_suppressed()
    [summary] = recorded.of_type(SUPPRESSED)
    assert summary["client_address"] == "10.0.0.9"
    assert summary["mechanism"] == "SASL"
    assert summary["suppressed_records"] == 490
    recorded.audit.authentication(  # a success is never bound
        peer="10.0.0.9:4000",
        listener="SASL_PLAINTEXT",
        mechanism="PLAIN",
        principal=Principal("User", "alice"),
        success=True,
    )
    assert len(recorded.of_type(AUTHENTICATION)) == 12


def test_a_consumer_seeking_to_1000_offsets_gets_a_coarse_receipt_of_64_ranges() -> None:
    """One receipt per window, whatever the seeks: past 64 ranges the closest are merged and
    the receipt says it is coarse; every offset returned is still covered."""
    values: list[bytes] = []
    receipts = ReadReceipts(
        lambda topic, key, value: values.append(value) is None, "s", 1000, ManualClock()
    )
    ctx = context("seeker")
    returned = set()
    for offset in range(0, 30_000, 30):  # 1,000 non-adjoining offsets
        raw = bytearray(encode_batch([(b"k", b"v")], 0))
        struct.pack_into(">q", raw, 0, offset)
        receipts.fetched(ctx, "orders", 0, offset, bytes(raw))
        returned.add(offset)
    receipts.close_windows(force=True)
    [value] = values
    data = json.loads(value)["data"]
    assert data["coarse"] is True
    assert len(data["ranges"]) <= 64
    assert data["fetches"] == 1_000
    assert all(any(a <= o <= b for a, b in data["ranges"]) for o in returned)


def test_ranges_merge_what_overlaps_or_adjoins_and_coarsen_only_widens() -> None:
    rng = random.Random(7)
    for _ in range(200):
        ranges: list[tuple[int, int]] = []
        offsets: set[int] = set()
        for _ in range(rng.randrange(1, 40)):
            first = rng.randrange(0, 300)
            last = first + rng.randrange(0, 10)
            add_range(ranges, first, last)
            offsets.update(range(first, last + 1))
        assert ranges == sorted(ranges)
        assert all(b[0] > a[1] + 1 for a, b in zip(ranges, ranges[1:], strict=False))
        assert {o for a, b in ranges for o in range(a, b + 1)} == offsets  # exact
        assert all(covers(ranges, o) for o in offsets)
        coarsen(ranges, 4)
        assert len(ranges) <= 4
        assert all(covers(ranges, o) for o in offsets)  # never under-reports
