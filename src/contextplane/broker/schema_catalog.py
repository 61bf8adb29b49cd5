"""Which schema ids are live under which subject, for broker-side validation: the
registry's own fold (`RegistryState.apply`) run over the `_schemas` partition this broker
holds, read through the storage engine as a fetch reads it.

Whoever writes `_schemas` (a registry in this process, `contextplane up
--registry-port`, or a separate `contextplane registry`) writes it through this broker, so
its records are here. A registry answers a registration only once it has read its record
back, which it can only do once the record is below the high watermark; the catalog
catches up to the high watermark before every judgement, so an id a client was just given
is always seen.

A broker of a cluster that does not lead `_schemas` reads it from its leader through
`remote` (topic_follower.py), caught up before each judgement to the high watermark the
leader answers then; when the leader cannot be asked or read in time, every record of a
validating topic is refused ("unavailable") rather than judged from an older fold.

The registry's modules (parsers of three schema languages) are imported on first use:
brokers without a validating topic never load them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from contextplane.broker.schema_ids import Carried
from contextplane.broker.subject_strategies import Strategy, subject_for
from contextplane.broker.topic_follower import FollowedRecord, FollowError, TopicFollower
from contextplane.cluster.leadership import NotLeader
from contextplane.errors import KafkaError
from contextplane.limits import SCHEMA_VALIDATION_IDS_MAX
from contextplane.protocol.record_codec import read_records
from contextplane.storage.partition import PartitionLog

if TYPE_CHECKING:
    from contextplane.services.schema_registry.formats import Parsed
    from contextplane.services.schema_registry.state import RegistryState
    from contextplane.storage.engine import StorageEngine

log = logging.getLogger(__name__)

# One read of `_schemas` (a fetch's default partition size); batches decompress to at most
# DECOMPRESSED_BYTES_MAX (the registry's records are small JSON).
READ_BYTES = 1024 * 1024
DECOMPRESSED_BYTES_MAX = 64 * 1024 * 1024
# Subjects whose live ids are remembered between `_schemas` changes.
LIVE_SUBJECTS_MAX = 4096

# Reasons a record is refused (the `reason` label of the rejection counter).
NO_SCHEMA_ID = "no_schema_id"
NOT_REGISTERED = "not_registered"
UNAVAILABLE = "unavailable"

Refusal = tuple[str, str]  # (reason, message)
# The fold's source when another broker leads `_schemas`.
REMOTE = "remote"


class SchemaCatalog:
    """subject -> live schema ids, following `_schemas` in this broker's storage."""

    def __init__(self, topic: str = "_schemas", ids_max: int = SCHEMA_VALIDATION_IDS_MAX) -> None:
        self.topic = topic
        self.ids_max = ids_max
        self._state: RegistryState | None = None
        self._partition: PartitionLog | str | None = None  # local, REMOTE, or none
        self._position = 0
        self._over_bound = False
        # The last catch-up could not read `_schemas` from its leader: judge nothing.
        self._unreadable = False
        # Set once the broker listens (broker/app.py): how to read `_schemas` when another
        # broker leads it; None refuses there, as before.
        self.remote: TopicFollower | None = None
        self._live: dict[str, frozenset[int]] = {}
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def current(
        self, storage: StorageEngine, exists: bool = False
    ) -> AsyncIterator[SchemaCatalog]:
        """Caught up with `_schemas`' high watermark for the block's judgements (which run
        on the event loop; the fold runs on a worker thread, never during them).
        `exists`: `_schemas` is in this broker's topic table (its leader, not yet noted in
        the storage engine's mirror, is then asked through the follower)."""
        ticket = self.remote.ticket() if self.remote is not None else 0
        async with self._lock:
            await self._catch_up(storage, ticket, exists)
            yield self

    @property
    def registry(self) -> RegistryState | None:
        """The fold as of the latest catch-up (None past the bound, or before any): what
        the console lists. Read it within `current`, which catches up first."""
        return self._state

    # -- judging -----------------------------------------------------------------------

    def refusal(
        self, carried: Carried, topic: str, is_key: bool, strategy: Strategy
    ) -> Refusal | None:
        """Why a key or value carrying `carried` may not be appended; None if it may."""
        schema_id = carried.schema_id
        if schema_id is None:
            return NO_SCHEMA_ID, carried.problem or "Record has no schema id"
        if self._unreadable:
            return UNAVAILABLE, (
                f"Schema validation is unavailable: {self.topic} could not be read from its leader"
            )
        if self._over_bound:
            return UNAVAILABLE, (
                f"Schema validation is unavailable: {self.topic} holds more than "
                f"{self.ids_max} schema ids"
            )
        state = self._state
        record_name = None
        if strategy.needs_record_name:
            stored = state.schemas.get(schema_id) if state is not None else None
            if stored is None:
                return NOT_REGISTERED, f"Schema id {schema_id} is not registered"
            record_name = record_name_of(stored.parsed, carried.message_path)
            if record_name is None:
                return NOT_REGISTERED, (
                    f"Schema id {schema_id} names no record for {strategy.value}"
                )
        subject = subject_for(strategy, topic, is_key, record_name)
        if schema_id not in self._live_ids(subject):
            return NOT_REGISTERED, f"Schema id {schema_id} is not registered for subject {subject}"
        return None

    def _live_ids(self, subject: str) -> frozenset[int]:
        found = self._live.get(subject)
        if found is None:
            state = self._state
            versions = state.versions(subject) if state is not None else []
            found = frozenset(v.schema_id for v in versions)
            if len(self._live) >= LIVE_SUBJECTS_MAX:
                self._live.clear()
            self._live[subject] = found
        return found

    # -- following `_schemas` --------------------------------------------------------------

    async def _catch_up(self, storage: StorageEngine, ticket: int, exists: bool) -> None:
        self._unreadable = False
        try:
            partition = storage.partition(self.topic, 0)
        except NotLeader:
            await self._catch_up_remote(ticket)  # another broker leads it (or none yet)
            return
        except KafkaError:
            if exists:  # created elsewhere, its leader not noted here yet
                await self._catch_up_remote(ticket)
                return
            partition = None  # no registry has created it yet
        if partition is not self._partition:
            self._restart(partition)
        if partition is None or self._over_bound:
            return
        while self._position < partition.high_watermark and not partition.deleted:
            self._position = max(self._position, partition.log_start_offset)
            end = partition.high_watermark
            try:
                batches = await storage.read(partition, self._position, READ_BYTES)
            except (KafkaError, OSError) as exc:
                # Judged on what was folded so far; the next produce tries again.
                log.warning("reading %s for schema validation failed: %s", self.topic, exc)
                return
            if not batches:
                return
            before = self._position
            self._position = await asyncio.to_thread(self._apply, batches, before, end)
            if self._position == before:
                return  # nothing read past it: judged on what was folded; never spin
            self._folded()

    async def _catch_up_remote(self, ticket: int) -> None:
        """Fold the leader's records up to the high watermark it answers after `ticket`."""
        follower = self.remote
        if follower is None:
            self._unreadable = True
            return
        if self._partition is not REMOTE:
            self._restart(REMOTE)
        if self._over_bound:
            return
        try:
            marks = await follower.end_since(ticket)
            if marks.high < self._position:  # deleted and created again: fold afresh
                self._restart(REMOTE)
            self._position = max(self._position, marks.log_start)
            while self._position < marks.high and not self._over_bound:
                chunk = await follower.read(self._position, marks.high)
                await asyncio.to_thread(self._apply_followed, chunk.records)
                self._position = chunk.position
                self._folded()
        except FollowError as exc:
            log.warning("schema validation: %s", exc)
            self._unreadable = True

    def _folded(self) -> None:
        """After records were folded: forget derived answers; past the bound, stop."""
        self._live.clear()
        if self._state is not None and len(self._state.schemas) > self.ids_max:
            log.warning(
                "%s holds more than %d schema ids: records of validating topics are "
                "refused until the broker restarts",
                self.topic,
                self.ids_max,
            )
            self._over_bound = True
            self._state = None

    def _restart(self, partition: PartitionLog | str | None) -> None:
        from contextplane.services.schema_registry.state import RegistryState

        self._partition = partition
        self._state = RegistryState()
        self._position = partition.log_start_offset if isinstance(partition, PartitionLog) else 0
        self._over_bound = False
        self._live.clear()

    def _apply(self, batches: list[bytes | memoryview], position: int, end: int) -> int:
        """Fold the records at `position` and after, below `end`; the next position."""
        state = self._state
        assert state is not None
        for batch in batches:
            header, records = read_records(batch, DECOMPRESSED_BYTES_MAX)
            if not header.is_control:
                for record in records:
                    if position <= record.offset < end:
                        state.apply(record.key, record.value)
            position = max(position, min(end, header.base_offset + header.last_offset_delta + 1))
        return position

    def _apply_followed(self, records: list[FollowedRecord]) -> None:
        state = self._state
        assert state is not None
        for record in records:
            state.apply(record.key, record.value)


def record_name_of(parsed: Parsed, message_path: tuple[int, ...] | None) -> str | None:
    """The record name a schema gives the record strategies (Confluent's
    `ParsedSchema.name()`): an Avro schema's full name (or its type's), a JSON Schema's
    `title`, the full name of the Protobuf message the payload's path names."""
    from contextplane.services.schema_registry.avro_schema import AvroSchema
    from contextplane.services.schema_registry.json_schema import JsonSchema

    if isinstance(parsed, AvroSchema):
        tree = parsed.tree
        if isinstance(tree, dict):
            name = tree.get("name") if tree.get("type") in ("record", "enum", "fixed") else None
            return str(name if name is not None else tree.get("type"))
        return "union" if isinstance(tree, list) else str(tree)
    if isinstance(parsed, JsonSchema):
        document = parsed.document
        title = document.get("title") if isinstance(document, dict) else None
        return title if isinstance(title, str) else None
    if message_path is None:
        # The indexes after the id do not read (cut short, past the bound, a varint that
        # never ends): the payload names no message, as Confluent's deserializer fails.
        return None
    return _protobuf_message(parsed.package, parsed.own_messages, message_path)


def _protobuf_message(package: str, messages: tuple[str, ...], path: tuple[int, ...]) -> str | None:
    scope = package
    for index in path:
        children = list(_children(scope, messages))
        if index >= len(children):
            return None
        scope = children[index]
    return scope if scope != package else None


def _children(scope: str, messages: tuple[str, ...]) -> Iterator[str]:
    prefix = f"{scope}." if scope else ""
    for name in messages:
        if name.startswith(prefix) and "." not in name[len(prefix) :]:
            yield name
