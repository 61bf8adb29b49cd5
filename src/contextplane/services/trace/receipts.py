"""The read-receipt link of a trace: which consumers received a source record.

A contextplane broker records every Fetch that returned records as a read receipt on
`__contextplane_read_receipts` (one CloudEvents record per connection, partition and
window: principal, client id, group, client address and the offset ranges received). A
source record's receipts are those whose topic and partition are the record's and whose
ranges hold its offset, read before the decision was recorded (a receipt whose first
fetch is later is another reader's, a trace's own among them, not one the decision could
have seen). One scan serves every source record of a decision, bounded in time by
ListOffsets: from the receipts stamped at the oldest record's timestamp (less a margin
for the producers' clocks) to those stamped RECEIPT_WINDOW_MAX_MS after the decision,
not the topic's whole retention.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from contextplane.services.trace.link import Link, cut, place

if TYPE_CHECKING:
    from contextplane.services.trace.reader import Reader

# The broker's internal topic (broker/internal_topics.py; not imported: this side of the
# project is a Kafka client of any cluster and imports none of the broker).
RECEIPTS_TOPIC = "__contextplane_read_receipts"
# Receipts shown per source record, the earliest (who picked it up first); the rest counted.
RECEIPTS_PER_RECORD_MAX = 20
# A source record's timestamp is its producer's clock (CreateTime): receipts are read
# from this long before it, so a producer clock ahead of the broker's loses none.
PRODUCER_CLOCK_SKEW_MS = 5 * 60 * 1000
# A receipt is written when its window closes (`contextplane.audit.read.receipts.window.ms`,
# 1 s by default): receipts of reads begun before the decision are read up to this long
# after it.
RECEIPT_WINDOW_MAX_MS = 10 * 60 * 1000
# A receipt's value read, at most (the broker's are well under 64 KiB).
RECEIPT_BYTES_MAX = 1024 * 1024
# How the context service names its sources' reader (services/context/partitions.py;
# not imported: the trace reads any cluster's records, the service need not be here).
_GROUP_SUFFIX = "-sources"
_URL_SEPARATOR = "@"
_SHOWN = ("principal", "client_id", "group", "client_address", "first_fetch_time", "coarse")

Wanted = tuple[str, int, int]  # a source record's topic, partition and offset


def receipt_links(
    reader: Reader, records: dict[Wanted, int], decided_ms: int
) -> dict[Wanted, list[Link]]:
    """Each source record (-> its timestamp) with its receipts of reads begun by
    `decided_ms` (the decision record's timestamp) as links, or one link `missing`
    saying why none was found."""
    if not records:
        return {}
    found: dict[Wanted, list[Link]] = {at: [] for at in records}
    more: dict[Wanted, int] = dict.fromkeys(records, 0)
    by_partition: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset in records:
        by_partition.setdefault((topic, partition), []).append(offset)

    def keep(message: Any) -> None:
        receipt = _receipt(message.value())
        if receipt is None:
            return
        if decided_ms >= 0 and _ms(receipt.get("first_fetch_time")) > decided_ms:
            return  # read after the decision (a record without a timestamp: all kept)
        for offset in by_partition.get((receipt["topic"], receipt["partition"]), ()):
            if _holds(receipt, offset):
                at = (receipt["topic"], receipt["partition"], offset)
                if len(found[at]) < RECEIPTS_PER_RECORD_MAX:
                    found[at].append(_link(message, receipt))
                else:
                    more[at] += 1

    since_ms = max(0, min(records.values()) - PRODUCER_CLOCK_SKEW_MS)
    until_ms = decided_ms + RECEIPT_WINDOW_MAX_MS if decided_ms >= 0 else None
    short = reader.scan(RECEIPTS_TOPIC, keep, since_ms=since_ms, until_ms=until_ms)
    read = reader.records_read.get(RECEIPTS_TOPIC, 0)
    for at, links in found.items():
        if more[at]:
            links[-1].detail["receipts_not_shown"] = more[at]
        if not links:
            links.append(Link("read-receipt", "read by", missing=_none_why(at, read, short)))
        elif short:
            links.append(Link("read-receipt", "read by", missing=f"more not read: {short}"))
    return found


def _none_why(at: Wanted, read: int, short: str | None) -> str:
    topic, partition, offset = at
    if short and short.startswith(f"topic {RECEIPTS_TOPIC}:"):
        return f"{short} (a cluster that keeps no read receipts)"
    why = (
        f"no read receipt names {place(topic, partition, offset)} for a read before the"
        f" decision ({read} receipts read):"
        " read receipts off on the broker (contextplane.audit.read.receipts.enable=false),"
        " the read's receipt not yet written, or written past the 10 minutes read after the"
        " decision (contextplane.audit.read.receipts.window.ms),"
        " or past the receipts' retention"
    )
    return f"{why}; {short}" if short else why


def _receipt(raw: bytes | None) -> dict[str, Any] | None:
    """A receipt's data, if the record is one this reader understands."""
    if raw is None or len(raw) > RECEIPT_BYTES_MAX:
        return None
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("topic"), str):
        return None
    if type(data.get("partition")) is not int:
        return None
    return data | {"time": document.get("time")}


def _ms(text: Any) -> float:
    """An RFC 3339 time in ms since the epoch; a time that is none: never before anything."""
    try:
        return datetime.fromisoformat(text).timestamp() * 1000
    except (TypeError, ValueError):
        return math.inf


def _holds(receipt: dict[str, Any], offset: int) -> bool:
    """Does the receipt name `offset`? (A coarse one: may it have been received.)"""
    ranges = receipt.get("ranges")
    if not isinstance(ranges, list):
        ranges = [[receipt.get("first_offset"), receipt.get("last_offset")]]
    for pair in ranges:
        if (
            isinstance(pair, list)
            and len(pair) == 2
            and all(type(n) is int for n in pair)
            and pair[0] <= offset <= pair[1]
        ):
            return True
    return False


def context_member(group: Any, client_id: Any) -> dict[str, str]:
    """The context service instance a receipt's reader is, by the client ids the service
    reads its sources with (services/context/applier.py): a partitioned instance joins the
    group `NAME-sources` as `NAME-sources-INSTANCE[@URL]` (the broker names that group in
    its receipts), the single instance assigns itself every partition as `NAME-sources`
    and joins no group. The broker's receipts hold no Kafka member id (Fetch names none);
    the instance id is the member's stable name, its member id changing at every join.
    Any reader may choose these client ids: a name, as the receipt's client id is."""
    if not isinstance(client_id, str) or not client_id:
        return {}
    if isinstance(group, str) and group.endswith(_GROUP_SUFFIX):
        if client_id.startswith(f"{group}-"):
            instance = client_id[len(group) + 1 :].split(_URL_SEPARATOR, 1)[0]
            if instance:
                return {"service": cut(group[: -len(_GROUP_SUFFIX)]), "member": cut(instance)}
    elif group is None and client_id.endswith(_GROUP_SUFFIX) and client_id != _GROUP_SUFFIX:
        return {
            "service": cut(client_id[: -len(_GROUP_SUFFIX)]),
            "member": "single instance (assign(): joins no group)",
        }
    return {}


def _link(message: Any, receipt: dict[str, Any]) -> Link:
    detail = {
        name: cut(value) if isinstance(value, str) else value
        for name in _SHOWN
        if isinstance(value := receipt.get(name), str | bool | None)
    }
    detail.update(context_member(receipt.get("group"), receipt.get("client_id")))
    where = place(message.topic(), message.partition(), message.offset())
    return Link("read-receipt", "read by", where, detail)
