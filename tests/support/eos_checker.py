"""Exactly-once checks over a recorded history of transactional writes and what readers saw.

Pure functions over plain data, so the checker itself is tested on fabricated histories
(tests/unit/test_eos_checker.py): a checker that cannot fail proves nothing.

What the writers record (`Txn`): each transaction's records (unique values, each with the
partition it was sent to and whether its delivery was acknowledged) and what the client
knows of its outcome:
- COMMITTED: commit_transaction returned (the broker acknowledged the commit);
- ABORTED: the client never asked to commit it (aborted on purpose or after an error);
- UNKNOWN: commit was asked for but not acknowledged (the broker died, a timeout).

What the readers saw: a read of every partition to its end, read_committed and
read_uncommitted, as `partition -> [values in offset order]`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum


class Outcome(Enum):
    COMMITTED = "committed"
    ABORTED = "aborted"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Sent:
    value: bytes
    partition: int
    delivered: bool  # the delivery report succeeded (acks=all)


@dataclass
class Txn:
    name: str
    outcome: Outcome
    records: list[Sent] = field(default_factory=list)


@dataclass(frozen=True)
class Anomaly:
    kind: str
    detail: str


Partitions = dict[int, list[bytes]]


def _positions(read: Partitions) -> dict[bytes, list[int]]:
    """Each value's partitions, once per time it was seen."""
    seen: dict[bytes, list[int]] = {}
    for partition, values in read.items():
        for value in values:
            seen.setdefault(value, []).append(partition)
    return seen


def check_transactions(
    txns: list[Txn], committed: Partitions, uncommitted: Partitions
) -> list[Anomaly]:
    """The producer-side invariants; an empty list means none was broken."""
    anomalies: list[Anomaly] = []
    rc = _positions(committed)
    ru = _positions(uncommitted)
    known: set[bytes] = set()
    for txn in txns:
        values = [sent.value for sent in txn.records]
        known.update(values)
        visible = [v for v in values if v in rc]
        for sent in txn.records:
            where = rc.get(sent.value, [])
            if len(where) > 1:
                anomalies.append(
                    Anomaly("duplicate", f"{txn.name}: {sent.value!r} seen {len(where)} times")
                )
            if where and where[0] != sent.partition:
                anomalies.append(
                    Anomaly(
                        "misplaced",
                        f"{txn.name}: {sent.value!r} in {where[0]}, sent to {sent.partition}",
                    )
                )
        if txn.outcome is Outcome.ABORTED and visible:
            anomalies.append(
                Anomaly(
                    "aborted-visible",
                    f"{txn.name} was never committed, {len(visible)} record(s) visible",
                )
            )
        elif txn.outcome is Outcome.COMMITTED and len(visible) != len(values):
            anomalies.append(
                Anomaly(
                    "lost-commit",
                    f"{txn.name} was acknowledged, {len(visible)}/{len(values)} visible",
                )
            )
        elif txn.outcome is Outcome.UNKNOWN and 0 < len(visible) < len(values):
            anomalies.append(
                Anomaly("partial", f"{txn.name}: {len(visible)}/{len(values)} visible")
            )
        for sent in txn.records:
            if sent.delivered and sent.value not in ru:
                anomalies.append(
                    Anomaly(
                        "lost-write",
                        f"{txn.name}: delivered {sent.value!r} missing read_uncommitted",
                    )
                )
    for value in rc.keys() - known:
        anomalies.append(Anomaly("phantom", f"{value!r} visible but never sent"))
    anomalies += _order_anomalies(txns, committed)
    return anomalies


def _order_anomalies(txns: list[Txn], committed: Partitions) -> list[Anomaly]:
    """A transaction's records on one partition appear in the order they were sent."""
    sent_order = {sent.value: i for txn in txns for i, sent in enumerate(txn.records)}
    owner = {sent.value: txn.name for txn in txns for sent in txn.records}
    anomalies = []
    for partition, values in committed.items():
        last: dict[str, int] = {}
        for value in values:
            if value not in owner:
                continue
            name, index = owner[value], sent_order[value]
            if index < last.get(name, -1):
                anomalies.append(
                    Anomaly("reordered", f"{name}: {value!r} after a later record in {partition}")
                )
            last[name] = max(index, last.get(name, -1))
    return anomalies


def check_transform(
    inputs: Partitions,
    input_offsets: dict[int, list[int]],
    input_ends: dict[int, int],
    outputs: Partitions,
    group_offsets: dict[int, int],
) -> list[Anomaly]:
    """The consume-transform-produce invariants. `inputs` is the read_committed input with
    each value's offset in `input_offsets`; `outputs` the read_committed output whose values
    are the input values copied; `group_offsets` the transform group's committed offsets.

    Every input record below the group's committed offset is in the output exactly once, and
    no other record is: what the group says it consumed is exactly what it produced. Once
    the transform has caught up, its committed offsets are past the last input record and
    not past the input's ends (a trailing marker or aborted batch may lie between)."""
    anomalies: list[Anomaly] = []
    for partition, offsets in input_offsets.items():
        committed_to = group_offsets.get(partition, 0)
        if offsets and committed_to <= offsets[-1]:
            anomalies.append(
                Anomaly(
                    "transform-behind",
                    f"partition {partition}: committed {committed_to}, last record {offsets[-1]}",
                )
            )
        if committed_to > input_ends[partition]:
            anomalies.append(
                Anomaly(
                    "transform-ahead",
                    f"partition {partition}: committed {committed_to}, end {input_ends[partition]}",
                )
            )
    produced = Counter(v for values in outputs.values() for v in values)
    for value, count in produced.items():
        if count > 1:
            anomalies.append(Anomaly("transform-duplicate", f"{value!r} output {count} times"))
    consumed: set[bytes] = set()
    for partition, values in inputs.items():
        committed_to = group_offsets.get(partition, 0)
        for value, offset in zip(values, input_offsets[partition], strict=True):
            if offset < committed_to:
                consumed.add(value)
    for value in sorted(consumed - produced.keys()):
        anomalies.append(
            Anomaly("transform-lost", f"{value!r} consumed (offset committed), not output")
        )
    for value in sorted(produced.keys() - consumed):
        anomalies.append(Anomaly("transform-extra", f"{value!r} output, its offset not committed"))
    return anomalies
