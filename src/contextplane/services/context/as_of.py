"""Point-in-time reads: an entity as it was once exactly the source records below an
offset vector V had been applied (RFC 0006 §1, "Point in time"), or below the vector a
time T resolves to (`as_of_time.py`).

The read starts from the newest snapshot whose positions are all ≤ V (or from offset 0
when none is), reads each source partition from there up to V with its own consumer
(`read_committed`, assigned, no group), keeps the records of the one entity asked and
folds them into the snapshot's state with `merge.fold_bounded`, the apply loop's fold.
Within a partition records fold in offset order; across partitions by (timestamp,
topic, partition), a heads-merge that keeps each partition's order: the same records
give the same answer, however often asked.

It runs on a worker thread (confluent-kafka blocks); `AsOfSettings` bound it: at
most `records_max` offsets scanned (known before reading), `entity_bytes_max` of the
entity's record values kept, and `timeout_ms` in all.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from contextplane.clock import Clock
from contextplane.services.context import errors
from contextplane.services.context.as_of_time import resolve
from contextplane.services.context.freshness import Position
from contextplane.services.context.freshness import TopicPartition as TP
from contextplane.services.context.merge import (
    Entity,
    Fold,
    Skip,
    decode_entity,
    fold_bounded,
    read,
)
from contextplane.services.context.order import record_origin
from contextplane.services.context.snapshots import Snapshots
from contextplane.services.context.views import View

# Records taken from the consumer per call while scanning.
SCAN_BATCH = 1000
# How long one poll waits before the deadline is checked again.
POLL_S = 0.2

_NONE = Position(0, None)  # a partition a snapshot has no position for: nothing applied
Ordered = tuple[tuple[int, str, int], Fold]  # ((timestamp, topic, partition), fold)
# Given the read's consumer and deadline: the vector to read up to and each partition's
# log start.
Locate = Callable[[Consumer, int], tuple[dict[TP, int], dict[TP, int]]]


@dataclass(frozen=True)
class AsOfSettings:
    snapshot_every_records: int = 100_000  # source offsets applied between snapshots
    snapshots_kept: int = 3
    records_max: int = 1_000_000  # offsets scanned per read, from the snapshot to V
    concurrent_max: int = 4  # reads running at once
    timeout_ms: int = 10_000  # one read, from its start to its answer
    entity_bytes_max: int = 64 * 1024 * 1024  # the entity's record values kept per read


@dataclass(frozen=True)
class PastState:
    entity: Entity | None
    newest_ms: int | None  # the newest timestamp among the view's records below V
    scanned: int  # offsets read past the snapshot (for the log, not the answer)
    snapshot: str | None
    vector: dict[TP, int]  # the vector answered for (a timestamp's, resolved)


def folds_of(view: View, entity: str, record: Any, origin: Any) -> list[Fold]:
    """What one source record does to `entity` in `view` (nothing when it names another
    entity or is skipped): each of the view's sources on its topic, in declared order,
    as the apply loop reads it."""
    found: list[Fold] = []
    for source in view.sources:
        if source.topic != origin.topic:
            continue
        if source.id_path is None and record.key() != entity.encode():
            continue  # keyed by another entity: its value need not be parsed
        got = read(source, record.key(), record.value())
        if not isinstance(got, Skip) and got[0] == entity:
            found.append((source, got[1], origin))
    return found


def fold_in_order(current: Entity | None, partitions: dict[TP, list[Ordered]]) -> Entity | None:
    """Each partition's folds in its order, partitions merged by (timestamp, topic,
    partition) of their next record: deterministic for the same records."""
    merged: Iterable[Ordered] = heapq.merge(
        *(partitions[tp] for tp in sorted(partitions)), key=lambda item: item[0]
    )
    entity, _ = fold_bounded(current, [fold for _, fold in merged])
    return entity


class PointInTime:
    def __init__(
        self,
        client_config: dict[str, Any],
        name: str,
        snapshots: Snapshots,
        settings: AsOfSettings,
        clock: Clock,
    ) -> None:
        self._config = {
            **client_config,
            # Assigned partitions only: the group is never joined and nothing committed.
            "group.id": f"{name}-as-of",
            # Its own client id: a read receipt names the group last seen for the same
            # principal, client id and host, so librdkafka's shared default ("rdkafka")
            # would credit these reads to some other consumer's group in a trace.
            "client.id": client_config.get("client.id", f"{name}-as-of"),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            # Records deleted by retention under a read are an error, never a silent
            # jump to the log's end (which would look like a partition read to V).
            "auto.offset.reset": "error",
        }
        self._snapshots = snapshots
        self.settings = settings
        self._clock = clock

    def read(self, view: View, entity: str, vector: dict[TP, int]) -> PastState:
        """`entity` as of `vector`, which names every source partition of `view`."""

        def ends_checked(consumer: Consumer, deadline: int) -> tuple[dict[TP, int], dict[TP, int]]:
            return vector, self._check_ends(consumer, vector, deadline)

        return self._read(view, entity, ends_checked)

    def read_at_time(
        self, view: View, entity: str, partitions: list[TP], timestamp_ms: int
    ) -> PastState:
        """`entity` as of the time T: the vector `as_of_time.resolve` finds for T over
        `partitions` (every source partition of `view`), then as `read`."""

        def resolved(consumer: Consumer, deadline: int) -> tuple[dict[TP, int], dict[TP, int]]:
            # The ends first: a record stamped after T that lands meanwhile stays out.
            ends = self._watermarks(consumer, partitions, deadline)
            return resolve(consumer, ends, timestamp_ms, lambda: self._left_s(deadline))

        return self._read(view, entity, resolved)

    def _read(self, view: View, entity: str, locate: Locate) -> PastState:
        """The read itself, once `locate` gave the vector and each partition's log start."""
        deadline = self._clock.monotonic_ms() + self.settings.timeout_ms
        consumer = Consumer(self._config)
        try:
            vector, low = locate(consumer, deadline)
            start, current, newest, snapshot = self._start(view, entity, vector)
            deleted = {
                tp: (start[tp], low[tp])
                for tp in vector
                if start[tp] < vector[tp] and low[tp] > start[tp]
            }
            if deleted:
                raise errors.as_of_deleted(deleted)
            span = sum(vector[tp] - start[tp] for tp in vector)
            if span > self.settings.records_max:
                raise errors.as_of_too_far(
                    f"as_of needs {span} offsets read from"
                    f" {'the newest snapshot before it' if snapshot else 'the log start'},"
                    f" more than the bound of {self.settings.records_max}"
                )
            partitions, scanned_newest = self._scan(consumer, view, entity, start, vector, deadline)
        except KafkaException as exc:
            if self._clock.monotonic_ms() >= deadline:  # a Kafka call cut short by the time bound
                raise errors.as_of_timeout(self.settings.timeout_ms) from None
            raise errors.as_of_failed(exc.args[0].str()) from None
        finally:
            consumer.close()
        if scanned_newest is not None:
            newest = scanned_newest if newest is None else max(newest, scanned_newest)
        return PastState(fold_in_order(current, partitions), newest, span, snapshot, vector)

    def _left_s(self, deadline_ms: int) -> float:
        """Seconds until the deadline; the timeout problem once it passed."""
        left_ms = deadline_ms - self._clock.monotonic_ms()
        if left_ms <= 0:
            raise errors.as_of_timeout(self.settings.timeout_ms)
        return left_ms / 1000

    def _check_ends(
        self, consumer: Consumer, vector: dict[TP, int], deadline: int
    ) -> dict[TP, int]:
        """Each partition's log start; refused when V is past a partition's end (for a
        read_committed consumer, its last stable offset: records below it are decided)."""
        asked = [tp for tp, offset in vector.items() if offset > 0]
        ends = self._watermarks(consumer, asked, deadline)
        ahead = {tp: (vector[tp], end) for tp, (_, end) in sorted(ends.items()) if vector[tp] > end}
        if ahead:
            raise errors.as_of_ahead(ahead)
        return {tp: ends[tp][0] if tp in ends else 0 for tp in vector}

    def _watermarks(
        self, consumer: Consumer, partitions: list[TP], deadline: int
    ) -> dict[TP, tuple[int, int]]:
        """Each partition's log start and end (for a read_committed consumer, its last
        stable offset: records below it are decided)."""
        return {
            tp: consumer.get_watermark_offsets(
                TopicPartition(*tp), timeout=self._left_s(deadline), cached=False
            )
            for tp in sorted(partitions)
        }

    def _start(
        self, view: View, entity: str, vector: dict[TP, int]
    ) -> tuple[dict[TP, int], Entity | None, int | None, str | None]:
        """Where the read starts: the newest snapshot at or before V (positions, the
        entity there, the newest timestamp there), else the log start."""
        usable = [
            s
            for s in self._snapshots.all()
            if all(s.positions.get(tp, _NONE).position <= at for tp, at in vector.items())
        ]
        found = self._snapshots.read(view.name, entity, usable)
        if found is None:
            return dict.fromkeys(vector, 0), None, None, None
        snapshot, held = found
        start = {tp: held.positions.get(tp, _NONE).position for tp in vector}
        stamps = [
            at.newest_ms
            for tp, at in held.positions.items()
            if tp in vector and at.newest_ms is not None
        ]
        current = None if held.raw is None else decode_entity(held.raw)
        return start, current, max(stamps) if stamps else None, snapshot.path.name

    def _scan(
        self,
        consumer: Consumer,
        view: View,
        entity: str,
        start: dict[TP, int],
        vector: dict[TP, int],
        deadline: int,
    ) -> tuple[dict[TP, list[Ordered]], int | None]:
        """The entity's folds in each partition from `start` up to `vector`, and the
        newest timestamp among all the records read."""
        pending = {tp for tp in vector if start[tp] < vector[tp]}
        partitions: dict[TP, list[Ordered]] = {tp: [] for tp in pending}
        if not pending:
            return partitions, None
        consumer.assign([TopicPartition(t, p, start[(t, p)]) for t, p in sorted(pending)])
        newest: int | None = None
        kept_bytes = 0
        while pending:
            # consume() would wait for a whole batch (or its timeout) even when the rest
            # is not coming: the first record is polled, then what is fetched taken.
            first = consumer.poll(min(POLL_S, self._left_s(deadline)))
            if first is None:
                continue
            batch: list[Any] = [first, *consumer.consume(SCAN_BATCH - 1, timeout=0)]
            for message in batch:
                tp = (message.topic(), message.partition())
                if tp not in pending:
                    continue
                error = message.error()
                offset = message.offset()
                if error is not None:
                    if error.code() == KafkaError._AUTO_OFFSET_RESET:
                        low, _ = consumer.get_watermark_offsets(
                            TopicPartition(*tp), timeout=self._left_s(deadline), cached=False
                        )
                        raise errors.as_of_deleted({tp: (start[tp], low)})
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise errors.as_of_failed(f"reading {tp[0]}[{tp[1]}]: {error.str()}")
                    if offset is not None and offset >= vector[tp]:
                        pending.discard(tp)
                        consumer.pause([TopicPartition(*tp)])
                    continue
                if offset >= vector[tp]:
                    pending.discard(tp)
                    consumer.pause([TopicPartition(*tp)])
                    continue
                origin, timestamp_ms = record_origin(message)
                if timestamp_ms is not None:
                    newest = timestamp_ms if newest is None else max(newest, timestamp_ms)
                for fold in folds_of(view, entity, message, origin):
                    kept_bytes += len(message.value() or b"")
                    if kept_bytes > self.settings.entity_bytes_max:
                        raise errors.as_of_too_far(
                            f"the entity's records past the snapshot hold more than"
                            f" {self.settings.entity_bytes_max} bytes"
                        )
                    partitions[tp].append(((origin.timestamp_ms, tp[0], tp[1]), fold))
                if offset + 1 >= vector[tp]:
                    pending.discard(tp)
                    consumer.pause([TopicPartition(*tp)])
        return partitions, newest
