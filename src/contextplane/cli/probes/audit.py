"""The audit reads probe: records read back are named in a read receipt, as `contextplane
audit reads` finds them (n-a on a cluster without the read receipts topic, e.g. Apache
Kafka, or contextplane with receipts off)."""

from __future__ import annotations

from contextplane.cli.audit_reads import RECEIPTS_TOPIC, read_receipts, received
from contextplane.cli.probes.base import NotApplicable, ProbeContext, ProbeFailure
from contextplane.cli.probes.clients import Record, produce, read_back

# Receipts are written once a window (one second by default) has closed.
_ASK_EVERY_S = 1.0


def audit_reads(ctx: ProbeContext) -> str:
    topics = ctx.admin().list_topics(timeout=ctx.remaining_s()).topics
    if RECEIPTS_TOPIC not in topics:
        raise NotApplicable(f"the cluster has no {RECEIPTS_TOPIC} topic")
    since_ms = ctx.clock.wall_ms() - 1000
    topic = ctx.create_topic()
    produce(ctx, topic, [Record(b"%d" % i) for i in range(3)])
    read_back(ctx, topic, 3)
    receipts: list[dict[str, object]] = []
    while not all(any(received(r, offset) for r in receipts) for offset in range(3)):
        try:
            ctx.pause(_ASK_EVERY_S)
            receipts = [
                receipt
                for receipt in read_receipts(ctx.client_config(), since_ms, ctx.remaining_s())
                if receipt.get("topic") == topic
            ]
        except ProbeFailure:
            raise ProbeFailure(
                f"no read receipt named offsets 0-2 of {topic!r} in time "
                f"({len(receipts)} receipts of it)"
            ) from None
    principal = receipts[0]["principal"]
    return f"offsets 0-2 read back are named in read receipts (principal {principal})"
