"""The metadata store interface: topics, partitions (leader + epoch), the object index,
group offsets, producer state, counters, ACLs, client quotas and SCRAM credentials.

Every method is async and runs off the event loop (an engine does its blocking work on
its own thread). Engines keep two invariants: every change readers rely on is one
transaction, and an object commit checks each partition's leader epoch in the same
transaction that publishes its ranges. SQLite (`sqlite.py`) is the embedded engine,
PostgreSQL (`postgres.py`) the one several brokers share; both run the same SQL logic
(`sql_engine.py`). Records are defined in `records.py`, never by an
engine.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, Protocol

from contextplane.errors import DependencyUnavailable
from contextplane.metadata.records import (
    AbortedRow,
    AclRecord,
    AssignmentRow,
    BrokerEndpoint,
    BrokerRecord,
    ClaimOutcome,
    ClientQuotaRecord,
    ClusterHeartbeat,
    CommitOutcome,
    CommittedOffset,
    ConsumerGroupWrite,
    ControllerRecord,
    Expiry,
    ObjectCommit,
    ObjectSummary,
    ObjectSwap,
    ObjectUsage,
    OffsetRow,
    PartitionRecord,
    RangeRecord,
    RangeSummary,
    RangeSwap,
    Reassignment,
    Registration,
    ReplicaRanges,
    ScramCredentialRecord,
    StoredConsumerGroup,
    StoredSharePartition,
    SwapOutcome,
    TopicRecord,
    TransactionRecord,
)
from contextplane.metadata.reserve import SpaceReserve
from contextplane.metadata.runner import Runner
from contextplane.protocol.error_codes import ErrorCode

if TYPE_CHECKING:
    from contextplane.metadata.sql_assignment import TargetOf
    from contextplane.metadata.sql_wal_dirty import Placing
    from contextplane.settings import Settings


class ChangeListener(Protocol):
    """Wakes the registry on committed changes (metadata/postgres_listener.py)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class MetadataStore(Protocol):
    reserve: SpaceReserve | None

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def cluster_id(self) -> str: ...
    async def next_counter(self, name: str, count: int = 1) -> int:
        """Allocate `count` values of a durable counter; returns the first."""
        ...

    async def create_topic(
        self,
        name: str,
        partitions: int,
        configs: dict[str, str],
        placement: TargetOf | None = None,
    ) -> TopicRecord:
        """Create a topic; `placement` gives each new partition's target node (RFC 0004
        §2), written in the creating transaction."""
        ...

    async def create_topics(
        self,
        names: list[str],
        partitions: int,
        configs: dict[str, str],
        placement: TargetOf | None = None,
    ) -> list[TopicRecord]:
        """Create the topics of `names` that do not exist yet, in one transaction."""
        ...

    async def topics(self) -> list[TopicRecord]: ...
    async def topic(self, name: str) -> TopicRecord | None:
        """One topic by name (None: no such topic)."""
        ...

    async def topic_by_id(self, topic_id: bytes) -> TopicRecord | None:
        """One topic by its 16-byte id (None: no topic has it)."""
        ...

    async def delete_topic(self, name: str, delete_due_ms: int) -> list[str]:
        """Delete a topic and its ranges; objects no range references now become due for
        deletion at `delete_due_ms` (in the same transaction); returns their keys."""
        ...

    async def add_partitions(
        self, name: str, total: int, placement: TargetOf | None = None
    ) -> None: ...
    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None: ...

    async def partitions(self, topic: str | None = None) -> list[PartitionRecord]: ...
    async def claim_leadership(
        self, claims: dict[int, int], node_id: int, unclean: frozenset[int] = frozenset()
    ) -> ClaimOutcome:
        """Lead each stream with epoch `seen + 1` (claims: stream -> epoch seen); a dirty
        stream only by its leader's node, or by anyone if in `unclean`."""
        ...

    async def mark_wal_dirty(self, epochs: dict[int, int]) -> set[int]:
        """Mark streams dirty at their epoch (stream -> epoch), in one transaction; returns
        the streams marked (the others are no longer led at that epoch)."""
        ...

    async def settle_wal_dirty(self, dirty: dict[int, int], clean: dict[int, int]) -> None:
        """A start's replay: mark `dirty` streams dirty and `clean` ones clean (stream ->
        epoch, each only where still led at that epoch), in one transaction."""
        ...

    async def expire_brokers(
        self,
        controller: ControllerRecord,
        placement: Placing,
        unclean_topics: frozenset[str] = frozenset(),
    ) -> list[Expiry]:
        """The controller's failover: brokers whose lease lapsed are marked expired and
        their clean partitions retargeted by `placement(dead nodes)` (reason
        `failover`), their dirty ones left targeted at them unless their topic is in
        `unclean_topics`, in one transaction fenced by `controller`."""
        ...

    async def leader_epochs(self, stream_ids: list[int]) -> dict[int, int]:
        """The stored leader epochs of `stream_ids` (deleted streams are absent)."""
        ...

    async def finish_wal_recovery(self, node_id: int, incarnation: int) -> bool:
        """A dead broker's object WAL was recovered: if none of the partitions it led is
        dirty any more, mark that incarnation's WAL recovered (`wal_url` NULL) and return
        True (its objects may be deleted); False leaves it as it is."""
        ...

    async def commit_object(self, commit: ObjectCommit) -> CommitOutcome: ...
    async def ranges_by_stream(self) -> dict[int, list[RangeRecord]]: ...
    async def ranges_of(self, stream_id: int) -> list[RangeRecord]:
        """One stream's ranges in offset order (its object index, loaded on first need)."""
        ...

    async def replica_ranges(
        self, topic: str, partition: int, since: int, aborted_since: int = -1
    ) -> ReplicaRanges | None:
        """A read replica's refresh: the partition's stream id, log start and ranges
        starting at or after `since`, then its oldest open transaction's first offset and
        the aborted transactions ending at or after `aborted_since` (None: no such
        partition)."""
        ...

    async def aborted_in(
        self, stream_id: int, start: int, end: int, before: int
    ) -> list[AbortedRow]:
        """The stream's stored aborted transactions (by last offset) overlapping
        [start, end) whose ABORT marker lies before `before`: those a partition's
        transaction index no longer keeps in memory."""
        ...

    async def range_summaries(self) -> dict[int, RangeSummary]:
        """Each stream's `RangeSummary` in one grouped query (broker start)."""
        ...

    async def advance_log_start(self, stream_id: int, offset: int, delete_due_ms: int) -> list[str]:
        """Move the log start forward; objects no range references now become due for
        deletion at `delete_due_ms` (in the same transaction); returns their keys."""
        ...

    async def due_deletions(self, now_ms: int, limit: int) -> list[str]:
        """Keys of unreferenced objects due for deletion by `now_ms`, oldest due first."""
        ...

    async def next_deletion_due(self) -> int | None: ...
    async def forget_deletions(self, keys: list[str]) -> None:
        """The object store deleted these objects."""
        ...

    async def any_object(self) -> str | None:
        """The key of one object a range references; None when there is none."""
        ...

    async def object_usage(self) -> ObjectUsage:
        """Objects and their bytes, in all and per topic (the console's object store page)."""
        ...

    async def known_objects(self, keys: list[str]) -> set[str]:
        """Those of `keys` a range references or that wait for deletion."""
        ...

    async def swap_ranges(self, swap: RangeSwap) -> bool:
        """The cleaner's swap (records.RangeSwap), epoch-checked, in one transaction;
        False when the epoch or the ranges changed meanwhile (nothing is changed)."""
        ...

    async def compaction_candidates(
        self, created_before_ms: int, live_ratio: float, limit: int, small_bytes: int
    ) -> list[ObjectSummary]:
        """Object compaction's candidates: the oldest level-0 objects created by
        `created_before_ms`, the oldest compacted ones smaller than `small_bytes`, and the
        oldest whose referenced bytes are below `live_ratio` of their size (at most `limit`
        of each), with their ranges."""
        ...

    async def swap_objects(self, swap: ObjectSwap) -> SwapOutcome:
        """Object compaction's swap (records.ObjectSwap), per stream epoch- and
        range-checked, in one transaction; streams that changed are left out."""
        ...

    async def cleaner_states(self) -> dict[int, dict[str, Any]]:
        """Each stream's cleaner progress, as the last swap stored it."""
        ...

    async def commit_offsets(
        self,
        group_id: str,
        rows: list[OffsetRow],
        now_ms: int,
        fence: tuple[int, int] | None = None,
    ) -> None:
        """Upsert `rows`; with `fence` (the coordinator shard's stream and leader epoch)
        only while that epoch is stored, read in the same transaction (else
        CoordinatorFenced, nothing written)."""
        ...

    async def fetch_offsets(self, group_id: str) -> dict[tuple[str, int], CommittedOffset]: ...
    async def delete_offsets(
        self,
        group_id: str,
        partitions: list[tuple[str, int]] | None,
        fence: tuple[int, int] | None = None,
    ) -> None:
        """Delete a group's offsets (all: None), fenced as `commit_offsets`."""
        ...

    async def delete_topic_offsets(self, topic: str) -> None: ...
    async def groups_with_offsets(self) -> list[str]: ...

    # -- classic groups (loaded at start; saved at Kafka's GroupMetadataValue writes)
    async def classic_groups(self) -> dict[str, bytes]:
        """Group id -> its GroupMetadataValue."""
        ...

    async def save_classic_groups(
        self, writes: dict[str, bytes | None], fences: Collection[tuple[int, int]] = ()
    ) -> None:
        """Every write in one transaction (None: the group is deleted), once each
        coordinator shard (stream, epoch) of `fences` is still at its epoch (else
        CoordinatorFenced, nothing written)."""
        ...

    # -- share groups' membership (loaded at start, each change saved before it is told)
    async def share_groups(self) -> dict[str, bytes]:
        """Group id -> its membership (coordinators/share_stored.py)."""
        ...

    async def save_share_groups(
        self, writes: dict[str, bytes | None], fences: Collection[tuple[int, int]] = ()
    ) -> None:
        """Every write in one transaction (None: the group is deleted), fenced as
        `save_classic_groups`."""
        ...

    # -- KIP-848 consumer groups (loaded at start, each change saved before it is told)
    async def consumer_groups(self) -> list[StoredConsumerGroup]: ...
    async def save_consumer_groups(
        self, writes: list[ConsumerGroupWrite], fences: Collection[tuple[int, int]] = ()
    ) -> None:
        """Every write in one transaction, fenced as `save_classic_groups`."""
        ...

    async def convert_groups(
        self,
        writes: list[ConsumerGroupWrite],
        classic: dict[str, bytes | None],
        fences: Collection[tuple[int, int]] = (),
    ) -> None:
        """Consumer group writes and classic group rows (None: deleted) in one
        transaction: a group converted between the protocols; fenced as
        `save_classic_groups`."""
        ...

    async def group_configs(self) -> dict[str, dict[str, str]]:
        """Per-group configs (GROUP config resources): group id -> name -> value."""
        ...

    async def set_group_configs(self, group_id: str, configs: dict[str, str]) -> None:
        """Replace one group's configs (none: it has none)."""
        ...

    # -- dynamic broker configs (KIP-226): '' for the cluster default, else a node id
    async def broker_configs(self) -> dict[str, dict[str, str]]:
        """Dynamic broker configs: resource name -> name -> value."""
        ...

    async def set_broker_configs(self, broker: str, configs: dict[str, str]) -> None:
        """Replace one resource's dynamic broker configs (none: it has none)."""
        ...

    # -- KIP-932 share partitions (loaded at start, each change saved before it is told)
    async def share_partitions(
        self, key: tuple[str, str, int] | None = None
    ) -> list[StoredSharePartition]:
        """Every share partition, or the one of `key` (group, topic, partition)."""
        ...

    async def save_share_partitions(
        self, partitions: list[StoredSharePartition], fences: Collection[tuple[int, int]] = ()
    ) -> None:
        """Replace each partition's state and in-flight runs, all in one transaction, once
        each topic partition (stream, leader epoch) of `fences` is still at its epoch
        (else CoordinatorFenced, nothing written)."""
        ...

    async def delete_share_topic_state(self, topic: str) -> None:
        """Every share partition of a deleted topic, in every group."""
        ...

    async def delete_share_group_state(
        self, group_id: str, topics: list[str] | None = None
    ) -> None:
        """Every share partition of a deleted share group, or of its named topics."""
        ...

    async def acls(self) -> list[AclRecord]: ...
    async def create_acls(self, records: list[AclRecord]) -> None:
        """Store ACL bindings (one transaction; a binding already stored stays once)."""
        ...

    async def delete_acls(self, records: list[AclRecord]) -> None: ...

    async def client_quotas(self) -> list[ClientQuotaRecord]: ...
    async def alter_client_quotas(self, changes: list[ClientQuotaRecord]) -> None:
        """Set (value) or remove (value None) client quota keys, in one transaction."""
        ...

    async def scram_credentials(self) -> list[ScramCredentialRecord]: ...
    async def alter_scram_credentials(
        self, upserts: list[ScramCredentialRecord], deletions: list[tuple[str, str]]
    ) -> None:
        """Delete (user, mechanism) credentials and store others, in one transaction."""
        ...

    async def transactions(self) -> list[TransactionRecord]:
        """Every transactional.id's coordinator state (loaded at start)."""
        ...

    async def save_transaction(
        self,
        record: TransactionRecord,
        previous: TransactionRecord | None = None,
        fence: tuple[int, int] | None = None,
    ) -> None:
        """One coordinator transition: the row, its partitions and groups, in one
        transaction; `previous`, what is stored now, lets only the changes be written.
        With `fence` (the `__transaction_state` shard's stream and leader epoch) only
        while that epoch is stored, read in the same transaction (else CoordinatorFenced);
        the other transaction writes are fenced the same way."""
        ...

    async def add_txn_offsets(
        self,
        tid: str,
        group_id: str,
        rows: list[OffsetRow],
        fence: tuple[int, int] | None = None,
    ) -> None:
        """TxnOffsetCommit: offsets pending until the transaction completes."""
        ...

    async def add_txn_offsets_checked(
        self,
        tid: str,
        group_id: str,
        producer: tuple[int, int],
        rows: list[OffsetRow],
        group_shard: int = -1,
    ) -> None:
        """TxnOffsetCommit for a transaction coordinated by another broker: in one
        transaction, the stored transaction checked (the producer's, Ongoing, the group
        added, or its `__consumer_offsets` partition `group_shard`; else its KafkaError)
        with its row locked, then the offsets pending."""
        ...

    async def complete_transaction(
        self,
        record: TransactionRecord,
        committed: bool,
        now_ms: int,
        fence: tuple[int, int] | None = None,
    ) -> dict[str, list[OffsetRow]]:
        """Save `record` and, in the same transaction, make its pending offsets the
        groups' committed offsets (`committed`) or drop them; returns those committed."""
        ...

    async def pending_txn_offsets(self) -> list[tuple[str, str, str, int]]:
        """(transactional id, group, topic, partition) of every pending offset."""
        ...

    async def remove_transaction(self, tid: str, fence: tuple[int, int] | None = None) -> None:
        """An expired transactional.id: its row and everything of it, in one transaction."""
        ...

    # -- the broker registry (RFC 0004 §1; lease times on the database's clock) --------
    # Whether other brokers may share this store (PostgreSQL), so claim what this one
    # leads; an embedded SQLite file has one broker (storage/wal_dirty.py).
    shared: bool

    def companion(self) -> MetadataStore:
        """A store (not yet opened) whose calls do not queue behind this one's, for the
        registry's heartbeat; this store itself where the engine cannot share."""
        ...

    def change_listener(self, wake: Callable[[], None]) -> ChangeListener | None:
        """What calls `wake` whenever another broker commits a change generation (not yet
        started); None where no other broker commits (SQLite)."""
        ...

    async def register_broker(
        self,
        node_id: int,
        incarnation: int,
        rack: str | None,
        endpoints: tuple[BrokerEndpoint, ...],
        session_ms: int,
        replaces: int = -1,
        wal_url: str | None = None,
        zone_proxy: bool = False,
    ) -> Registration:
        """Take `node_id` for `incarnation` with a lease of `session_ms`, unless a live
        broker holds it (then `registered` is False and the row is the holder's); a row of
        incarnation `replaces`, which the caller knows is gone, is taken even if live.
        `wal_url` names its object WAL (None: a local one)."""
        ...

    async def heartbeat_broker(
        self, node_id: int, incarnation: int, session_ms: int
    ) -> list[BrokerRecord] | None:
        """Renew the lease and read the live brokers in one transaction; None when the
        row is no longer this incarnation's."""
        ...

    async def live_brokers(self) -> list[BrokerRecord]: ...
    async def set_broker_endpoints(
        self, node_id: int, incarnation: int, endpoints: tuple[BrokerEndpoint, ...]
    ) -> bool: ...
    async def broker_loads(self) -> list[tuple[int, str, str]]:
        """(node id, state, load document) of every broker whose lease is live."""
        ...

    async def set_broker_draining(self, node_id: int, draining: bool) -> bool:
        """Mark live broker `node_id` draining or live; False when it is not live."""
        ...

    async def begin_shutdown(self, node_id: int, incarnation: int) -> bool:
        """Mark this incarnation `shutting_down` for a controlled shutdown (not kept
        across restarts, unlike a drain); False when the row is not its live one."""
        ...

    async def deregister_broker(
        self, node_id: int, incarnation: int, owed_marks: dict[int, int] | None = None
    ) -> None:
        """A clean stop: the row marked stopped, the dirty marks it owes written and its
        `unmarked_acks` flag cleared, in one transaction (the flag left as it is when
        `owed_marks` is None: storage never opened)."""
        ...

    # -- the controller and assignment (RFC 0004 §2) -----------------------------------
    async def cluster_heartbeat(
        self,
        node_id: int,
        incarnation: int,
        session_ms: int,
        controller_epoch: int,
        owed_marks: dict[int, int] | None = None,
        unmarked_acks: bool | None = None,
        load: str | None = None,
    ) -> ClusterHeartbeat | None:
        """Write the dirty marks owed (stream -> epoch), renew the lease (writing the
        broker's measured `load` document unless None), set the
        `unmarked_acks` flag (unless None), renew or take the controller's lease, read
        the live brokers, the controller and the change generations, in one transaction;
        None when the row is no longer this incarnation's."""
        ...

    async def controller(self) -> ControllerRecord: ...
    async def resign_controller(self, node_id: int, controller_epoch: int) -> None: ...
    async def move_partitions(
        self, controller: ControllerRecord, moves: dict[int, int], reason: str
    ) -> bool:
        """The controller's new targets (stream -> node), fenced by its epoch: False and
        nothing written when `controller` no longer holds the controller."""
        ...

    async def reassignments(self) -> list[Reassignment]:
        """Every move in progress (ListPartitionReassignments)."""
        ...

    async def cancel_reassignments(
        self, controller: ControllerRecord, streams: list[int]
    ) -> dict[int, str] | None:
        """Target streams whose move is not handed over back at their leader, fenced by
        the controller's epoch (None: fenced); per stream what was found
        (`sql_reassignments`: cancelled, none, handed-over)."""
        ...

    async def assignment_changes(self, since: int) -> tuple[int, list[AssignmentRow]]:
        """The assignment generation and the partition rows changed after `since`."""
        ...

    async def release_leadership(self, stream_id: int, node_id: int, epoch: int) -> bool:
        """Leave the partition without a leader if `node_id` still leads it at `epoch`."""
        ...


class MetadataStoreUnreachable(RuntimeError):
    """The metadata store's server did not accept a connection (the message names it,
    without a password)."""


class MetadataStoreUnavailable(DependencyUnavailable):
    """A call the metadata store's server could not answer now (connection lost or not
    yet back, no answer within the call's deadline); retriable. Its outcome may be
    unknown: the server may have committed a write whose reply was lost. (SQLite's
    `MetadataStoreFull` is one too: its write was refused for lack of disk.)"""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.request_timed_out) -> None:
        super().__init__(code, message)


def open_metadata_store(
    url: str,
    reserve: SpaceReserve | None = None,
    runner: Runner | None = None,
    settings: Settings | None = None,
) -> MetadataStore:
    """The engine a metadata URL names (not yet opened: `await store.open()`); `settings`
    bound a PostgreSQL store's waits (metadata.postgresql.*; the defaults without)."""
    if url.startswith("sqlite:///"):
        from contextplane.metadata.sqlite import SqliteMetadataStore

        return SqliteMetadataStore(url.removeprefix("sqlite:///"), reserve, runner)
    if url.startswith(("postgresql://", "postgres://")):
        # The space reserve is SQLite's: it holds room on the disk of the database file.
        from contextplane.metadata.postgres import PostgresMetadataStore, PostgresOptions

        options = None if settings is None else PostgresOptions.from_settings(settings)
        return PostgresMetadataStore(url, runner, options)
    scheme = url.partition(":")[0]
    raise ValueError(
        f"metadata store URL scheme {scheme!r}: use sqlite:///path or postgresql://user@host/db"
    )
