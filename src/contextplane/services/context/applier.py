"""The apply loop: source records folded into entity states, the states and positions
committed to the changelog in one Kafka transaction, then to the local store in one
SQLite transaction (RFC 0006 §1).

It runs on its own thread (confluent-kafka and SQLite calls block). `start` restores the
local store from the changelog and seeks each source partition to the position the
changelog holds; `run` then loops until `stop`. Every fold is `merge.read` + `merge.fold`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.clock import SystemClock
from contextplane.services.context import changelog, order, partitions
from contextplane.services.context.freshness import Position
from contextplane.services.context.freshness import TopicPartition as TP
from contextplane.services.context.merge import (
    STATE_BYTES_MAX,
    Entity,
    Fold,
    Origin,
    Skip,
    decode_entity,
    encode_entity,
    fold,
    fold_within_bound,
    read,
)
from contextplane.services.context.partitions import entity_partition
from contextplane.services.context.restore import RestoreError, restore
from contextplane.services.context.store import EntityKey, LocalStore
from contextplane.services.context.views import Source, View
from contextplane.services.kafka_topics import ensure_topics

log = logging.getLogger("contextplane.context")
_CLOCK = SystemClock()

# A batch also ends once its record values and the entity states it loaded pass this.
BATCH_BYTES_MAX = 64 * 1024 * 1024
# How long a poll waits for a record before the loop checks whether it is stopping.
READ_WAIT_S = 0.2
# Entity states kept decoded between batches (the apply loop is the only writer), up to
# this many bytes of their changelog encoding.
ENTITY_CACHE_BYTES_MAX = 64 * 1024 * 1024
# Attempts at a commit whose failure is retriable before the loop gives up (each bounded
# by the service's Kafka timeout).
COMMIT_ATTEMPTS_MAX = 3
# After a failed transaction the loop waits this long before reading the batch again.
RETRY_PAUSE_S = 0.5

# A transaction open longer is aborted by the broker.
TRANSACTION_TIMEOUT_MS = 60_000

OnApplied = Callable[[dict[TP, Position]], None]


class AbortableError(Exception):
    """The open transaction failed before it committed: abort it and read again."""


class StartError(Exception):
    """The service cannot start: a missing source topic, an unreachable cluster."""


@dataclass
class ApplierConfig:
    bootstrap: str
    name: str  # names the changelog topic and the transactional id
    data_dir: Path
    timeout_s: float = 30.0
    client_config: dict[str, str] = field(default_factory=dict)
    # Set: one of several partitioned instances of `name` (its id, stable across its
    # restarts: it names the transactional id); None: the single instance.
    instance: str | None = None
    advertised_url: str | None = None  # where this instance serves, told to the others
    session_timeout_ms: int = 45_000  # how soon the group notices a dead instance

    @property
    def changelog_topic(self) -> str:
        return f"{self.name}.changelog"

    @property
    def group(self) -> str:
        return f"{self.name}-sources"

    @property
    def transactional_id(self) -> str:
        base = f"{self.name}-applier"
        return base if self.instance is None else f"{base}-{self.instance}"


class Applier:
    def __init__(self, views: dict[str, View], config: ApplierConfig, on_applied: OnApplied):
        self._views = views
        self._config = config
        self._on_applied = on_applied
        self._by_topic: dict[str, list[tuple[str, Source]]] = {}
        for view in views.values():
            for source in view.sources:
                self._by_topic.setdefault(source.topic, []).append((view.name, source))
        common: dict[str, Any] = {"bootstrap.servers": config.bootstrap, **config.client_config}
        self._common = common
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store_path = config.data_dir / "context.db"
        self._store = LocalStore(self.store_path)
        self._producer = Producer(
            {
                **common,
                # Stable across restarts: init_transactions fences the previous
                # incarnation and aborts what it left open.
                "transactional.id": config.transactional_id,
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "linger.ms": 5,
            }
        )
        default_client_id = (
            config.group
            if config.instance is None
            else partitions.client_id(config.name, config.instance, config.advertised_url)
        )
        grouped = (
            {}
            if config.instance is None
            else {
                # Partition p of every source together: co-partitioned by entity id.
                "partition.assignment.strategy": "range",
                "session.timeout.ms": config.session_timeout_ms,
            }
        )
        self.client_id = config.client_config.get("client.id", default_client_id)
        self._consumer = Consumer(
            {
                **common,
                **grouped,
                # The single instance assigns itself every partition; partitioned ones
                # subscribe. Either way positions live in the changelog.
                "group.id": config.group,
                # What the broker's read receipts name as the reader of the sources (a
                # client config may set its own).
                "client.id": self.client_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
            }
        )
        self._positions: dict[TP, Position] = {}
        self._cache: dict[EntityKey, tuple[Entity | None, int]] = {}
        self._cache_bytes = 0
        self._assigned: list[TP] = []
        self._unheard: set[TP] = set()  # positioned, neither a record nor its end seen yet
        self._sources: list[TP] = []
        # Partitioned: the partition numbers restored and applied here (replaced whole;
        # the event loop reads it); None: the single instance, which owns all.
        self.owned: frozenset[int] | None = None
        self.partition_count = 0
        # The high watermark of each source partition, as the last fetch reported it.
        self.watermarks: dict[TP, int] = {}
        self.skipped: Counter[tuple[str, str]] = Counter()  # (view, reason) -> records
        self.applied_records = 0
        self._stopping = threading.Event()
        self.failure: str | None = None

    # -- start ---------------------------------------------------------------------------

    def start(self) -> dict[TP, Position]:
        """Create the changelog if missing, fence earlier incarnations, restore the local
        store from the changelog, seek the sources; the positions restored."""
        admin = AdminClient(self._common)
        # Sources first: a service that cannot start leaves no changelog topic behind.
        found = self._source_partitions(admin)
        self._sources = found
        counts = Counter(topic for topic, _ in found)
        self.partition_count = 1
        if self._config.instance is not None:
            try:
                self.partition_count = partitions.co_partitioned(dict(counts))
            except ValueError as exc:
                raise StartError(str(exc)) from None
        self._create_changelog(admin, self.partition_count)
        log.info("fencing earlier incarnations of %s", self._config.transactional_id)
        try:
            self._producer.init_transactions(self._config.timeout_s)
        except KafkaException as exc:
            raise StartError(f"initialising transactions: {exc.args[0].str()}") from None
        if self._config.instance is not None:
            # What the store holds may be older than what other instances wrote since:
            # each partition assigned is restored whole.
            self._store.drop_partitions(set(range(self.partition_count)))
            self.owned = frozenset()
            self._consumer.subscribe(
                sorted(counts),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
            return {}
        log.info("restoring from %s", self._config.changelog_topic)
        try:
            restore(
                self._common,
                self._config.name,
                self._config.changelog_topic,
                0,
                self._store,
                self._config.timeout_s,
            )
        except RestoreError as exc:
            raise StartError(str(exc)) from None
        self._positions = self._store.positions()
        self._assigned = found
        self._seek_to_positions()
        return dict(self._positions)

    def _on_assign(self, consumer: Consumer, assigned: list[TopicPartition]) -> None:
        """Restore the changelog partitions of the numbers assigned (dropping those no
        longer owned), then read each source partition from its restored position.
        Runs on the apply thread, inside poll."""
        numbers = {tp.partition for tp in assigned}
        self._store.drop_partitions(set(range(self.partition_count)) - numbers)
        self._cache.clear()
        self._cache_bytes = 0
        # A transaction an instance left open when it died holds the changelog's end
        # back until the broker aborts it (its timeout, 60 s).
        wait_s = self._config.timeout_s + TRANSACTION_TIMEOUT_MS / 1000
        for number in sorted(numbers):
            restore(
                self._common,
                self._config.name,
                self._config.changelog_topic,
                number,
                self._store,
                wait_s,
            )
        self._positions = {tp: at for tp, at in self._store.positions().items() if tp[1] in numbers}
        self._assigned = sorted((tp.topic, tp.partition) for tp in assigned)
        self._seek_to_positions()
        self.owned = frozenset(numbers)
        log.info("instance %s owns partitions %s", self._config.instance, sorted(numbers))
        self._on_applied(dict(self._positions))

    def _on_revoke(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        """Every batch is committed before the next poll: nothing is left to flush. The
        rows stay until the next assignment says which partitions moved; no read is
        answered from them meanwhile."""
        self.owned = frozenset()
        self._assigned = []
        log.info(
            "instance %s gave up partitions %s",
            self._config.instance,
            sorted({tp.partition for tp in revoked}),
        )

    def _create_changelog(self, admin: AdminClient, count: int) -> None:
        config = self._config
        compacted = {"cleanup.policy": "compact"}
        new = NewTopic(config.changelog_topic, num_partitions=count, config=compacted)
        ensure_topics(admin, [new], config.bootstrap, config.timeout_s, StartError)
        # A topic just created may not be in every broker's metadata yet.
        deadline = _CLOCK.monotonic_ms() / 1000 + config.timeout_s
        have = 0
        while not have and _CLOCK.monotonic_ms() / 1000 < deadline:
            described = admin.list_topics(config.changelog_topic, timeout=config.timeout_s)
            topic = described.topics.get(config.changelog_topic)
            have = 0 if topic is None or topic.error is not None else len(topic.partitions)
            if not have:
                time.sleep(0.1)
        if have != count:
            raise StartError(
                f"{config.changelog_topic} has {have} partitions, the sources {count}"
                f" ({'partitioned' if config.instance else 'one instance'}): use another --name"
            )

    def _source_partitions(self, admin: AdminClient) -> list[TP]:
        metadata = admin.list_topics(timeout=self._config.timeout_s)
        found: list[TP] = []
        for topic in sorted(self._by_topic):
            described = metadata.topics.get(topic)
            if described is None or described.error is not None or not described.partitions:
                raise StartError(f"source topic {topic!r} does not exist")
            found += [(topic, p) for p in sorted(described.partitions)]
        return found

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._step()
        except Exception as exc:  # fatal: fenced by a newer incarnation, or a fault
            log.exception("the apply loop stopped")
            self.failure = str(exc)
            self._on_applied(dict(self._positions))  # wakes the service to notice
        finally:
            self._consumer.close()
            self._store.close()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def partitions(self) -> list[TP]:
        """Every source partition of the views, known once `start` returned (a
        partitioned instance reads those of the numbers it owns)."""
        return list(self._sources)

    def _step(self) -> None:
        try:
            first = self._consumer.poll(READ_WAIT_S)
            messages = [] if first is None else [first]
            if messages:
                messages += self._consumer.consume(order.READ_BATCH_MAX - 1, timeout=0)
                messages += order.gather(self._consumer, messages, self._unheard, self._stopping)
        except KafkaException as exc:
            log.warning("reading the sources failed (%s); retrying", exc)
            return
        messages = order.canonical_order(messages)
        try:
            while messages:
                messages = messages[self._apply(messages) :]
        except AbortableError as exc:
            self._recover(str(exc))
        self._note_watermarks()

    def _apply(self, messages: list[Any]) -> int:
        """Fold a prefix of `messages` (bounded by BATCH_BYTES_MAX) and commit it; how
        many were taken."""
        loaded: dict[EntityKey, Entity | None] = {}
        batch_bytes = 0
        taken = 0
        changed: dict[EntityKey, Entity | None] = {}
        folds: dict[EntityKey, list[Fold]] = {}
        where: dict[EntityKey, int] = {}  # the changelog partition of each entity
        positions = dict(self._positions)
        owned = self.owned
        for message in messages:
            if batch_bytes > BATCH_BYTES_MAX:
                break
            taken += 1
            if owned is not None and message.partition() not in owned:
                continue  # fetched before its partition was revoked in this batch
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    tp = (message.topic(), message.partition())
                    before = positions.get(tp, Position(0, None))
                    if message.offset() > before.position:
                        positions[tp] = Position(message.offset(), before.newest_ms)
                else:
                    log.warning("reading %s: %s", message.topic(), error.str())
                continue
            tp = (message.topic(), message.partition())
            batch_bytes += len(message.value() or b"")
            origin, timestamp_ms = order.record_origin(message)
            for view, source in self._by_topic.get(tp[0], []):
                got = read(source, message.key(), message.value())
                if isinstance(got, Skip):
                    self._skip(view, got.reason, origin)
                    continue
                entity_id, value = got
                if owned is not None and entity_partition(entity_id, self.partition_count) != tp[1]:
                    # Its entity lives where its id hashes (the owner `get` redirects to):
                    # a record produced elsewhere would split it between two owners.
                    self._skip(view, "not-co-partitioned", origin)
                    continue
                key = (view, entity_id)
                where[key] = 0 if owned is None else tp[1]
                if key not in loaded:
                    loaded[key], size = self._load(key)
                    batch_bytes += size
                current = changed[key] if key in changed else loaded[key]
                after = fold(source, current, value, origin)
                if after is not current:
                    changed[key] = after
                folds.setdefault(key, []).append((source, value, origin))
            before = positions.get(tp, Position(0, None))
            newest = before.newest_ms
            if timestamp_ms is not None:
                newest = timestamp_ms if newest is None else max(newest, timestamp_ms)
            positions[tp] = Position(max(before.position, message.offset() + 1), newest)
        encoded = self._encode(changed, loaded, folds)
        moved = {tp: at for tp, at in positions.items() if self._positions.get(tp) != at}
        if not encoded and not moved:
            return taken
        read_to, entity_offsets = self._commit_to_changelog(encoded, moved, where)
        self._store.commit(encoded, moved, None, entity_offsets, where, read_to)
        self._positions = positions
        for key, raw in encoded.items():
            self._remember(key, changed[key], 0 if raw is None else len(raw))
        self.applied_records += sum(
            1
            for m in messages[:taken]
            if m.error() is None and (owned is None or m.partition() in owned)
        )
        self._on_applied(dict(positions))
        return taken

    def _encode(
        self,
        changed: dict[EntityKey, Entity | None],
        loaded: dict[EntityKey, Entity | None],
        folds: dict[EntityKey, list[Fold]],
    ) -> dict[EntityKey, bytes | None]:
        """Each changed entity as its changelog value. One past STATE_BYTES_MAX is folded
        again record by record, each fold that would pass the bound skipped (rare: the
        size is checked once per entity and batch, not per record)."""
        encoded: dict[EntityKey, bytes | None] = {}
        for key, entity in list(changed.items()):
            raw = None if entity is None else encode_entity(entity)
            if raw is not None and len(raw) > STATE_BYTES_MAX:
                view = key[0]
                entity, skipped = fold_within_bound(loaded[key], folds[key])
                for origin in skipped:
                    self._skip(view, "state-too-large", origin)
                if entity is loaded[key]:
                    del changed[key]
                    continue
                changed[key] = entity
                raw = None if entity is None else encode_entity(entity)
            encoded[key] = raw
        return encoded

    def _load(self, key: EntityKey) -> tuple[Entity | None, int]:
        """An entity's committed state and the size of its encoding."""
        if key in self._cache:
            return self._cache[key]
        raw, _ = self._store.entity(*key)
        return (None, 0) if raw is None else (decode_entity(raw), len(raw))

    def _remember(self, key: EntityKey, entity: Entity | None, size: int) -> None:
        """Committed states, so the next batch need not read them back from SQLite."""
        if key in self._cache:
            self._cache_bytes -= self._cache.pop(key)[1]
        while self._cache and self._cache_bytes + size > ENTITY_CACHE_BYTES_MAX:
            oldest = next(iter(self._cache))  # the least recently written
            self._cache_bytes -= self._cache.pop(oldest)[1]
        if size <= ENTITY_CACHE_BYTES_MAX:
            self._cache[key] = (entity, size)
            self._cache_bytes += size

    def _skip(self, view: str, reason: str, origin: Origin) -> None:
        self.skipped[(view, reason)] += 1
        if self.skipped[(view, reason)] <= 5:  # the first few whole, the rest counted
            log.warning(
                "view %s skipped %s[%d]@%d: %s",
                view,
                origin.topic,
                origin.partition,
                origin.offset,
                reason,
            )

    def _commit_to_changelog(
        self,
        entities: dict[EntityKey, bytes | None],
        positions: dict[TP, Position],
        where: dict[EntityKey, int],
    ) -> tuple[dict[int, int], dict[EntityKey, int]]:
        """One Kafka transaction; for each changelog partition written, the offset just
        past it if every record's offset there was reported (one not reported: the store
        keeps its older, safe read position), and the offset of each entity's record
        that was reported."""
        topic = self._config.changelog_topic
        single = self.owned is None
        offsets: dict[int, list[int]] = {}
        keys = {changelog.entity_key(key): key for key in entities}
        entity_offsets: dict[EntityKey, int] = {}
        sent = Counter(where[key] for key in entities)
        sent.update(0 if single else tp[1] for tp in positions)

        def delivered(error: KafkaError | None, message: Any) -> None:
            if error is None:
                offsets.setdefault(int(message.partition()), []).append(int(message.offset()))
                key = keys.get(message.key())
                if key is not None:
                    entity_offsets[key] = int(message.offset())

        producer = self._producer
        producer.begin_transaction()
        try:
            for key, value in entities.items():
                producer.produce(
                    topic,
                    key=changelog.entity_key(key),
                    value=value,
                    partition=where[key],
                    on_delivery=delivered,
                )
            for tp, at in positions.items():
                producer.produce(
                    topic,
                    key=changelog.position_key(tp),
                    value=changelog.position_value(at),
                    partition=0 if single else tp[1],
                    on_delivery=delivered,
                )
            producer.flush(self._config.timeout_s)  # serves the delivery callbacks
            if not single:
                # As Kafka Streams' EOS-v2: the group's generation goes with the
                # transaction, so an instance the group has moved on from (paused past
                # its session, then awake) is refused the commit instead of writing to
                # partitions another instance now owns.
                producer.send_offsets_to_transaction(
                    [TopicPartition(t, p, at.position) for (t, p), at in positions.items()],
                    self._consumer.consumer_group_metadata(),
                    self._config.timeout_s,
                )
        except (KafkaException, BufferError) as exc:
            if isinstance(exc, KafkaException) and exc.args[0].fatal():
                raise
            raise AbortableError(str(exc)) from None  # nothing is committed yet
        self._commit()
        read_to = {p: max(offsets[p]) + 1 for p, n in sent.items() if len(offsets.get(p, ())) == n}
        return read_to, entity_offsets

    def _commit(self) -> None:
        """Commit the open transaction. A retriable failure is retried; one the client
        says needs an abort is AbortableError (known not committed); any other leaves
        the outcome unknown: raised, it ends the apply loop, and the next start settles
        it (init_transactions) and reads state and positions from the changelog alike."""
        for attempt in range(COMMIT_ATTEMPTS_MAX):
            try:
                self._producer.commit_transaction(self._config.timeout_s)
                return
            except KafkaException as exc:
                error = exc.args[0]
                if error.txn_requires_abort():
                    raise AbortableError(error.str()) from None
                if not error.retriable() or attempt == COMMIT_ATTEMPTS_MAX - 1:
                    raise
                log.warning("committing to %s: %s; retrying", self._config.changelog_topic, error)

    def _recover(self, reason: str) -> None:
        """A transaction that failed: abort it and read the batch again from the last
        committed positions."""
        log.warning(
            "committing to %s failed (%s); reading again", self._config.changelog_topic, reason
        )
        # Raised on failure: the loop stops and the next start settles the transaction.
        self._producer.abort_transaction(self._config.timeout_s)
        self._seek_to_positions(assign=self.owned is None)
        self._stopping.wait(RETRY_PAUSE_S)

    def _seek_to_positions(self, assign: bool = True) -> None:
        """Every source partition from its committed position (its start if none):
        assigned so, or (a subscribed instance after an aborted transaction, whose
        assignment is the group's) sought to it."""
        at = [
            TopicPartition(t, p, self._positions[(t, p)].position)
            if (t, p) in self._positions
            else TopicPartition(t, p, OFFSET_BEGINNING)
            for t, p in self._assigned
        ]
        self._unheard = set(self._assigned)
        if assign:
            self._consumer.assign(at)
            return
        for tp in at:
            try:
                self._consumer.seek(tp)
            except KafkaException as exc:  # revoked meanwhile: the next owner restores it
                log.info("not reading %s[%d] again: %s", tp.topic, tp.partition, exc)

    def _note_watermarks(self) -> None:
        seen = dict(self.watermarks)
        for topic, partition in self._assigned:
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                seen[(topic, partition)] = int(high)
        self.watermarks = seen  # replaced whole: readers on other threads see one or the other

    def close(self) -> None:
        self._producer.flush(5.0)
