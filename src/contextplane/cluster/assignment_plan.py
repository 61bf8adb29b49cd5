"""Where partitions go (RFC 0004 §2): a pure function of the stream id and the brokers a
partition may be placed on, the live and non-draining ones.

Placement is rendezvous hashing (highest random weight) in two rounds: the rack with the
highest score for (stream id, rack) wins, then the broker of that rack with the highest
score for (stream id, node id). Each rack therefore gets an even share whatever its
number of brokers (racks stay even), each broker an even share of its rack's, and the
choice needs no state: a broker's arrival takes only the partitions it now wins, ~1/N of
them (all from its rack's brokers when its rack already had some), and its departure
moves only its own. Brokers without a rack form one rack of their own.

Scores are a 64-bit mix of the two ids (splitmix64's finaliser), the same on every broker
and every run: never Python's `hash`, which is salted per process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_MASK = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Candidate:
    """A broker a partition may be placed on."""

    node_id: int
    rack: str | None


def _mix(value: int) -> int:
    """splitmix64's finaliser: every input bit moves about half of the output bits."""
    value &= _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def _score(stream_id: int, member: int) -> int:
    return _mix(_mix(stream_id) ^ (member * 0x9E3779B97F4A7C15))


def _rack_id(rack: str | None) -> int:
    """A rack name as a stable 64-bit number (no rack: 0)."""
    if rack is None:
        return 0
    return int.from_bytes(hashlib.blake2b(rack.encode(), digest_size=8).digest(), "big") | 1


class Placement:
    """The placement function over one set of candidates; `__call__(stream_id)` is the
    node a new partition targets. Build one per creation (the candidates are grouped by
    rack once), call it per partition."""

    def __init__(self, candidates: Iterable[Candidate]) -> None:
        racks: dict[int, list[int]] = {}
        for candidate in candidates:
            racks.setdefault(_rack_id(candidate.rack), []).append(candidate.node_id)
        if not racks:
            raise ValueError("no broker to place partitions on")
        self._racks = [(rack, sorted(set(nodes))) for rack, nodes in sorted(racks.items())]

    def __call__(self, stream_id: int) -> int:
        _, nodes = max(self._racks, key=lambda entry: (_score(stream_id, entry[0]), entry[0]))
        return max(nodes, key=lambda node: (_score(stream_id, node), node))


def place(stream_ids: Sequence[int], candidates: Iterable[Candidate]) -> dict[int, int]:
    """Each stream's target node among `candidates` (stream id -> node id)."""
    placement = Placement(candidates)
    return {stream_id: placement(stream_id) for stream_id in stream_ids}
