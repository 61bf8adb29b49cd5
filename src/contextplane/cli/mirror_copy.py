"""A copy mirror: records consumed from the source (read committed) and produced to the
target, for a target that cannot take batches at given offsets (Apache Kafka: the mirror
back of a rollback), as MirrorMaker 2 copies them.

Each round is one transaction of a transactional producer (`transactional.id` from the
mirror's name): the records, each with its key, value, headers and timestamp (CreateTime
kept), and per partition touched a progress record in the state topic (the next source
offset and the offset map, `mirror_offset_map.py`). Progress and records commit together,
so a mirror stopped or killed anywhere resumes at the last committed round, neither
losing nor duplicating a record for the target's read_committed consumers; starting the
producer fences and aborts the round a killed mirror left open. The source's aborted
records and transaction markers are not copied (so the target's offsets differ: the map
translates them)."""

from __future__ import annotations

import contextlib
import functools
import json
from dataclasses import dataclass, field
from typing import Any

from contextplane.cli import mirror_state
from contextplane.cli.kafka_client import ADMIN_TIMEOUT_S, CommandError, kafka_error_text
from contextplane.cli.mirror_offset_map import OffsetMap, offset_field

ROUND_RECORDS = 5_000  # records in one transaction, at most
ROUND_BYTES = 16 * 1024 * 1024  # keys, values and headers in one transaction, at most
CONSUME_BATCH = 500
CONSUME_WAIT_S = 0.5


@dataclass
class CopyProgress:
    topic: str
    partition: int
    position: int  # the next source offset to copy: every committed record below is copied
    offsets: OffsetMap = field(default_factory=OffsetMap)
    stored: bool = False
    source_end: int = -1  # the source's last stable offset, when the consumer last saw it
    copied: int = 0  # records copied by this run
    caught_up: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    @property
    def lag(self) -> int:
        return max(self.source_end - self.position, 0) if self.source_end >= 0 else -1


def transactional_id(name: str) -> str:
    return f"contextplane-mirror-{name}"


def state_key(name: str, topic: str, partition: int) -> bytes:
    """A copy mirror's progress key: distinct from the offset-keeping mirror's, and per
    mirror name, so two mirrors into one cluster keep their own."""
    return json.dumps(["copy", name, topic, partition]).encode()


def stored_progress(
    latest: dict[bytes, bytes | None], name: str, topic: str, partition: int
) -> CopyProgress:
    """The progress of one partition from the state topic's latest values (none: start)."""
    value = latest.get(state_key(name, topic, partition))
    try:
        parsed = json.loads(value or b"")
        position = offset_field(parsed["next"])
        return CopyProgress(
            topic, partition, position, OffsetMap.from_json(parsed, position), stored=True
        )
    except (TypeError, ValueError, KeyError, RecursionError):
        # None, or a record this mirror never writes: no progress, so a partition
        # holding records on the target is refused (`_refuse_written`).
        return CopyProgress(topic, partition, 0)


class CopyMirror:
    def __init__(
        self,
        source_config: dict[str, Any],
        target_config: dict[str, Any],
        name: str,
        partitions: list[tuple[str, int]],
        created: set[str],
    ) -> None:
        """Fence the mirror's last run (its open transaction aborted), read the progress
        it committed, check that no partition without progress holds records on the
        target (unless its topic was just `created`), and store a first progress for
        those: a partition holding records of this mirror always has progress stored."""
        from confluent_kafka import Consumer, Producer

        self.name = name
        self._producer = Producer(
            target_config
            | {"transactional.id": transactional_id(name), "acks": "all", "linger.ms": 5}
        )
        self._producer.init_transactions(ADMIN_TIMEOUT_S)
        latest = mirror_state.read_latest(target_config)
        self.progress = {
            (t, p): stored_progress(latest, name, t, p) for t, p in sorted(set(partitions))
        }
        fresh = [p for p in self.progress.values() if not p.stored]
        _refuse_written(target_config, [p for p in fresh if p.topic not in created])
        if fresh:
            self._producer.begin_transaction()
            self._commit({}, fresh, {})
        for p in fresh:
            p.stored = True
        self._consumer = Consumer(
            source_config
            | {
                "group.id": transactional_id(name),  # never joined nor committed to
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",  # a position the source's retention passed
                "queued.max.messages.kbytes": 16 * 1024,
            }
        )
        self._consumer.assign([_at(p) for p in self.progress.values()])

    def round(self) -> int:
        """Copy what the source has past each position (up to a round's bounds) in one
        transaction; the number of records copied."""
        batch, moved = self._consume()
        if not batch and not moved:
            return 0
        delivered: dict[tuple[str, int], list[tuple[int, int]]] = {}
        failures: list[str] = []
        self._producer.begin_transaction()
        try:
            for message in batch:
                self._producer.produce(
                    message.topic(),
                    key=message.key(),
                    value=message.value(),
                    headers=_headers(message),
                    partition=message.partition(),
                    timestamp=_create_time(message),
                    on_delivery=functools.partial(
                        _delivered, delivered, failures, message.offset()
                    ),
                )
            if self._producer.flush(ADMIN_TIMEOUT_S):
                raise CommandError("producing to the target: not acknowledged within the timeout")
            if failures:
                raise CommandError(failures[0])
            touched = [self.progress[key] for key in moved]
            maps = {key: self.progress[key].offsets.copy() for key in moved}
            for key, pairs in delivered.items():
                for source, target in sorted(pairs):
                    maps[key].add(source, target)
            self._commit(moved, touched, maps)
        except BaseException:
            _abort(self._producer)
            raise
        for key, position in moved.items():
            progress = self.progress[key]
            progress.position = position
            progress.offsets = maps[key]
            progress.copied += len(delivered.get(key, []))
        return len(batch)

    def caught_up(self) -> bool:
        return all(p.caught_up for p in self.progress.values())

    def translate(self, topic: str, partition: int, offset: int) -> int | None:
        progress = self.progress[(topic, partition)]
        return progress.offsets.translate(offset, progress.position)

    def close(self) -> None:
        """Close the consumer and let the producer go now, while the program runs: a
        transactional producer left to the interpreter's exit could crash it."""
        self._consumer.close()
        self._producer.flush(ADMIN_TIMEOUT_S)
        del self._producer

    def abort(self) -> None:
        """Leave no transaction open (Ctrl-C between rounds has none)."""
        _abort(self._producer)

    def _consume(self) -> tuple[list[Any], dict[tuple[str, int], int]]:
        """The records of one round and each partition's new position (moved by records,
        or to the source's end when it reports one past the position)."""
        from confluent_kafka import KafkaError

        batch: list[Any] = []
        size = 0
        moved: dict[tuple[str, int], int] = {}
        while len(batch) < ROUND_RECORDS and size < ROUND_BYTES:
            messages = self._consumer.consume(
                min(CONSUME_BATCH, ROUND_RECORDS - len(batch)), CONSUME_WAIT_S
            )
            for message in messages:
                key = (str(message.topic()), int(message.partition() or 0))
                error = message.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    if error.retriable():
                        continue  # the client retries it (a connection lost, a leader moving)
                    where = f"{key[0]}-{key[1]}" if key in self.progress else "records"
                    raise CommandError(f"reading {where} on the source: {kafka_error_text(error)}")
                progress = self.progress[key]
                offset = int(message.offset() or 0)
                if error is not None:  # the partition's end, past markers and aborted records
                    progress.source_end = offset
                    progress.caught_up = True
                    if offset > moved.get(key, progress.position):
                        moved[key] = offset
                    continue
                progress.caught_up = False
                batch.append(message)
                size += _record_bytes(message)
                moved[key] = offset + 1
            if not messages or self.caught_up():
                break
        return batch, moved

    def _commit(
        self,
        moved: dict[tuple[str, int], int],
        partitions: list[CopyProgress],
        maps: dict[tuple[str, int], OffsetMap],
    ) -> None:
        """Write `partitions`' progress (new positions from `moved`, maps from `maps`, else
        the stored ones) into the open transaction and commit it."""
        for p in partitions:
            offsets = maps.get(p.key, p.offsets)
            value = {"next": moved.get(p.key, p.position)} | offsets.to_json()
            self._producer.produce(
                mirror_state.STATE_TOPIC,
                key=state_key(self.name, p.topic, p.partition),
                value=json.dumps(value).encode(),
            )
        self._producer.commit_transaction(ADMIN_TIMEOUT_S)


def _delivered(
    delivered: dict[tuple[str, int], list[tuple[int, int]]],
    failures: list[str],
    source_offset: int,
    error: Any,
    message: Any,
) -> None:
    if error is not None:
        failures.append(
            f"producing to {message.topic()}-{message.partition()} on the target: "
            f"{kafka_error_text(error)}"
        )
        return
    key = (message.topic(), message.partition())
    delivered.setdefault(key, []).append((source_offset, message.offset()))


def _record_bytes(message: Any) -> int:
    """What a round holds of a record: its key, value and headers (a header may be as
    large as a value)."""
    headers = _headers(message) or []
    held = sum(len(name) + len(value or b"") for name, value in headers)
    return held + len(message.key() or b"") + len(message.value() or b"")


def _headers(message: Any) -> Any:
    """The record's headers; CommandError naming a record whose header names the Python
    client cannot read (bytes that are not UTF-8: it raises SystemError on them)."""
    try:
        return message.headers()
    except (SystemError, UnicodeDecodeError):
        where = f"{message.topic()}-{message.partition()} at offset {message.offset()}"
        raise CommandError(
            f"the record of {where} on the source has a header name that is not UTF-8, which"
            " copy mode's Kafka client cannot read: it cannot be copied record by record"
        ) from None


def _create_time(message: Any) -> int:
    """The source record's timestamp, given as the target's CreateTime (0, librdkafka's
    "now", for a record without one)."""
    from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

    kind, timestamp = message.timestamp()
    return 0 if kind == TIMESTAMP_NOT_AVAILABLE else max(timestamp, 0)


def _abort(producer: Any) -> None:
    from confluent_kafka import KafkaException

    # None open, or the target gone: the next run's start aborts it anyway.
    with contextlib.suppress(KafkaException):
        producer.abort_transaction(ADMIN_TIMEOUT_S)


def _at(progress: CopyProgress) -> Any:
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    start = progress.position if progress.position > 0 else OFFSET_BEGINNING
    return TopicPartition(progress.topic, progress.partition, start)


def _refuse_written(target_config: dict[str, Any], fresh: list[CopyProgress]) -> None:
    """CommandError for a partition the mirror has no progress of that holds offsets on
    the target: a copy into it could not tell its records from the mirror's."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    if not fresh:
        return
    consumer = Consumer(target_config | {"group.id": "contextplane-mirror-state"})
    try:
        for p in fresh:
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(p.topic, p.partition), timeout=ADMIN_TIMEOUT_S
                )
            except KafkaException as exc:
                raise CommandError(
                    f"offsets of {p.topic}-{p.partition} on the target: {exc.args[0].str()}"
                ) from None
            if high > 0:
                raise CommandError(
                    f"{p.topic}-{p.partition} holds {high} offsets on the target that this "
                    "mirror did not write: mirror into a new or empty topic"
                )
    finally:
        consumer.close()
