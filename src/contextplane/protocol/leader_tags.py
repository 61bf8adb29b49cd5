"""The tagged fields that name a partition's current leader (KIP-951), as the hand-written
Produce and Fetch encoders write them: a partition's `CurrentLeader {LeaderId,
LeaderEpoch}` and the response's `NodeEndpoints`.

Kafka's generated writers leave a tagged field out while it holds its default, and so
does kio: a CurrentLeader of (-1, -1) and an empty NodeEndpoints are not written, which
keeps every response without a leader to name byte for byte what it was before.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from contextplane.protocol.offsets_records import uvarint

NO_TAGGED_FIELDS = b"\x00"
_LEADER = struct.Struct(">ii")  # LeaderId, LeaderEpoch
_INT32 = struct.Struct(">i")


def current_leader(tag: int, leader: dict[str, int] | None) -> bytes:
    """The tagged field `tag` holding `leader` (`leader_id`, `leader_epoch`); empty when
    there is none to name."""
    if leader is None:
        return b""
    leader_id, epoch = leader["leader_id"], leader["leader_epoch"]
    if leader_id == -1 and epoch == -1:
        return b""
    # Its value: the two int32 and the struct's own (empty) tagged fields.
    return uvarint(tag) + b"\x09" + _LEADER.pack(leader_id, epoch) + NO_TAGGED_FIELDS


def node_endpoints(tag: int, endpoints: Sequence[dict[str, Any]]) -> bytes:
    """The tagged field `tag` holding `endpoints` (`node_id`, `host`, `port`, `rack`);
    empty when there are none."""
    if not endpoints:
        return b""
    value = bytearray(uvarint(len(endpoints) + 1))
    for endpoint in endpoints:
        value += _INT32.pack(endpoint["node_id"])
        _compact_string(value, endpoint["host"])
        value += _INT32.pack(endpoint["port"])
        _compact_string(value, endpoint["rack"])
        value += NO_TAGGED_FIELDS
    return uvarint(tag) + uvarint(len(value)) + value


def tagged_fields(*fields: bytes) -> bytes:
    """A tagged-field section holding the non-empty `fields`, given in tag order."""
    present = [field for field in fields if field]
    if not present:
        return NO_TAGGED_FIELDS
    return uvarint(len(present)) + b"".join(present)


def _compact_string(out: bytearray, value: str | None) -> None:
    if value is None:
        out += b"\x00"
        return
    data = value.encode()
    out += uvarint(len(data) + 1)
    out += data
