"""What the metadata store holds, as the rest of the broker sees it: plain records, the
same for every engine (SQLite today, PostgreSQL for a cluster)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class TopicRecord:
    name: str
    topic_id: bytes
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ProducerRow:
    """One producer's stored state in one partition, as of the partition's committed end:
    its epoch and last batches (None: no idempotent state), and the first offset of its
    open transaction (None: none open)."""

    producer_id: int
    epoch: int | None
    # (first sequence, last sequence, base offset, last offset, max timestamp) each.
    batches: list[tuple[int, int, int, int, int]]
    txn_first_offset: int | None = None


# An aborted transaction: (producer id, first offset, last offset = its ABORT marker's).
AbortedRow = tuple[int, int, int]


@dataclass(slots=True)
class StoredProducerState:
    """A partition's producer state and aborted transactions as stored."""

    producers: list[ProducerRow] = field(default_factory=list)
    aborted: list[AbortedRow] = field(default_factory=list)  # the latest, by last offset
    # Whether older aborted transactions than `aborted`'s are stored (not loaded).
    aborted_truncated: bool = False


@dataclass(slots=True)
class ProducerStateDelta:
    """What an object commit changes in a partition's stored producer state: the rows of
    the producers touched since the last commit, the aborted transactions closed since,
    and the log start below which aborted transactions are dropped."""

    upserts: list[ProducerRow]
    deletes: list[int]
    aborted: list[AbortedRow]
    log_start_offset: int


@dataclass(slots=True)
class PartitionRecord:
    stream_id: int
    topic: str
    partition: int
    leader_node: int
    leader_epoch: int
    log_start_offset: int
    producer_state: StoredProducerState = field(default_factory=StoredProducerState)
    target_node: int = -1  # the desired leader (RFC 0004 §2); -1: none written
    # The epoch whose leader holds acknowledged records in no object (0: none; RFC 0004 §5).
    wal_dirty: int = 0


@dataclass(slots=True)
class RangeRecord:
    """One partition's contiguous batches inside one object."""

    stream_id: int
    base_offset: int
    end_offset: int  # exclusive
    object_key: str
    position: int
    size: int
    max_timestamp: int
    created_ms: int = 0  # when its object was committed (segment rolling by time)


@dataclass(frozen=True, slots=True)
class ObjectUsage:
    """What the object index holds: every object and its bytes, and per topic the objects
    its ranges are in (a multi-partition object counts for each of its topics) and the
    bytes of those ranges."""

    objects: int
    object_bytes: int
    by_topic: dict[str, tuple[int, int]]  # topic -> (objects, range bytes)


@dataclass(frozen=True, slots=True)
class RangeSummary:
    """What a partition's ranges amount to, read at start-up instead of the ranges: where
    its objects end, and what retention decides on without loading them."""

    stream_id: int
    end_offset: int  # exclusive end of its last range
    retained_bytes: int  # -1: unknown (summing sizes reads every row)
    range_count: int  # 1, or 2 for two or more (start-up seeks the first and last only)
    first_max_timestamp: int  # max_timestamp of its first (oldest) range


@dataclass(frozen=True, slots=True)
class ReplicaRanges:
    """What a read replica refreshes its mirror of a partition from (RFC 0004 §7). The
    transaction state is read after the ranges, so it is as of their end or later."""

    stream_id: int
    log_start_offset: int
    ranges: list[RangeRecord]  # those starting at or after the offset asked, in order
    open_first: int | None = None  # the first offset of the oldest open transaction
    aborted: list[AbortedRow] = field(default_factory=list)  # by last offset, those asked
    # Whether older ones than `aborted`'s were asked for too (only the latest are read).
    aborted_truncated: bool = False


@dataclass(frozen=True, slots=True)
class RangeCommit:
    """A range of an object being committed (its key and time are the object's)."""

    stream_id: int
    base_offset: int
    end_offset: int
    position: int
    size: int
    max_timestamp: int


@dataclass(slots=True)
class ObjectCommit:
    """Everything one upload publishes, in one transaction."""

    key: str
    size: int
    created_ms: int
    ranges: list[RangeCommit]
    # The committing broker's leader epoch per stream, checked in the same transaction.
    epochs: dict[int, int]
    # Changes to the producer state as of each stream's last committed range.
    producer_states: dict[int, ProducerStateDelta]
    # Streams whose every acknowledged record this commit publishes: no longer dirty.
    clear_dirty: frozenset[int] = frozenset()


@dataclass(slots=True)
class RangeSwap:
    """The cleaner's rewrite of one partition's ranges in [base_offset, end_offset): the
    ranges it read, (base offset, object key) each, are replaced by the new object's
    ranges (none when nothing survived), if the leader epoch is still `epoch`."""

    stream_id: int
    epoch: int
    base_offset: int
    end_offset: int
    replaced: list[tuple[int, str]]
    key: str
    size: int
    created_ms: int
    ranges: list[RangeCommit]
    delete_due_ms: int  # when objects left unreferenced are deleted
    cleaner_state: dict[str, Any]


@dataclass(slots=True)
class CommitOutcome:
    """What `commit_object` published: streams whose stored epoch differed from the
    committer's are left out (stream -> stored epoch), the rest committed. The caller's
    leadership decides what a difference means (storage/leadership.py)."""

    committed: set[int]
    epoch_mismatch: dict[int, int]
    deleted: set[int]  # streams whose topic was deleted while the data was in flight
    # An earlier attempt of this commit, whose reply was lost, had already published the
    # object: `committed` are its streams whose epoch is still the committer's.
    replayed: bool = False

    @property
    def object_published(self) -> bool:
        return self.replayed or bool(self.committed)


@dataclass(frozen=True, slots=True)
class WalSource:
    """A dead broker's object WAL another broker recovers: its node, the incarnation
    whose registration named it, and its URL (`brokers.wal_url`)."""

    node_id: int
    incarnation: int
    wal_url: str


@dataclass(slots=True)
class ClaimOutcome:
    """Streams claimed (stream -> new epoch), streams whose epoch had moved since it was
    read (stream -> stored epoch), and streams refused because another node's WAL holds
    acknowledged records of theirs (stream -> that node)."""

    claimed: dict[int, int]
    moved: dict[int, int]
    dirty: dict[int, int] = field(default_factory=dict)
    # Dirty streams claimed all the same (unclean.leader.election.enable): stream ->
    # (the node whose un-uploaded records are given up, the object end offset kept).
    unclean: dict[int, tuple[int, int]] = field(default_factory=dict)
    # Dirty streams claimed to recover them from a dead broker's object WAL (RFC 0004
    # §4): stream -> that WAL, then every other expired broker's WAL not yet recovered
    # (a recoverer that died mid-recovery leaves records in the WAL it was reading).
    recovering: dict[int, tuple[WalSource, ...]] = field(default_factory=dict)


@dataclass(slots=True)
class CommittedOffset:
    offset: int
    leader_epoch: int
    metadata: str | None
    commit_ms: int = -1  # wall-clock time of the commit


@dataclass(frozen=True, slots=True)
class OffsetRow:
    """One committed offset of a group."""

    topic: str
    partition: int
    offset: int
    leader_epoch: int
    metadata: str | None


@dataclass(frozen=True, slots=True)
class AclRecord:
    """One ACL binding as stored: Kafka's codes for the resource type, pattern type,
    operation and permission (`security/acls.py` names them)."""

    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission: int


@dataclass(frozen=True, slots=True)
class ClientQuotaRecord:
    """One client quota value as stored: its entity's (type, name) pairs sorted by type
    (name None: the type's default), the quota key, and its value (None in a change:
    remove the key)."""

    entity: tuple[tuple[str, str | None], ...]
    key: str
    value: float | None


@dataclass(frozen=True, slots=True)
class ScramCredentialRecord:
    """One user's SCRAM credential for one mechanism, as Kafka's controller keeps it
    (RFC 5802): the salt, StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey =
    HMAC(SaltedPassword, "Server Key") and the iteration count; never the password."""

    user: str
    mechanism: str  # SCRAM-SHA-256 or SCRAM-SHA-512
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


@dataclass(slots=True)
class TransactionRecord:
    """One transactional.id's coordinator state (coordinators/transactions.py): its
    producer id and epoch, its state (Kafka's TransactionState names), and the
    partitions and groups of its current transaction."""

    transactional_id: str
    producer_id: int
    epoch: int
    timeout_ms: int
    state: str
    update_ms: int
    previous_producer_id: int = -1
    client_transaction_version: int = 0
    start_ms: int = -1
    # (topic, partition) -> whether its COMMIT/ABORT marker is durable.
    partitions: dict[tuple[str, int], bool] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class ObjectSummary:
    """An object as object compaction plans it: its level (0 an upload, 1 compacted), the
    number of streams it was written with (0: unknown) and the ranges that reference it."""

    key: str
    size: int
    created_ms: int
    level: int
    streams: int
    ranges: tuple[RangeRecord, ...]

    @property
    def live_bytes(self) -> int:
        return sum(r.size for r in self.ranges)


@dataclass(frozen=True, slots=True)
class CompactedRange:
    """A range of a compacted object. It replaces the stream's ranges starting in
    [base_offset, end_offset), which were `replaced` ((base offset, object key) each)
    when the compactor read them; `created_ms` is the first replaced range's."""

    stream_id: int
    base_offset: int
    end_offset: int  # exclusive
    position: int
    size: int
    max_timestamp: int
    created_ms: int
    replaced: tuple[tuple[int, str], ...]


@dataclass(slots=True)
class CompactedObject:
    key: str
    size: int
    created_ms: int
    level: int
    ranges: list[CompactedRange]


@dataclass(slots=True)
class ObjectSwap:
    """Object compaction's swap of many streams' ranges for the ranges of `outputs`, if
    each stream's leader epoch is still that of `epochs` (RFC 0003, swap_objects)."""

    outputs: list[CompactedObject]
    epochs: dict[int, int]
    delete_due_ms: int  # when objects left unreferenced are deleted


@dataclass(slots=True)
class SwapOutcome:
    """What `swap_objects` did: the streams swapped, those left out (their epoch moved,
    or their topic is gone; or their ranges changed since they were read), the outputs
    inserted and those not inserted (no stream of theirs was kept: the caller deletes
    them), and the input objects left unreferenced (queued for deletion)."""

    swapped: set[int] = field(default_factory=set)
    epoch_moved: set[int] = field(default_factory=set)
    ranges_moved: set[int] = field(default_factory=set)
    inserted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    unreferenced: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    """One listener of a registered broker, as it advertises it."""

    listener: str
    host: str
    port: int
    protocol: str  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL


@dataclass(frozen=True, slots=True)
class BrokerRecord:
    """A row of the broker registry (RFC 0004 §1)."""

    node_id: int
    incarnation: int
    rack: str | None
    endpoints: tuple[BrokerEndpoint, ...]
    state: str  # 'live' | 'draining' | 'shutting_down' | 'stopped' | 'expired'
    # How long the lease has left on the database's clock when the row was read (ms;
    # negative: expired). A duration, so no broker compares its clock with the database's.
    lease_remaining_ms: int
    zone_proxy: bool = False  # it stands in for its zone's clients (zone.produce.proxy.enable)

    def endpoint(self, listener: str) -> BrokerEndpoint | None:
        """The endpoint of `listener`, or None when this broker has no such listener."""
        return next((e for e in self.endpoints if e.listener == listener), None)

    @property
    def bound(self) -> bool:
        """Whether its listeners' ports are known: a broker registers before it binds,
        with port 0 for `listener.port=0`, and publishes the bound ports after. Clients
        and peers are offered only a bound broker (one of port 0 cannot be dialled)."""
        return all(e.port != 0 for e in self.endpoints)


@dataclass(frozen=True, slots=True)
class Registration:
    """What a registration found: `registered` (this incarnation holds the node id now)
    and the row as it stands, this incarnation's or the live holder's."""

    registered: bool
    broker: BrokerRecord


@dataclass(frozen=True, slots=True)
class ControllerRecord:
    """The controller row (RFC 0004 §2): the node holding the controller's lease and the
    epoch that fences its writes; node -1 before any broker took it."""

    node_id: int
    epoch: int


@dataclass(frozen=True, slots=True)
class ClusterHeartbeat:
    """What one heartbeat transaction read: the live brokers, the controller as it stands
    after this broker tried to renew or take it, and the change generations; and which
    of the dirty marks it owed it wrote (RFC 0004 §5's outage path)."""

    brokers: list[BrokerRecord]
    controller: ControllerRecord
    topics_generation: int
    assignment_generation: int
    security_generation: int
    owed_marked: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class AssignmentRow:
    """A partition's leadership and desired leader, as the reconciler reads it."""

    stream_id: int
    topic: str
    partition: int
    leader_node: int
    leader_epoch: int
    target_node: int
    # Whether the leader's lease was live when the row was read (database clock).
    leader_live: bool = True


@dataclass(frozen=True, slots=True)
class Reassignment:
    """A move in progress (a `reassignments` row): `source` leads until it hands over."""

    topic: str
    partition: int
    source: int
    target: int
    started_ms: int


@dataclass(frozen=True, slots=True)
class Expiry:
    """A broker the controller found with a lapsed lease and marked expired: where its
    clean partitions went (stream -> node) and which dirty ones stay offline, targeted
    at it until it returns on its WAL (RFC 0004 §5); with an object WAL its dirty ones
    are in `moved` too, all to `recoverer`."""

    node_id: int
    moved: dict[int, int]
    offline: list[int]
    # With an object WAL: the broker given every dirty partition to recover (-1: none).
    recoverer: int = -1


@dataclass(slots=True)
class StoredConsumerGroup:
    """A KIP-848 consumer group as stored: its row's and its members' JSON documents."""

    group_id: str
    state: str
    members: dict[str, tuple[str, str]]  # member id -> (metadata, assignment) documents


@dataclass(slots=True)
class MemberWrite:
    """A member's documents to write; None: unchanged (a new member has both)."""

    metadata: str | None
    assignment: str | None


@dataclass(slots=True)
class ConsumerGroupWrite:
    """What changed in one consumer group: `group_state` None deletes the group and all
    its members; otherwise the group's document, the members written and those removed."""

    group_id: str
    group_state: str | None
    members: dict[str, MemberWrite] = field(default_factory=dict)
    removed_members: list[str] = field(default_factory=list)


@dataclass(slots=True)
class StoredSharePartition:
    """A share partition's state (KIP-932) as stored: its start offset, the epoch of the
    state, and its in-flight records as runs (first offset, last offset, state, delivery
    count); locks are not stored."""

    group_id: str
    topic: str
    partition: int
    start_offset: int
    state_epoch: int
    runs: list[tuple[int, int, int, int]]
