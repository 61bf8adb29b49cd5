"""Topic lifecycle: the one place topic names, partition counts and configs are checked.

The topic table is held in memory (loaded at start, changed only through this manager
after each metadata write), so the hot paths read it without touching the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from contextplane import limits
from contextplane.broker.configs import check_not_itself, checked_topic_config
from contextplane.broker.topic_lookup import TopicLookup
from contextplane.errors import KafkaError
from contextplane.metadata.records import TopicRecord
from contextplane.metadata.sql_assignment import TargetOf
from contextplane.metadata.store import MetadataStore
from contextplane.protocol.error_codes import ErrorCode
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine

log = logging.getLogger(__name__)

_LEGAL_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
_NAME_LENGTH_MAX = 249  # Kafka's Topic.MAX_NAME_LENGTH


def validate_topic_name(name: str) -> None:
    """Kafka's `Topic.validate`, with its messages (what Kafka's CreateTopics answers)."""
    problem = None
    if not name:
        problem = "the empty string is not allowed"
    elif name in (".", ".."):
        problem = f"'{name}' is not allowed"
    elif len(name) > _NAME_LENGTH_MAX:
        problem = f"the length of '{name}' is longer than the max allowed length {_NAME_LENGTH_MAX}"
    elif not _LEGAL_NAME.match(name):
        problem = (
            f"'{name}' contains one or more characters other than ASCII alphanumerics, '.', "
            "'_' and '-'"
        )
    if problem is not None:
        raise KafkaError(ErrorCode.invalid_topic_exception, f"Topic name is invalid: {problem}")


_T = TypeVar("_T")


class TopicManager:
    def __init__(
        self,
        metadata: MetadataStore,
        log: StorageEngine,
        settings: Settings,
        placement: Callable[[str], TargetOf] | None = None,
    ) -> None:
        """`placement(topic)` places a new topic's partitions (RFC 0004 §2: over the live
        brokers); by default all on this broker."""
        self._metadata = metadata
        self._log = log
        self._settings = settings
        node_id = settings.node_id
        self._placement = placement or (lambda topic: lambda stream_id: node_id)
        self._topics: dict[str, TopicRecord] = {}
        self._by_id: dict[bytes, TopicRecord] = {}
        # Called with a deleted topic's name (the group coordinator drops its offsets).
        self.on_deleted: list[Callable[[str], Awaitable[None]]] = []
        # Bumped on every change to the topic table (create, delete, partitions, configs),
        # for caches derived from it (Metadata responses).
        self.generation = 0
        self._changes: set[asyncio.Task[Any]] = set()  # changes run to their end
        # Reads topics another broker created since the last heartbeat (a cluster's);
        # `on_found` is called once some were added (the reconciler then opens them).
        self.lookup: TopicLookup | None = None
        self.on_found: Callable[[], None] | None = None
        # The brokers registered now (a cluster's live ones), which bound the replication
        # factor a topic may ask for.
        self.registered_brokers: Callable[[], int] = lambda: 1

    async def _to_completion(self, change: Coroutine[Any, Any, _T]) -> _T:
        """Run a change of the topic table to its end even if the request that asked for
        it is cancelled (its connection closed): stopped between the metadata commit and
        the table or the partitions opened, it would leave a topic that exists in the
        store but is not served, or is listed but led by nobody, until a restart."""
        task = asyncio.ensure_future(change)
        self._changes.add(task)
        task.add_done_callback(self._change_done)
        return await asyncio.shield(task)

    def _change_done(self, task: asyncio.Task[Any]) -> None:
        self._changes.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.debug("topic change ended with %r", exc)  # its request, if alive, answers it

    async def load(self) -> None:
        self._set({t.name: t for t in await self._metadata.topics()})

    async def refresh(self) -> None:
        """Read the topic table again (another broker changed it); the partitions of
        topics deleted meanwhile stop being served here."""
        await self._to_completion(self._refresh())

    async def _refresh(self) -> None:
        while True:
            seen = self.generation
            topics = {t.name: t for t in await self._metadata.topics()}
            if self.generation == seen:
                break
            # A change of this broker's landed during the read, which may predate it
            # (a topic just created would look deleted): read again.
        if topics == self._topics:
            return
        for name in [name for name in self._topics if name not in topics]:
            self._log.drop_topic(name)
        self._set(topics)

    def _set(self, topics: dict[str, TopicRecord]) -> None:
        self._topics = topics
        self._by_id = {t.topic_id: t for t in topics.values()}
        self.generation += 1

    def _put(self, record: TopicRecord) -> None:
        self._set({**self._topics, record.name: record})

    def topics(self) -> dict[str, TopicRecord]:
        return self._topics

    async def find_missing(self, names: Iterable[str | None]) -> None:
        """Add to the table those of `names` another broker created since the last
        heartbeat (within the lookup's bounds; see broker/topic_lookup.py)."""
        if self.lookup is None:
            return
        seen = self.generation
        self._add_found(await self.lookup.find(names), seen)

    def unknown_ids(self, topic_ids: Iterable[bytes]) -> list[bytes]:
        """Those of `topic_ids` the table lacks, if another broker may have created them
        (a cluster's); [] without iterating when none can be looked up."""
        lookup = self.lookup
        if lookup is None or not lookup.enabled:
            return []  # one broker alone: the table is the whole truth
        return [topic_id for topic_id in topic_ids if topic_id not in self._by_id]

    async def find_missing_ids(self, topic_ids: list[bytes]) -> None:
        """`find_missing` for topic ids (16 bytes each, from `unknown_ids`), called
        before a request naming topics by id is authorized: its ids resolve to names
        then (broker/pipeline.py)."""
        if self.lookup is None:
            return
        seen = self.generation
        found = await self.lookup.find_ids(topic_ids)
        # An id whose name the table holds under another id (deleted and created again
        # meanwhile) is left to the refresh, which replaces the old topic's partitions.
        self._add_found([r for r in found if r.name not in self._topics], seen)

    def _add_found(self, found: list[TopicRecord], seen: int) -> None:
        if not found or self.generation != seen:
            return  # the table changed meanwhile (perhaps a deletion): the read may be stale
        self._set({**self._topics, **{r.name: r for r in found}})
        if self.on_found is not None:
            self.on_found()

    def configs(self, name: str) -> dict[str, str]:
        """A topic's explicit configs ({} for an unknown topic)."""
        record = self._topics.get(name)
        return record.configs if record is not None else {}

    def by_id(self, topic_id: bytes) -> TopicRecord | None:
        return self._by_id.get(topic_id)

    def names_of(self, requested: Iterable[Any], by_id: bool) -> list[tuple[Any, str | None]]:
        """(topic as requested, its name) per requested topic. Requests that name topics
        by id (KIP-848's OffsetCommit/OffsetFetch v10, KIP-1319's TxnOffsetCommit v6) are
        resolved with the topic table; None for an id no topic has."""
        if not by_id:
            return [(topic, topic.name) for topic in requested]
        resolved = []
        for topic in requested:
            record = self.by_id(topic.topic_id.bytes) if topic.topic_id is not None else None
            resolved.append((topic, record.name if record is not None else None))
        return resolved

    def check_create(
        self, name: str, partitions: int, replication_factor: int, configs: dict[str, str | None]
    ) -> tuple[int, dict[str, str]]:
        validate_topic_name(name)
        if name in self._topics:
            raise KafkaError(ErrorCode.topic_already_exists, f"Topic '{name}' already exists.")
        settings = self._settings
        if partitions == -1:
            partitions = settings.num_partitions
        if partitions <= 0:
            raise KafkaError(
                ErrorCode.invalid_partitions,
                "Number of partitions was set to an invalid non-positive value.",
            )
        if replication_factor == -1:
            replication_factor = settings.default_replication_factor
        if replication_factor <= 0:
            raise KafkaError(
                ErrorCode.invalid_replication_factor,
                "Replication factor must be larger than 0, or -1 to use the default value.",
            )
        if replication_factor > 1:
            self._check_replication(replication_factor)
        checked = {key: checked_topic_config(key, value) for key, value in configs.items()}
        check_not_itself(name, checked)
        return partitions, checked

    def _check_replication(self, factor: int) -> None:
        """A replication factor above 1 is accepted where Kafka's would be and the data is
        already safer than its replicas make it: every acknowledged record is in the
        object store (the object WAL), which any broker reads. The topic keeps one replica,
        its leader (as AutoMQ forces), so moves and failover change only the leader."""
        registered = self.registered_brokers()
        prefix = f"Unable to replicate the partition {factor} time(s): "
        if factor > registered:  # Kafka's words
            raise KafkaError(
                ErrorCode.invalid_replication_factor,
                f"{prefix}The target replication factor of {factor} cannot be reached because "
                f"only {registered} broker(s) are registered.",
            )
        if not self._settings.wal_url:
            raise KafkaError(
                ErrorCode.invalid_replication_factor,
                f"{prefix}with the local write-ahead log a partition's newest records are on "
                "its leader's disk alone; a replication factor above 1 needs the object WAL "
                "(wal.url), which makes every acknowledged record durable in the object store.",
            )

    async def create(self, name: str, partitions: int, configs: dict[str, str]) -> TopicRecord:
        return await self._to_completion(self._create(name, partitions, configs))

    async def _create(self, name: str, partitions: int, configs: dict[str, str]) -> TopicRecord:
        record = await self._metadata.create_topic(name, partitions, configs, self._placement(name))
        self._put(record)
        await self._log.open_new_partitions(name)
        return record

    async def auto_create_many(self, names: list[str]) -> dict[str, TopicRecord]:
        """Auto-create the valid, unknown topics of `names` in one metadata transaction;
        returns every one of `names` that exists afterwards.

        One request creates at most what Kafka's controller accepts in one CreateTopics
        (PARTITIONS_PER_REQUEST_MAX partitions, RECORDS_PER_REQUEST_MAX records); asked
        for more, it creates none of them, as Kafka does.
        """
        if not self._settings.auto_create_topics_enable:
            return {}
        wanted = []
        for name in dict.fromkeys(names):
            try:
                validate_topic_name(name)
            except KafkaError:
                continue
            if name not in self._topics:
                wanted.append(name)
        partitions = self._settings.num_partitions
        if wanted:
            if (
                len(wanted) * partitions > limits.PARTITIONS_PER_REQUEST_MAX
                or len(wanted) * (1 + partitions) > limits.RECORDS_PER_REQUEST_MAX
            ):
                log.warning(
                    "auto-creation of %d topics (%d partitions each) refused: more than one "
                    "request may create",
                    len(wanted),
                    partitions,
                )
            else:
                await self._to_completion(self._auto_create(wanted, partitions))
        return {name: self._topics[name] for name in names if name in self._topics}

    async def _auto_create(self, wanted: list[str], partitions: int) -> None:
        # One placement for all: auto-created topics are never internal (those exist
        # from the start), so they are placed alike.
        created = await self._metadata.create_topics(
            wanted, partitions, {}, self._placement(wanted[0])
        )
        if len(created) < len(wanted):
            await self.load()  # another connection created some meanwhile
        self._set({**self._topics, **{r.name: r for r in created}})
        for record in created:
            await self._log.open_new_partitions(record.name)

    async def delete(self, name: str) -> None:
        if name not in self._topics:
            raise KafkaError(
                ErrorCode.unknown_topic_or_partition,
                "This server does not host this topic-partition.",
            )
        await self._to_completion(self._delete(name))

    async def _delete(self, name: str) -> None:
        delay_ms = self._log.delete_delay_ms(name)
        # The store first: a deletion it refuses leaves the topic served as before (dropped
        # here first, it would vanish until the next start brought it back). Uploads
        # committed meanwhile find the stream gone and leave it out; a deletion whose
        # outcome is unknown is repeated harmlessly by the client's retry.
        # Its objects are deleted after file.delete.delay.ms: fetches reading them finish.
        await self._metadata.delete_topic(name, self._log.clock.wall_ms() + delay_ms)
        self._log.drop_topic(name)
        self._set({k: v for k, v in self._topics.items() if k != name})
        for callback in self.on_deleted:
            await callback(name)  # Kafka's onPartitionsDeleted
        self._log.objects_unreferenced()

    async def add_partitions(self, name: str, count: int) -> None:
        await self._to_completion(self._add_partitions(name, count))

    async def _add_partitions(self, name: str, count: int) -> None:
        await self._metadata.add_partitions(name, count, self._placement(name))
        record = self._topics.get(name)
        if record is not None:
            self._put(dataclasses.replace(record, partitions=count))
        await self._log.open_new_partitions(name)

    async def set_configs(self, name: str, configs: dict[str, str]) -> None:
        await self._to_completion(self._set_configs(name, configs))

    async def _set_configs(self, name: str, configs: dict[str, str]) -> None:
        await self._metadata.set_topic_configs(name, configs)
        record = self._topics.get(name)
        if record is not None:
            self._put(dataclasses.replace(record, configs=dict(configs)))
